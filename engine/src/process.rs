//! One Weir process, however it runs: `weir up` (the flow controller, the editor and every
//! built-in module on the embedded store), `weir engine` (the controller and the editor, in a
//! cluster) and `weir module NAME` (one module's nodes). A verb says which [`Parts`] it runs;
//! leader election, the HTTP endpoint and stopping in order are set up here, once.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use axum::{Router, middleware};
use futures::StreamExt;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use weir_model::Kind;
use weir_runtime::trust::Bearer;
use weir_sdk::Module;
use weir_store::{Store, WatchEvent};

use crate::{
    api::{
        self,
        access::{Access, SharedToken},
    },
    cli::LeaderArgs,
    guard::{self, Guard},
    hosting::{Failure, Hosted, Hosting, Leadership, Listeners},
    scope::Scope,
    traces::Traces,
};

/// What a process runs.
#[derive(Debug)]
pub struct Parts {
    /// Where resources are kept.
    pub store: Arc<dyn Store>,
    /// Where flows and modules live.
    pub scope: Scope,
    /// How this replica takes part in leader election: the leader runs the flow controller
    /// and the hosted modules' triggers.
    pub leadership: Leadership,
    /// The editor and its API, with the flow controller (`weir up`, `weir engine`).
    pub editor: Option<Editor>,
    /// The modules whose nodes run here (`weir up`, `weir module`).
    pub modules: Option<Hosting>,
}

impl Parts {
    /// `weir up`'s parts: the flows of `scope` on `store`, with `editor`, and `modules` hosted
    /// and reached at `listeners`, all leading alone.
    pub fn up(
        store: Arc<dyn Store>,
        scope: Scope,
        modules: Vec<Module>,
        listeners: Listeners,
        editor: Editor,
    ) -> Self {
        let modules = Hosting {
            modules,
            listeners,
            replica: "up".to_owned(),
            // `weir up` serves gRPC on loopback to the user's own processes.
            gate: None,
            bearer: None,
            // Nodes act with the user's own kubeconfig: the user is the identity.
            accounts: None,
            secrets: Arc::new(crate::secrets::KubeSecrets::new(None)),
            secret_refresh: weir_runtime::host::SECRET_REFRESH,
        };
        Self {
            store,
            scope,
            leadership: Leadership::Alone,
            editor: Some(editor),
            modules: Some(modules),
        }
    }
}

/// The editor, its API and who may use them.
#[derive(Debug)]
pub struct Editor {
    /// Who may use the API.
    pub users: Users,
    /// Which requests the HTTP endpoint answers.
    pub guard: Guard,
    /// The editor's files, as `scripts/ui.sh` builds them.
    pub files: PathBuf,
    /// What the engine presents to the modules whose messages it watches, in a cluster.
    pub bearer: Option<Bearer>,
    /// How many runs of each flow to keep in memory for the editor, `weir runs` and replay.
    pub runs_kept: usize,
    /// Where the http module's webhooks are reached from outside, ending in `/hooks/`, when
    /// known: `weir up`'s webhook listener, `weir engine --webhooks-url`.
    pub webhooks: Option<String>,
}

/// Who may use the editor's API.
#[derive(Debug)]
pub enum Users {
    /// Whoever reaches it may do everything (`weir up` on loopback).
    Anyone,
    /// Whoever sends this token (`weir up --token-file`).
    TokenHolder(SharedToken),
    /// Each caller with their own Kubernetes token, against the cluster this configuration
    /// reaches (its credentials are never lent to a caller).
    Cluster(Box<kube::Config>),
}

impl Users {
    /// The holder of the token in `file`, as `--token-file` gives it.
    pub fn token_file(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--token-file {}: cannot read it", file.display()))?;
        let token = SharedToken::new(&text)
            .map_err(|rule| anyhow::anyhow!("--token-file {}: {rule}", file.display()))?;
        Ok(Self::TokenHolder(token))
    }

    fn access(self) -> Access {
        match self {
            Self::Anyone => Access::Open,
            Self::TokenHolder(token) => Access::Token(Arc::new(token)),
            Self::Cluster(config) => Access::tokens(*config),
        }
    }
}

/// How a replica takes part in electing the leader of `lease` in `namespace`: competing as
/// `identity` with `leader`'s timing in the cluster `client` reaches, or leading alone without
/// one (the embedded store).
pub fn leadership(
    client: Option<kube::Client>,
    leader: &LeaderArgs,
    namespace: &str,
    lease: String,
    identity: &str,
) -> Result<Leadership> {
    Ok(match client {
        Some(client) => {
            let election = leader.election(namespace, lease, identity.to_owned())?;
            Leadership::Lease(client, Box::new(election))
        }
        None => Leadership::Alone,
    })
}

/// Who this replica is among its peers: `given` (`--identity`, the pod's name in a cluster),
/// else `prefix` and the process id.
pub fn identity(given: Option<String>, prefix: &str) -> String {
    given.filter(|i| !i.is_empty()).unwrap_or_else(|| format!("{prefix}-{}", std::process::id()))
}

/// Refuses a gRPC address other machines reach for a process whose gRPC port admits every
/// caller (no cluster to check tokens against): whoever reached it could run any node with the
/// process's rights and watch every message.
pub fn ungated_grpc_on_loopback(grpc: SocketAddr) -> Result<()> {
    if grpc.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "--grpc-listen {grpc}: outside a cluster the modules' gRPC port takes deliveries from \
         anyone who reaches it, and runs them with this process's rights; listen on a loopback \
         address such as 127.0.0.1:7421"
    )
}

/// Binds the HTTP endpoint's listener; with the address it got.
pub async fn listen(address: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr().context("cannot read the listening address")?;
    Ok((listener, bound))
}

/// A running process; [`Process::stopped`] waits for it once `stop` is cancelled.
#[derive(Debug)]
pub struct Process {
    /// The HTTP endpoint: the probes, and with the editor its API under `/api` and the editor
    /// at `/`, behind the [`Guard`].
    pub app: Router,
    hosted: Option<Hosted>,
    tasks: Vec<JoinHandle<()>>,
    /// Ends the election, once everything that leads has stopped.
    resign: CancellationToken,
    election: Option<JoinHandle<()>>,
    /// Where the hosted nodes' deliveries go as spans, when the environment asks for it.
    traces: Option<Arc<Traces>>,
}

impl Process {
    /// Starts `parts` until `stop` is cancelled.
    pub fn start(parts: Parts, stop: &CancellationToken) -> Self {
        let Parts { store, scope, leadership, editor, modules } = parts;
        let resign = CancellationToken::new();
        let (leading, election) = leadership.start(&resign);
        let hosted = modules
            .map(|modules| modules.start(Arc::clone(&store), scope.clone(), leading.clone(), stop));
        let runtime = hosted.as_ref().map(|hosted| hosted.runtime.clone());
        let traces = hosted.as_ref().and_then(export_traces);
        let mut app = crate::probes::app(Arc::clone(&store), runtime.clone(), scope.clone());
        let mut tasks = Vec::new();
        if let Some(editor) = editor {
            tasks.extend(Kind::ALL.into_iter().map(|kind| {
                tokio::spawn(log_changes(Arc::clone(&store), kind, scope.of(kind), stop.clone()))
            }));
            tasks.push(tokio::spawn(crate::controller::run(
                Arc::clone(&store),
                scope.clone(),
                leading.leads,
                stop.clone(),
            )));
            let Editor { users, guard, files, bearer, runs_kept, webhooks } = editor;
            let bearer = bearer.map(Arc::new);
            let serving =
                api::Serving { access: users.access(), scope, bearer, runs_kept, webhooks };
            app = app
                .nest("/api", api::router(store, runtime, serving, stop))
                .fallback_service(crate::editor_files::routes(files))
                .layer(middleware::from_fn_with_state(guard, guard::check));
        }
        Self { app, hosted, tasks, resign, election, traces }
    }

    /// Waits for every part to finish once `stop` is cancelled, the lease given up last.
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(hosted) = self.hosted {
            hosted.stopped().await;
        }
        self.resign.cancel();
        if let Some(election) = self.election {
            let _ = election.await;
        }
        if let Some(traces) = self.traces {
            // The last spans leave before the process does.
            let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
        }
    }
}

/// Exports the spans of `hosted`'s deliveries where the OpenTelemetry variables name an
/// endpoint, as `weir-MODULE` for one module's process (`weir` for several) unless
/// `OTEL_SERVICE_NAME` says otherwise. A bad endpoint is logged, and the process runs on
/// without traces.
fn export_traces(hosted: &Hosted) -> Option<Arc<Traces>> {
    let service = match hosted.runtime.modules() {
        [module] => format!("weir-{}", module.name()),
        _ => "weir".to_owned(),
    };
    match Traces::from_env(&service) {
        Ok(traces) => {
            let traces = Arc::new(traces?);
            hosted.runtime.export_spans(Arc::clone(&traces) as Arc<dyn weir_runtime::spans::Spans>);
            tracing::info!(service, "exporting traces over OTLP");
            Some(traces)
        }
        Err(err) => {
            tracing::error!(error = %err, "traces are not exported");
            None
        }
    }
}

/// Serves `process` on `listener` until interrupted (Ctrl-C or SIGTERM) or until its modules
/// stop by themselves, then stops it; a process whose modules stopped fails with the reason
/// rather than look alive.
pub async fn serve(listener: TcpListener, process: Process, stop: CancellationToken) -> Result<()> {
    let failure = process.hosted.as_ref().map(Hosted::failure);
    let ended = {
        let (stop, failure) = (stop.clone(), failure.clone());
        async move {
            tokio::select! {
                () = shutdown_requested() => {}
                () = failed(failure.as_deref()) => {}
            }
            // Cancelled before the graceful shutdown, which would wait for the open event
            // streams otherwise.
            stop.cancel();
        }
    };
    axum::serve(listener, process.app.clone())
        .with_graceful_shutdown(ended)
        .await
        .context("the HTTP server failed")?;
    stop.cancel();
    process.stopped().await;
    if let Some(reason) = failure.as_deref().and_then(Failure::reason) {
        anyhow::bail!("{reason}");
    }
    tracing::info!("weir stopped");
    Ok(())
}

/// Completes once hosting failed; never without hosting.
async fn failed(failure: Option<&Failure>) {
    match failure {
        Some(failure) => failure.happened().await,
        None => std::future::pending().await,
    }
}

async fn log_changes(
    store: Arc<dyn Store>,
    kind: Kind,
    namespace: Option<String>,
    stop: CancellationToken,
) {
    let mut events = weir_store::follow(store, kind, namespace, stop);
    while let Some(event) = events.next().await {
        match event {
            WatchEvent::Synced(objects) => {
                tracing::info!("{} {kind} resources stored", objects.len());
            }
            WatchEvent::Applied(object) => {
                let generation = object.metadata.generation;
                tracing::info!(generation, "{} applied", weir_store::describe(&object));
            }
            WatchEvent::Deleted(object) => {
                tracing::info!("{} deleted", weir_store::describe(&object));
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_requested() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping");
}
