//! Measurements of `resource_watch` for docs/benchmarks.md, beside `kubectl get --watch` piped
//! into a shell loop doing the same filter, in the same run. Ignored in the suite; run with
//! `cargo test -p weir-kubernetes --test watch_bench -- --ignored --nocapture --test-threads=1`.

#![allow(clippy::print_stderr)]

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use weir_kubernetes::resource_watch::ResourceWatch;
use weir_sdk::testing::Harness;
use weir_testenv::{ControlPlane, eventually};

const PATIENCE: Duration = Duration::from_secs(60);

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The kubectl command line of `plane` as a shell word list.
fn kubectl_line(plane: &ControlPlane, args: &[&str]) -> String {
    let command = plane.kubectl();
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.extend(args.iter().map(|a| (*a).to_owned()));
    words.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect::<Vec<_>>().join(" ")
}

fn kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).context("no such field")?;
    Ok(line.split_whitespace().nth(1).context("no number")?.parse()?)
}

/// From a pod's status change (the patch sent) to the watch's run reaching its first node,
/// over 200 changes, for the node and for kubectl piped into a bash loop with the same filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on its own"]
async fn latency_from_a_status_change_to_the_first_node() -> Result<()> {
    const CHANGES: usize = 200;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("bench").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod: Pod = serde_json::from_value(
        json!({ "metadata": { "name": "crashy" }, "spec": { "containers": [{ "name": "main", "image": "busybox" }] } }),
    )?;
    pods.create(&PostParams::default(), &pod).await?;

    let settings = json!({ "apiVersion": "v1", "kind": "Pod", "namespace": namespace,
        "fields": ["/status/containerStatuses"],
        "filter": "any(.object.status.containerStatuses[]?; .state.waiting.reason == \"CrashLoopBackOff\")",
        "kubeconfig": plane.kubeconfig().display().to_string() });
    let node = Harness::build::<ResourceWatch>(&settings)?;
    let reached: Arc<Mutex<HashMap<i64, f64>>> = Arc::default();
    let recorder = Arc::clone(&reached);
    node.answer_with(move |_, event: &Value| {
        let count = event["object"]["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(-1);
        recorder.lock().unwrap_or_else(PoisonError::into_inner).insert(count, now());
        Ok(Value::Null)
    });
    // kubectl's watch, its output filtered by a bash loop that stamps each match.
    let jsonpath = r#"jsonpath={.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].restartCount}{"\n"}"#;
    let line = kubectl_line(plane, &["get", "pods", "-n", &namespace, "--watch", "-o", jsonpath]);
    let script = format!(
        r#"{line} | while read -r reason count; do if [ "$reason" = CrashLoopBackOff ]; then echo "$count $EPOCHREALTIME"; fi; done"#
    );
    let mut shell = Command::new("bash").args(["-c", &script]).stdout(Stdio::piped()).spawn()?;
    let stdout = shell.stdout.take().context("stdout")?;
    let shell_reached: Arc<Mutex<HashMap<i64, f64>>> = Arc::default();
    let shell_recorder = Arc::clone(&shell_reached);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut words = line.split_whitespace();
            if let (Some(count), Some(time)) = (words.next(), words.next())
                && let (Ok(count), Ok(time)) = (count.parse(), time.parse())
            {
                shell_recorder.lock().unwrap_or_else(PoisonError::into_inner).insert(count, time);
            }
        }
    });

    let sent: Arc<Mutex<HashMap<i64, f64>>> = Arc::default();
    let body = async {
        eventually("the watch started", PATIENCE, || async {
            Ok(node.kept_state()["resourceVersion"].is_string().then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        for count in 1..=CHANGES as i64 {
            let status = json!({ "status": { "phase": "Running", "containerStatuses": [{
                "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": count,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] } });
            sent.lock().unwrap_or_else(PoisonError::into_inner).insert(count, now());
            pods.patch_status("crashy", &PatchParams::default(), &Patch::Merge(status)).await?;
            eventually("both saw it", Duration::from_secs(10), || async {
                let both =
                    reached.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&count)
                        && shell_reached
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .contains_key(&count);
                Ok(both.then_some(()))
            })
            .await?;
        }
        node.cancel();
        anyhow::Ok(())
    };
    let (ran, measured) = tokio::join!(node.run(), body);
    let _ = shell.kill();
    measured?;
    ran?;
    let sent = sent.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for (who, reached) in
        [("weir resource_watch", &reached), ("kubectl --watch | bash loop", &shell_reached)]
    {
        let reached = reached.lock().unwrap_or_else(PoisonError::into_inner);
        let mut millis: Vec<f64> = sent
            .iter()
            .filter_map(|(count, at)| reached.get(count).map(|r| (r - at) * 1000.0))
            .collect();
        ensure!(millis.len() == CHANGES, "{who}: {} of {CHANGES}", millis.len());
        millis.sort_by(f64::total_cmp);
        eprintln!(
            "{who}: {CHANGES} changes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&millis, 0.5),
            percentile(&millis, 0.99),
            millis[millis.len() - 1]
        );
    }
    Ok(())
}

/// The memory a watch over 10,000 ConfigMaps takes: the test process's resident set before
/// the watch and once it watches, and kubectl's once it printed all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on its own"]
async fn memory_of_a_watch_over_ten_thousand_objects() -> Result<()> {
    const OBJECTS: usize = 10_000;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("many").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let maps = maps.clone();
            async move {
                let map: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": format!("cm-{i:05}"), "labels": { "app": "bench" } },
                    "data": { "config": "x".repeat(512) } }))?;
                maps.create(&PostParams::default(), &map).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let me = std::process::id();
    let before = kib(me, "VmRSS:")?;
    let settings = json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "filter": ".object.data.config | length > 1000",
        "kubeconfig": plane.kubeconfig().display().to_string() });
    let node = Harness::build::<ResourceWatch>(&settings)?;
    let body = async {
        eventually("the watch started", PATIENCE, || async {
            Ok(node.kept_state()["resourceVersion"].is_string().then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let watching = kib(me, "VmRSS:")?;
        node.cancel();
        anyhow::Ok(watching)
    };
    let (ran, watching) = tokio::join!(node.run(), body);
    ran?;
    let watching = watching?;
    eprintln!(
        "weir resource_watch over {OBJECTS} ConfigMaps: test process RSS {before} KiB before, {watching} KiB watching: +{} KiB",
        watching.saturating_sub(before)
    );

    let out = std::env::temp_dir().join(format!("kubectl-watch-{me}.txt"));
    let file = std::fs::File::create(&out)?;
    let mut kubectl = plane
        .kubectl()
        .args(["get", "configmaps", "-n", &namespace, "--watch", "-o", "name"])
        .stdout(file)
        .spawn()?;
    eventually("kubectl printed them all", PATIENCE, || async {
        let lines = std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0);
        ensure!(lines >= OBJECTS, "{lines} lines");
        Ok(Some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, peak) = (kib(kubectl.id(), "VmRSS:")?, kib(kubectl.id(), "VmHWM:")?);
    let _ = kubectl.kill();
    let _ = std::fs::remove_file(&out);
    eprintln!("kubectl get --watch over {OBJECTS} ConfigMaps: RSS {rss} KiB, peak {peak} KiB");
    Ok(())
}
