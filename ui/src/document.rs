//! The flow being edited, as plain data: its Flow and FlowNodes, and every edit the editor
//! makes to them (add, move, connect, set an edge's delivery, delete, copy and paste). No browser code here, so the
//! rules are unit-tested natively.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_model::{
    ComponentName, Edge, EdgeTarget, Flow, FlowName, FlowNode, FlowNodeSpec, FlowSpec,
    HumanDuration, ModuleName, NodeName, PortName, Position, RetryPolicy,
    flow_node::DEFAULT_ATTEMPTS,
};

/// A flow with its nodes, as the editor edits it (`weir_api::FlowDocument` on the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The Flow resource, with the layout.
    pub flow: Flow,
    /// Its nodes, each with the edges leaving it.
    pub nodes: Vec<FlowNode>,
}

/// One end of an edge: a node and one of its ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// The node's name.
    pub node: String,
    /// The port's name.
    pub port: String,
}

/// What is selected on the canvas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Selected nodes.
    pub nodes: BTreeSet<String>,
    /// Selected edges, as (source node, index).
    pub edges: BTreeSet<(String, usize)>,
}

impl Selection {
    /// Nothing selected.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty()
    }

    /// Just this node.
    pub fn node(name: &str) -> Self {
        Self { nodes: BTreeSet::from([name.to_owned()]), edges: BTreeSet::new() }
    }

    /// Just this edge.
    pub fn edge(from: &str, index: usize) -> Self {
        Self { nodes: BTreeSet::new(), edges: BTreeSet::from([(from.to_owned(), index)]) }
    }
}

/// Nodes copied to the clipboard, with the edges between them (edges to nodes outside the copy
/// are left behind) and their positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clipboard {
    /// The copied nodes.
    pub nodes: Vec<FlowNode>,
    /// Their positions.
    pub layout: BTreeMap<String, Position>,
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A name that the model's rules refuse.
    #[error("{0}")]
    BadName(String),
    /// The edge exists already.
    #[error("{from}:{from_port} is already wired to {to}:{to_port}")]
    Duplicate {
        /// Source node.
        from: String,
        /// Source port.
        from_port: String,
        /// Target node.
        to: String,
        /// Target port.
        to_port: String,
    },
    /// No such node.
    #[error("there is no node {0}")]
    NoNode(String),
    /// A field given a value it cannot take.
    #[error("{field}: {problem}")]
    BadValue {
        /// The field, as the editor labels it.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// How an edge delivers, as the editor's text fields hold it: empty fields take the runtime's
/// defaults (`weir_model::flow_node::DEFAULT_ATTEMPTS` attempts, its backoff and timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts in all, the first included (1 to 100).
    pub attempts: String,
    /// The wait before the second attempt, such as `200ms`.
    pub initial_backoff: String,
    /// The longest wait between attempts, such as `30s`.
    pub max_backoff: String,
    /// How long one attempt may take, such as `10s`.
    pub timeout: String,
}

fn duration(field: &'static str, text: &str) -> Result<Option<HumanDuration>, EditError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|err: weir_model::duration::InvalidDuration| {
        EditError::BadValue { field, problem: err.to_string() }
    })
}

/// Where a node goes when the layout does not say.
const UNPLACED: Position = Position { left: 40.0, top: 40.0 };

impl Document {
    /// An empty flow called `name`.
    pub fn new(name: &str) -> Result<Self, EditError> {
        FlowName::new(name).map_err(|err| EditError::BadName(err.to_string()))?;
        Ok(Self { flow: Flow::new(name, FlowSpec::default()), nodes: Vec::new() })
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        self.flow.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&FlowNode> {
        self.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(name))
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut FlowNode> {
        self.nodes.iter_mut().find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// Every node's name, in the document's order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().filter_map(|n| n.metadata.name.clone()).collect()
    }

    /// Where `node` sits on the canvas.
    pub fn position(&self, node: &str) -> Position {
        self.flow.spec.layout.get(node).copied().unwrap_or(UNPLACED)
    }

    /// Puts `node` at `at`.
    pub fn place(&mut self, node: &str, at: Position) {
        if let Ok(name) = NodeName::new(node) {
            self.flow.spec.layout.insert(name, at);
        }
    }

    /// A node name not used yet, from `base` (`ticker`, `ticker-2`, …).
    pub fn free_name(&self, base: &str) -> String {
        let base: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .chars()
            .take(50)
            .collect();
        let base = if base.is_empty() { "node".to_owned() } else { base };
        let taken: BTreeSet<String> = self.node_names().into_iter().collect();
        if !taken.contains(&base) {
            return base;
        }
        (2..).map(|n| format!("{base}-{n}")).find(|name| !taken.contains(name)).unwrap_or(base)
    }

    /// Adds a node of `module`/`component` at `at` with the settings given, named after the
    /// component; returns its name.
    pub fn add_node(
        &mut self,
        module: &str,
        component: &str,
        settings: Map<String, Value>,
        at: Position,
    ) -> Result<String, EditError> {
        let bad = |err: weir_model::names::InvalidName| EditError::BadName(err.to_string());
        let name = self.free_name(component);
        let spec = FlowNodeSpec {
            flow: FlowName::new(self.name()).map_err(bad)?,
            module: ModuleName::new(module).map_err(bad)?,
            component: ComponentName::new(component).map_err(bad)?,
            settings,
            edges: Vec::new(),
        };
        self.nodes.push(FlowNode::new(&name, spec));
        self.place(&name, at);
        Ok(name)
    }

    /// Moves the nodes named by `by` from where they are by (dx, dy).
    pub fn shift(&mut self, nodes: &BTreeSet<String>, dx: f64, dy: f64) {
        for node in nodes {
            let at = self.position(node);
            self.place(node, Position { left: at.left + dx, top: at.top + dy });
        }
    }

    /// Wires `from` (an output port) to `to` (an input port).
    pub fn connect(&mut self, from: &PortRef, to: &PortRef) -> Result<(), EditError> {
        let bad = |err: weir_model::names::InvalidName| EditError::BadName(err.to_string());
        let edge = Edge {
            port: PortName::new(&from.port).map_err(bad)?,
            to: EdgeTarget {
                node: NodeName::new(&to.node).map_err(bad)?,
                port: PortName::new(&to.port).map_err(bad)?,
            },
            mapping: None,
            retry: None,
            timeout: None,
        };
        if self.node(&to.node).is_none() {
            return Err(EditError::NoNode(to.node.clone()));
        }
        let source =
            self.node_mut(&from.node).ok_or_else(|| EditError::NoNode(from.node.clone()))?;
        if source.spec.edges.iter().any(|e| e.port == edge.port && e.to == edge.to) {
            return Err(EditError::Duplicate {
                from: from.node.clone(),
                from_port: from.port.clone(),
                to: to.node.clone(),
                to_port: to.port.clone(),
            });
        }
        source.spec.edges.push(edge);
        Ok(())
    }

    /// The edge at `index` of node `from`.
    pub fn edge(&self, from: &str, index: usize) -> Option<&Edge> {
        self.node(from)?.spec.edges.get(index)
    }

    /// Sets the mapping of an edge; `None` passes the message on as it is.
    pub fn set_mapping(&mut self, from: &str, index: usize, mapping: Option<Value>) {
        if let Some(edge) = self.node_mut(from).and_then(|n| n.spec.edges.get_mut(index)) {
            edge.mapping = mapping;
        }
    }

    /// The delivery fields of an edge, for the editor.
    pub fn delivery(&self, from: &str, index: usize) -> Delivery {
        let Some(edge) = self.edge(from, index) else { return Delivery::default() };
        let text = |d: Option<&HumanDuration>| d.map(ToString::to_string).unwrap_or_default();
        let retry = edge.retry.as_ref();
        Delivery {
            attempts: retry.map(|r| r.attempts.to_string()).unwrap_or_default(),
            initial_backoff: text(retry.and_then(|r| r.initial_backoff.as_ref())),
            max_backoff: text(retry.and_then(|r| r.max_backoff.as_ref())),
            timeout: text(edge.timeout.as_ref()),
        }
    }

    /// Sets how an edge delivers; a bad field changes nothing and names the field.
    pub fn set_delivery(
        &mut self,
        from: &str,
        index: usize,
        delivery: &Delivery,
    ) -> Result<(), EditError> {
        let attempts = match delivery.attempts.trim() {
            "" => None,
            text => Some(text.parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or(
                EditError::BadValue {
                    field: "attempts",
                    problem: "a whole number from 1 to 100".to_owned(),
                },
            )?),
        };
        let initial_backoff = duration("initial backoff", &delivery.initial_backoff)?;
        let max_backoff = duration("max backoff", &delivery.max_backoff)?;
        let timeout = duration("timeout", &delivery.timeout)?;
        let retry = match (attempts, &initial_backoff, &max_backoff) {
            (None, None, None) => None,
            (attempts, _, _) => {
                // Only a backoff given: the attempts stay the default, not one.
                let attempts = attempts.unwrap_or(DEFAULT_ATTEMPTS);
                Some(RetryPolicy { attempts, initial_backoff, max_backoff })
            }
        };
        let edge = self
            .node_mut(from)
            .and_then(|n| n.spec.edges.get_mut(index))
            .ok_or_else(|| EditError::NoNode(from.to_owned()))?;
        edge.retry = retry;
        edge.timeout = timeout;
        Ok(())
    }

    /// Whether the flow is suspended: its triggers stopped and no new run started.
    pub fn suspended(&self) -> bool {
        self.flow.spec.suspend == Some(true)
    }

    /// Suspends or resumes the flow; resumed, the field goes away as if never set.
    pub fn set_suspended(&mut self, suspended: bool) {
        self.flow.spec.suspend = suspended.then_some(true);
    }

    /// Replaces a node's settings.
    pub fn set_settings(&mut self, node: &str, settings: Map<String, Value>) {
        if let Some(node) = self.node_mut(node) {
            node.spec.settings = settings;
        }
    }

    /// Removes what is selected: the edges, then the nodes with every edge that reaches them.
    pub fn remove(&mut self, selection: &Selection) {
        // Highest index first, so the indexes of the others stay right.
        for (from, index) in selection.edges.iter().rev() {
            if let Some(node) = self.node_mut(from)
                && *index < node.spec.edges.len()
            {
                node.spec.edges.remove(*index);
            }
        }
        self.nodes.retain(|n| {
            n.metadata.name.as_ref().is_none_or(|name| !selection.nodes.contains(name))
        });
        for node in &mut self.nodes {
            node.spec.edges.retain(|e| !selection.nodes.contains(e.to.node.as_str()));
        }
        self.flow.spec.layout.retain(|name, _| !selection.nodes.contains(name.as_str()));
    }

    /// Copies the selected nodes and the edges between them.
    pub fn copy(&self, selection: &Selection) -> Clipboard {
        let mut nodes: Vec<FlowNode> = self
            .nodes
            .iter()
            .filter(|n| n.metadata.name.as_ref().is_some_and(|name| selection.nodes.contains(name)))
            .cloned()
            .collect();
        for node in &mut nodes {
            node.spec.edges.retain(|e| selection.nodes.contains(e.to.node.as_str()));
            node.status = None;
            node.metadata =
                FlowNode::new(node.metadata.name.as_deref().unwrap_or("node"), node.spec.clone())
                    .metadata;
        }
        let layout =
            selection.nodes.iter().map(|name| (name.clone(), self.position(name))).collect();
        Clipboard { nodes, layout }
    }

    /// Pastes `clip` shifted by (dx, dy), renaming nodes whose names are taken (and the edges
    /// between them); returns the new nodes' names.
    pub fn paste(&mut self, clip: &Clipboard, dx: f64, dy: f64) -> Result<Vec<String>, EditError> {
        let mut renamed = BTreeMap::new();
        for node in &clip.nodes {
            let old = node.metadata.name.clone().unwrap_or_default();
            let new = self.free_name(&old);
            // Reserve it before the next is chosen.
            let mut copy = node.clone();
            copy.metadata.name = Some(new.clone());
            copy.spec.flow =
                FlowName::new(self.name()).map_err(|err| EditError::BadName(err.to_string()))?;
            self.nodes.push(copy);
            renamed.insert(old, new);
        }
        for new in renamed.values() {
            if let Some(node) = self.node_mut(new) {
                for edge in &mut node.spec.edges {
                    if let Some(target) = renamed.get(edge.to.node.as_str()) {
                        edge.to.node = NodeName::new(target)
                            .map_err(|err| EditError::BadName(err.to_string()))?;
                    }
                }
            }
        }
        for (old, new) in &renamed {
            let at = clip.layout.get(old).copied().unwrap_or(UNPLACED);
            self.place(new, Position { left: at.left + dx, top: at.top + dy });
        }
        Ok(renamed.into_values().collect())
    }

    /// Every edge, as (source, index, edge).
    pub fn edges(&self) -> Vec<(String, usize, Edge)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                let from = n.metadata.name.clone().unwrap_or_default();
                n.spec.edges.iter().cloned().enumerate().map(move |(i, e)| (from.clone(), i, e))
            })
            .collect()
    }
}

/// The edits made so far, for undo and redo: whole documents, as flows are small.
#[derive(Debug, Clone, Default)]
pub struct History {
    past: Vec<Document>,
    future: Vec<Document>,
}

/// How many edits can be undone.
const HISTORY_DEPTH: usize = 200;

impl History {
    /// Notes `before` as the state an edit started from.
    pub fn record(&mut self, before: Document) {
        if self.past.last() == Some(&before) {
            return;
        }
        self.past.push(before);
        if self.past.len() > HISTORY_DEPTH {
            self.past.remove(0);
        }
        self.future.clear();
    }

    /// The state before the last edit, given the current one.
    pub fn undo(&mut self, current: Document) -> Option<Document> {
        let before = self.past.pop()?;
        self.future.push(current);
        Some(before)
    }

    /// The state the last undo left, given the current one.
    pub fn redo(&mut self, current: Document) -> Option<Document> {
        let after = self.future.pop()?;
        self.past.push(current);
        Some(after)
    }

    /// Whether there is anything to undo.
    pub fn can_undo(&self) -> bool {
        !self.past.is_empty()
    }

    /// Whether there is anything to redo.
    pub fn can_redo(&self) -> bool {
        !self.future.is_empty()
    }

    /// Forgets everything (another flow was opened).
    pub fn clear(&mut self) {
        self.past.clear();
        self.future.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspending_is_set_and_resuming_leaves_no_field() {
        let mut doc = Document::new("demo").unwrap();
        assert!(!doc.suspended());
        doc.set_suspended(true);
        assert_eq!(doc.flow.spec.suspend, Some(true));
        doc.set_suspended(false);
        assert_eq!(doc.flow.spec.suspend, None);
    }

    fn port(node: &str, port: &str) -> PortRef {
        PortRef { node: node.to_owned(), port: port.to_owned() }
    }

    fn at(left: f64, top: f64) -> Position {
        Position { left, top }
    }

    fn sample() -> Document {
        let mut doc = Document::new("demo").unwrap();
        doc.add_node("common", "ticker", Map::new(), at(0.0, 0.0)).unwrap();
        doc.add_node("common", "debug", Map::new(), at(300.0, 0.0)).unwrap();
        doc.connect(&port("ticker", "out"), &port("debug", "in")).unwrap();
        doc
    }

    #[test]
    fn nodes_are_named_after_their_component_without_clashes() {
        let mut doc = sample();
        assert_eq!(doc.add_node("common", "ticker", Map::new(), at(0.0, 0.0)).unwrap(), "ticker-2");
        assert_eq!(doc.free_name("Array Split!"), "array-split");
        assert_eq!(doc.node_names(), ["ticker", "debug", "ticker-2"]);
        assert!(matches!(Document::new("Bad Name"), Err(EditError::BadName(_))));
    }

    #[test]
    fn edges_join_ports_once() {
        let mut doc = sample();
        assert_eq!(doc.edges().len(), 1);
        let err = doc.connect(&port("ticker", "out"), &port("debug", "in")).unwrap_err();
        assert_eq!(err.to_string(), "ticker:out is already wired to debug:in");
        let err = doc.connect(&port("ticker", "out"), &port("nope", "in")).unwrap_err();
        assert_eq!(err, EditError::NoNode("nope".to_owned()));
        doc.set_mapping("ticker", 0, Some(serde_json::json!({"text": "{{ .count }}"})));
        assert!(doc.edge("ticker", 0).unwrap().mapping.is_some());
    }

    #[test]
    fn an_edge_takes_a_retry_policy_and_timeout_and_refuses_bad_ones_naming_them() {
        let mut doc = sample();
        let delivery = Delivery {
            attempts: "3".to_owned(),
            initial_backoff: "100ms".to_owned(),
            max_backoff: String::new(),
            timeout: "5s".to_owned(),
        };
        doc.set_delivery("ticker", 0, &delivery).unwrap();
        assert_eq!(doc.delivery("ticker", 0), delivery, "reads back as written");
        let edge = doc.edge("ticker", 0).unwrap();
        assert_eq!(edge.retry.as_ref().map(|r| r.attempts), Some(3));
        let before = doc.clone();
        let bad = |field: &str, value: &str| {
            let mut delivery = delivery.clone();
            match field {
                "attempts" => delivery.attempts = value.to_owned(),
                _ => delivery.timeout = value.to_owned(),
            }
            delivery
        };
        let err = doc.set_delivery("ticker", 0, &bad("attempts", "0")).unwrap_err();
        assert_eq!(err.to_string(), "attempts: a whole number from 1 to 100");
        let err = doc.set_delivery("ticker", 0, &bad("timeout", "soon")).unwrap_err();
        assert!(err.to_string().starts_with("timeout: "), "{err}");
        assert_eq!(doc, before, "a bad field changes nothing");
        doc.set_delivery("ticker", 0, &Delivery::default()).unwrap();
        let edge = doc.edge("ticker", 0).unwrap();
        assert!(edge.retry.is_none() && edge.timeout.is_none(), "empty fields take the defaults");
        let backoff_only = Delivery { initial_backoff: "1s".to_owned(), ..Delivery::default() };
        doc.set_delivery("ticker", 0, &backoff_only).unwrap();
        let retry = doc.edge("ticker", 0).unwrap().retry.clone().unwrap();
        assert_eq!(retry.attempts, DEFAULT_ATTEMPTS, "only a backoff given keeps the attempts");
    }

    #[test]
    fn removing_a_node_takes_its_edges_and_place() {
        let mut doc = sample();
        doc.remove(&Selection::node("debug"));
        assert_eq!(doc.node_names(), ["ticker"]);
        assert!(doc.edges().is_empty(), "the edge into debug went with it");
        assert!(doc.flow.spec.layout.keys().all(|k| k.as_str() == "ticker"));
        let mut doc = sample();
        doc.remove(&Selection::edge("ticker", 0));
        assert_eq!((doc.node_names().len(), doc.edges().len()), (2, 0));
    }

    #[test]
    fn moving_changes_only_the_layout() {
        let mut doc = sample();
        let nodes = doc.nodes.clone();
        doc.shift(&BTreeSet::from(["debug".to_owned()]), 10.0, -5.0);
        assert_eq!(doc.position("debug"), at(310.0, -5.0));
        assert_eq!(doc.nodes, nodes, "nodes untouched, so their generation stays");
    }

    #[test]
    fn pasting_renames_and_rewires_the_copies() {
        let mut doc = sample();
        let all = Selection {
            nodes: BTreeSet::from(["ticker".to_owned(), "debug".to_owned()]),
            edges: BTreeSet::new(),
        };
        let clip = doc.copy(&all);
        let pasted = doc.paste(&clip, 20.0, 20.0).unwrap();
        assert_eq!(pasted, ["debug-2", "ticker-2"]);
        let copy = doc.node("ticker-2").unwrap();
        assert_eq!(copy.spec.edges[0].to.node.as_str(), "debug-2", "the copy wires to the copy");
        assert_eq!(doc.position("debug-2"), at(320.0, 20.0));
        // A lone copied node leaves its edges to nodes outside the copy behind.
        let clip = doc.copy(&Selection::node("ticker"));
        assert!(clip.nodes[0].spec.edges.is_empty());
    }

    #[test]
    fn undo_and_redo_walk_the_history() {
        let mut history = History::default();
        let first = sample();
        let mut second = first.clone();
        second.remove(&Selection::node("debug"));
        history.record(first.clone());
        history.record(first.clone());
        assert_eq!(history.undo(second.clone()), Some(first.clone()));
        assert!(!history.can_undo() && history.can_redo(), "one entry for a repeated record");
        assert_eq!(history.redo(first), Some(second.clone()));
        history.record(second);
        assert!(!history.can_redo(), "a new edit drops what could be redone");
    }
}
