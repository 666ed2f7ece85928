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
use weir_sdk::{NodeError, Run};

use crate::{
    client::{self, Delivery, Undelivered},
    histogram::Histogram,
    key::NodeKey,
    link::Link,
    trust::Bearer,
};

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
                trigger: Some(&run.trigger),
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
        if let Some(link) = links.get(endpoint)
            && link.serves(token.as_deref())
        {
            return Ok(Arc::clone(link));
        }
        let uri = match endpoint.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => uri,
            _ => {
                return Err(Undelivered::Failed(NodeError::invalid(format!(
                    "module endpoint {endpoint:?} is not an http://HOST:PORT URL"
                ))));
            }
        };
        let authorization = token.as_deref().and_then(Bearer::header_of);
        let link = Arc::new(Link::open(uri, endpoint.to_owned(), token, authorization));
        links.insert(endpoint.to_owned(), Arc::clone(&link));
        Ok(link)
    }
}
