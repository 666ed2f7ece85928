//! The `Module` resource: a module process's catalogue of components and where to reach it.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    api_kind::{ApiKind, KindError},
    condition::Condition,
    names::{ComponentName, PortName},
};

/// A module, written by the module process itself when it starts.
#[derive(CustomResource, KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Module",
    namespaced,
    derive = "PartialEq",
    doc = "A module's catalogue of components and the address its replicas serve deliveries on; written by the module itself.",
    status = "ModuleStatus",
    shortname = "wmod",
    category = "weir",
    validation = crate::names::metadata_name_rule(),
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleSpec {
    /// The module's version.
    pub version: String,
    /// The components the module offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentDescriptor>,
}

/// One component in a module's catalogue: enough for the editor to draw its palette entry and
/// settings form without linking its code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentDescriptor {
    /// The component's name inside the module.
    pub name: ComponentName,
    /// A short human label.
    #[serde(default)]
    pub label: String,
    /// What the component does (Markdown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Words to find it by in the palette.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Whether it starts flows on its own (and so runs only on the module's leader).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trigger: bool,
    /// The JSON Schema of its settings; doc comments become its descriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub settings_schema: Option<Value>,
    /// Its ports for default settings; a node's own ports are in its status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortDescriptor>,
    /// The Kubernetes RBAC rules its nodes need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<PolicyRule>,
    /// The rules its nodes need on the kind their settings name (`apiVersion`, `kind`,
    /// `resource`), on top of `permissions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind_permissions: Vec<KindRule>,
    /// The rules its nodes need for each kind their `kinds` setting may name, on top of
    /// `permissions`: a node needs those of the kinds it names, or of every kind here when it
    /// names none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions_by_kind: BTreeMap<String, Vec<PolicyRule>>,
}

impl ComponentDescriptor {
    /// Whether its nodes act on the cluster: they make Kubernetes calls, or have secret
    /// settings, which may be read from Secrets.
    pub fn acts(&self) -> bool {
        !self.permissions.is_empty()
            || !self.kind_permissions.is_empty()
            || !self.permissions_by_kind.is_empty()
            || self.settings_schema.as_ref().is_some_and(crate::redact::has_secrets)
    }

    /// The rules a node of this component with `settings` needs: the fixed ones, those on
    /// the kind its settings name, and those of the kinds its `kinds` setting names.
    pub fn rules_for(
        &self,
        settings: &serde_json::Map<String, Value>,
    ) -> Result<Vec<PolicyRule>, KindError> {
        let mut rules = self.permissions.clone();
        if !self.kind_permissions.is_empty() {
            let kind = ApiKind::from_settings(settings)?;
            rules.extend(self.kind_permissions.iter().map(|rule| kind.rule(rule)));
        }
        if !self.permissions_by_kind.is_empty() {
            let named = kinds_named(settings)?;
            if named.is_empty() {
                rules.extend(self.permissions_by_kind.values().flatten().cloned());
            }
            for kind in named {
                let rules_of = self.permissions_by_kind.get(kind).ok_or_else(|| KindError {
                    field: "kinds",
                    problem: format!(
                        "{kind} is not one of {}",
                        self.permissions_by_kind.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })?;
                rules.extend(rules_of.iter().cloned());
            }
        }
        Ok(rules)
    }

    /// Every rule its nodes may need, whatever their settings name: the fixed ones and those
    /// of every kind it may be limited to (not those on a kind a node's settings name, which
    /// no list can hold).
    pub fn all_declared(&self) -> impl Iterator<Item = &PolicyRule> {
        self.permissions.iter().chain(self.permissions_by_kind.values().flatten())
    }
}

/// The kinds a node's `kinds` setting names; none when it has none.
fn kinds_named(settings: &serde_json::Map<String, Value>) -> Result<Vec<&str>, KindError> {
    let not_a_list = || KindError { field: "kinds", problem: "must be a list of kinds".to_owned() };
    match settings.get("kinds") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(kinds)) => {
            kinds.iter().map(|kind| kind.as_str().ok_or_else(not_a_list)).collect()
        }
        Some(_) => Err(not_a_list()),
    }
}

/// A rule on the kind a node's settings name: these verbs on it, or on one of its
/// subresources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindRule {
    /// A subresource such as `scale`; empty for the resource itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// The verbs.
    pub verbs: Vec<String>,
}

/// A Kubernetes RBAC rule, as a Role or ClusterRole lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// The API groups; `""` is the core group.
    pub api_groups: Vec<String>,
    /// The resources, plural.
    pub resources: Vec<String>,
    /// The verbs.
    pub verbs: Vec<String>,
    /// The objects the rule is limited to, by name; empty for every object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// A port in a component's catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortDescriptor {
    /// The port's name.
    pub name: PortName,
    /// Whether messages come in or go out.
    pub direction: Direction,
    /// A short human label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The JSON Schema of the port's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub schema: Option<Value>,
}

/// Which way messages cross a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Messages arrive here.
    In,
    /// Messages leave from here.
    Out,
}

/// What the module reports about its replicas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` while at least one replica serves deliveries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Replicas that serve deliveries.
    #[serde(default)]
    pub ready_replicas: u32,
    /// The replica that runs the triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The replicas that serve deliveries, each listed by itself once its nodes are built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ModuleReplica>,
}

/// A replica of a module that serves deliveries, as it lists itself: it renews its entry
/// every few seconds and takes it out when it stops; an entry left unrenewed is dropped by the
/// next replica that writes. Replicas of other versions write it too (during a rollout), so
/// fields this version does not know are ignored rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReplica {
    /// The replica's name (its pod's).
    pub name: String,
    /// The gRPC address it serves deliveries at, such as `http://10.0.0.7:7421`.
    pub endpoint: String,
    /// Whether it leads, and so runs the triggers and takes the messages sent to them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leads: bool,
    /// When it last renewed its entry (RFC 3339).
    pub heartbeat: String,
    /// The namespace whose flows it runs, `*` for every namespace; unset by replicas of
    /// versions that did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
}

/// What [`ModuleReplica::runs`] says of a replica that runs the flows of every namespace.
pub const EVERY_NAMESPACE: &str = "*";

impl ModuleReplica {
    /// Whether it runs the flows of `namespace`, as far as it says.
    pub fn runs_flows_of(&self, namespace: &str) -> bool {
        self.runs.as_deref().is_some_and(|runs| runs == namespace || runs == EVERY_NAMESPACE)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_node_needs_the_rules_of_the_kinds_it_names_or_of_all() {
        let rule = |resource: &str| PolicyRule {
            api_groups: vec!["apps".to_owned()],
            resources: vec![resource.to_owned()],
            verbs: vec!["get".to_owned(), "patch".to_owned()],
            resource_names: Vec::new(),
        };
        let descriptor = ComponentDescriptor {
            permissions_by_kind: BTreeMap::from([
                ("Deployment".to_owned(), vec![rule("deployments")]),
                ("StatefulSet".to_owned(), vec![rule("statefulsets")]),
            ]),
            ..serde_json::from_value(json!({ "name": "patcher" })).expect("a descriptor")
        };
        let rules_for = |settings: Value| {
            descriptor
                .rules_for(settings.as_object().expect("settings"))
                .map_err(|err| err.to_string())
        };
        assert_eq!(rules_for(json!({ "kinds": ["Deployment"] })), Ok(vec![rule("deployments")]));
        assert_eq!(
            rules_for(json!({})),
            Ok(vec![rule("deployments"), rule("statefulsets")]),
            "no kinds named: every kind's"
        );
        assert_eq!(rules_for(json!({ "kinds": [] })), rules_for(json!({})));
        assert_eq!(
            rules_for(json!({ "kinds": ["Pod"] })),
            Err("settings.kinds: Pod is not one of Deployment, StatefulSet".to_owned())
        );
        assert_eq!(
            rules_for(json!({ "kinds": "Deployment" })),
            Err("settings.kinds: must be a list of kinds".to_owned())
        );
        assert!(descriptor.acts());
        assert_eq!(descriptor.all_declared().count(), 2);
    }
}
