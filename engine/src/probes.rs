//! The HTTP endpoints every Weir process serves: `/healthz`, `/readyz` and `/metrics`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
    /// The last read of the store and when it was made: `/readyz` answers without a token,
    /// on the editor's address too, so a read serves every probe for [`READ_KEPT_FOR`] and
    /// probes wait their turn rather than each listing the nodes.
    last_read: Arc<tokio::sync::Mutex<Option<StoreRead>>>,
}

/// When the store was read, and whether it answered (else why not).
type StoreRead = (Instant, Result<(), String>);

/// How long one read of the store answers `/readyz`: however often it is asked, the store is
/// read at most this often.
const READ_KEPT_FOR: Duration = Duration::from_secs(1);

/// `/healthz`, `/readyz` (the modules, where they run, are hosting, and the store answers a
/// read of the nodes of `scope`, made at most once a second) and `/metrics` (the runtime's, where modules run).
pub fn app(store: Arc<dyn Store>, runtime: Option<Runtime>, scope: Scope) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probed { store, runtime, scope, last_read: Arc::default() })
}

/// Ready when the store answers a read of what every Weir process reads: the nodes.
async fn ready(State(probed): State<Probed>) -> (StatusCode, String) {
    if probed.runtime.as_ref().is_some_and(|runtime| !runtime.hosting()) {
        let message = "not hosting yet: the modules are not published or the nodes not listed";
        return (StatusCode::SERVICE_UNAVAILABLE, message.to_owned());
    }
    let mut last_read = probed.last_read.lock().await;
    let read = match &*last_read {
        Some((at, read)) if at.elapsed() < READ_KEPT_FOR => read.clone(),
        _ => {
            let namespace = probed.scope.of(Kind::FlowNode);
            let everything = Selector::everything();
            let listed = probed.store.list(Kind::FlowNode, namespace.as_deref(), &everything);
            let read = listed.await.map(|_| ()).map_err(|err| format!("store unavailable: {err}"));
            *last_read = Some((Instant::now(), read.clone()));
            read
        }
    };
    match read {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
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
