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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use axum::body::Body;
    use tower::ServiceExt as _;
    use weir_store::{DynamicObject, StoreError, WatchStream, embedded::EmbeddedStore};

    use super::*;

    /// The embedded store, counting its lists.
    #[derive(Debug)]
    struct Counted {
        inner: EmbeddedStore,
        lists: AtomicUsize,
    }

    #[async_trait]
    impl Store for Counted {
        async fn get(&self, kind: Kind, ns: &str, name: &str) -> Result<DynamicObject, StoreError> {
            self.inner.get(kind, ns, name).await
        }
        async fn list(
            &self,
            kind: Kind,
            namespace: Option<&str>,
            selector: &Selector,
        ) -> Result<Vec<DynamicObject>, StoreError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            self.inner.list(kind, namespace, selector).await
        }
        async fn create(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
            self.inner.create(object).await
        }
        async fn update(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
            self.inner.update(object).await
        }
        async fn update_status(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
            self.inner.update_status(object).await
        }
        async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), StoreError> {
            self.inner.delete(kind, namespace, name).await
        }
        fn watch(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> WatchStream {
            self.inner.watch(kind, namespace, selector)
        }
    }

    #[tokio::test]
    async fn many_probes_at_once_read_the_store_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
        let inner = EmbeddedStore::open(dir.path()).unwrap_or_else(|err| panic!("{err}"));
        let store = Arc::new(Counted { inner, lists: AtomicUsize::new(0) });
        let probes = app(Arc::clone(&store) as Arc<dyn Store>, None, Scope::new("default", false));
        let probe = || {
            let request = axum::http::Request::get("/readyz").body(Body::empty());
            let probes = probes.clone();
            async move {
                let answer = probes.oneshot(request.unwrap_or_else(|err| panic!("{err}"))).await;
                answer.map(|a| a.status()).unwrap_or_else(|err| match err {})
            }
        };
        let answers = futures::future::join_all((0..40).map(|_| probe())).await;
        assert!(answers.iter().all(|status| *status == StatusCode::OK), "{answers:?}");
        assert_eq!(store.lists.load(Ordering::SeqCst), 1, "one read for 40 probes at once");
        tokio::time::sleep(READ_KEPT_FOR).await;
        assert_eq!(probe().await, StatusCode::OK);
        assert_eq!(store.lists.load(Ordering::SeqCst), 2, "read again a second later");
    }
}
