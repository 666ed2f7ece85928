//! A Kubernetes kind a node works on, as its settings name it (`apiVersion`, `kind`, and
//! `resource` for a kind whose plural the usual rules do not make), and the RBAC rule that
//! follows from it. The node (which checks the name against the apiserver's discovery) and
//! `weir rbac` (which works offline, before the flow runs) read the settings with this one
//! code, so the rule a flow's account is given is the rule its node needs.

use serde_json::{Map, Value};

use crate::module::{KindRule, PolicyRule};

/// A kind named by a node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKind {
    /// The API group; empty for the core group.
    pub group: String,
    /// The version, such as `v1`.
    pub version: String,
    /// The kind, such as `Deployment`.
    pub kind: String,
    /// The resource, plural and lowercase, such as `deployments`.
    pub resource: String,
}

/// Settings that do not name a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("settings.{field}: {problem}")]
pub struct KindError {
    /// The setting at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ApiKind {
    /// The kind of `api_version` (`v1`, `apps/v1`) and `kind`, served as `resource`, or when
    /// that is empty as the plural Kubernetes' own guess makes of the kind.
    pub fn new(api_version: &str, kind: &str, resource: &str) -> Result<Self, KindError> {
        let bad = |field, problem: &str| KindError { field, problem: problem.to_owned() };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if version.is_empty() || !is_name(version) || (!group.is_empty() && !is_group(group)) {
            return Err(bad(
                "apiVersion",
                "must be a version such as v1, or group/version such as apps/v1",
            ));
        }
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("kind", "must be a kind such as Pod or Deployment"));
        }
        if !kind.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(bad(
                "kind",
                "must start with a capital letter, as kinds do (Pod, not pod)",
            ));
        }
        if !resource.is_empty() && !is_name(resource) {
            return Err(bad("resource", "must be a lowercase plural such as deployments"));
        }
        let resource = if resource.is_empty() { plural_of(kind) } else { resource.to_owned() };
        Ok(Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            resource,
        })
    }

    /// The kind named by a node's JSON settings (`apiVersion`, `kind`, `resource`).
    pub fn from_settings(settings: &Map<String, Value>) -> Result<Self, KindError> {
        let text = |field: &'static str| match settings.get(field) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(text)) => Ok(text.as_str()),
            Some(_) => Err(KindError { field, problem: "must be a string".to_owned() }),
        };
        Self::new(text("apiVersion")?, text("kind")?, text("resource")?)
    }

    /// `group/version`, or the version alone for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource as RBAC and error messages name it: `deployments.apps`, `pods`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The RBAC rule `rule` on this kind.
    pub fn rule(&self, rule: &KindRule) -> PolicyRule {
        let resource = if rule.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, rule.subresource)
        };
        PolicyRule {
            api_groups: vec![self.group.clone()],
            resources: vec![resource],
            verbs: rule.verbs.clone(),
            resource_names: Vec::new(),
        }
    }
}

/// Kubernetes' guess at a kind's resource (apimachinery's `UnsafeGuessKindToResource`, as
/// kube-rs makes it): lowercase, then `-es` after s, x, z, ch and sh, `-ies` for a y after a
/// consonant, `-s` otherwise. Custom resources may choose another plural; their nodes then
/// name it in `resource`, and discovery tells them when they must.
pub fn plural_of(kind: &str) -> String {
    let word = kind.to_ascii_lowercase();
    if word == "endpoints" || word == "endpointslices" {
        return word;
    }
    if ["s", "x", "z", "ch", "sh"].iter().any(|end| word.ends_with(end)) {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix('y')
        && stem.ends_with(|c: char| !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u'))
    {
        return format!("{stem}ies");
    }
    format!("{word}s")
}

fn is_name(text: &str) -> bool {
    text.len() <= 63 && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn is_group(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kinds_become_the_resources_the_apiserver_serves() {
        let cases = [
            ("v1", "Pod", "pods"),
            ("apps/v1", "Deployment", "deployments.apps"),
            ("networking.k8s.io/v1", "Ingress", "ingresses.networking.k8s.io"),
            ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies.networking.k8s.io"),
            ("v1", "Endpoints", "endpoints"),
            ("batch/v1", "CronJob", "cronjobs.batch"),
            ("example.com/v1", "Gateway", "gateways.example.com"),
        ];
        for (api_version, kind, qualified) in cases {
            let named = ApiKind::new(api_version, kind, "").map(|k| k.qualified());
            assert_eq!(named.as_deref(), Ok(qualified), "{api_version} {kind}");
        }
        let chosen = ApiKind::new("example.com/v1", "Mouse", "mice").map(|k| k.qualified());
        assert_eq!(chosen.as_deref(), Ok("mice.example.com"));
    }

    #[test]
    fn settings_that_name_no_kind_are_refused_naming_the_field() {
        let refused = |settings: Value| {
            let settings = settings.as_object().cloned().unwrap_or_default();
            ApiKind::from_settings(&settings).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(
            refused(json!({ "apiVersion": "apps/", "kind": "Deployment" })),
            Err("settings.apiVersion: must be a version such as v1, or group/version such as apps/v1".to_owned())
        );
        assert_eq!(
            refused(json!({ "apiVersion": "v1", "kind": "pod" })),
            Err("settings.kind: must start with a capital letter, as kinds do (Pod, not pod)"
                .to_owned())
        );
        assert_eq!(
            refused(json!({ "apiVersion": "v1" })),
            Err("settings.kind: must be a kind such as Pod or Deployment".to_owned())
        );
        assert_eq!(
            refused(json!({ "apiVersion": "v1", "kind": "Pod", "resource": 3 })),
            Err("settings.resource: must be a string".to_owned())
        );
        let settings = json!({ "apiVersion": "apps/v1", "kind": "Deployment" });
        let rule = ApiKind::from_settings(settings.as_object().unwrap_or(&Map::new())).map(|k| {
            k.rule(&KindRule { subresource: "scale".to_owned(), verbs: vec!["get".to_owned()] })
        });
        assert_eq!(
            rule,
            Ok(PolicyRule {
                api_groups: vec!["apps".to_owned()],
                resources: vec!["deployments/scale".to_owned()],
                verbs: vec!["get".to_owned()],
                resource_names: Vec::new(),
            })
        );
    }
}
