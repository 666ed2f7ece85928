//! What the runtime knows of the flows its nodes belong to, as the store says: whether each is
//! suspended (`spec.suspend`: its triggers stop and no new run starts; runs under way finish)
//! and which ServiceAccount its nodes act as.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use tokio::sync::watch;
use weir_model::Flow;

/// A flow by namespace and name.
type Key = (String, String);

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
    known: RwLock<HashMap<Key, Known>>,
}

impl Flows {
    /// Takes in a flow as the store now holds it.
    pub(crate) fn follow(&self, flow: &Flow) {
        let (Some(namespace), Some(name)) = (&flow.metadata.namespace, &flow.metadata.name) else {
            return;
        };
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let entry = known.entry((namespace.clone(), name.clone())).or_default();
        entry.account = Some(flow.spec.account().to_owned());
        entry.suspended.send_if_modified(|suspended| {
            let now = flow.spec.suspend == Some(true);
            std::mem::replace(suspended, now) != now
        });
    }

    /// The flows known, for a full resync.
    pub(crate) fn keys(&self) -> Vec<(String, String)> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.iter().filter(|(_, f)| f.account.is_some()).map(|(k, _)| k.clone()).collect()
    }

    /// Forgets a deleted flow: its nodes go with it.
    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(flow) = known.get_mut(&key) {
            flow.account = None;
            flow.suspended.send_if_modified(|suspended| std::mem::replace(suspended, false));
        }
    }

    /// Whether the flow is suspended now.
    pub(crate) fn suspended(&self, namespace: &str, name: &str) -> bool {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.get(&(namespace.to_owned(), name.to_owned())).is_some_and(|f| *f.suspended.borrow())
    }

    /// Follows whether the flow is suspended, from now on (not suspended while unknown).
    pub(crate) fn watch_suspended(&self, namespace: &str, name: &str) -> watch::Receiver<bool> {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.entry((namespace.to_owned(), name.to_owned())).or_default().suspended.subscribe()
    }

    /// The account the flow's nodes act as; `None` while the flow is unknown.
    pub(crate) fn account(&self, namespace: &str, name: &str) -> Option<String> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.get(&(namespace.to_owned(), name.to_owned()))?.account.clone()
    }
}
