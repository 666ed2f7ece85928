//! What the runtime knows of the flows its nodes belong to, as the store says: whether each is
//! suspended (`spec.suspend`: its triggers stop and no new run starts; runs under way finish)
//! and which ServiceAccount its nodes act as.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use tokio::sync::watch;
use weir_model::Flow;

/// One flow as the runtime follows it.
#[derive(Debug)]
struct Known {
    account: Option<String>,
    suspended: watch::Sender<bool>,
}

impl Default for Known {
    fn default() -> Self {
        Self { account: None, suspended: watch::channel(false).0 }
    }
}

/// The flows of the runtime's nodes.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    /// By namespace, then name: a lookup by two `&str` borrows both, as every run's start
    /// asks whether its flow is suspended.
    known: RwLock<HashMap<String, HashMap<String, Known>>>,
}

impl Flows {
    /// Takes in a flow as the store now holds it.
    pub(crate) fn follow(&self, flow: &Flow) {
        let (Some(namespace), Some(name)) = (&flow.metadata.namespace, &flow.metadata.name) else {
            return;
        };
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let entry = known.entry(namespace.clone()).or_default().entry(name.clone()).or_default();
        entry.account = Some(flow.spec.account().to_owned());
        entry.suspended.send_if_modified(|suspended| {
            let now = flow.spec.suspend == Some(true);
            std::mem::replace(suspended, now) != now
        });
    }

    /// The flows known, for a full resync.
    pub(crate) fn keys(&self) -> Vec<(String, String)> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known
            .iter()
            .flat_map(|(namespace, flows)| {
                flows
                    .iter()
                    .filter(|(_, flow)| flow.account.is_some())
                    .map(move |(name, _)| (namespace.clone(), name.clone()))
            })
            .collect()
    }

    /// Forgets a deleted flow: its nodes go with it.
    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(flow) = known.get_mut(namespace).and_then(|flows| flows.get_mut(name)) {
            flow.account = None;
            flow.suspended.send_if_modified(|suspended| std::mem::replace(suspended, false));
        }
    }

    /// Whether the flow is suspended now.
    pub(crate) fn suspended(&self, namespace: &str, name: &str) -> bool {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known
            .get(namespace)
            .and_then(|flows| flows.get(name))
            .is_some_and(|flow| *flow.suspended.borrow())
    }

    /// Follows whether the flow is suspended, from now on (not suspended while unknown).
    pub(crate) fn watch_suspended(&self, namespace: &str, name: &str) -> watch::Receiver<bool> {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let flows = known.entry(namespace.to_owned()).or_default();
        flows.entry(name.to_owned()).or_default().suspended.subscribe()
    }

    /// The account the flow's nodes act as; `None` while the flow is unknown.
    pub(crate) fn account(&self, namespace: &str, name: &str) -> Option<String> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.get(namespace)?.get(name)?.account.clone()
    }
}
