//! The webhook listener: one per process, on the address the process is given
//! (`--webhook-listen`), serving `/hooks/{namespace}/{flow}/{node}[/{sub-path}]`. Each running
//! webhook node puts its route in the process's table while its trigger runs (on every
//! replica) and takes it out when it stops, so a request reaches the node's current instance
//! or gets 404. The table is process-wide because a component is built from its settings
//! alone; the key (namespace, flow, node) is unique in a store.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, PoisonError, RwLock},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::any,
};
use futures::{FutureExt as _, future::BoxFuture};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use weir_sdk::Context;

use crate::webhook::Core;

/// Which webhook: namespace, flow and node.
type Key = (String, String, String);

/// A running webhook node: what it checks and how it answers, and the context it starts
/// runs in.
struct Route {
    core: Arc<Core>,
    cx: Context,
}

static ROUTES: LazyLock<RwLock<HashMap<Key, Arc<Route>>>> = LazyLock::new(RwLock::default);

/// A route in the table; dropping it takes the route out, unless a newer instance of the same
/// node has put its own in since.
#[derive(Debug)]
pub struct Registration {
    key: Key,
    core: Arc<Core>,
}

/// Puts the node of `cx` in the table, answered by `core`, until the registration is dropped.
pub fn register(core: &Arc<Core>, cx: &Context) -> Registration {
    let node = cx.node();
    let key = (node.namespace.clone(), node.flow.clone(), node.node.clone());
    let route = Arc::new(Route { core: Arc::clone(core), cx: cx.clone() });
    ROUTES.write().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), route);
    Registration { key, core: Arc::clone(core) }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
        if routes.get(&self.key).is_some_and(|route| Arc::ptr_eq(&route.core, &self.core)) {
            routes.remove(&self.key);
        }
    }
}

/// How long a caller may take to send a request's headers before its connection is closed,
/// so callers that open connections and stall cannot hold them (the body has the node's
/// `readTimeout`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the webhook listener until `stop` is cancelled: what the http module gives
/// [`weir_sdk::Module::listener`]. Connections under way finish their requests first.
pub fn serve(
    listener: TcpListener,
    stop: CancellationToken,
) -> BoxFuture<'static, std::io::Result<()>> {
    let app =
        Router::new().route("/hooks/{*path}", any(dispatch)).fallback(|| async { not_found() });
    async move {
        let connections = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: wait instead of spinning.
                    Err(err) => {
                        tracing::warn!(error = %err, "the webhook listener cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = stop.cancelled() => break,
            };
            // TCP_NODELAY: an answer's last segment must not wait for the caller's delayed ACK.
            let _ = stream.set_nodelay(true);
            let (service, stop) = (TowerToHyperService::new(app.clone()), stop.clone());
            connections.spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
        connections.close();
        connections.wait().await;
        Ok(())
    }
    .boxed()
}

/// Finds the route of a request and lets its node answer.
async fn dispatch(request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    let mut parts = path.trim_start_matches("/hooks/").splitn(4, '/');
    let (Some(namespace), Some(flow), Some(node)) = (parts.next(), parts.next(), parts.next())
    else {
        return not_found();
    };
    let rest = parts.next().unwrap_or_default().to_owned();
    let key = (namespace.to_owned(), flow.to_owned(), node.to_owned());
    let route = ROUTES.read().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
    match route {
        Some(route) => route.core.answer(&route.cx, &rest, request).await,
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": "no such webhook" })))
        .into_response()
}

#[cfg(test)]
mod tests {
    use weir_sdk::{Component as _, testing::Harness};

    use super::*;
    use crate::webhook::Webhook;

    fn routed(key: &Key) -> Option<Arc<Core>> {
        ROUTES.read().unwrap_or_else(PoisonError::into_inner).get(key).map(|r| Arc::clone(&r.core))
    }

    #[test]
    fn a_rebuilt_node_keeps_its_route_when_the_old_instance_stops() {
        let cx = Harness::build::<Webhook>(&serde_json::Value::Null).unwrap().context().clone();
        let key = ("test".to_owned(), "test".to_owned(), "webhook".to_owned());
        let older = Webhook::build(crate::webhook::WebhookSettings::default()).unwrap();
        let newer = Webhook::build(crate::webhook::WebhookSettings::default()).unwrap();
        let first = register(&older.core, &cx);
        let second = register(&newer.core, &cx);
        drop(first);
        let kept = routed(&key).expect("the newer route stays");
        assert!(Arc::ptr_eq(&kept, &newer.core));
        drop(second);
        assert!(routed(&key).is_none(), "gone once the node stops");
    }
}
