//! The HTTP endpoints every Weir process serves: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use weir_model::Kind;
use weir_runtime::Runtime;
use weir_store::{Selector, Store};

use crate::scope::Scope;

/// What the endpoints answer from.
#[derive(Clone)]
struct Probed {
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
    scope: Scope,
}

/// `/healthz`, `/readyz` (the modules, where they run, are hosting, and the store answers a
/// read of the nodes of `scope`) and `/metrics` (the runtime's, where modules run).
pub fn app(store: Arc<dyn Store>, runtime: Option<Runtime>, scope: Scope) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probed { store, runtime, scope })
}

/// Ready when the store answers a read of what every Weir process reads: the nodes.
async fn ready(State(probed): State<Probed>) -> (StatusCode, String) {
    if probed.runtime.as_ref().is_some_and(|runtime| !runtime.hosting()) {
        let message = "not hosting yet: the modules are not published or the nodes not listed";
        return (StatusCode::SERVICE_UNAVAILABLE, message.to_owned());
    }
    let namespace = probed.scope.of(Kind::FlowNode);
    match probed.store.list(Kind::FlowNode, namespace.as_deref(), &Selector::everything()).await {
        Ok(_) => (StatusCode::OK, "ok".to_owned()),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}")),
    }
}

/// The runtime's metrics and the process's own (the controller's, the Kubernetes client's)
/// in the Prometheus text format.
async fn metrics(
    State(probed): State<Probed>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut body = probed.runtime.as_ref().map(weir_runtime::metrics::render).unwrap_or_default();
    crate::metrics::render(&mut body);
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], body)
}
