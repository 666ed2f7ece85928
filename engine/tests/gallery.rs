//! The gallery's solutions end to end, in the cluster shape: the module processes they use
//! (`weir module NAME`) against a real kube-apiserver, each solution installed with `kubectl
//! apply -f` and its account given exactly the rules `weir rbac` derives, and the services they
//! talk to (a chat webhook) played by HTTP servers of the test's own on loopback. Scheduled
//! moments are fired with `weir send` to the cron node's `control` input.
//!
//! The measurements are ignored by default (`cargo test -p weir-engine --test gallery --
//! --ignored --nocapture`); their numbers are recorded in docs/benchmarks.md.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::Datelike;
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::CronJob,
    core::v1::{Pod, Secret},
    networking::v1::Ingress,
};
use kube::Api;
use serde_json::{Value, json};
use weir_testenv::{
    ControlPlane, eventually,
    solution::{Installed, PATIENCE, Receiver, Weir, succeeded},
};

/// `solution` installed in a fresh namespace with `sets`, `modules` started for it, after
/// `scene` set the namespace up (Secrets).
async fn installed(
    plane: &ControlPlane,
    solution: &str,
    modules: &[&str],
    sets: &[(&str, String)],
    scene: impl AsyncFnOnce(&str) -> Result<()>,
) -> Result<Installed> {
    let mut installed = Installed::prepare(plane, env!("CARGO_BIN_EXE_weir"), solution).await?;
    scene(&installed.flows).await?;
    installed.start(plane, solution, modules, sets).await?;
    Ok(installed)
}

/// A chat webhook of the test's own on loopback, as Slack's.
async fn chat() -> Result<Receiver> {
    Receiver::start("/services/T0/B0/x").await
}

// ---------------------------------------------------------------------------------------------
// tls-expiry-watcher

/// A PEM certificate (and its key) for `host`, expiring `days` days from now: at the midnight
/// (UTC) that ends the day `days` days from today, so it has `days` whole days left.
fn certificate(host: &str, days: i64) -> Result<(String, String)> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
    let end = (chrono::Utc::now() + chrono::Duration::days(days + 1)).date_naive();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after =
        rcgen::date_time_ymd(end.year(), u8::try_from(end.month())?, u8::try_from(end.day())?);
    params.distinguished_name.push(rcgen::DnType::CommonName, host);
    let key = rcgen::KeyPair::generate()?;
    Ok((params.self_signed(&key)?.pem(), key.serialize_pem()))
}

/// A Secret of `kind` with `crt` as tls.crt and a key.
fn tls_secret(name: &str, kind: &str, crt: &str, key: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "type": kind,
        "stringData": { "tls.crt": crt, "tls.key": key },
    })
}

/// The lines of the posts that name `namespace`.
fn lines_naming(posts: &[Value], namespace: &str) -> Vec<String> {
    posts
        .iter()
        .filter_map(|post| post["text"].as_str())
        .flat_map(str::lines)
        .filter(|line| line.contains(&format!("{namespace}/")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_watcher_posts_soon_expiring_and_unreadable_certificates_once_a_day() -> Result<()>
{
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let chat = chat().await?;
    let certs = plane.namespace("certs").await?;
    let (_, key) = certificate("unused.example.com", 1)?;
    for (name, days) in [("soon", 3), ("later", 20), ("far", 400)] {
        let (crt, key) = certificate(&format!("{name}.example.com"), days)?;
        let secret = tls_secret(name, "kubernetes.io/tls", &crt, &key);
        weir_testenv::create::<Secret>(&client, &certs, secret).await?;
    }
    let garbage = tls_secret("garbage", "kubernetes.io/tls", "not a certificate", &key);
    weir_testenv::create::<Secret>(&client, &certs, garbage).await?;
    // An Opaque Secret is read because an Ingress names it.
    let (crt, ingress_key) = certificate("shop.example.com", 7)?;
    let opaque = tls_secret("shop-tls", "Opaque", &crt, &ingress_key);
    weir_testenv::create::<Secret>(&client, &certs, opaque).await?;
    let ingress = json!({
        "metadata": { "name": "shop" },
        "spec": {
            "defaultBackend": { "service": { "name": "shop", "port": { "number": 80 } } },
            "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
        },
    });
    weir_testenv::create::<Ingress>(&client, &certs, ingress).await?;

    let url = chat.url.clone();
    let watcher = installed(
        plane,
        "tls-expiry-watcher",
        &["common", "http", "js", "kubernetes"],
        &[("webhookSecret", "chat".to_owned())],
        async |flows| {
            let secret =
                json!({ "metadata": { "name": "chat" }, "stringData": { "webhookUrl": url } });
            weir_testenv::create::<Secret>(&client, flows, secret).await?;
            Ok(())
        },
    )
    .await?;

    // Exactly the rules its nodes need: read Secrets and list Ingresses, cluster-wide, and
    // read its own webhook Secret.
    let rules = watcher.rules("tls-expiry-watcher")?;
    ensure!(
        rules
            == [
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"] })
                ),
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list"] })
                ),
                (
                    format!("Role {}", watcher.flows),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["chat"], "verbs": ["get"] })
                ),
            ],
        "{rules:?}"
    );

    // A run: the 3- and 7-day ones are posted, soonest first, and the garbage is named.
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let posts = chat.received();
    let lines = lines_naming(&posts, &certs);
    ensure!(lines.len() == 3, "{lines:#?}");
    ensure!(
        lines[0].starts_with(&format!(
            "• {certs}/soon: CN=soon.example.com (soon.example.com) expires in 3 days"
        )),
        "{lines:#?}"
    );
    ensure!(
        lines[1].starts_with(&format!("• {certs}/shop-tls: CN=shop.example.com")),
        "{lines:#?}"
    );
    ensure!(
        lines[2] == format!("• {certs}/garbage: tls.crt holds no PEM certificate"),
        "{lines:#?}"
    );
    let text = posts.iter().map(|post| post.to_string()).collect::<String>();
    ensure!(!text.contains("PRIVATE KEY") && !text.contains("later.example.com"), "{text}");

    // The same day again: nothing of it is posted a second time.
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let again = chat.received();
    ensure!(lines_naming(&again[posts.len()..], &certs).is_empty(), "{again:#?}");

    // Bad settings are refused at install, naming the setting.
    let refused =
        watcher.refused(plane, "tls-expiry-watcher", &[("withinDays", "soon".to_owned())]);
    ensure!(refused.contains("withinDays"), "{refused}");
    let refused = watcher.refused(plane, "tls-expiry-watcher", &[("format", "email".to_owned())]);
    ensure!(
        refused.contains("setting format: \"email\" is not one of slack, teams, json"),
        "{refused}"
    );
    Ok(())
}

/// Runs over 500 TLS Secrets of one namespace, each expiring within the window: from the fire
/// to the run's answer, for the day's first run (which posts them all) and five later ones
/// (which post nothing new).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test gallery -- --ignored --nocapture"]
async fn measure_a_tls_watcher_run_over_500_secrets() -> Result<()> {
    const SECRETS: usize = 500;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let chat = chat().await?;
    let certs = plane.namespace("many-certs").await?;
    let (crt, key) = certificate("many.example.com", 5)?;
    for n in 0..SECRETS {
        let secret = tls_secret(&format!("cert-{n}"), "kubernetes.io/tls", &crt, &key);
        weir_testenv::create::<Secret>(&client, &certs, secret).await?;
    }
    let url = chat.url.clone();
    let watcher = installed(
        plane,
        "tls-expiry-watcher",
        &["common", "http", "js", "kubernetes"],
        &[("webhookSecret", "chat".to_owned())],
        async |flows| {
            let secret =
                json!({ "metadata": { "name": "chat" }, "stringData": { "webhookUrl": url } });
            weir_testenv::create::<Secret>(&client, flows, secret).await?;
            Ok(())
        },
    )
    .await?;
    let started = Instant::now();
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let first = started.elapsed().as_secs_f64();
    let mut seconds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let posted = lines_naming(&chat.received(), &certs).len();
    ensure!(posted == SECRETS, "{posted} posted");
    println!(
        "a run over {SECRETS} TLS Secrets (and what else the cluster holds), weir send included: \
         the day's first, posting all {SECRETS}, {first:.2} s; later ones, posting nothing new, \
         median {:.2} s of {seconds:.2?}",
        seconds[seconds.len() / 2]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cronjob-failure-alerts: missed schedules. The test's control plane has no controller-manager,
// so no CronJob here ever makes a Job: one due every minute has missed its schedule about a
// minute after it was made. (Its failed Jobs are tested on the node, in alerts.rs.)

/// A CronJob due every minute, suspended or not.
fn every_minute(name: &str, suspend: bool) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": {
            "schedule": "* * * * *",
            "suspend": suspend,
            "jobTemplate": { "spec": { "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "main", "image": "registry.local:5000/app:1" }],
            } } } },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_failure_alerts_post_a_missed_schedule_once_and_none_for_a_suspended_cronjob()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let chat = chat().await?;
    let batch = plane.namespace("batch").await?;
    for (name, suspend) in [("stalled", false), ("paused", true)] {
        weir_testenv::create::<CronJob>(&client, &batch, every_minute(name, suspend)).await?;
    }
    let url = chat.url.clone();
    let alerts = installed(
        plane,
        "cronjob-failure-alerts",
        &["common", "http", "js", "kubernetes"],
        &[
            ("namespace", batch.clone()),
            ("format", "json".to_owned()),
            ("missedAfter", "5s".to_owned()),
            ("checkEvery", "2s".to_owned()),
        ],
        async |flows| {
            let secret =
                json!({ "metadata": { "name": "chat-webhook" }, "stringData": { "url": url } });
            weir_testenv::create::<Secret>(&client, flows, secret).await?;
            Ok(())
        },
    )
    .await?;

    // Exactly the rules its nodes need, in the namespace it watches, and its webhook Secret.
    let rules = alerts.rules("cronjob-failure-alerts")?;
    let role = format!("Role {batch}");
    ensure!(
        rules
            == [
                (
                    role.clone(),
                    json!({ "apiGroups": [""], "resources": ["pods"], "verbs": ["list"] })
                ),
                (
                    role.clone(),
                    json!({ "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"] })
                ),
                (
                    role.clone(),
                    json!({ "apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["list"] })
                ),
                (
                    role.clone(),
                    json!({ "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch"] })
                ),
                (
                    format!("Role {}", alerts.flows),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["chat-webhook"], "verbs": ["get"] })
                ),
            ],
        "{rules:?}"
    );

    let missed = || -> Vec<Value> {
        chat.received()
            .into_iter()
            .filter(|post| post["event"] == "cronJobMissedSchedule")
            .collect()
    };
    let post = eventually("the missed schedule's post", 3 * PATIENCE, || async {
        Ok(missed().first().cloned())
    })
    .await?;
    let stalled: CronJob = Api::namespaced(client.clone(), &batch).get("stalled").await?;
    let created = stalled.metadata.creation_timestamp.context("created")?.0.as_second();
    let at = post["missedAt"].as_str().context("missedAt")?;
    let at = chrono::DateTime::parse_from_rfc3339(at)?;
    ensure!(
        post["namespace"] == batch.as_str()
            && post["cronJob"] == "stalled"
            && post["schedule"] == "* * * * *"
            && post["timeZone"] == "UTC"
            && post["lastRun"].is_null(),
        "{post}"
    );
    ensure!(
        at.timestamp() % 60 == 0 && at.timestamp() > created && at.timestamp() - created <= 60,
        "the first minute after it was made: {at}, made {created}"
    );
    // Three more checks: the stall is still the one posted, and the suspended CronJob, due as
    // often, is not posted at all.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let posts = missed();
    let arrivals: Vec<_> = chat
        .posts()
        .iter()
        .map(|received| format!("{:?} {}", received.at.elapsed(), received.body))
        .collect();
    ensure!(
        posts.len() == 1 && posts[0] == post,
        "{posts:#?}\nevery post, how long ago it came: {arrivals:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// chatops

const SLACK_SECRET: &str = "slack-signing-secret";
const ALLOWED: &str = "U0ALLOWED";

/// ChatOps installed with its signing secret, for `ALLOWED` in `namespaces`; Slack's side is
/// `chat`, where the answers to every command are posted.
struct ChatOps {
    installed: Installed,
    url: String,
    chat: Receiver,
    http: reqwest::Client,
}

impl ChatOps {
    async fn new(plane: &ControlPlane, namespaces: &[&str]) -> Result<Self> {
        let client = plane.client().await?;
        let installed = installed(
            plane,
            "chatops",
            &["common", "http", "js", "kubernetes"],
            &[("allowedUsers", ALLOWED.to_owned()), ("namespaces", namespaces.join(","))],
            async |flows| {
                let secret = json!({
                    "metadata": { "name": "chatops" },
                    "stringData": { "signing-secret": SLACK_SECRET },
                });
                weir_testenv::create::<Secret>(&client, flows, secret).await?;
                Ok(())
            },
        )
        .await?;
        let base = installed
            .modules
            .iter()
            .find_map(weir_testenv::solution::webhooks_url)
            .context("the http module's webhooks URL")?;
        let url = format!("{base}{}/chatops/chatops-command", installed.flows);
        Ok(Self { installed, url, chat: chat().await?, http: reqwest::Client::new() })
    }

    /// Slack's side of a slash command `/weir TEXT` by `user`: the form Slack posts, signed with
    /// `secret` as Slack signs; gives back the status and body of the acknowledgement.
    async fn command(&self, user: &str, text: &str, secret: &str) -> Result<(u16, Value)> {
        let form = serde_urlencoded::to_string([
            ("team_id", "T0"),
            ("user_id", user),
            ("command", "/weir"),
            ("text", text),
            ("response_url", &self.chat.url),
        ])?;
        let at = chrono::Utc::now().timestamp();
        let signed = format!("v0:{at}:{form}");
        let signature = weir_http::signature::sign_hex(
            weir_http::signature::Algorithm::Sha256,
            secret.as_bytes(),
            signed.as_bytes(),
        );
        let answer = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", at.to_string())
            .header("x-slack-signature", format!("v0={signature}"))
            .body(form)
            .send()
            .await?;
        let status = answer.status().as_u16();
        let text = answer.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// The `n`th answer posted to the response URL (counting from 0), once it came.
    async fn posted(&self, n: usize) -> Result<Value> {
        eventually(&format!("answer {n} on the response URL"), PATIENCE, || async {
            Ok(self.chat.received().get(n).cloned())
        })
        .await
    }

    /// Runs `text` as the allowed user, checks Slack's acknowledgement and gives back what
    /// was posted for it.
    async fn run(&self, text: &str) -> Result<Value> {
        let before = self.chat.received().len();
        let (status, body) = self.command(ALLOWED, text, SLACK_SECRET).await?;
        ensure!(
            (status, &body)
                == (200, &json!({ "response_type": "ephemeral", "text": "Working on it…" })),
            "{status} {body}"
        );
        self.posted(before).await
    }
}

/// The Deployment `name`: one replica, its pods never scheduled (the test's cluster has no
/// node).
fn deployment(name: &str) -> Value {
    weir_testenv::solution::deployment(name, "registry.local:5000/app:1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatops_restarts_scales_and_reads_logs_for_allowed_users_in_granted_namespaces()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let shop = plane.namespace("shop").await?;
    let other = plane.namespace("other").await?;
    for namespace in [&shop, &other] {
        weir_testenv::create::<Deployment>(&client, namespace, deployment("web")).await?;
    }
    let lonely = json!({
        "metadata": { "name": "lonely" },
        "spec": { "containers": [{ "name": "app", "image": "registry.local:5000/app:1" }] },
    });
    weir_testenv::create::<Pod>(&client, &shop, lonely).await?;
    let pair = json!({
        "metadata": { "name": "pair" },
        "spec": { "containers": [
            { "name": "app", "image": "registry.local:5000/app:1" },
            { "name": "proxy", "image": "registry.local:5000/proxy:1" },
        ] },
    });
    weir_testenv::create::<Pod>(&client, &shop, pair).await?;
    let ops = ChatOps::new(plane, &[&shop, &other]).await?;
    let flows = &ops.installed.flows;

    // Exactly the rules its nodes need: the Deployments and pod logs of any namespace (the
    // command names it), and its own Secret.
    let rules = ops.installed.rules("chatops")?;
    ensure!(
        rules
            == [
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"] })
                ),
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"] })
                ),
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"] })
                ),
                (
                    format!("Role {flows}"),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["chatops"], "verbs": ["get"] })
                ),
            ],
        "{rules:?}"
    );
    // Narrowed as the README says: the ClusterRole bound in the shop namespace only.
    let role = format!("{flows}-weir-flow-chatops");
    succeeded(
        plane.kubectl().args(["delete", "clusterrolebinding", &role]),
        "kubectl delete clusterrolebinding",
    )?;
    succeeded(
        plane.kubectl().args([
            "create",
            "rolebinding",
            "chatops",
            "-n",
            &shop,
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={flows}:chatops"),
        ]),
        "kubectl create rolebinding",
    )?;
    let deployments = |namespace: &str| Api::<Deployment>::namespaced(client.clone(), namespace);
    let restarted_at = |deployment: &Deployment| {
        deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|metadata| metadata.annotations.as_ref())
            .and_then(|annotations| annotations.get("kubectl.kubernetes.io/restartedAt").cloned())
    };
    let replicas = |deployment: &Deployment| deployment.spec.as_ref().and_then(|s| s.replicas);

    // restart: the annotation kubectl sets, now; the channel is told who did it.
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let post = ops.run(&format!("restart {shop}/web")).await?;
    ensure!(
        post == json!({ "response_type": "in_channel", "text": format!(
            ":arrows_counterclockwise: <@{ALLOWED}> restarted Deployment `{shop}/web`: its pods are replaced one by one"
        ) }),
        "{post}"
    );
    let web = deployments(&shop).get("web").await?;
    let at = restarted_at(&web).context("no restartedAt annotation")?;
    let at = chrono::DateTime::parse_from_rfc3339(&at)?;
    ensure!(at >= before && at <= chrono::Utc::now(), "{at}");

    // scale: the replicas, and the count before.
    let post = ops.run(&format!("scale {shop}/web 3")).await?;
    ensure!(
        post["text"]
            == format!(
                ":straight_ruler: <@{ALLOWED}> scaled Deployment `{shop}/web` from 1 to 3 replicas"
            ),
        "{post}"
    );
    ensure!(replicas(&deployments(&shop).get("web").await?) == Some(3));

    // Someone not listed: refused, told so, and nothing changes.
    let posts = ops.chat.received().len();
    let (status, _) =
        ops.command("U0INTRUDER", &format!("scale {shop}/web 0"), SLACK_SECRET).await?;
    ensure!(status == 200, "{status}");
    let post = ops.posted(posts).await?;
    ensure!(
        post == json!({ "response_type": "ephemeral", "text": format!(
            ":no_entry: `/weir scale {shop}/web 0`: <@U0INTRUDER> may not run commands here: only the users in the chatops solution's allowedUsers setting may"
        ) }),
        "{post}"
    );
    let web = deployments(&shop).get("web").await?;
    ensure!(
        replicas(&web) == Some(3)
            && restarted_at(&web) == Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );

    // A wrong signature: 401 and nothing runs (the next answer posted is the next command's).
    let (status, body) =
        ops.command(ALLOWED, &format!("scale {shop}/web 0"), "not-the-secret").await?;
    ensure!(status == 401, "{status} {body}");

    // A command outside `namespaces`, and nonsense: refused with the usage.
    let post = ops.run("scale kube-system/coredns 0").await?;
    ensure!(
        post["text"].as_str().is_some_and(|text| text.contains(&format!(
            "namespace kube-system is not one chatops may touch ({shop}, {other})"
        ))),
        "{post}"
    );
    let usage = "usage: `restart NAMESPACE/DEPLOYMENT`, `scale NAMESPACE/DEPLOYMENT REPLICAS` or `logs NAMESPACE/POD [CONTAINER] [LINES]`";
    for (text, why) in [
        ("delete everything".to_owned(), usage.to_owned()),
        (format!("restart {shop}/web now"), usage.to_owned()),
        ("restart Shop/Web".to_owned(), format!("`Shop/Web` is not NAMESPACE/NAME; {usage}")),
        (
            format!("scale {shop}/web 11"),
            format!("REPLICAS must be a whole number from 0 to 10; {usage}"),
        ),
        (
            format!("logs {shop}/lonely 0"),
            format!("LINES must be a whole number from 1 to 100; {usage}"),
        ),
        (
            format!("logs {shop}/pair proxy many"),
            format!("LINES must be a whole number from 1 to 100; {usage}"),
        ),
        (format!("logs {shop}/pair Proxy"), format!("`Proxy` is not a container name; {usage}")),
        (format!("logs {shop}/pair proxy 5 more"), usage.to_owned()),
    ] {
        let post = ops.run(&text).await?;
        ensure!(post["text"] == format!(":no_entry: `/weir {text}`: {why}"), "{post}");
    }
    ensure!(replicas(&deployments(&shop).get("web").await?) == Some(3), "the signature's 401");

    // logs of a pod with no node: the apiserver answers an empty log (not an error), and the
    // user is told; of a pod that is not there, the apiserver's error is posted back.
    let post = ops.run(&format!("logs {shop}/lonely 5")).await?;
    ensure!(
        post == json!({ "response_type": "ephemeral", "text": format!(
            "Nothing in the log of pod `{shop}/lonely` yet: has it started on a node?"
        ) }),
        "{post}"
    );
    // A container named, with and without LINES: the apiserver reads that one (the pod has no
    // node, so its log is empty); none named of a pod with two, or one it does not have: the
    // apiserver's error, naming them.
    for text in [format!("logs {shop}/pair proxy 5"), format!("logs {shop}/pair proxy")] {
        let post = ops.run(&text).await?;
        ensure!(
            post["text"]
                == format!(
                    "Nothing in the log of pod `{shop}/pair` (container proxy) yet: has it started on a node?"
                ),
            "{text}: {post}"
        );
    }
    let post = ops.run(&format!("logs {shop}/pair")).await?;
    ensure!(
        post["text"].as_str().is_some_and(|text| text
            .starts_with(&format!(":x: `/weir logs {shop}/pair` failed: "))
            && text.contains(
                "a container name must be specified for pod pair, choose one of: [app proxy]"
            )),
        "{post}"
    );
    let post = ops.run(&format!("logs {shop}/pair db 5")).await?;
    ensure!(
        post["text"].as_str().is_some_and(|text| text
            .starts_with(&format!(":x: `/weir logs {shop}/pair db 5` failed: "))
            && text.contains("container db is not valid for pod pair")),
        "{post}"
    );
    let post = ops.run(&format!("logs {shop}/ghost")).await?;
    ensure!(
        post["text"].as_str().is_some_and(|text| text
            .starts_with(&format!(":x: `/weir logs {shop}/ghost` failed: "))
            && text
                .ends_with(&format!("cannot get pods/log ghost in namespace {shop}: not found"))),
        "{post}"
    );

    // A namespace the account is not bound in: the apiserver refuses, and says so in Slack.
    let post = eventually("the apiserver's refusal", PATIENCE, || async {
        let post = ops.run(&format!("restart {other}/web")).await?;
        let text = post["text"].as_str().unwrap_or_default().to_owned();
        Ok(text.contains("forbidden").then_some(text))
    })
    .await?;
    ensure!(
        post.starts_with(&format!(":x: `/weir restart {other}/web` failed: "))
            && post.contains(&format!("system:serviceaccount:{flows}:chatops"))
            && post.contains(&format!("namespace \"{other}\"")),
        "{post}"
    );
    ensure!(restarted_at(&deployments(&other).get("web").await?).is_none());

    // Bad settings are refused at install, naming the setting.
    let refused = ops.installed.refused(plane, "chatops", &[]);
    ensure!(refused.contains("allowedUsers"), "{refused}");
    let refused = ops.installed.refused(
        plane,
        "chatops",
        &[("allowedUsers", ALLOWED.to_owned()), ("maxReplicas", "many".to_owned())],
    );
    ensure!(refused.contains("maxReplicas"), "{refused}");
    Ok(())
}

/// Slack's acknowledgement of 50 signed `scale` commands, one after another (after 5 to warm
/// up): from sending the command to its 200, and to the outcome posted on the response URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test gallery -- --ignored --nocapture"]
async fn measure_the_chatops_acknowledgement() -> Result<()> {
    const COMMANDS: usize = 50;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let shop = plane.namespace("shop").await?;
    weir_testenv::create::<Deployment>(&client, &shop, deployment("web")).await?;
    let ops = ChatOps::new(plane, &[&shop]).await?;
    let (mut acknowledged, mut posted) = (Vec::new(), Vec::new());
    for round in 0..COMMANDS + 5 {
        let posts = ops.chat.received().len();
        let started = Instant::now();
        let (status, _) =
            ops.command(ALLOWED, &format!("scale {shop}/web {}", round % 3), SLACK_SECRET).await?;
        let acknowledgement = started.elapsed();
        ensure!(status == 200, "{status}");
        let post = ops.posted(posts).await?;
        let outcome = started.elapsed();
        ensure!(post["text"].as_str().is_some_and(|text| text.contains("scaled")), "{post}");
        if round >= 5 {
            acknowledged.push(acknowledgement);
            posted.push(outcome);
        }
    }
    acknowledged.sort();
    posted.sort();
    let at = |times: &[Duration], q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "chatops, {COMMANDS} signed scale commands: acknowledged p50 {:.2?} p99 {:.2?}; \
         outcome posted p50 {:.2?} p99 {:.2?}",
        at(&acknowledged, 0.5),
        at(&acknowledged, 0.99),
        at(&posted, 0.5),
        at(&posted, 0.99)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Every solution in `weir up` against a kubeconfig

/// Each solution in the folder, installed by `weir solution install` on a `weir up` that keeps
/// its resources in the test's apiserver (the engine's own install path: the same checks and
/// writes as `weir apply`, and the accounts with their rules), becomes Ready: every node of it
/// built by the modules `weir up` hosts, and every edge fitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_solution_installs_in_weir_up_against_a_kubeconfig_and_its_flow_becomes_ready()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("up").await?;
    let kubeconfig = plane.admin_account(&flows, weir_testenv::solution::ACCOUNT).await?.0;
    let weir = Weir::new(env!("CARGO_BIN_EXE_weir"), &kubeconfig);
    // What the solutions talk to and the Secrets they read.
    let chat = chat().await?;
    for (name, data) in [
        ("chat-webhook", json!({ "url": chat.url })),
        ("chatops", json!({ "signing-secret": "s3cret" })),
        ("deploy-webhook", json!({ "github-secret": "s3cret", "token": "t0ken" })),
        ("tls-expiry-watcher", json!({ "webhookUrl": chat.url })),
        ("webhook-relay", json!({ "secret": "s3cret" })),
    ] {
        let secret = json!({ "metadata": { "name": name }, "stringData": data });
        weir_testenv::create::<Secret>(&client, &flows, secret).await?;
    }
    // A flow of another namespace, as an installed engine would run: not weir up's to run.
    let elsewhere = plane.namespace("elsewhere").await?;
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/valid/hello.yaml");
    succeeded(&mut weir.command(&["apply", "-n", &elsewhere, "-f", hello]), "weir apply")?;
    // weir up in the solutions' namespace, every port a free one on loopback.
    let up_args = [
        "up",
        "--namespace",
        &flows,
        "--listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
        "--webhook-listen",
        "127.0.0.1:0",
    ];
    let mut up = weir.command(&up_args);
    // Nodes in `weir up` act with the user's kubeconfig as kubectl finds it ($KUBECONFIG),
    // not the one --kubeconfig names for the store: the same one here, as for a user.
    up.env("WEIR_LOG", "info").env("KUBECONFIG", &kubeconfig);
    let _up = plane.spawn(&format!("{flows}-up"), &mut up)?;

    // The settings each must be given, pointing at the test's own endpoint where it is a URL.
    let required = |solution: &str| -> Vec<String> {
        let sets: Vec<(&str, &str)> = match solution {
            "chatops" => vec![("allowedUsers", "U1")],
            "cluster-cost-saver" => vec![("namespaces", &flows)],
            "configmap-sync" => vec![("url", &chat.url)],
            "status-page" => vec![("endpoints", &chat.url)],
            "webhook-relay" => vec![("target", &chat.url)],
            "image-mirror" | "image-mirror-revert" => vec![("mirror", "127.0.0.1:5000")],
            _ => Vec::new(),
        };
        sets.iter().map(|(name, value)| format!("{name}={value}")).collect()
    };
    let solutions = weir_solutions::Solution::all(&weir_testenv::solution::solutions_dir())?;
    ensure!(solutions.len() >= 11, "every solution of the folder");
    for solution in &solutions {
        let name = solution.spec.name.as_str();
        let sets = required(name);
        let mut args = vec!["solution", "install", name, "-n", &flows];
        for set in &sets {
            args.extend(["--set", set]);
        }
        succeeded(&mut weir.command(&args), &format!("weir solution install {name}"))?;
    }
    let flows_api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &flows,
        &kube::api::ApiResource::erase::<weir_model::Flow>(&()),
    );
    for solution in &solutions {
        let name = solution.spec.name.as_str();
        let ready = eventually(&format!("flow {name} Ready"), 2 * PATIENCE, || async {
            let flow = flows_api.get(name).await?;
            let ready = flow.data["status"]["conditions"].as_array().is_some_and(|conditions| {
                conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            Ok(ready.then_some(()))
        })
        .await;
        if let Err(err) = ready {
            let nodes: Api<kube::api::DynamicObject> = Api::namespaced_with(
                client.clone(),
                &flows,
                &kube::api::ApiResource::erase::<weir_model::FlowNode>(&()),
            );
            let unready: Vec<String> = nodes
                .list(&kube::api::ListParams::default())
                .await?
                .items
                .iter()
                .filter(|n| n.data["spec"]["flow"] == name)
                .filter_map(|n| {
                    let conditions = n.data["status"]["conditions"].as_array()?;
                    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
                    (ready["status"] != "True").then(|| {
                        format!(
                            "{}: {}",
                            n.metadata.name.clone().unwrap_or_default(),
                            ready["message"]
                        )
                    })
                })
                .collect();
            return Err(err.context(format!("nodes not ready: {unready:?}")));
        }
    }
    // A second weir up in the namespace, whose modules serve by now, is refused: it would run
    // every flow there again.
    let mut again = weir.command(&up_args);
    again.env("KUBECONFIG", &kubeconfig);
    let (succeeded, stderr) =
        weir_testenv::exits_within(&mut again, PATIENCE, "a second weir up in the namespace")
            .await?;
    ensure!(
        !succeeded
            && stderr.contains(&format!("namespace {flows}: module "))
            && stderr.contains(&format!("already runs the flows of namespace {flows}")),
        "{stderr}"
    );
    // Every flow of its namespace has a status by now; the other namespace's has none.
    let other: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &elsewhere,
        &kube::api::ApiResource::erase::<weir_model::Flow>(&()),
    );
    let hello = other.get("hello").await?;
    ensure!(hello.data["status"].is_null(), "weir up ran a flow of {elsewhere}: {:#}", hello.data);
    Ok(())
}
