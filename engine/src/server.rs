//! `weir up`: the engine on one store in one process: the flow controller, every built-in
//! module, and the HTTP endpoint: health, metrics, the editor's API under `/api` and the editor
//! itself at `/`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use axum::{Router, extract::State, http::StatusCode, middleware, routing::get};
use futures::StreamExt;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use weir_model::Kind;
use weir_runtime::{Runtime, trust::Bearer};
use weir_sdk::Module;
use weir_store::{Selector, Store, WatchEvent};

use crate::{
    api::access::{Access, SharedToken},
    cli::UpArgs,
    cmd::Opened,
    guard::{self, Guard},
    hosting::{self, Hosted, Hosting, Leadership, Listeners},
    scope::Scope,
};

/// Runs the engine until interrupted (Ctrl-C or SIGTERM).
pub async fn up(opened: Opened, builtins: Vec<Module>, args: UpArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(file) => Some(read_token(file)?),
        None if !args.listen.ip().is_loopback() => anyhow::bail!(
            "--listen {}: weir up on an address other machines reach acts with your kubeconfig \
             for whoever sends it requests; give --token-file FILE with a token they must send, \
             or listen on a loopback address such as 127.0.0.1",
            args.listen
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    let listeners =
        hosting::Listeners::bind(&builtins, args.grpc_listen, None, args.webhook_listen).await?;
    let Opened { store, place, .. } = opened;
    let modules: Vec<&str> = builtins.iter().map(Module::name).collect();
    tracing::info!(
        data = place,
        modules = modules.join(","),
        grpc = listeners.advertise,
        webhooks = listeners.webhooks_url().unwrap_or_default(),
        token = token.is_some(),
        "weir is up on http://{address}"
    );
    let stop = CancellationToken::new();
    let editor = args.ui_dir.unwrap_or_else(crate::editor_files::default_dir);
    let local = Local { address, token, editor };
    let engine = Engine::start(store, builtins, listeners, local, &stop);
    serve(listener, engine, stop).await
}

/// The token in `file`, as `--token-file` gives it.
fn read_token(file: &Path) -> Result<SharedToken> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--token-file {}: cannot read it", file.display()))?;
    SharedToken::new(&text)
        .map_err(|rule| anyhow::anyhow!("--token-file {}: {rule}", file.display()))
}

/// Serves `engine` on `listener` until interrupted, then stops the engine.
pub async fn serve(listener: TcpListener, engine: Engine, stop: CancellationToken) -> Result<()> {
    let requested = {
        let stop = stop.clone();
        // Cancelling `stop` first ends the open event streams, which the graceful shutdown
        // would otherwise wait for.
        async move {
            shutdown_requested().await;
            stop.cancel();
        }
    };
    axum::serve(listener, engine.app.clone())
        .with_graceful_shutdown(requested)
        .await
        .context("the HTTP server failed")?;
    stop.cancel();
    engine.stopped().await;
    tracing::info!("weir stopped");
    Ok(())
}

/// The engine running in this process: the flow controller, the hosted modules (if any) and
/// the HTTP endpoints to serve. [`Engine::stopped`] waits for it after `stop` is cancelled.
#[derive(Debug)]
pub struct Engine {
    /// The HTTP endpoints: [`app`] with the editor's API under `/api` and the editor at `/`,
    /// behind the [`Guard`].
    pub app: Router,
    hosted: Option<Hosted>,
    tasks: Vec<JoinHandle<()>>,
}

/// What an engine is made of.
#[derive(Debug)]
pub struct EngineParts {
    /// Where resources are kept.
    pub store: Arc<dyn Store>,
    /// Where flows and modules live.
    pub scope: Scope,
    /// Who may use the editor's API.
    pub access: Access,
    /// Which requests the HTTP endpoints answer.
    pub guard: Guard,
    /// The editor's files, as `scripts/ui.sh` builds them.
    pub editor: PathBuf,
    /// Whether this replica runs the flow controller.
    pub leadership: Leadership,
    /// The modules to host in this process, with where they are reached; none in a cluster,
    /// where modules run apart.
    pub modules: Option<(Vec<Module>, Listeners)>,
    /// What the engine presents to the modules whose messages it watches, in a cluster.
    pub bearer: Option<Bearer>,
}

impl Engine {
    /// Starts the whole engine of `weir up` on `store`: every flow of every namespace, the
    /// API open to whoever reaches it as `local` says, `modules` hosted and reached at
    /// `listeners`, until `stop` is cancelled.
    pub fn start(
        store: Arc<dyn Store>,
        modules: Vec<Module>,
        listeners: Listeners,
        local: Local,
        stop: &CancellationToken,
    ) -> Self {
        let Local { address, token, editor } = local;
        Self::assemble(
            EngineParts {
                store,
                scope: Scope { home: weir_store::DEFAULT_NAMESPACE.to_owned(), flows: None },
                access: token.map_or(Access::Open, |token| Access::Token(Arc::new(token))),
                guard: Guard::Local(address),
                editor,
                leadership: Leadership::Alone,
                modules: Some((modules, listeners)),
                bearer: None,
            },
            stop,
        )
    }

    /// Starts an engine from its parts, until `stop` is cancelled.
    pub fn assemble(parts: EngineParts, stop: &CancellationToken) -> Self {
        let EngineParts { store, scope, access, guard, editor, leadership, modules, bearer } =
            parts;
        let mut tasks: Vec<JoinHandle<()>> = Kind::ALL
            .into_iter()
            .map(|kind| {
                tokio::spawn(log_changes(Arc::clone(&store), kind, scope.of(kind), stop.clone()))
            })
            .collect();
        let (leads, election) = leadership.start(stop);
        tasks.extend(election);
        tasks.push(tokio::spawn(crate::controller::run(
            Arc::clone(&store),
            scope.clone(),
            leads,
            stop.clone(),
        )));
        let hosted = modules.map(|(modules, listeners)| {
            let hosting = Hosting {
                modules,
                scope: scope.clone(),
                listeners,
                replica: "up".to_owned(),
                leadership: Leadership::Alone,
                // `weir up` serves gRPC on loopback to the user's own processes.
                gate: None,
                bearer: None,
                // Nodes act with the user's own kubeconfig: the user is the identity.
                accounts: None,
                secrets: Arc::new(crate::secrets::KubeSecrets::new(None)),
                secret_refresh: weir_runtime::host::SECRET_REFRESH,
            };
            hosting.start(Arc::clone(&store), stop)
        });
        let runtime = hosted.as_ref().map(|hosted| hosted.runtime.clone());
        let serving =
            crate::api::Serving { access, scope: scope.clone(), bearer: bearer.map(Arc::new) };
        let api = crate::api::router(Arc::clone(&store), runtime.clone(), serving, stop);
        let app = app(store, runtime, scope)
            .nest("/api", api)
            .fallback_service(crate::editor_files::routes(editor))
            .layer(middleware::from_fn_with_state(guard, guard::check));
        Self { app, hosted, tasks }
    }

    /// Waits for every part to finish, once `stop` is cancelled.
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(hosted) = self.hosted {
            hosted.stopped().await;
        }
    }
}

/// How `weir up` is reached.
#[derive(Debug)]
pub struct Local {
    /// The address it listens on: requests must be for it (or for `localhost` at its port).
    pub address: SocketAddr,
    /// The token every API request must carry (`--token-file`), when one was given.
    pub token: Option<SharedToken>,
    /// The editor's files, as `scripts/ui.sh` builds them.
    pub editor: PathBuf,
}

/// What the HTTP endpoints answer from.
#[derive(Clone)]
struct Served {
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
    scope: Scope,
}

/// The HTTP endpoints, separate from the listener so tests can call them directly:
/// `/healthz`, `/readyz` (the modules, where they run, are hosting, and the store answers a
/// read of the nodes of `scope`) and, where modules run, `/metrics`.
pub fn app(store: Arc<dyn Store>, runtime: Option<Runtime>, scope: Scope) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Served { store, runtime, scope })
}

/// Ready when the store answers a read of what every Weir process reads: the nodes.
async fn ready(State(served): State<Served>) -> (StatusCode, String) {
    if served.runtime.as_ref().is_some_and(|runtime| !runtime.hosting()) {
        let message = "not hosting yet: the modules are not published or the nodes not listed";
        return (StatusCode::SERVICE_UNAVAILABLE, message.to_owned());
    }
    let namespace = served.scope.of(Kind::FlowNode);
    match served.store.list(Kind::FlowNode, namespace.as_deref(), &Selector::everything()).await {
        Ok(_) => (StatusCode::OK, "ok".to_owned()),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}")),
    }
}

/// The runtime's metrics in the Prometheus text format.
async fn metrics(
    State(served): State<Served>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let body = served.runtime.as_ref().map(weir_runtime::metrics::render).unwrap_or_default();
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], body)
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
pub async fn shutdown_requested() {
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
