//! Which edges exist, as the store says: every FlowNode the host sees (of any module) with its
//! flow and the edges that leave it. A module checks a delivery that comes from another module
//! against it, so a caller can reach a node only along an edge someone who may edit the flow
//! drew.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::Duration,
};

use tokio::sync::Notify;
use weir_model::FlowNode;

use crate::key::NodeKey;

/// How long a delivery along an edge this process has not heard of yet waits for it: the
/// sender and the receiver learn of a saved flow from their own watches, a moment apart.
const EDGE_GRACE: Duration = Duration::from_secs(2);

/// What the store says of one node: its flow and its edges as `(port, target, target port)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wired {
    flow: String,
    edges: Vec<(String, String, String)>,
}

/// The flows and edges of every node in scope.
#[derive(Debug, Default)]
pub(crate) struct Wiring {
    nodes: RwLock<HashMap<NodeKey, Wired>>,
    changed: Notify,
}

/// Why a delivery does not follow an edge of the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unwired {
    /// The source node does not exist.
    #[error("node {0} does not exist")]
    NoSource(NodeKey),
    /// The target node does not exist.
    #[error("node {0} does not exist")]
    NoTarget(NodeKey),
    /// The two nodes are in different flows.
    #[error(
        "node {from} (flow {from_flow}) and node {target} (flow {target_flow}) are not in one flow"
    )]
    OtherFlow {
        /// The source node, as `namespace/name`.
        from: String,
        /// Its flow.
        from_flow: String,
        /// The target node, as `namespace/name`.
        target: String,
        /// Its flow.
        target_flow: String,
    },
    /// The source has no such edge.
    #[error("node {from} has no edge from port {port} to {target}:{target_port}")]
    NoEdge {
        /// The source node, as `namespace/name`.
        from: String,
        /// The source port.
        port: String,
        /// The target node.
        target: String,
        /// The target port.
        target_port: String,
    },
}

impl Wiring {
    pub(crate) fn wire(&self, key: NodeKey, node: &FlowNode) {
        let wired = Wired {
            flow: node.spec.flow.to_string(),
            edges: node
                .spec
                .edges
                .iter()
                .map(|e| (e.port.to_string(), e.to.node.to_string(), e.to.port.to_string()))
                .collect(),
        };
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        if nodes.get(&key) != Some(&wired) {
            nodes.insert(key, wired);
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn unwire(&self, key: &NodeKey) {
        self.nodes.write().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Whether `source` has an edge from `port` to `target`'s `target_port` in one flow,
    /// waiting up to [`EDGE_GRACE`] for a change this process has not seen yet.
    pub(crate) async fn check(
        &self,
        source: &NodeKey,
        port: &str,
        target: &NodeKey,
        target_port: &str,
    ) -> Result<(), Unwired> {
        let deadline = tokio::time::Instant::now() + EDGE_GRACE;
        loop {
            let changed = self.changed.notified();
            let verdict = self.follows(source, port, target, target_port);
            if verdict.is_ok() || tokio::time::Instant::now() >= deadline {
                return verdict;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    fn follows(
        &self,
        source: &NodeKey,
        port: &str,
        target: &NodeKey,
        target_port: &str,
    ) -> Result<(), Unwired> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let from = nodes.get(source).ok_or_else(|| Unwired::NoSource(source.clone()))?;
        let to = nodes.get(target).ok_or_else(|| Unwired::NoTarget(target.clone()))?;
        if source.namespace != target.namespace || from.flow != to.flow {
            return Err(Unwired::OtherFlow {
                from: source.to_string(),
                from_flow: from.flow.clone(),
                target: target.to_string(),
                target_flow: to.flow.clone(),
            });
        }
        let drawn = from.edges.iter().any(|(p, node, node_port)| {
            p == port && *node == target.name && node_port == target_port
        });
        if drawn {
            return Ok(());
        }
        Err(Unwired::NoEdge {
            from: source.to_string(),
            port: port.to_owned(),
            target: target.name.clone(),
            target_port: target_port.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, flow: &str, edges: &serde_json::Value) -> (NodeKey, FlowNode) {
        let node: FlowNode = serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "flow": flow, "module": "common", "component": "debug", "edges": edges },
        }))
        .unwrap_or_else(|err| panic!("{err}"));
        (NodeKey { namespace: "ns".into(), name: name.into() }, node)
    }

    #[tokio::test(start_paused = true)]
    async fn only_drawn_edges_are_followed() {
        let wiring = Wiring::default();
        let (a, spec) =
            node("a", "f", &json!([{ "port": "out", "to": { "node": "b", "port": "in" } }]));
        wiring.wire(a.clone(), &spec);
        let (b, spec) = node("b", "f", &json!([]));
        wiring.wire(b.clone(), &spec);
        let (c, spec) = node("c", "g", &json!([]));
        wiring.wire(c.clone(), &spec);
        assert_eq!(wiring.check(&a, "out", &b, "in").await, Ok(()));
        assert!(matches!(wiring.check(&a, "out", &b, "other").await, Err(Unwired::NoEdge { .. })));
        assert!(matches!(wiring.check(&b, "out", &a, "in").await, Err(Unwired::NoEdge { .. })));
        assert!(matches!(wiring.check(&a, "out", &c, "in").await, Err(Unwired::OtherFlow { .. })));
        let ghost = NodeKey { namespace: "ns".into(), name: "ghost".into() };
        assert_eq!(wiring.check(&ghost, "out", &b, "in").await, Err(Unwired::NoSource(ghost)));
        wiring.unwire(&a);
        assert!(matches!(wiring.check(&a, "out", &b, "in").await, Err(Unwired::NoSource(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_edge_drawn_a_moment_later_is_waited_for() {
        let wiring = std::sync::Arc::new(Wiring::default());
        let (b, spec) = node("b", "f", &json!([]));
        wiring.wire(b.clone(), &spec);
        let (a, later) =
            node("a", "f", &json!([{ "port": "out", "to": { "node": "b", "port": "in" } }]));
        let drawing = {
            let (wiring, a) = (std::sync::Arc::clone(&wiring), a.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                wiring.wire(a, &later);
            })
        };
        assert_eq!(wiring.check(&a, "out", &b, "in").await, Ok(()));
        drawing.await.unwrap_or_else(|err| panic!("{err}"));
    }
}
