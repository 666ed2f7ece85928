//! Where each node runs, as this process knows it: the nodes built here, and for a node of
//! another module, its module and component and where that module serves (its replicas). The
//! runtime owns the one table; its host feeds it from the store (FlowNodes and `Module`
//! resources). A delivery whose target runs nowhere yet waits for [`Routing::arrival`].

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::{Notify, futures::Notified};
use weir_store::WatchEvent;

use crate::{
    instance::Instance,
    key::NodeKey,
    replicas::{self, Replicas},
};

/// Where a delivery goes: a node of this process, or a module that runs it.
pub(crate) enum Target {
    Local(Arc<Instance>),
    Remote,
}

/// A node of another module.
struct Remote {
    module: String,
    /// The node's component, which says whether only the module's leader takes its messages.
    component: String,
}

/// The nodes of other modules and where each module serves, under one lock so that a route
/// is never read half made.
#[derive(Default)]
struct Elsewhere {
    nodes: HashMap<NodeKey, Remote>,
    serving: HashMap<String, Replicas>,
}

#[derive(Default)]
pub(crate) struct Routing {
    /// Looked up on every hop: keyed with a hasher quicker than the default one.
    local: RwLock<foldhash::HashMap<NodeKey, Arc<Instance>>>,
    elsewhere: RwLock<Elsewhere>,
    /// Whose turn it is among a module's replicas, so deliveries spread over them.
    turn: AtomicUsize,
    /// Woken when a node starts here or a route to another module's node appears.
    arrivals: Notify,
}

impl Routing {
    /// The node `key` built here.
    pub(crate) fn local(&self, key: &NodeKey) -> Option<Arc<Instance>> {
        self.local.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Every node built here.
    pub(crate) fn locals(&self) -> Vec<Arc<Instance>> {
        self.local.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Puts `instance` in place of the node `key` built here, returning the one it replaces.
    pub(crate) fn put(&self, key: NodeKey, instance: Arc<Instance>) -> Option<Arc<Instance>> {
        let previous =
            self.local.write().unwrap_or_else(PoisonError::into_inner).insert(key, instance);
        self.arrivals.notify_waiters();
        previous
    }

    /// Takes the node `key` out of the nodes built here.
    pub(crate) fn take(&self, key: &NodeKey) -> Option<Arc<Instance>> {
        self.local.write().unwrap_or_else(PoisonError::into_inner).remove(key)
    }

    /// Takes every node built here out.
    pub(crate) fn take_all(&self) -> Vec<Arc<Instance>> {
        let mut local = self.local.write().unwrap_or_else(PoisonError::into_inner);
        local.drain().map(|(_, instance)| instance).collect()
    }

    /// Records that `node` is a node of `component` in another module, `module`.
    pub(crate) fn route(&self, node: NodeKey, module: &str, component: &str) {
        let remote = Remote { module: module.to_owned(), component: component.to_owned() };
        self.elsewhere.write().unwrap_or_else(PoisonError::into_inner).nodes.insert(node, remote);
        self.arrivals.notify_waiters();
    }

    /// Forgets a node of another module; says whether it was one.
    pub(crate) fn unroute(&self, node: &NodeKey) -> bool {
        let mut elsewhere = self.elsewhere.write().unwrap_or_else(PoisonError::into_inner);
        elsewhere.nodes.remove(node).is_some()
    }

    /// Records that `module` serves at `replicas`.
    pub(crate) fn serve(&self, module: &str, replicas: Replicas) {
        let mut elsewhere = self.elsewhere.write().unwrap_or_else(PoisonError::into_inner);
        elsewhere.serving.insert(module.to_owned(), replicas);
        drop(elsewhere);
        self.arrivals.notify_waiters();
    }

    /// Takes in a change of the `Module` resources (see [`replicas::follow`]).
    pub(crate) fn follow_modules(&self, event: &WatchEvent) {
        let mut elsewhere = self.elsewhere.write().unwrap_or_else(PoisonError::into_inner);
        replicas::follow(&mut elsewhere.serving, event);
        drop(elsewhere);
        self.arrivals.notify_waiters();
    }

    /// Where `node` runs now: here, in a module that serves, or nowhere known.
    pub(crate) fn target(&self, node: &NodeKey) -> Option<Target> {
        if let Some(local) = self.local(node) {
            return Some(Target::Local(local));
        }
        let elsewhere = self.elsewhere.read().unwrap_or_else(PoisonError::into_inner);
        let remote = elsewhere.nodes.get(node)?;
        elsewhere.serving.contains_key(&remote.module).then_some(Target::Remote)
    }

    /// The replica to send `node`'s next message to, passing over `avoid` (where the last
    /// attempt failed) when there is another.
    pub(crate) fn pick(&self, node: &NodeKey, avoid: Option<&str>) -> Option<String> {
        let elsewhere = self.elsewhere.read().unwrap_or_else(PoisonError::into_inner);
        let remote = elsewhere.nodes.get(node)?;
        let replicas = elsewhere.serving.get(&remote.module)?;
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        replicas.pick(&remote.component, turn, avoid).map(str::to_owned)
    }

    /// Completes when a node starts here or a route appears; enabled, so that one between
    /// this call and the next look at the table is not missed.
    pub(crate) fn arrival(&self) -> std::pin::Pin<Box<Notified<'_>>> {
        let mut arrival = Box::pin(self.arrivals.notified());
        arrival.as_mut().enable();
        arrival
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> NodeKey {
        NodeKey { namespace: "ns".into(), name: name.into() }
    }

    #[test]
    fn a_node_of_another_module_is_reached_once_its_module_serves() {
        let routing = Routing::default();
        routing.route(key("far"), "right", "sink");
        assert!(routing.target(&key("far")).is_none(), "the module serves nowhere yet");
        assert_eq!(routing.pick(&key("far"), None), None);
        routing.serve("right", Replicas::single("http://a"));
        assert!(matches!(routing.target(&key("far")), Some(Target::Remote)));
        assert_eq!(routing.pick(&key("far"), None).as_deref(), Some("http://a"));
        assert!(routing.target(&key("near")).is_none(), "never routed");
        routing.follow_modules(&WatchEvent::Synced(Vec::new()));
        assert!(routing.target(&key("far")).is_none(), "the module went away");
        assert!(routing.unroute(&key("far")));
        assert!(!routing.unroute(&key("far")), "forgotten already");
    }
}
