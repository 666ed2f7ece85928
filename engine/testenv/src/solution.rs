//! A solution installed the way a user installs it in a cluster, for the end-to-end tests of
//! `solutions/`: module processes (`weir module NAME`) signed in with a kubeconfig, the folder
//! applied with kubectl, the flow's account given its rules by `weir rbac --apply`, and runs
//! started with `weir send`, so every step is the user's own and deterministic.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams},
};
use serde_json::Value;

use crate::{Cluster, ControlPlane, Process, eventually};

/// What a solution is installed on: the control plane alone, or the cluster with a node where
/// pods run. Module processes run on the host either way and reach the apiserver through the
/// admin kubeconfig's loopback address.
pub trait Apiserver {
    /// Starts a process of the test, its log in the run directory, killed on drop.
    fn spawn(&self, name: &str, command: &mut Command) -> Result<Process>;
    /// `kubectl` with the admin kubeconfig.
    fn kubectl(&self) -> Command;
    /// The admin kubeconfig.
    fn kubeconfig(&self) -> &Path;
    /// Where files and logs of the run go.
    fn run_dir(&self) -> &Path;
}

impl Apiserver for ControlPlane {
    fn spawn(&self, name: &str, command: &mut Command) -> Result<Process> {
        ControlPlane::spawn(self, name, command)
    }
    fn kubectl(&self) -> Command {
        ControlPlane::kubectl(self)
    }
    fn kubeconfig(&self) -> &Path {
        ControlPlane::kubeconfig(self)
    }
    fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

impl Apiserver for Cluster {
    fn spawn(&self, name: &str, command: &mut Command) -> Result<Process> {
        Cluster::spawn(self, name, command)
    }
    fn kubectl(&self) -> Command {
        Cluster::kubectl(self)
    }
    fn kubeconfig(&self) -> &Path {
        Cluster::kubeconfig(self)
    }
    fn run_dir(&self) -> &Path {
        Cluster::run_dir(self)
    }
}

/// The `weir` binary of the test, run with one kubeconfig.
#[derive(Debug, Clone)]
pub struct Weir {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Weir {
    /// `binary` is the test's `env!("CARGO_BIN_EXE_weir")`.
    pub fn new(binary: impl Into<PathBuf>, kubeconfig: &Path) -> Self {
        Self { binary: binary.into(), kubeconfig: kubeconfig.to_owned() }
    }

    /// `weir --kubeconfig KUBECONFIG ARGS…`, with the test's own log settings left out.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env_remove("WEIR_LOG");
        command
    }

    /// The module processes `modules`, each hosting the nodes of `namespace` and taking
    /// deliveries only from `peers` (a ServiceAccount of `namespace`). Nodes find the cluster as
    /// a pod's would find its own, and act as their flow's account.
    pub fn start_modules(
        &self,
        plane: &impl Apiserver,
        namespace: &str,
        modules: &[&str],
        peers: &str,
    ) -> Result<Vec<Process>> {
        modules
            .iter()
            .map(|name| {
                let mut command = self.command(&[
                    "module",
                    name,
                    "--namespace",
                    namespace,
                    "--grpc-listen",
                    "127.0.0.1:0",
                    "--listen",
                    "127.0.0.1:0",
                    "--identity",
                    &format!("{name}-0"),
                    "--peers",
                    peers,
                    // Only a module with webhooks (http) binds it.
                    "--webhook-listen",
                    "127.0.0.1:0",
                ]);
                command.env("WEIR_LOG", "info").env("KUBECONFIG", &self.kubeconfig);
                plane.spawn(&format!("{namespace}-{name}"), &mut command)
            })
            .collect()
    }

    /// The engine (`weir engine`) for the flows of `namespace`, as the chart runs it: its
    /// controller writes each Flow's status (`Ready`, `Degraded`) from its nodes'.
    pub fn start_engine(&self, plane: &impl Apiserver, namespace: &str) -> Result<Process> {
        let mut command = self.command(&[
            "engine",
            "--namespace",
            namespace,
            "--listen",
            "127.0.0.1:0",
            "--identity",
            "engine-0",
        ]);
        command.env("WEIR_LOG", "info");
        plane.spawn(&format!("{namespace}-engine"), &mut command)
    }

    /// Renders the solution folder `folder` with `sets` applied, as a user edits the manifests,
    /// applies it with kubectl, and gives the flow's account its rules with
    /// `weir rbac --apply`, both as the control plane's admin.
    pub fn install(
        &self,
        plane: &impl Apiserver,
        namespace: &str,
        folder: &Path,
        sets: &[(&str, String)],
    ) -> Result<()> {
        let solution = weir_solutions::Solution::load(folder)?;
        let name = solution.spec.name.clone();
        let sets: Vec<(String, String)> =
            sets.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect();
        let documents = solution.render(&sets)?;
        let dir = plane.run_dir().join(format!("{namespace}-{name}"));
        std::fs::create_dir_all(&dir)?;
        let yaml: Vec<String> =
            documents.iter().map(serde_yaml_ng::to_string).collect::<Result<_, _>>()?;
        std::fs::write(dir.join("flow.yaml"), yaml.join("---\n"))?;
        let applied = succeeded(
            plane.kubectl().args(["apply", "-n", namespace, "-f"]).arg(&dir),
            &format!("kubectl apply {name}"),
        )?;
        ensure!(applied.lines().count() == documents.len(), "{applied}");
        succeeded(
            &mut Self::new(&self.binary, plane.kubeconfig())
                .command(&["rbac", &name, "-n", namespace, "--apply"]),
            &format!("weir rbac {name} --apply"),
        )?;
        Ok(())
    }

    /// Sends `message` to `target` (`NODE:PORT`) with `weir send` and gives back the run's
    /// answer.
    pub fn send(
        &self,
        namespace: &str,
        target: &str,
        message: &Value,
        timeout: &str,
    ) -> Result<Value> {
        let answer = succeeded(
            &mut self.command(&[
                "send",
                "-n",
                namespace,
                "--timeout",
                timeout,
                target,
                &message.to_string(),
            ]),
            &format!("weir send {target}"),
        )?;
        Ok(serde_json::from_str(&answer)?)
    }
}

/// The standard output of `command`, which must succeed; `what` names it in the error.
pub fn succeeded(command: &mut Command, what: &str) -> Result<String> {
    let output = command.output().with_context(|| format!("cannot run {what}"))?;
    ensure!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The address a module process serves HTTP (metrics, webhooks) on, as its log told it.
pub fn http_address(process: &Process) -> Option<String> {
    let log = process.log();
    let rest = log.split(", HTTP on http://").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// Where a module process serves webhooks (`http://127.0.0.1:PORT/hooks/`), as its log told
/// it; only the http module has them.
pub fn webhooks_url(process: &Process) -> Option<String> {
    let log = process.log();
    let rest = log.split("webhooks=").nth(1)?.trim_start_matches('"');
    let url = rest.split(|c: char| c == '"' || c.is_whitespace()).next()?;
    (!url.is_empty()).then(|| url.to_owned())
}

fn flow_nodes(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<weir_model::FlowNode>(&()),
    )
}

/// Waits until every node of `flow` reports itself ready.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    flow: &str,
    patience: Duration,
) -> Result<()> {
    let nodes = flow_nodes(client, namespace);
    eventually(&format!("the nodes of {flow} being ready"), patience, || async {
        let list = nodes.list(&ListParams::default()).await?;
        let mine: Vec<&DynamicObject> =
            list.items.iter().filter(|n| n.data["spec"]["flow"] == flow).collect();
        let ready = mine.iter().all(|n| {
            n.data["status"]["conditions"].as_array().is_some_and(|conditions| {
                conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        });
        Ok((!mine.is_empty() && ready).then_some(()))
    })
    .await
}

/// A FlowNode's status.
pub async fn node_status(client: &Client, namespace: &str, node: &str) -> Result<Value> {
    Ok(flow_nodes(client, namespace).get(node).await?.data["status"].clone())
}
