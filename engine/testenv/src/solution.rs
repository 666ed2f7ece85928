//! A solution installed the way a user installs it in a cluster, for the end-to-end tests of
//! `solutions/`: module processes (`weir module NAME`) signed in with a kubeconfig, the folder
//! applied with kubectl, the flow's account given its rules by `weir rbac --apply`, and runs
//! started with `weir send`, so every step is the user's own and deterministic.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
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
                // The runtime's debug lines are an edge's retries and the nodes' own log lines:
                // what a test that failed needs to be read from its modules' logs.
                command
                    .env("WEIR_LOG", "info,weir_runtime=debug")
                    .env("KUBECONFIG", &self.kubeconfig);
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

/// The address (`127.0.0.1:PORT`) the engine (`weir engine`) serves HTTP on, as its log told
/// it.
pub fn engine_address(process: &Process) -> Option<String> {
    let log = process.log();
    let rest = log.split("the engine serves http://").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_end_matches('"').to_owned())
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

/// Waits until every node of `flow` reports itself ready and every module hosting one lists
/// a replica: a node is ready once built, but deliveries to it from other modules find where
/// to go only once its module lists itself, and a run sent before that loses what its edges'
/// retries do not outlast.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    flow: &str,
    patience: Duration,
) -> Result<()> {
    let nodes = flow_nodes(client, namespace);
    let modules: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<weir_model::Module>(&()),
    );
    eventually(&format!("the nodes of {flow} being ready"), patience, || async {
        let list = nodes.list(&ListParams::default()).await?;
        let mine: Vec<&DynamicObject> =
            list.items.iter().filter(|n| n.data["spec"]["flow"] == flow).collect();
        let ready = mine.iter().all(|n| {
            n.data["status"]["conditions"].as_array().is_some_and(|conditions| {
                conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        });
        let listed = modules.list(&ListParams::default()).await?;
        let serving = |module: &Value| {
            listed.items.iter().any(|m| {
                m.metadata.name.as_deref() == module.as_str()
                    && m.data["status"]["replicas"].as_array().is_some_and(|r| !r.is_empty())
            })
        };
        let served = mine.iter().all(|n| serving(&n.data["spec"]["module"]));
        Ok((!mine.is_empty() && ready && served).then_some(()))
    })
    .await
}

/// A FlowNode's status.
pub async fn node_status(client: &Client, namespace: &str, node: &str) -> Result<Value> {
    Ok(flow_nodes(client, namespace).get(node).await?.data["status"].clone())
}

/// A Deployment `name` of one replica whose one container runs `image`, to create with
/// [`crate::create`].
pub fn deployment(name: &str, image: &str) -> Value {
    serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": image }] },
            },
        },
    })
}

/// The `solutions/` folder of the source tree.
pub fn solutions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../solutions")
}

/// How long a step of an installed solution that should come soon (a node ready, a message
/// taken) may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The ServiceAccount the module processes and `weir send` sign in as.
pub const ACCOUNT: &str = "weir";

/// A solution installed on the control plane for a test: the test's `weir`, its module
/// processes and the namespace they run flows in, signed in as the admin account
/// [`ACCOUNT`] of it.
#[derive(Debug)]
pub struct Installed {
    /// The test's `weir`, signed in as the account.
    pub weir: Weir,
    /// The namespace of the flows.
    pub flows: String,
    /// The module processes, killed on drop.
    pub modules: Vec<Process>,
}

impl Installed {
    /// A fresh namespace for `solution`, where the test may set the scene (Secrets) before
    /// [`Installed::start`]; `binary` is the test's `env!("CARGO_BIN_EXE_weir")`.
    pub async fn prepare(plane: &ControlPlane, binary: &str, solution: &str) -> Result<Self> {
        let flows = plane.namespace(solution).await?;
        let weir = Weir::new(binary, &plane.admin_account(&flows, ACCOUNT).await?.0);
        Ok(Self { weir, flows, modules: Vec::new() })
    }

    /// [`Installed::prepare`], then [`Installed::start`].
    pub async fn new(
        plane: &ControlPlane,
        binary: &str,
        solution: &str,
        modules: &[&str],
        sets: &[(&str, String)],
    ) -> Result<Self> {
        let mut installed = Self::prepare(plane, binary, solution).await?;
        installed.start(plane, solution, modules, sets).await?;
        Ok(installed)
    }

    /// Installs `solution` with `sets`, then starts `modules`, so the nodes build with their
    /// account and its rules in place, and waits until they are ready.
    pub async fn start(
        &mut self,
        plane: &ControlPlane,
        solution: &str,
        modules: &[&str],
        sets: &[(&str, String)],
    ) -> Result<()> {
        self.weir.install(plane, &self.flows, &solutions_dir().join(solution), sets)?;
        self.modules = self.weir.start_modules(plane, &self.flows, modules, ACCOUNT)?;
        wait_ready(&plane.client().await?, &self.flows, solution, PATIENCE).await
    }

    /// Sends `message` to `target` (`NODE:PORT`) until a replica takes it: right after the
    /// module processes start, the old ones may still be listed for a while.
    pub async fn send(&self, target: &str, message: Value) -> Result<Value> {
        eventually(&format!("weir send {target}"), PATIENCE, || async {
            Ok(Some(self.weir.send(&self.flows, target, &message, "2m")?))
        })
        .await
    }

    /// Why installing `solution` again with `sets` is refused; empty when it is not.
    pub fn refused(&self, plane: &ControlPlane, solution: &str, sets: &[(&str, String)]) -> String {
        match self.weir.install(plane, &self.flows, &solutions_dir().join(solution), sets) {
            Ok(()) => String::new(),
            Err(err) => format!("{err:#}"),
        }
    }

    /// The rules `weir rbac` derives for `solution`: each with where it holds (`ClusterRole`,
    /// or `Role NAMESPACE`), sorted.
    pub fn rules(&self, solution: &str) -> Result<Vec<(String, Value)>> {
        let printed =
            succeeded(&mut self.weir.command(&["rbac", solution, "-n", &self.flows]), "weir rbac")?;
        granted_rules(&printed)
    }
}

/// The rules `weir rbac` printed: each with where it holds (`ClusterRole`, or `Role
/// NAMESPACE`), sorted.
pub fn granted_rules(printed: &str) -> Result<Vec<(String, Value)>> {
    use serde::Deserialize as _;
    let mut granted = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(printed) {
        let document = Value::deserialize(document)?;
        let place = match document["kind"].as_str() {
            Some("ClusterRole") => "ClusterRole".to_owned(),
            Some("Role") => {
                format!("Role {}", document["metadata"]["namespace"].as_str().unwrap_or_default())
            }
            _ => continue,
        };
        for rule in document["rules"].as_array().into_iter().flatten() {
            granted.push((place.clone(), rule.clone()));
        }
    }
    granted.sort_by_key(|(place, rule)| format!("{place} {rule}"));
    Ok(granted)
}

/// A request a [`Receiver`] kept: when it came, and its JSON body.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it came.
    pub at: Instant,
    /// Its body.
    pub body: Value,
}

/// An HTTP endpoint of the test's own on loopback, standing in for a chat's incoming webhook or
/// a service a solution talks to. It keeps each request's JSON body with when it came, and
/// answers with the status and body it is told to (at first 200 and the text `ok`, as Slack
/// does; a JSON string is sent as text, anything else as JSON), after the delay it is told to;
/// the requests it is told to refuse get 429 with `Retry-After: 1`, as from a chat over its
/// rate limit, and are not kept.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Its URL: `http://127.0.0.1:PORT` and the path it was started with.
    pub url: String,
    state: Arc<ReceiverState>,
}

#[derive(Debug)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    answer: Mutex<(u16, Value, Duration)>,
    refuse: AtomicUsize,
    refused: AtomicUsize,
    requests: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Receiver {
    /// Starts one whose URL ends in `path`, such as `/hook`.
    pub async fn start(path: &str) -> Result<Self> {
        let state = Arc::new(ReceiverState {
            received: Mutex::default(),
            answer: Mutex::new((200, Value::String("ok".to_owned()), Duration::ZERO)),
            refuse: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}{path}", listener.local_addr()?);
        let serving = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let state = Arc::clone(&serving);
            async move { state.take(&body).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, state })
    }

    /// From now on, answers `status` with `body`.
    pub fn answer(&self, status: u16, body: Value) {
        self.answer_after(status, body, Duration::ZERO);
    }

    /// From now on, answers `status` with `body` after `delay`.
    pub fn answer_after(&self, status: u16, body: Value, delay: Duration) {
        *lock(&self.state.answer) = (status, body, delay);
    }

    /// Answers the next `requests` with 429 and `Retry-After: 1`.
    pub fn refuse(&self, requests: usize) {
        self.state.refuse.store(requests, Ordering::SeqCst);
    }

    /// The JSON bodies kept, in the order they came.
    pub fn received(&self) -> Vec<Value> {
        self.posts().into_iter().map(|post| post.body).collect()
    }

    /// The requests kept, with when they came.
    pub fn posts(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// The requests kept whose body mentions `needle`.
    pub fn posts_about(&self, needle: &str) -> Vec<Received> {
        self.posts().into_iter().filter(|p| p.body.to_string().contains(needle)).collect()
    }

    /// How many requests were refused with 429.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// How many requests came, refused or not.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl ReceiverState {
    async fn take(&self, body: &[u8]) -> axum::response::Response {
        use axum::{http::StatusCode, response::IntoResponse as _};
        self.requests.fetch_add(1, Ordering::SeqCst);
        let refusing = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok();
        if refusing {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate_limited")
                .into_response();
        }
        if let Ok(body) = serde_json::from_slice::<Value>(body) {
            lock(&self.received).push(Received { at: Instant::now(), body });
        }
        let (status, answer, delay) = lock(&self.answer).clone();
        tokio::time::sleep(delay).await;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match answer {
            Value::String(text) => (status, text).into_response(),
            json => (status, axum::Json(json)).into_response(),
        }
    }
}
