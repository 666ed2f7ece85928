//! Nodes that run in other module processes, and the gRPC clients that reach them.

use std::{
    collections::HashMap,
    sync::{
        Mutex, OnceLock, PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use weir_proto::module_client::ModuleClient;
use weir_sdk::{NodeError, Run};

use crate::{
    NodeKey,
    client::{self, Delivery, Undelivered},
    metrics::Histogram,
    replicas::Replicas,
    trust::Bearer,
};

/// How long connecting to a peer may take before the delivery counts as failed (transiently).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an HTTP/2 ping checks a peer connection, and how long its answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a node of another module is reached.
struct Route {
    /// The node's component, which says whether only the leader takes its messages.
    component: String,
    replicas: Replicas,
}

#[derive(Default)]
pub(crate) struct Peers {
    routes: RwLock<HashMap<NodeKey, Route>>,
    /// Whose turn it is among the replicas, so deliveries spread over them.
    turn: AtomicUsize,
    clients: Mutex<HashMap<String, ModuleClient<Channel>>>,
    answered: AtomicU64,
    failed: AtomicU64,
    latency: Histogram,
    /// What this process presents to the modules it calls, in a cluster.
    bearer: OnceLock<Bearer>,
}

impl Peers {
    pub(crate) fn route(&self, node: NodeKey, component: &str, replicas: Replicas) {
        let route = Route { component: component.to_owned(), replicas };
        self.routes.write().unwrap_or_else(PoisonError::into_inner).insert(node, route);
    }

    pub(crate) fn unroute(&self, node: &NodeKey) {
        self.routes.write().unwrap_or_else(PoisonError::into_inner).remove(node);
    }

    pub(crate) fn present(&self, bearer: Bearer) {
        let _ = self.bearer.set(bearer);
    }

    /// Whether `node` runs in another module this process knows the replicas of.
    pub(crate) fn routes(&self, node: &NodeKey) -> bool {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).contains_key(node)
    }

    /// The replica to send `node`'s next message to, passing over `avoid` (where the last
    /// attempt failed) when there is another.
    pub(crate) fn pick(&self, node: &NodeKey, avoid: Option<&str>) -> Option<String> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        let route = routes.get(node)?;
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        route.replicas.pick(&route.component, turn, avoid).map(str::to_owned)
    }

    pub(crate) fn outcomes(&self) -> (u64, u64) {
        (self.answered.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    pub(crate) fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Delivers to a node in another module along an edge from `source` (node, port);
    /// `timeout` becomes the call's gRPC deadline.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn deliver(
        &self,
        endpoint: &str,
        source: (&str, &str),
        target: &NodeKey,
        port: &str,
        message: &Value,
        run: &Run,
        timeout: Duration,
    ) -> Result<Value, NodeError> {
        let started = Instant::now();
        let result = async {
            let mut client = self.client(endpoint)?;
            let delivery = Delivery {
                target,
                port,
                message,
                trigger: &run.trigger,
                hops: run.hops,
                source: Some(source),
                trace: run.trace,
                timeout,
                authorization: self.bearer.get().and_then(Bearer::header),
            };
            client::deliver(&mut client, endpoint, delivery).await.map_err(|err| match err {
                Undelivered::Failed(error) => error,
                Undelivered::BadAnswer(what) => {
                    NodeError::internal(format!("module {endpoint} answered with {what}"))
                }
            })
        }
        .await;
        self.latency.observe(started.elapsed());
        let outcome = if result.is_ok() { &self.answered } else { &self.failed };
        outcome.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// A client for `endpoint`, made once and shared; it connects on first use.
    fn client(&self, endpoint: &str) -> Result<ModuleClient<Channel>, NodeError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|err| {
                NodeError::invalid(format!("module endpoint {endpoint:?} is not a URL: {err}"))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            // A peer that died without closing the connection is found out in seconds, not
            // at the edge's timeout (up to hours).
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        let client = ModuleClient::new(channel);
        clients.insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }
}
