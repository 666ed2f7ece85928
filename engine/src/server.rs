//! `weir up`: the engine on one store in one process: the flow controller, every built-in
//! module, and the HTTP endpoint (health and metrics; the editor joins it in later work).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use weir_model::Kind;
use weir_runtime::Runtime;
use weir_sdk::Module;
use weir_store::{Selector, Store, WatchEvent};

use crate::{
    cli::UpArgs,
    cmd::Opened,
    hosting::{self, Hosting, Leadership},
};

/// Runs the engine until interrupted (Ctrl-C or SIGTERM).
pub async fn up(opened: Opened, builtins: Vec<Module>, args: UpArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    let (grpc, advertise) = hosting::grpc_listener(args.grpc_listen, None).await?;
    let Opened { store, place, .. } = opened;
    let modules: Vec<&str> = builtins.iter().map(Module::name).collect();
    tracing::info!(
        data = place,
        modules = modules.join(","),
        grpc = advertise,
        "weir is up on http://{address}"
    );
    let stop = CancellationToken::new();
    for kind in Kind::ALL {
        tokio::spawn(log_changes(Arc::clone(&store), kind, stop.clone()));
    }
    let controller = tokio::spawn(crate::controller::run(Arc::clone(&store), stop.clone()));
    let hosting = Hosting {
        modules: builtins,
        namespace: weir_store::DEFAULT_NAMESPACE.to_owned(),
        grpc,
        advertise,
        leadership: Leadership::Alone,
    };
    let hosted = hosting.start(Arc::clone(&store), &stop);
    axum::serve(listener, app(store, Some(hosted.runtime.clone())))
        .with_graceful_shutdown(shutdown_requested())
        .await
        .context("the HTTP server failed")?;
    stop.cancel();
    let _ = controller.await;
    hosted.stopped().await;
    tracing::info!("weir stopped");
    Ok(())
}

/// What the HTTP endpoints answer from.
#[derive(Clone)]
struct Served {
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
}

/// The HTTP endpoints, separate from the listener so tests can call them directly:
/// `/healthz`, `/readyz` (the store answers) and, where modules run, `/metrics`.
pub fn app(store: Arc<dyn Store>, runtime: Option<Runtime>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Served { store, runtime })
}

/// Ready when the store answers a read.
async fn ready(State(served): State<Served>) -> (StatusCode, String) {
    match served.store.list(Kind::Flow, None, &Selector::everything()).await {
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

async fn log_changes(store: Arc<dyn Store>, kind: Kind, stop: CancellationToken) {
    let mut events = weir_store::follow(store, kind, stop);
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
