//! The `Flow` resource: a named group of nodes with the editor's layout.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::{
    condition::Condition,
    names::{AccountName, MAX_NAME_LEN, NameRule, NodeName},
};

/// A flow: the nodes that name it in `spec.flow` make up its graph.
#[derive(CustomResource, KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Flow",
    namespaced,
    derive = "PartialEq",
    doc = "A flow: a graph of nodes wired port to port; its nodes are the FlowNodes that name it in spec.flow.",
    status = "FlowStatus",
    shortname = "fl",
    category = "weir",
    validation = crate::names::metadata_name_rule(),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowSpec {
    /// What the flow is for, shown in the flow list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = MAX_DESCRIPTION))]
    pub description: String,
    /// Where each node sits on the editor's canvas. Kept here rather than on the nodes so that
    /// moving a node never changes the node's generation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "layout_schema")]
    pub layout: BTreeMap<NodeName, Position>,
    /// Stops the flow's triggers while true; deliveries already under way finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The ServiceAccount of the flow's namespace that its nodes act as in a cluster: every
    /// Kubernetes call they make is made with its token, so its RBAC bounds what the flow may
    /// do (`weir rbac FLOW` prints the rules it needs). `weir-flow` when not given. Naming an
    /// account here is like naming one in a pod: whoever may write the flow may act as it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<AccountName>,
}

/// The longest description a flow has, in characters.
pub const MAX_DESCRIPTION: usize = 4096;

/// The most nodes a flow's layout places.
pub const MAX_LAYOUT: usize = 512;

/// The ServiceAccount a flow acts as when it names none.
pub const DEFAULT_ACCOUNT: &str = "weir-flow";

impl FlowSpec {
    /// The ServiceAccount the flow's nodes act as.
    pub fn account(&self) -> &str {
        self.service_account_name.as_ref().map_or(DEFAULT_ACCOUNT, AccountName::as_str)
    }
}

/// Structural schemas have no `patternProperties`, so the key rule is a CEL rule instead.
fn layout_schema(generator: &mut SchemaGenerator) -> Schema {
    let position = generator.subschema_for::<Position>();
    json_schema!({
        "type": "object",
        "additionalProperties": position,
        "maxProperties": MAX_LAYOUT,
        "x-kubernetes-validations": [{
            "rule": format!("self.all(node, node.matches('{}') && size(node) <= {MAX_NAME_LEN})", NameRule::DnsLabel.pattern()),
            "message": format!("layout keys must be node names: {}", NameRule::DnsLabel.describe()),
        }],
    })
}

/// A point on the editor's canvas. The fields are not called `x` and `y` because YAML 1.1
/// parsers (kubectl's among them) read a bare `y` key as the boolean `true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Distance from the left edge, in canvas units.
    pub left: f64,
    /// Distance from the top edge, in canvas units.
    pub top: f64,
}

/// What the engine observed about a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` when every node is built and every edge fits; `Degraded` names what does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How many nodes belong to the flow.
    #[serde(default)]
    pub nodes: u32,
    /// How many of them are built and running.
    #[serde(default)]
    pub ready_nodes: u32,
}
