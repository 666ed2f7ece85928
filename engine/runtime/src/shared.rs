//! What a runtime's clones, its nodes' emitters and its deliveries share: the hosted modules,
//! the routing table, the peers, the store's edges and flows, and the events watchers read.

use std::{
    sync::{Arc, OnceLock, atomic::AtomicBool},
    time::SystemTime,
};

use tokio::sync::{broadcast, watch};
use weir_sdk::{AccountToken, Module, NodeError, TraceContext};

use crate::{
    flows::Flows,
    inspect::{Event, Observed},
    instance::Instance,
    key::NodeKey,
    peers::Peers,
    routing::Routing,
    spans::Spans,
    trust::{Accounts, SecretValues},
    wiring::Wiring,
};

pub(crate) struct Shared {
    pub(crate) modules: Vec<Module>,
    /// Where each node runs: here, or in which module's replicas.
    pub(crate) routing: Routing,
    /// Whether this replica leads, and so runs the triggers.
    pub(crate) leader: watch::Receiver<bool>,
    /// The connections to other modules.
    pub(crate) peers: Peers,
    /// The edges the store holds, which deliveries from other modules must follow.
    pub(crate) wiring: Wiring,
    /// Where the tokens of the accounts flows act as come from, in a cluster.
    pub(crate) accounts: OnceLock<Arc<dyn Accounts>>,
    /// Where secret settings given by reference are read.
    pub(crate) secrets: OnceLock<Arc<dyn SecretValues>>,
    /// Where the span of every delivery goes, when traces are exported.
    pub(crate) spans: OnceLock<Arc<dyn Spans>>,
    /// Whether a host has published the modules and applied the store's nodes.
    pub(crate) hosting: AtomicBool,
    /// The flows of the nodes: suspended or not, and the account each acts as.
    pub(crate) flows: Flows,
    /// What happens at the nodes, for whoever watches.
    pub(crate) events: broadcast::Sender<Arc<Event>>,
}

impl Shared {
    /// The node `key` running here.
    pub(crate) fn instance(&self, key: &NodeKey) -> Result<Arc<Instance>, NodeError> {
        self.routing
            .local(key)
            .ok_or_else(|| NodeError::invalid(format!("node {key} is not running")))
    }

    /// A token of the account flow `flow` of `namespace` acts as; `None` where nodes act with
    /// the user's own credentials.
    pub(crate) async fn account_token(
        &self,
        namespace: &str,
        flow: &str,
    ) -> Result<Option<AccountToken>, NodeError> {
        let Some(accounts) = self.accounts.get().cloned() else { return Ok(None) };
        let account = self.flows.account(namespace, flow).ok_or_else(|| {
            NodeError::transient(format!(
                "flow {namespace}/{flow} is not known to this module yet, so neither is its account"
            ))
        })?;
        accounts.token(namespace, flow, &account).await.map(Some)
    }

    /// Whether anyone watches the events; when nobody does, none are made.
    pub(crate) fn watched(&self) -> bool {
        self.events.receiver_count() > 0
    }

    pub(crate) fn publish(
        &self,
        instance: &Instance,
        port: &str,
        trace: TraceContext,
        what: Observed,
    ) {
        let event = Event {
            at: SystemTime::now(),
            node: Arc::clone(&instance.identity),
            port: port.to_owned(),
            trace,
            what,
        };
        // No watcher left since `watched` was asked: nobody misses the event.
        let _ = self.events.send(Arc::new(event));
    }
}
