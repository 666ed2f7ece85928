//! `weir up`: the engine on the embedded store. For now it serves health endpoints and logs
//! every change to the store; the module runtime and the editor join it in later work.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use weir_model::Kind;
use weir_store::{Selector, Store, WatchEvent};

use crate::cli::UpArgs;

/// Runs the engine until interrupted (Ctrl-C or SIGTERM); `place` says where the store keeps
/// its data.
pub async fn up(store: Arc<dyn Store>, place: &str, args: UpArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    tracing::info!(data = place, "weir is up on http://{address}");
    let stop = CancellationToken::new();
    for kind in Kind::ALL {
        tokio::spawn(log_changes(Arc::clone(&store), kind, stop.clone()));
    }
    let controller = tokio::spawn(crate::controller::run(Arc::clone(&store), stop.clone()));
    axum::serve(listener, app(store))
        .with_graceful_shutdown(shutdown_requested())
        .await
        .context("the HTTP server failed")?;
    stop.cancel();
    let _ = controller.await;
    tracing::info!("weir stopped");
    Ok(())
}

/// The HTTP endpoints, separate from the listener so tests can call them directly.
pub fn app(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(store)
}

/// Ready when the store answers a read.
async fn ready(State(store): State<Arc<dyn Store>>) -> (StatusCode, String) {
    match store.list(Kind::Flow, None, &Selector::everything()).await {
        Ok(_) => (StatusCode::OK, "ok".to_owned()),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}")),
    }
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
