//! A test binary that dies leaves nothing behind: this test runs a cluster with a pod in a child
//! test process, kills that process with SIGKILL (no destructor, no handler runs), and then
//! finds none of the cluster's processes alive, the kernel settings the kubelet changed back,
//! and none of its cgroups or mounts left. Its own binary, so no other cluster runs alongside.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::PostParams};
use weir_testenv::{Cluster, eventually};

const REPORT: &str = "WEIR_TEARDOWN_REPORT";

/// Run by the test below in a child process: starts the cluster and a pod, says where, and
/// waits to be killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by a_killed_test_binary_leaves_nothing_behind in a process of its own"]
async fn a_cluster_with_a_pod_until_killed() -> Result<()> {
    let report =
        std::env::var(REPORT).context("run by a_killed_test_binary_leaves_nothing_behind")?;
    let cluster = Cluster::shared();
    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, "default");
    cluster.wait_for_default_account("default").await?;
    // The sandbox image is always there, so the pod needs no registry.
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "sleeper" },
        "spec": { "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10",
            "imagePullPolicy": "Never" }] },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    eventually("the pod running", Duration::from_secs(90), || async {
        let phase = pods.get("sleeper").await?.status.and_then(|s| s.phase);
        Ok((phase.as_deref() == Some("Running")).then_some(()))
    })
    .await?;
    fs::write(&report, cluster.kubeconfig().parent().context("run dir")?.display().to_string())?;
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// Every process descending from `pid`, with its start time (so a reused PID is not mistaken
/// for one of them).
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(pid) = queue.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if let Some(started) = start_time(child) {
                    found.push((child, started));
                    queue.push(child);
                }
            }
        }
    }
    found
}

fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name's closing parenthesis.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19).map(str::to_owned)
}

fn kernel_setting(name: &str) -> Result<String> {
    Ok(fs::read_to_string(format!("/proc/sys/{name}"))?.trim().to_owned())
}

#[test]
fn a_killed_test_binary_leaves_nothing_behind() -> Result<()> {
    let report = tempfile::NamedTempFile::new()?;
    fs::remove_file(report.path())?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--ignored", "--exact", "a_cluster_with_a_pod_until_killed", "--nocapture"])
        .env(REPORT, report.path())
        .stdin(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while !report.path().exists() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the child test ended with {status} before its cluster ran a pod");
        }
        ensure!(started.elapsed() < Duration::from_secs(240), "no cluster with a pod in 240 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run_dir = PathBuf::from(fs::read_to_string(report.path())?);
    let processes = descendants(child.id());
    ensure!(
        processes.iter().any(|(pid, _)| {
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("containerd-shim"))
        }),
        "no container shim among the cluster's processes: the test would prove nothing"
    );
    // The kubelet changed this one (to 10); it must come back to what it was.
    ensure!(kernel_setting("kernel/panic")? == "10", "the kubelet did not set kernel.panic");

    child.kill()?;
    child.wait()?;
    let log = run_dir.join("namespaces.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&log).unwrap_or_default().contains("torn down") {
        ensure!(Instant::now() < deadline, "not torn down within 60 s: {}", log.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The shell that wrote "torn down" exits just after.
    let alive = || -> Vec<u32> {
        processes
            .iter()
            .filter(|(pid, started)| start_time(*pid).as_ref() == Some(started))
            .map(|(pid, _)| *pid)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !alive().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(alive().is_empty(), "processes of the cluster still alive: {:?}", alive());
    for line in fs::read_to_string(run_dir.join("kernel-settings"))?.lines() {
        let (name, before) = line.split_once('=').context("a saved kernel setting")?;
        ensure!(kernel_setting(name)? == before, "{name} is not back to {before}");
    }
    let cgroups: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")?
        .flatten()
        .map(|controller| controller.path().join("k8s.io"))
        .filter(|path| path.exists())
        .collect();
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let run = run_dir.display().to_string();
    ensure!(!mounts.contains(&run), "mounts left under {run}");
    Ok(())
}
