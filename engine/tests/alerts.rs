//! The alert solutions end to end against real parts: the test's single-node cluster (a real
//! kube-apiserver, kubelet and containerd, so pods really crash and really fail to pull), the
//! module processes on the host signed in with a kubeconfig, the solution installed with
//! `kubectl apply` and `weir rbac --apply` (its account holds exactly the rules `weir rbac`
//! derives), and a chat webhook receiver of the test's own on loopback that records what is
//! posted and can answer 429 with Retry-After.
//!
//! The last tests measure the seconds from a pod's failure appearing in its status, a Job's
//! failure, or a deploy call to the chat post; they are ignored by default (`cargo test -p
//! weir-engine --test alerts -- --ignored --nocapture`), and their numbers are recorded in
//! docs/benchmarks.md.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::{CronJob, Job},
    core::v1::{Pod, Secret},
};
use kube::{
    Api,
    api::{WatchEvent, WatchParams},
};
use serde_json::{Value, json};
use weir_distribution::client::Registry;
use weir_testenv::{
    Cluster, busybox_image, eventually,
    solution::{Receiver, Weir, solutions_dir, succeeded, wait_ready},
};
use weir_testregistry::{LocalRegistry, start_registry};

/// How long something that should happen soon may take before the test fails; pods pull and
/// start in about a second, the first crash-loop back-off is 10 s.
const PATIENCE: Duration = Duration::from_secs(90);
/// The modules the alert solutions use, each in a process of its own.
const MODULES: [&str; 4] = ["common", "kubernetes", "js", "http"];
/// The ServiceAccount the module processes sign in as.
const ACCOUNT: &str = weir_testenv::solution::ACCOUNT;

/// A chat's incoming webhook of the test's own on loopback, as Slack's; the first `refuse`
/// posts are answered 429 with Retry-After, as from a chat over its rate limit.
async fn chat(refuse: usize) -> Result<Receiver> {
    let chat = Receiver::start("/hook").await?;
    chat.refuse(refuse);
    Ok(chat)
}

/// What each test of this file starts from: the shared cluster, a registry with busybox the
/// node pulls from, a namespace for the flow with the modules running, and one for the pods.
struct Setup {
    cluster: &'static Cluster,
    client: kube::Client,
    weir: Weir,
    flows: String,
    apps: String,
    image: String,
    _registry: LocalRegistry,
    _modules: Vec<weir_testenv::Process>,
}

async fn setup(prefix: &str) -> Result<Setup> {
    let cluster = Cluster::shared();
    let client = cluster.client().await?;
    let registry = start_registry().await?;
    cluster.expose_registry(&registry.host)?;
    busybox_image(&["/bin/sh"])?
        .push(&Registry::new(&registry.host, true)?, "busybox", "1")
        .await?;
    let image = format!("{}/busybox:1", registry.host);
    let flows = cluster.namespace(&format!("{prefix}-flows")).await?;
    let apps = cluster.namespace(&format!("{prefix}-apps")).await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &cluster.admin_account(&flows, ACCOUNT).await?.0);
    let modules = weir.start_modules(cluster, &flows, &MODULES, ACCOUNT)?;
    Ok(Setup { cluster, client, weir, flows, apps, image, _registry: registry, _modules: modules })
}

impl Setup {
    /// Shows the flow nodes' statuses (errors, counters, kept state), for a failure: the test
    /// harness shows stderr with it.
    #[allow(clippy::print_stderr)]
    fn show_nodes(&self) {
        let output =
            self.cluster.kubectl().args(["get", "fn", "-n", &self.flows, "-o", "json"]).output();
        let Ok(output) = output else { return };
        let Ok(list) = serde_json::from_slice::<Value>(&output.stdout) else { return };
        for node in list["items"].as_array().into_iter().flatten() {
            let mut status = node["status"].clone();
            if let Some(status) = status.as_object_mut() {
                status.remove("ports");
                status.remove("conditions");
            }
            eprintln!("{}: {status}", node["metadata"]["name"]);
        }
    }

    /// Puts the chat's URL in the Secret `chat-webhook` of the flows' namespace.
    async fn chat_secret(&self, chat: &Receiver) -> Result<()> {
        weir_testenv::create::<Secret>(
            &self.client,
            &self.flows,
            json!({ "metadata": { "name": "chat-webhook" }, "stringData": { "url": chat.url } }),
        )
        .await
    }

    /// A pod of busybox running `script`, never pulled again, with a scratch directory that
    /// outlives container restarts (so a script can count its runs).
    async fn pod(&self, name: &str, image: &str, script: &str) -> Result<()> {
        weir_testenv::create::<Pod>(
            &self.client,
            &self.apps,
            json!({
                "metadata": { "name": name },
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "volumes": [{ "name": "state", "emptyDir": {} }],
                    "containers": [{
                        "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", script],
                        "volumeMounts": [{ "name": "state", "mountPath": "/state" }],
                    }],
                },
            }),
        )
        .await
    }
}

/// A script that counts its runs in /state and does what `runs` says for each (the last
/// entry for every run after).
fn runs(runs: &[&str]) -> String {
    let mut script =
        "n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo \"run $n starting\"; case $n in "
            .to_owned();
    for (index, run) in runs.iter().enumerate() {
        let pattern =
            if index + 1 == runs.len() { "*".to_owned() } else { (index + 1).to_string() };
        script.push_str(&format!("{pattern}) {run};; "));
    }
    script.push_str("esac");
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failure_alerts_post_once_per_problem_with_logs_ride_out_a_429_and_alert_again_after_a_recovery()
-> Result<()> {
    let setup = setup("podalerts").await?;
    let outcome = pod_alerts(&setup).await;
    if outcome.is_err() {
        setup.show_nodes();
    }
    outcome
}

async fn pod_alerts(setup: &Setup) -> Result<()> {
    // The first post is refused with 429 and Retry-After: the alert must still arrive, once.
    let chat = chat(1).await?;
    setup.chat_secret(&chat).await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("pod-failure-alerts"),
        &[("namespace", setup.apps.clone()), ("recoveredAfter", "6s".to_owned())],
    )?;
    wait_ready(&setup.client, &setup.flows, "pod-failure-alerts", PATIENCE).await?;

    // The pull failure first: its alert also shows the watch is live before the crash loop
    // starts, since a Ready node may still be connecting its watch.
    let missing = setup.image.replace(":1", ":missing");
    setup.pod("unpullable", &missing, "exit 0").await?;
    let unpullable = format!("`{}/unpullable`", setup.apps);
    let pull = eventually("the unpullable image's alert", PATIENCE, || async {
        Ok(chat.posts_about(&unpullable).first().cloned())
    })
    .await?;
    let text = pull.body["text"].as_str().context("a Slack text")?;
    ensure!(
        text.contains("*ErrImagePull*") || text.contains("*ImagePullBackOff*"),
        "a pull failure: {text}"
    );
    ensure!(
        text.contains("busybox:missing: not found") && !text.contains("logs"),
        "the kubelet's message, and no logs for a container that never ran: {text}"
    );

    // Runs 1 and 2 crash at once, run 3 runs well for 12 s (longer than recoveredAfter) and
    // crashes: a new failure. The kubelet backs off 10 s after run 1 (or restarts it at once
    // and backs off after run 2), then 20 s, so run 2's crash comes while the first alert's
    // failure goes on, and is none of its own.
    setup
        .pod(
            "crasher",
            &setup.image,
            &runs(&[
                "echo 'fatal: run 1 failed'; exit 1",
                "echo 'fatal: run 2 failed'; exit 1",
                "sleep 12; echo 'fatal: run 3 failed'; exit 3",
                "exec sleep 3600",
            ]),
        )
        .await?;
    // A container over its memory limit, killed by the kernel: OOMKilled, once.
    weir_testenv::create::<Pod>(
        &setup.client,
        &setup.apps,
        json!({
            "metadata": { "name": "hungry" },
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "main", "image": setup.image, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", "echo 'loading everything'; a=x; while true; do a=$a$a; done"],
                    "resources": { "limits": { "memory": "16Mi" } },
                }],
            },
        }),
    )
    .await?;
    let crasher = format!("`{}/crasher`", setup.apps);
    let first = eventually("the crash loop's first alert", PATIENCE, || async {
        Ok(chat.posts_about(&crasher).first().cloned())
    })
    .await?;
    let text = first.body["text"].as_str().context("a Slack text")?;
    for needle in ["*CrashLoopBackOff*", "container `main`", "restarts: ", "last exit 1 (Error)"] {
        ensure!(text.contains(needle), "{needle:?} is not in the alert: {text}");
    }
    ensure!(
        text.contains("```\nrun 1 starting\nfatal: run 1 failed\n```")
            || text.contains("```\nrun 2 starting\nfatal: run 2 failed\n```"),
        "the failed run's log lines: {text}"
    );
    ensure!(chat.refused() == 1, "the chat refused one post and the flow waited and sent it again");

    let second = eventually("the alert after the recovery", PATIENCE, || async {
        Ok(chat.posts_about(&crasher).get(1).cloned())
    })
    .await?;
    let text = second.body["text"].as_str().context("a Slack text")?;
    ensure!(text.contains("fatal: run 3 failed") && text.contains("last exit 3"), "{text}");
    let hungry = format!("`{}/hungry`", setup.apps);
    let oom = eventually("the OOM kill's alert", PATIENCE, || async {
        Ok(chat.posts_about(&hungry).first().cloned())
    })
    .await?;
    let text = oom.body["text"].as_str().context("a Slack text")?;
    ensure!(text.contains("*OOMKilled*") && text.contains("loading everything"), "{text}");
    // The back-off after run 3 is 40 s; until then nothing more may come, and the pull
    // failure, retried by the kubelet all along, stays one message.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counts = [&crasher, &unpullable, &hungry].map(|pod| chat.posts_about(pod).len());
    ensure!(
        counts == [2, 1, 1],
        "two alerts for the crash loop (a quick crash after the first is no recovery), one for the pull and one for the OOM kill however often it restarts, not {counts:?}: {:#?}",
        chat.posts()
    );
    Ok(())
}

/// The seconds from a container's failure appearing in its pod's status (as a watch of the
/// test sees it) to the chat's post, over 24 pods crashing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
#[allow(clippy::print_stdout)]
async fn pod_failure_alerts_latency() -> Result<()> {
    const PODS: usize = 24;
    let setup = setup("podlatency").await?;
    let chat = chat(0).await?;
    setup.chat_secret(&chat).await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("pod-failure-alerts"),
        &[("namespace", setup.apps.clone()), ("format", "json".to_owned())],
    )?;
    wait_ready(&setup.client, &setup.flows, "pod-failure-alerts", PATIENCE).await?;

    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.apps);
    let watch = FirstSeen::start(&pods, |pod: &Pod| {
        pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|all| {
            all.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            })
        })
    })
    .await?;
    for index in 0..PODS {
        setup.pod(&format!("crash-{index:02}"), &setup.image, "echo bye; exit 1").await?;
    }
    eventually("every pod's alert", PATIENCE, || async {
        Ok((chat.posts().len() >= PODS).then_some(()))
    })
    .await?;
    let mut latencies = watch.latencies(&chat, "pod");
    ensure!(latencies.len() == PODS, "every alert matched a failure the watch saw: {latencies:?}");
    let (p50, p99, max) = quantiles(&mut latencies);
    println!(
        "pod-failure-alerts: {PODS} CrashLoopBackOff events, failure in status to chat post: p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s"
    );
    Ok(())
}

/// A Job template of busybox running `script` once (no retry).
fn job_template(image: &str, script: &str) -> Value {
    json!({
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", script],
                }],
            } },
        },
    })
}

/// Waits until Job `name` has finished, with condition `condition` (`Complete` or `Failed`).
async fn finished(jobs: &Api<Job>, name: &str, condition: &str) -> Result<()> {
    eventually(&format!("Job {name} {condition}"), PATIENCE, || async {
        let job = jobs.get(name).await?;
        let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions.iter().any(|c| c.type_ == condition && c.status == "True").then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_failure_alerts_post_a_failed_job_of_a_cronjob_with_its_last_log_lines_once()
-> Result<()> {
    let setup = setup("cronalerts").await?;
    let outcome = cronjob_alerts(&setup).await;
    if outcome.is_err() {
        setup.show_nodes();
    }
    outcome
}

async fn cronjob_alerts(setup: &Setup) -> Result<()> {
    let chat = chat(0).await?;
    setup.chat_secret(&chat).await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("cronjob-failure-alerts"),
        &[("namespace", setup.apps.clone())],
    )?;
    wait_ready(&setup.client, &setup.flows, "cronjob-failure-alerts", PATIENCE).await?;

    // Suspended CronJobs, run now the way a person does: `kubectl create job --from`, which
    // makes the CronJob the Job's owner, as its schedule would.
    let cronjob = |name: &str, script: &str| {
        json!({
            "metadata": { "name": name },
            "spec": {
                "schedule": "0 0 1 1 *",
                "suspend": true,
                "jobTemplate": job_template(&setup.image, script),
            },
        })
    };
    weir_testenv::create::<CronJob>(
        &setup.client,
        &setup.apps,
        cronjob("nightly", "echo 'report: connecting'; echo 'fatal: db unreachable'; exit 1"),
    )
    .await?;
    weir_testenv::create::<CronJob>(&setup.client, &setup.apps, cronjob("hourly", "echo fine"))
        .await?;
    for (job, from) in [("nightly-manual", "nightly"), ("hourly-manual", "hourly")] {
        succeeded(
            setup.cluster.kubectl().args([
                "create",
                "job",
                job,
                &format!("--from=cronjob/{from}"),
                "-n",
                &setup.apps,
            ]),
            &format!("kubectl create job {job}"),
        )?;
    }
    // A failing Job no CronJob owns is not this solution's business.
    let mut standalone = job_template(&setup.image, "echo 'lone failure'; exit 2");
    standalone["metadata"] = json!({ "name": "standalone" });
    weir_testenv::create::<Job>(&setup.client, &setup.apps, standalone).await?;

    let post = eventually("the failed Job's alert", PATIENCE, || async {
        Ok(chat.posts_about("nightly-manual").first().cloned())
    })
    .await?;
    let text = post.body["text"].as_str().context("a Slack text")?;
    for needle in [
        format!(
            "Job `{}/nightly-manual` of CronJob `nightly` failed: *BackoffLimitExceeded*",
            setup.apps
        ),
        "Last lines of pod `nightly-manual-".to_owned(),
        "report: connecting\nfatal: db unreachable".to_owned(),
    ] {
        ensure!(text.contains(&needle), "{needle:?} is not in the alert: {text}");
    }
    let jobs: Api<Job> = Api::namespaced(setup.client.clone(), &setup.apps);
    finished(&jobs, "hourly-manual", "Complete").await?;
    finished(&jobs, "standalone", "Failed").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = chat.posts();
    ensure!(
        posts.len() == 1,
        "one alert: not the Job that succeeded, not the Job no CronJob owns: {posts:#?}"
    );
    Ok(())
}

/// When a watch of the test first saw each object that has failed, by name.
struct FirstSeen {
    seen: Arc<Mutex<BTreeMap<String, Instant>>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl FirstSeen {
    /// Watches `api` from now, noting each object the first time `failed` holds for it.
    async fn start<K>(api: &Api<K>, failed: fn(&K) -> bool) -> Result<Self>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let seen: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
        let mut events = api.watch(&WatchParams::default(), "0").await?.boxed();
        let noting = Arc::clone(&seen);
        let watcher = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                let (WatchEvent::Added(object) | WatchEvent::Modified(object)) = event else {
                    continue;
                };
                if failed(&object) {
                    let name = object.meta().name.clone().unwrap_or_default();
                    noting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        });
        Ok(Self { seen, watcher })
    }

    /// Stops the watch; the seconds from each failure to the chat's post naming the object in
    /// its `field`, for the posts that match a failure seen.
    fn latencies(self, chat: &Receiver, field: &str) -> Vec<f64> {
        self.watcher.abort();
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
        chat.posts()
            .iter()
            .filter_map(|post| {
                let name = post.body[field].as_str()?;
                Some(post.at.saturating_duration_since(*seen.get(name)?).as_secs_f64())
            })
            .collect()
    }
}

/// p50, p99 and max of `latencies`, in seconds, sorted in place.
fn quantiles(latencies: &mut [f64]) -> (f64, f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    (at(0.5), at(0.99), latencies[latencies.len() - 1])
}

/// The seconds from a Job of a CronJob failing (its `Failed` condition, as a watch of the
/// test sees it) to the chat's post, over 24 Jobs failing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
#[allow(clippy::print_stdout)]
async fn cronjob_failure_alerts_latency() -> Result<()> {
    const JOBS: usize = 24;
    let setup = setup("cronlatency").await?;
    let chat = chat(0).await?;
    setup.chat_secret(&chat).await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("cronjob-failure-alerts"),
        &[("namespace", setup.apps.clone()), ("format", "json".to_owned())],
    )?;
    wait_ready(&setup.client, &setup.flows, "cronjob-failure-alerts", PATIENCE).await?;
    let cronjob = json!({
        "metadata": { "name": "nightly" },
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": true,
            "jobTemplate": job_template(&setup.image, "echo 'fatal: db unreachable'; exit 1"),
        },
    });
    weir_testenv::create::<CronJob>(&setup.client, &setup.apps, cronjob).await?;

    let jobs: Api<Job> = Api::namespaced(setup.client.clone(), &setup.apps);
    let watch = FirstSeen::start(&jobs, |job: &Job| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|all| all.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await?;
    for index in 0..JOBS {
        let job = format!("nightly-{index:02}");
        succeeded(
            setup.cluster.kubectl().args([
                "create",
                "job",
                &job,
                "--from=cronjob/nightly",
                "-n",
                &setup.apps,
            ]),
            &format!("kubectl create job {job}"),
        )?;
    }
    eventually("every Job's alert", 2 * PATIENCE, || async {
        Ok((chat.posts().len() >= JOBS).then_some(()))
    })
    .await?;
    let mut latencies = watch.latencies(&chat, "job");
    ensure!(latencies.len() == JOBS, "every alert matched a failure the watch saw: {latencies:?}");
    let (p50, p99, max) = quantiles(&mut latencies);
    println!(
        "cronjob-failure-alerts: {JOBS} failed Jobs of a CronJob, Failed condition to chat post: p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s"
    );
    Ok(())
}

/// The seconds from the deploy call to the chat's post that the rollout is complete, over 20
/// deploys one after another of a Deployment of one replica, alternating two images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
#[allow(clippy::print_stdout)]
async fn deploy_webhook_latency() -> Result<()> {
    const DEPLOYS: usize = 20;
    const TOKEN: &str = "t0ken";
    let setup = setup("deploylatency").await?;
    let repository = setup.image.trim_end_matches(":1").to_owned();
    let host = repository.split('/').next().context("host")?;
    busybox_image(&["/bin/sh"])?.push(&Registry::new(host, true)?, "busybox", "2").await?;
    let chat = chat(0).await?;
    setup.chat_secret(&chat).await?;
    weir_testenv::create::<Secret>(
        &setup.client,
        &setup.flows,
        json!({ "metadata": { "name": "deploy-webhook" },
                "stringData": { "github-secret": "unused", "token": TOKEN } }),
    )
    .await?;
    let labels = json!({ "app": "web" });
    weir_testenv::create::<Deployment>(
        &setup.client,
        &setup.apps,
        json!({
            "metadata": { "name": "web" },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": labels },
                "template": { "metadata": { "labels": labels }, "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{ "name": "web", "image": setup.image,
                        "imagePullPolicy": "IfNotPresent", "command": ["/bin/sh", "-c", "exec sleep 3600"] }],
                } },
            },
        }),
    )
    .await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("deploy-webhook"),
        &[
            ("targets", format!("{repository}={}/web/web", setup.apps)),
            ("format", "json".to_owned()),
        ],
    )?;
    wait_ready(&setup.client, &setup.flows, "deploy-webhook", PATIENCE).await?;
    let hooks = setup
        ._modules
        .iter()
        .find_map(weir_testenv::solution::webhooks_url)
        .context("the http module's webhooks")?;
    let call = format!("{hooks}{}/deploy-webhook/deploy-call", setup.flows);
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for round in 0..DEPLOYS {
        let image = format!("{repository}:{}", 2 - round % 2);
        let posts = chat.posts().len();
        let started = Instant::now();
        let answer = http
            .post(&call)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json!({ "image": image }).to_string())
            .send()
            .await?;
        ensure!(answer.status() == 202, "deploy {round}: {}", answer.status());
        let post = eventually(&format!("deploy {round}'s post"), PATIENCE, || async {
            Ok(chat.posts().get(posts).cloned())
        })
        .await?;
        ensure!(
            post.body["event"] == "deployed" && post.body["image"] == image.as_str(),
            "{}",
            post.body
        );
        latencies.push(post.at.saturating_duration_since(started).as_secs_f64());
    }
    let (p50, p99, max) = quantiles(&mut latencies);
    println!(
        "deploy-webhook: {DEPLOYS} deploys, call to the rollout-complete post: p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s"
    );
    Ok(())
}

/// HMAC-SHA256 of `data` with `key` (RFC 2104), as GitHub signs its webhooks.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(data).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

/// GitHub's `X-Hub-Signature-256` of `body` with `secret`.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let digest = hmac_sha256(secret.as_bytes(), body);
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[test]
fn the_test_signs_as_github_does() {
    // RFC 4231, test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/// The images the Deployment `name`'s running, ready pods run.
async fn running_images(pods: &Api<Pod>, name: &str) -> Result<Vec<String>> {
    let list = pods.list(&kube::api::ListParams::default().labels(&format!("app={name}"))).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            pod.metadata.deletion_timestamp.is_none()
                && status.phase.as_deref() == Some("Running")
                && status.container_statuses.unwrap_or_default().iter().all(|c| c.ready)
        })
        .flat_map(|pod| pod.spec.map(|s| s.containers).unwrap_or_default())
        .filter_map(|c| c.image)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_webhook_rolls_out_a_signed_github_package_refuses_a_bad_signature_and_posts_a_failed_rollout()
-> Result<()> {
    let setup = setup("deploys").await?;
    let outcome = deploys(&setup).await;
    if outcome.is_err() {
        setup.show_nodes();
    }
    outcome
}

async fn deploys(setup: &Setup) -> Result<()> {
    const GITHUB_SECRET: &str = "gh-s3cret";
    const TOKEN: &str = "t0ken";
    let repository = setup.image.trim_end_matches(":1").to_owned();
    let next = format!("{repository}:2");
    let host = repository.split('/').next().context("host")?;
    for (name, tag) in [("busybox", "2"), ("sidecar", "1")] {
        busybox_image(&["/bin/sh"])?.push(&Registry::new(host, true)?, name, tag).await?;
    }
    let sidecar = format!("{host}/sidecar:1");
    let chat = chat(0).await?;
    setup.chat_secret(&chat).await?;
    weir_testenv::create::<Secret>(
        &setup.client,
        &setup.flows,
        json!({ "metadata": { "name": "deploy-webhook" },
                "stringData": { "github-secret": GITHUB_SECRET, "token": TOKEN } }),
    )
    .await?;
    // web is named by the targets setting; api by its label (the repository's name, busybox),
    // and only its container of that repository changes; cron carries the label of another
    // repository and is left alone.
    let deployment = |name: &str, label: Option<&str>, containers: Value| {
        let app = json!({ "app": name });
        let mut labels = app.clone();
        if let Some(label) = label {
            labels["deploy.weir.dev/repository"] = json!(label);
        }
        json!({
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "replicas": 1,
                "progressDeadlineSeconds": 10,
                "selector": { "matchLabels": app },
                "template": { "metadata": { "labels": app }, "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": containers,
                } },
            },
        })
    };
    let container = |name: &str, image: &str| {
        json!({ "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", "exec sleep 3600"] })
    };
    for (name, label, containers) in [
        ("web", None, json!([container("web", &setup.image)])),
        (
            "api",
            Some("busybox"),
            json!([container("api", &setup.image), container("side", &sidecar)]),
        ),
        ("cron", Some("cron"), json!([container("cron", &setup.image)])),
    ] {
        weir_testenv::create::<Deployment>(
            &setup.client,
            &setup.apps,
            deployment(name, label, containers),
        )
        .await?;
    }
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.apps);
    eventually("web running its first image", PATIENCE, || async {
        Ok((running_images(&pods, "web").await? == [setup.image.clone()]).then_some(()))
    })
    .await?;
    setup.weir.install(
        setup.cluster,
        &setup.flows,
        &solutions_dir().join("deploy-webhook"),
        &[
            ("targets", format!("{repository}={}/web/web", setup.apps)),
            ("timeoutSeconds", "60".to_owned()),
        ],
    )?;
    wait_ready(&setup.client, &setup.flows, "deploy-webhook", PATIENCE).await?;
    let hooks = setup
        ._modules
        .iter()
        .find_map(weir_testenv::solution::webhooks_url)
        .context("the http module's webhooks")?;
    let hook = |node: &str| format!("{hooks}{}/deploy-webhook/{node}", setup.flows);
    let http = reqwest::Client::new();
    let package = serde_json::to_vec(&json!({
        "action": "published",
        "registry_package": { "name": "busybox", "package_version": { "package_url": next } },
        "repository": { "full_name": "acme/web" },
    }))?;
    let deliver = |signature: String| {
        http.post(hook("deploy-github"))
            .header("content-type", "application/json")
            .header("x-github-event", "registry_package")
            .header("x-hub-signature-256", signature)
            .body(package.clone())
            .send()
    };

    // A wrong signature is refused and changes nothing.
    let refused = deliver(github_signature("not-the-secret", &package)).await?;
    ensure!(refused.status() == 401, "a wrong signature: {}", refused.status());
    let unsigned = http
        .post(hook("deploy-call"))
        .header("content-type", "application/json")
        .body(json!({ "image": next }).to_string())
        .send()
        .await?;
    ensure!(unsigned.status() == 401, "a call without the token: {}", unsigned.status());
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &setup.apps);
    let images_of = |d: Deployment| -> Vec<String> {
        d.spec
            .and_then(|s| s.template.spec)
            .map(|p| p.containers.into_iter().filter_map(|c| c.image).collect())
            .unwrap_or_default()
    };
    let image_of = |d: Deployment| images_of(d).into_iter().next();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(image_of(deployments.get("web").await?) == Some(setup.image.clone()));
    ensure!(chat.posts().is_empty(), "{:#?}", chat.posts());

    // Signed: the image changes, the new pod runs on the node, and the chat is told.
    let accepted = deliver(github_signature(GITHUB_SECRET, &package)).await?;
    ensure!(accepted.status() == 202, "a signed delivery: {}", accepted.status());
    for name in ["web", "api"] {
        let about = format!("`{}/{name}`", setup.apps);
        let done = eventually(&format!("{name}'s rollout post"), PATIENCE, || async {
            Ok(chat.posts_about(&about).first().cloned())
        })
        .await?;
        let text = done.body["text"].as_str().context("a Slack text")?;
        ensure!(
            text.starts_with(&format!(":rocket: Deployment {about} now runs `{next}`"))
                && text.contains("1 of 1 replicas run it")
                && text.contains("_triggered by package"),
            "{text}"
        );
    }
    ensure!(running_images(&pods, "web").await? == [next.clone()], "the new pod runs");
    ensure!(
        images_of(deployments.get("api").await?) == [next.clone(), sidecar.clone()],
        "the labelled Deployment's container of the repository changed, its other one did not"
    );
    ensure!(
        images_of(deployments.get("cron").await?) == [setup.image.clone()],
        "a label naming another repository changes nothing"
    );
    ensure!(chat.posts().len() == 2, "{:#?}", chat.posts());

    // An image that cannot be pulled: the rollout passes its progress deadline, and the chat
    // is told; the old pod goes on running.
    let missing = format!("{repository}:missing");
    let call = http
        .post(hook("deploy-call"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json!({ "image": missing }).to_string())
        .send()
        .await?;
    ensure!(call.status() == 202, "a call with the token: {}", call.status());
    let web = format!("`{}/web`", setup.apps);
    let failed = eventually("the failed rollout's post", PATIENCE, || async {
        Ok(chat.posts_about(&web).get(1).cloned())
    })
    .await?;
    let text = failed.body["text"].as_str().context("a Slack text")?;
    ensure!(
        text.starts_with(&format!(
            ":x: Deployment `{}/web` did not roll out `{missing}`",
            setup.apps
        )) && text.contains("has timed out progressing")
            && text.contains("_triggered by a call_"),
        "{text}"
    );
    ensure!(running_images(&pods, "web").await? == [next], "the old pod goes on");
    Ok(())
}
