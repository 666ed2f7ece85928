//! The kinds of resource Weir defines and the names kubectl users call them by.

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Flow, FlowNode, Module};

/// The API group of every Weir resource.
pub const GROUP: &str = "weir.dev";
/// The version every Weir resource is served at.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Weir manifest.
pub const API_VERSION: &str = "weir.dev/v1alpha1";

/// A kind of Weir resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A group of nodes.
    Flow,
    /// One node in a flow.
    FlowNode,
    /// A module's catalogue.
    Module,
}

impl Kind {
    /// Every kind, in the order resources are applied: flows before the nodes naming them.
    pub const ALL: [Kind; 3] = [Kind::Flow, Kind::FlowNode, Kind::Module];

    /// The kind as written in manifests, such as `FlowNode`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Flow => "Flow",
            Self::FlowNode => "FlowNode",
            Self::Module => "Module",
        }
    }

    /// The plural resource name, as in URLs and `kubectl get`.
    pub const fn plural(self) -> &'static str {
        match self {
            Self::Flow => "flows",
            Self::FlowNode => "flownodes",
            Self::Module => "modules",
        }
    }

    /// The short name `kubectl get` accepts.
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Flow => "fl",
            Self::FlowNode => "fn",
            Self::Module => "wmod",
        }
    }

    /// Reads a kind from a manifest's `kind` field.
    pub fn from_manifest(kind: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// Reads a kind the way `kubectl get` does: kind, singular, plural or short name, in any
    /// case, optionally qualified with the group (`flows.weir.dev`).
    pub fn from_cli(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        let unqualified = lower.strip_suffix(".weir.dev").unwrap_or(&lower);
        Self::ALL.into_iter().find(|k| {
            [k.name().to_ascii_lowercase().as_str(), k.plural(), k.short_name()]
                .contains(&unqualified)
        })
    }

    /// The kind's CustomResourceDefinition.
    pub fn crd(self) -> CustomResourceDefinition {
        match self {
            Self::Flow => Flow::crd(),
            Self::FlowNode => FlowNode::crd(),
            Self::Module => Module::crd(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;

    #[test]
    fn names_match_the_derived_resources() {
        let derived = [
            (Flow::kind(&()), Flow::plural(&()), Flow::api_version(&())),
            (FlowNode::kind(&()), FlowNode::plural(&()), FlowNode::api_version(&())),
            (Module::kind(&()), Module::plural(&()), Module::api_version(&())),
        ];
        for (kind, (name, plural, api_version)) in Kind::ALL.into_iter().zip(derived) {
            assert_eq!(kind.name(), name);
            assert_eq!(kind.plural(), plural);
            assert_eq!(API_VERSION, api_version);
            let crd = kind.crd();
            assert_eq!(crd.spec.names.short_names, Some(vec![kind.short_name().to_owned()]));
        }
    }

    #[test]
    fn cli_names_resolve() {
        for text in ["flow", "Flows", "fl", "flows.weir.dev"] {
            assert_eq!(Kind::from_cli(text), Some(Kind::Flow), "{text}");
        }
        for text in ["flownode", "FlowNodes", "fn"] {
            assert_eq!(Kind::from_cli(text), Some(Kind::FlowNode), "{text}");
        }
        assert_eq!(Kind::from_cli("wmod"), Some(Kind::Module));
        assert_eq!(Kind::from_cli("deployments"), None);
        assert_eq!(Kind::from_cli("flows.apps"), None);
    }
}
