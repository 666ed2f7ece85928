//! The streams of deliveries that reach other module processes (one [`Link`] per peer and
//! token), with the outcomes and latency of the deliveries sent on them (where each node runs
//! is the routing table's to say).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use weir_proto::module_client::ModuleClient;
use weir_sdk::{NodeError, Run};

use crate::{
    client::{self, Delivery, Undelivered},
    histogram::Histogram,
    key::NodeKey,
    link::Link,
    trust::Bearer,
};

/// How long connecting to a peer may take before the delivery counts as failed (transiently).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an HTTP/2 ping checks a peer connection, and how long its answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Peers {
    /// Per endpoint, the link deliveries go on now.
    links: Mutex<HashMap<String, Arc<Link>>>,
    answered: AtomicU64,
    failed: AtomicU64,
    latency: Histogram,
    /// What this process presents to the modules it calls, in a cluster.
    bearer: OnceLock<Bearer>,
}

impl Peers {
    pub(crate) fn present(&self, bearer: Bearer) {
        let _ = self.bearer.set(bearer);
    }

    pub(crate) fn outcomes(&self) -> (u64, u64) {
        (self.answered.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    pub(crate) fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Delivers to a node in another module along an edge from `source` (node, port);
    /// `timeout` travels with the delivery, and the receiver drops it then.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn deliver(
        &self,
        endpoint: &str,
        source: (&str, &str),
        target: &NodeKey,
        port: &str,
        message: &Value,
        run: &Run,
        attempt: u32,
        timeout: Duration,
    ) -> Result<Value, NodeError> {
        let started = Instant::now();
        let result = async {
            let link = self.link(endpoint)?;
            let delivery = Delivery {
                target,
                port,
                message,
                trigger: &run.trigger,
                hops: run.hops,
                source: Some(source),
                trace: run.trace,
                attempt,
            };
            let response = link.deliver(delivery.request()?, run.trace.traceparent(), timeout);
            client::outcome(response.await?)
        }
        .await
        .map_err(|err| match err {
            Undelivered::Failed(error) => error,
            Undelivered::BadAnswer(what) => {
                NodeError::internal(format!("module {endpoint} answered with {what}"))
            }
        });
        self.latency.observe(started.elapsed());
        let outcome = if result.is_ok() { &self.answered } else { &self.failed };
        outcome.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// The link to `endpoint` that presents the token this process presents now: the one
    /// made before, or a new one where that broke or the token changed (a kubelet rotates it).
    fn link(&self, endpoint: &str) -> Result<Arc<Link>, Undelivered> {
        let bearer = self.bearer.get();
        let token = bearer.and_then(Bearer::token);
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let client = match links.get(endpoint) {
            Some(link) if link.serves(token.as_deref()) => return Ok(Arc::clone(link)),
            Some(link) => link.client(),
            None => ModuleClient::new(channel(endpoint)?),
        };
        let authorization = token.as_deref().and_then(Bearer::header_of);
        let link = Arc::new(Link::open(client, endpoint.to_owned(), token, authorization));
        links.insert(endpoint.to_owned(), Arc::clone(&link));
        Ok(link)
    }
}

/// A channel to `endpoint`, which connects on first use.
fn channel(endpoint: &str) -> Result<Channel, Undelivered> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|err| {
            Undelivered::Failed(NodeError::invalid(format!(
                "module endpoint {endpoint:?} is not a URL: {err}"
            )))
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        // A peer that died without closing the connection is found out in seconds, not at
        // the edge's timeout (up to hours).
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(channel)
}
