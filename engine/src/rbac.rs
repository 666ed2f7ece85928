//! The Kubernetes permissions each of Weir's processes needs in a cluster, besides nothing:
//! the Helm chart grants exactly these (`weir chart` writes them to
//! `charts/weir/files/rules.yaml`), and the chart test runs each process with them and proves
//! that taking away any one verb gives a clear error.
//!
//! A process's rules come in two places: at *home* (the release namespace: leader-election
//! Leases and the `Module` resources) and where *flows* live (the home namespace, or every
//! namespace when a process runs with `--all-namespaces`). What the components do in the
//! cluster (such as the kubernetes module's Deployments) is not the module's to do: nodes act
//! as their flow's ServiceAccount, which holds the components' rules ([`flow_account`]); a
//! module whose components act only asks for its tokens.

use std::collections::BTreeMap;

use weir_model::{ComponentDescriptor, api_kind::KindError, module::PolicyRule};
use weir_sdk::Module;

/// What one process needs, by place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// In the home namespace.
    pub home: Vec<PolicyRule>,
    /// Wherever flows live.
    pub flows: Vec<PolicyRule>,
}

const COORDINATION: &str = "coordination.k8s.io";
const WEIR: &str = weir_model::GROUP;

fn rule(group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: vec![group.to_owned()],
        resources: vec![resource.to_owned()],
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: Vec::new(),
    }
}

/// The leader-election Lease (`weir_store::lease`): read every round, created by the first
/// replica, renewed and handed over by update.
fn lease() -> PolicyRule {
    rule(COORDINATION, "leases", &["get", "create", "update"])
}

/// `weir engine`: the flow controller reads flows, nodes and catalogues, writes flow status,
/// gives nodes an owner reference to their flow and deletes the nodes of deleted flows; the
/// editor's event feed follows flows and nodes. What a user does in the editor is done with
/// the user's own token, so it needs nothing here.
pub fn engine() -> Rules {
    Rules {
        home: vec![lease(), rule(WEIR, "modules", &["list", "watch"])],
        flows: vec![
            rule(WEIR, "flows", &["list", "watch"]),
            rule(WEIR, "flows/status", &["update"]),
            rule(WEIR, "flownodes", &["list", "watch", "update", "delete"]),
        ],
    }
}

/// `weir module NAME`: the host (`weir_runtime::Host`) publishes the module's catalogue and
/// follows the others' endpoints, follows the flows (suspended or not, which account each
/// names), runs the nodes of its flows and writes their status; a module whose components act
/// on the cluster asks for the tokens of its flows' accounts (`crate::accounts`).
pub fn module(module: &Module) -> Result<Rules, ModuleError> {
    let mut flows = vec![
        rule(WEIR, "flows", &["list", "watch"]),
        rule(WEIR, "flownodes", &["get", "list", "watch"]),
        rule(WEIR, "flownodes/status", &["update"]),
    ];
    if acts(module)? {
        flows.push(rule("", "serviceaccounts/token", &["create"]));
    }
    Ok(Rules {
        home: vec![
            lease(),
            rule(WEIR, "modules", &["get", "list", "watch", "create", "update"]),
            rule(WEIR, "modules/status", &["update"]),
        ],
        flows,
    })
}

/// Whether `module`'s nodes act on the cluster (their components declare permissions, or have
/// secret settings, which may be read from Secrets), so they act as their flows' accounts.
pub fn acts(module: &Module) -> Result<bool, ModuleError> {
    Ok(catalogue(module)?.components.iter().any(ComponentDescriptor::acts))
}

/// What the default flow account (`weir-flow`, which the chart creates) may do: everything the
/// components of `modules` declare (for a component limited to the kinds its `kinds` setting
/// names, every kind's), merged. Rules on a kind a node's settings name are not among them: a
/// flow with such nodes gets them from `weir rbac`.
pub fn flow_account(modules: &[Module]) -> Result<Vec<PolicyRule>, ModuleError> {
    let mut all = Vec::new();
    for module in modules {
        all.extend(declared(module)?);
    }
    Ok(merged(all))
}

fn declared(module: &Module) -> Result<Vec<PolicyRule>, ModuleError> {
    Ok(catalogue(module)?
        .components
        .iter()
        .flat_map(ComponentDescriptor::all_declared)
        .cloned()
        .collect())
}

fn catalogue(module: &Module) -> Result<weir_model::ModuleSpec, ModuleError> {
    module.catalogue().map_err(|source| ModuleError { module: module.name().to_owned(), source })
}

/// A module whose catalogue, and so whose declared permissions, cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("module {module} has no catalogue")]
pub struct ModuleError {
    /// The module.
    pub module: String,
    /// Why its catalogue cannot be made.
    #[source]
    pub source: weir_sdk::NodeError,
}

impl Rules {
    /// The rules by place, in the order the chart lists them.
    pub fn places(&self) -> [(&'static str, &[PolicyRule]); 2] {
        [("home", &self.home), ("flows", &self.flows)]
    }
}

/// One rule per API group, resource and set of names, with the verbs of every rule for it, in
/// a stable order: groups, resources and names sorted, verbs in the order first declared.
pub fn merged(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut by_resource: BTreeMap<(String, String, Vec<String>), Vec<String>> = BTreeMap::new();
    for rule in rules {
        let mut names = rule.resource_names.clone();
        names.sort();
        names.dedup();
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let key = (group.clone(), resource.clone(), names.clone());
                let verbs = by_resource.entry(key).or_default();
                for verb in &rule.verbs {
                    if !verbs.contains(verb) {
                        verbs.push(verb.clone());
                    }
                }
            }
        }
    }
    by_resource
        .into_iter()
        .map(|((group, resource, resource_names), verbs)| PolicyRule {
            api_groups: vec![group],
            resources: vec![resource],
            verbs,
            resource_names,
        })
        .collect()
}

/// What a flow's ServiceAccount needs, by the namespace each rule applies in (`None`: every
/// namespace), from its nodes' declared permissions: a node whose component has a `namespace`
/// setting naming one namespace acts there only; any other node of a component with
/// permissions (its namespace comes with its messages, or an empty setting means every
/// namespace) may act anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRules {
    /// The flow's namespace, where its account lives.
    pub namespace: String,
    /// The flow.
    pub flow: String,
    /// The account it acts as.
    pub account: String,
    /// The rules, by where they apply.
    pub by_namespace: BTreeMap<Option<String>, Vec<PolicyRule>>,
}

/// A node whose rules cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// Its component is offered by no installed module.
    #[error("node {node}: no installed module {module} offers component {component}")]
    UnknownComponent {
        /// The node.
        node: String,
        /// Its module.
        module: String,
        /// Its component.
        component: String,
    },
    /// Its settings name no kind, where its component acts on the kind they name.
    #[error("node {node}: {source}")]
    Kind {
        /// The node.
        node: String,
        /// What is wrong with its settings.
        #[source]
        source: KindError,
    },
}

impl FlowRules {
    /// The rules `flow`'s account needs for `nodes`; `offered` finds a component's catalogue
    /// entry (`None` for one nobody offers), whose rules follow from each node's settings.
    pub fn derive(
        flow: &weir_model::Flow,
        nodes: &[weir_model::FlowNode],
        offered: impl Fn(&str, &str) -> Option<ComponentDescriptor>,
    ) -> Result<Self, DeriveError> {
        let namespace = flow.metadata.namespace.clone().unwrap_or_default();
        let mut wanted: BTreeMap<Option<String>, Vec<PolicyRule>> = BTreeMap::new();
        for node in nodes {
            let (module, component) = (node.spec.module.as_str(), node.spec.component.as_str());
            let name = || node.metadata.name.clone().unwrap_or_default();
            let rules = offered(module, component)
                .ok_or_else(|| DeriveError::UnknownComponent {
                    node: name(),
                    module: module.to_owned(),
                    component: component.to_owned(),
                })?
                .rules_for(&node.spec.settings)
                .map_err(|source| DeriveError::Kind { node: name(), source })?;
            let secrets: Vec<String> = weir_model::secret_ref::named(&serde_json::Value::Object(
                node.spec.settings.clone(),
            ))
            .into_iter()
            .map(|r| r.name)
            .collect();
            if !secrets.is_empty() {
                let mut get = rule("", "secrets", &["get"]);
                get.resource_names = secrets;
                wanted.entry(Some(namespace.clone())).or_default().push(get);
            }
            if rules.is_empty() {
                continue;
            }
            let place = node
                .spec
                .settings
                .get("namespace")
                .and_then(serde_json::Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            wanted.entry(place).or_default().extend(rules);
        }
        let by_namespace =
            wanted.into_iter().map(|(place, rules)| (place, merged(rules))).collect();
        Ok(Self {
            flow: flow.metadata.name.clone().unwrap_or_default(),
            account: flow.spec.account().to_owned(),
            namespace,
            by_namespace,
        })
    }

    /// The ServiceAccount and, per place, a Role (or a ClusterRole for every namespace) with
    /// its binding, as manifests `kubectl apply` takes.
    pub fn manifests(&self) -> Vec<serde_json::Value> {
        use serde_json::json;
        let (namespace, account) = (&self.namespace, &self.account);
        let mut documents = vec![json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": account, "namespace": namespace },
        })];
        let subject =
            json!([{ "kind": "ServiceAccount", "name": account, "namespace": namespace }]);
        let labels = json!({ "flow.weir.dev/name": self.flow });
        for (place, rules) in &self.by_namespace {
            let rules: Vec<serde_json::Value> = rules
                .iter()
                .map(|r| {
                    let mut rule = json!({ "apiGroups": r.api_groups, "resources": r.resources, "verbs": r.verbs });
                    if !r.resource_names.is_empty() {
                        rule["resourceNames"] = json!(r.resource_names);
                    }
                    rule
                })
                .collect();
            let (role, binding, metadata) = match place {
                Some(place) => (
                    "Role",
                    "RoleBinding",
                    json!({ "name": format!("weir-flow-{}", self.flow), "namespace": place, "labels": labels }),
                ),
                None => (
                    "ClusterRole",
                    "ClusterRoleBinding",
                    json!({ "name": format!("{namespace}-weir-flow-{}", self.flow), "labels": labels }),
                ),
            };
            let name = metadata["name"].clone();
            documents.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": role,
                "metadata": metadata, "rules": rules,
            }));
            documents.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": binding,
                "metadata": metadata,
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name },
                "subjects": subject,
            }));
        }
        documents
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_flows_rules_go_where_its_nodes_act() -> Result<(), Box<dyn std::error::Error>> {
        let flow: weir_model::Flow = serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
            "metadata": { "name": "f", "namespace": "ops" },
            "spec": { "serviceAccountName": "f-runner" },
        }))?;
        let node = |name: &str, component: &str, settings: serde_json::Value| {
            serde_json::from_value::<weir_model::FlowNode>(json!({
                "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
                "metadata": { "name": name, "namespace": "ops" },
                "spec": { "flow": "f", "module": "k", "component": component, "settings": settings },
            }))
        };
        let nodes = [
            node("here", "lister", json!({ "namespace": "ops" }))?,
            node("there", "lister", json!({ "namespace": "web" }))?,
            node("anywhere", "patcher", json!({}))?,
            node("tick", "ticker", json!({ "namespace": "ignored" }))?,
            node(
                "hook",
                "ticker",
                json!({ "token": { "secretKeyRef": { "name": "hook-creds", "key": "token" } } }),
            )?,
            node(
                "scaler",
                "scale",
                json!({ "namespace": "web", "apiVersion": "example.com/v1", "kind": "Gateway" }),
            )?,
        ];
        let offered = |_: &str, component: &str| {
            let (permissions, kind_permissions) = match component {
                "lister" => (vec![rule("apps", "deployments", &["list"])], vec![]),
                "patcher" => (vec![rule("apps", "deployments", &["get", "patch"])], vec![]),
                "ticker" => (Vec::new(), Vec::new()),
                "scale" => (
                    Vec::new(),
                    vec![weir_model::KindRule {
                        subresource: "scale".to_owned(),
                        verbs: vec!["get".to_owned(), "patch".to_owned()],
                    }],
                ),
                _ => return None,
            };
            serde_json::from_value::<ComponentDescriptor>(json!({ "name": component }))
                .ok()
                .map(|d| ComponentDescriptor { permissions, kind_permissions, ..d })
        };
        let rules = FlowRules::derive(&flow, &nodes, offered)?;
        assert_eq!(rules.account, "f-runner");
        let places: Vec<Option<&str>> = rules.by_namespace.keys().map(Option::as_deref).collect();
        assert_eq!(places, [None, Some("ops"), Some("web")]);
        assert_eq!(
            rules.by_namespace[&Some("web".to_owned())],
            [
                rule("apps", "deployments", &["list"]),
                rule("example.com", "gateways/scale", &["get", "patch"])
            ]
        );
        let manifests = rules.manifests();
        let kinds: Vec<&str> = manifests.iter().filter_map(|m| m["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding"
            ]
        );
        assert_eq!(manifests[1]["metadata"]["name"], "ops-weir-flow-f");
        assert_eq!(
            manifests[3]["rules"],
            json!([
                { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["hook-creds"] },
                { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"] }
            ]),
            "a node reading a Secret by reference may get that Secret only, in the flow's namespace"
        );
        assert_eq!(
            manifests[2]["subjects"][0],
            json!({ "kind": "ServiceAccount", "name": "f-runner", "namespace": "ops" })
        );
        assert_eq!(
            manifests[5]["metadata"],
            json!({ "name": "weir-flow-f", "namespace": "web", "labels": { "flow.weir.dev/name": "f" } })
        );
        let unknown = [node("x", "nonesuch", json!({}))?];
        let err = FlowRules::derive(&flow, &unknown, offered).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("node x: no installed module k offers component nonesuch"));
        let kindless = [node("y", "scale", json!({ "apiVersion": "v1" }))?];
        let err = FlowRules::derive(&flow, &kindless, offered).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("node y: settings.kind: must be a kind such as Pod or Deployment")
        );
        Ok(())
    }

    #[test]
    fn rules_for_one_resource_are_merged_and_sorted() {
        let merged = merged(vec![
            rule("", "secrets", &["get"]),
            rule("apps", "deployments", &["list"]),
            rule("", "secrets", &["get", "list"]),
            rule("apps", "deployments", &["patch"]),
        ]);
        assert_eq!(
            merged,
            vec![
                rule("", "secrets", &["get", "list"]),
                rule("apps", "deployments", &["list", "patch"])
            ]
        );
    }
}
