//! The `FlowNode` resource: one configured component in a flow, with the edges leaving it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    condition::{Condition, ConditionStatus},
    duration::HumanDuration,
    names::{ComponentName, FlowName, ModuleName, NodeName, PortName},
};

/// Attempts along an edge that names no retry policy: transient failures are retried twice.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The wait before an edge's second attempt when its policy names none.
pub const DEFAULT_INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
/// The longest wait between an edge's attempts when its policy names none.
pub const DEFAULT_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// The most edges one node may have; keeps the apiserver's CEL cost bounded.
pub const MAX_EDGES: usize = 64;

/// A node: which component runs it, with which settings, and where its outputs go.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "FlowNode",
    namespaced,
    derive = "PartialEq",
    doc = "One node of a flow: which module and component run it, its settings, and the edges leaving its output ports.",
    status = "FlowNodeStatus",
    shortname = "fn",
    category = "weir",
    validation = crate::names::metadata_name_rule(),
    printcolumn = r#"{"name":"Flow","type":"string","jsonPath":".spec.flow"}"#,
    printcolumn = r#"{"name":"Module","type":"string","jsonPath":".spec.module"}"#,
    printcolumn = r#"{"name":"Component","type":"string","jsonPath":".spec.component"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.counters.errors"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowNodeSpec {
    /// The flow this node belongs to, in the same namespace.
    pub flow: FlowName,
    /// The module that runs the node, such as `common`.
    pub module: ModuleName,
    /// The component inside the module, such as `ticker`.
    pub component: ComponentName,
    /// The component's settings, checked against the settings schema in its module's catalogue.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schemars(schema_with = "crate::schema::free_object")]
    pub settings: Map<String, Value>,
    /// Wires from this node's output ports to other nodes' input ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(e, self.exists_one(f, f.port == e.port && f.to.node == e.to.node && f.to.port == e.to.port))").message("edges must be unique: two edges join the same output port to the same input port"))]
    pub edges: Vec<Edge>,
}

/// A wire from one of this node's output ports to an input port of a node in the same flow.
#[derive(KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Edge {
    /// The output port of this node that the edge leaves from.
    pub port: PortName,
    /// The input port the edge goes to.
    pub to: EdgeTarget,
    /// Shapes the data for the target port: a JSON document in the shape of the target's
    /// input, where a string that is exactly `{{ expr }}` is replaced by the value of the jq
    /// expression `expr` over the output (`.`), `{{ }}` inside a longer string interpolates
    /// text, and everything else is taken literally. Without a mapping the output passes
    /// through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub mapping: Option<Value>,
    /// How deliveries along this edge are retried when the target fails with a transient error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// How long one delivery along this edge may take, downstream work included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// The input port an edge goes to.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeTarget {
    /// The target node's name.
    pub node: NodeName,
    /// The target node's input port.
    pub port: PortName,
}

/// Bounded retries with exponential backoff and jitter; only transient errors are retried.
#[derive(KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 means no retry.
    #[schemars(range(min = 1, max = 100))]
    pub attempts: u32,
    /// The wait before the second attempt; it doubles on each further attempt. Default 200ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff: Option<HumanDuration>,
    /// The longest wait between two attempts. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<HumanDuration>,
}

/// What the module running a node observed about it.
#[derive(KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowNodeStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` once the node is built; `Degraded` names a bad setting or an edge that does not fit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The node's ports as its current settings define them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ResolvedPort>,
    /// Message counters since the node was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// The most recent failure, with secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// What the node keeps between runs and restarts (its own JSON), given back to it when it
    /// is rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub state: Option<Value>,
}

impl FlowNodeStatus {
    /// What its module says is wrong with the node: why it could not be built (`Ready`
    /// false), else what it says it cannot do (`Degraded`); `None` when nothing is.
    pub fn problem(&self) -> Option<String> {
        let holding = |type_: &str, status: ConditionStatus| {
            self.conditions.iter().find(|c| c.type_ == type_ && c.status == status)
        };
        if let Some(ready) = holding("Ready", ConditionStatus::False) {
            return Some(format!("not built: {}", ready.message));
        }
        holding("Degraded", ConditionStatus::True).map(|c| format!("degraded: {}", c.message))
    }
}

/// A port as the node's settings resolved it.
#[derive(KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPort {
    /// The port's name.
    pub name: PortName,
    /// Whether messages come in or go out.
    pub direction: crate::module::Direction,
    /// The JSON Schema of the port's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub schema: Option<Value>,
}

/// How many messages a node saw.
#[derive(KubeSchema, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Messages delivered to the node.
    pub messages_in: u64,
    /// Messages the node emitted.
    pub messages_out: u64,
    /// Deliveries that ended in an error.
    pub errors: u64,
}

/// The latest failure of a node.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// `invalid`, `transient`, `cancelled` or `internal`.
    pub kind: String,
    /// What went wrong, naming the port or field concerned.
    pub message: String,
    /// When it happened (RFC 3339).
    pub time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: ConditionStatus, message: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: String::new(),
            message: message.to_owned(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    #[test]
    fn a_problem_is_a_failed_build_first_then_what_the_node_cannot_do() {
        let status = |conditions| FlowNodeStatus { conditions, ..FlowNodeStatus::default() };
        let built = condition("Ready", ConditionStatus::True, "");
        let unbuilt = condition("Ready", ConditionStatus::False, "settings.interval: too short");
        let fine = condition("Degraded", ConditionStatus::False, "");
        let degraded = condition("Degraded", ConditionStatus::True, "1 of 5 images: gone");
        assert_eq!(status(vec![built.clone(), fine]).problem(), None);
        assert_eq!(status(Vec::new()).problem(), None, "not written yet");
        assert_eq!(
            status(vec![unbuilt, degraded.clone()]).problem().as_deref(),
            Some("not built: settings.interval: too short")
        );
        assert_eq!(
            status(vec![built, degraded]).problem().as_deref(),
            Some("degraded: 1 of 5 images: gone")
        );
    }
}
