//! The Kubernetes permissions each of Weir's processes needs in a cluster, besides nothing:
//! the Helm chart grants exactly these (`weir chart` writes them to
//! `charts/weir/files/rules.yaml`), and the chart test runs each process with them and proves
//! that taking away any one verb gives a clear error.
//!
//! Rules come in three places: at *home* (the release namespace: leader-election Leases and
//! the `Module` resources), where *flows* live (the home namespace, or every namespace when a
//! process runs with `--all-namespaces`), and where a module's *components* act (what their
//! descriptions declare, such as the kubernetes module's Deployments).

use std::collections::BTreeMap;

use weir_model::module::PolicyRule;
use weir_sdk::Module;

/// What one process needs, by place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// In the home namespace.
    pub home: Vec<PolicyRule>,
    /// Wherever flows live.
    pub flows: Vec<PolicyRule>,
    /// Wherever the components act.
    pub components: Vec<PolicyRule>,
}

const COORDINATION: &str = "coordination.k8s.io";
const WEIR: &str = weir_model::GROUP;

fn rule(group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: vec![group.to_owned()],
        resources: vec![resource.to_owned()],
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// The leader-election Lease (`weir_store::lease`): read every round, created by the first
/// replica, renewed and handed over by update.
fn lease() -> PolicyRule {
    rule(COORDINATION, "leases", &["get", "create", "update"])
}

/// `weir engine`: the flow controller reads flows, nodes and catalogues, writes flow status and
/// deletes the nodes of deleted flows; the editor's event feed follows flows and nodes. What a
/// user does in the editor is done with the user's own token, so it needs nothing here.
pub fn engine() -> Rules {
    Rules {
        home: vec![lease(), rule(WEIR, "modules", &["list", "watch"])],
        flows: vec![
            rule(WEIR, "flows", &["list", "watch"]),
            rule(WEIR, "flows/status", &["update"]),
            rule(WEIR, "flownodes", &["list", "watch", "delete"]),
        ],
        components: Vec::new(),
    }
}

/// `weir module NAME`: the host (`weir_runtime::Host`) publishes the module's catalogue and
/// follows the others' endpoints, runs the nodes of its flows and writes their status; and
/// the module's components act as they declare.
pub fn module(module: &Module) -> Result<Rules, ModuleError> {
    let declared = module
        .catalogue()
        .map_err(|source| ModuleError { module: module.name().to_owned(), source })?
        .components
        .into_iter()
        .flat_map(|component| component.permissions)
        .collect();
    Ok(Rules {
        home: vec![
            lease(),
            rule(WEIR, "modules", &["get", "list", "watch", "create", "update"]),
            rule(WEIR, "modules/status", &["update"]),
        ],
        flows: vec![
            rule(WEIR, "flownodes", &["get", "list", "watch"]),
            rule(WEIR, "flownodes/status", &["update"]),
        ],
        components: merged(declared),
    })
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
    pub fn places(&self) -> [(&'static str, &[PolicyRule]); 3] {
        [("home", &self.home), ("flows", &self.flows), ("components", &self.components)]
    }
}

/// One rule per API group and resource, with the verbs of every rule for it, in a stable
/// order: groups and resources sorted, verbs in the order first declared.
pub fn merged(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut by_resource: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for rule in rules {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let verbs = by_resource.entry((group.clone(), resource.clone())).or_default();
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
        .map(|((group, resource), verbs)| PolicyRule {
            api_groups: vec![group],
            resources: vec![resource],
            verbs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
