//! What the editor offers for the nodes that work on any Kubernetes kind, as the user sees the
//! cluster: the kinds they may list (the apiserver's discovery, kept to what their RBAC allows
//! in the namespace they work in, as a SelfSubjectRulesReview tells), the namespaces they may
//! list (or only the one they work in when they may not list namespaces), and a kind's schema
//! from the apiserver's OpenAPI v3, cut to a size a browser takes, so that mapping previews
//! show the kind's real fields.
//!
//! A kind's schema is read on demand from `/openapi/v3/apis/GROUP/VERSION` (`/openapi/v3/api/v1`
//! for the core group), which holds every kind of that group-version (core's is some 4 MB):
//! only the kind's own schema is kept, its `$ref`s followed into one document down to
//! [`DEPTH`] levels (deeper fields are left open), with descriptions and defaults dropped but
//! the root's, at most [`MAX_SCHEMA_BYTES`] (fewer levels until it fits). Each is kept
//! [`KEPT_FOR`], at most [`MOST_KEPT`] kinds, so a busy editor asks the apiserver once per kind
//! and a changed custom resource definition shows within minutes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authorization::v1::{ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec},
    core::v1::Namespace,
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
    discovery::{Discovery, Scope, verbs},
};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use weir_api::{KindSchema, KubernetesOffer, OfferedKind};

/// How deep a kind's schema goes before its fields are left open.
pub const DEPTH: usize = 8;
/// The most a kind's schema may be, as JSON.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// How long a kind's schema is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(600);
/// How many kinds' schemas are kept at most.
pub const MOST_KEPT: usize = 64;
/// The most namespaces offered.
const MOST_NAMESPACES: u32 = 1000;

/// Why the cluster could not say.
#[derive(Debug, thiserror::Error)]
pub enum KindsError {
    /// The cluster does not accept the credentials.
    #[error("the cluster does not accept these credentials")]
    Unauthorized,
    /// The cluster cannot be reached, or answered with something else.
    #[error("the cluster cannot be reached: {0}")]
    Unreachable(String),
    /// No kind of that name in that group-version.
    #[error("the cluster serves no kind {kind} in {api_version}")]
    NoSuchKind {
        /// The API version asked for.
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// The API version or kind is not one.
    #[error("{0}")]
    BadName(String),
    /// There is no cluster to ask: `weir up` without a kubeconfig.
    #[error("no cluster: {0}")]
    NoCluster(String),
}

impl KindsError {
    fn of(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 401 => Self::Unauthorized,
            err => Self::Unreachable(err.to_string()),
        }
    }
}

/// The cluster `weir up`'s nodes act on: the kubeconfig's current context, as the kubernetes
/// module's nodes find it, connected on first use (and tried again while there is none), with
/// the context's namespace: `weir up`'s flows live in its own store, so the namespace the
/// editor works in says nothing of the cluster, and what is offered is what `kubectl get`
/// would show there.
#[derive(Default)]
pub struct OwnCluster(OnceCell<(Client, String)>);

impl std::fmt::Debug for OwnCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnCluster").field("connected", &self.0.initialized()).finish()
    }
}

impl OwnCluster {
    /// The client of the kubeconfig's current context, and that context's namespace.
    pub async fn client(&self) -> Result<(Client, String), KindsError> {
        let connect = || async {
            let options = kube::config::KubeConfigOptions::default();
            let config = kube::Config::from_kubeconfig(&options).await.map_err(|err| {
                KindsError::NoCluster(format!(
                    "the kubeconfig ($KUBECONFIG or ~/.kube/config) cannot be read ({err}), so kubernetes nodes have nowhere to act; type kinds and namespaces"
                ))
            })?;
            let namespace = config.default_namespace.clone();
            let client = Client::try_from(config).map_err(|err| {
                KindsError::NoCluster(format!("cannot make a client of the kubeconfig ({err})"))
            })?;
            Ok((client, namespace))
        };
        self.0.get_or_try_init(connect).await.cloned()
    }
}

/// What `client`'s user may pick: kinds they may list in `namespace`, and namespaces.
pub async fn offer(client: &Client, namespace: &str) -> Result<KubernetesOffer, KindsError> {
    // Aggregated discovery is two requests; an apiserver before 1.30 takes one per group.
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(discovery) => discovery,
        Err(_) => Discovery::new(client.clone()).run().await.map_err(KindsError::of)?,
    };
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(namespace.to_owned()) },
        ..SelfSubjectRulesReview::default()
    };
    let reviews: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let status = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(KindsError::of)?
        .status
        .unwrap_or_default();
    let mut kinds: Vec<OfferedKind> = discovery
        .groups()
        .flat_map(kube::discovery::ApiGroup::recommended_resources)
        .filter(|(resource, capabilities)| {
            capabilities.supports_operation(verbs::LIST)
                && status
                    .resource_rules
                    .iter()
                    .any(|rule| lists(rule, &resource.group, &resource.plural))
        })
        .map(|(resource, capabilities)| OfferedKind {
            kind: resource.kind,
            api_version: resource.api_version,
            resource: resource.plural,
            namespaced: capabilities.scope == Scope::Namespaced,
        })
        .collect();
    kinds.sort();
    let listed = Api::<Namespace>::all(client.clone())
        .list_metadata(&ListParams::default().limit(MOST_NAMESPACES))
        .await;
    let (namespaces, all_namespaces) = match listed {
        Ok(list) => (list.items.into_iter().filter_map(|n| n.metadata.name).collect(), true),
        Err(kube::Error::Api(status)) if status.code == 403 => (vec![namespace.to_owned()], false),
        Err(err) => return Err(KindsError::of(err)),
    };
    Ok(KubernetesOffer { kinds, namespaces, all_namespaces, incomplete: status.incomplete })
}

/// Whether `rule` lets its holder list `resource` of `group` (a rule naming objects does not:
/// a list is of all of them).
fn lists(rule: &ResourceRule, group: &str, resource: &str) -> bool {
    let has = |values: Option<&Vec<String>>, wanted: &str| {
        values.is_some_and(|values| values.iter().any(|v| v == "*" || v == wanted))
    };
    rule.verbs.iter().any(|verb| verb == "*" || verb == verbs::LIST)
        && has(rule.api_groups.as_ref(), group)
        && has(rule.resources.as_ref(), resource)
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

/// Kinds' schemas, kept for a while.
#[derive(Debug, Default)]
pub struct Schemas {
    kept: Mutex<HashMap<KindKey, (Instant, Arc<KindSchema>)>>,
}

/// A kind by its API version and name.
type KindKey = (String, String);

impl Schemas {
    /// The schema of `kind` in `api_version`, read with `client` unless kept.
    pub async fn of(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Arc<KindSchema>, KindsError> {
        let key = (api_version.to_owned(), kind.to_owned());
        let now = Instant::now();
        if let Some((read, schema)) =
            self.kept.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && now.duration_since(*read) < KEPT_FOR
        {
            return Ok(Arc::clone(schema));
        }
        let schema = Arc::new(read_schema(client, api_version, kind).await?);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|_, (read, _)| now.duration_since(*read) < KEPT_FOR);
        if kept.len() >= MOST_KEPT
            && let Some(oldest) =
                kept.iter().min_by_key(|(_, (read, _))| *read).map(|(k, _)| k.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(key, (now, Arc::clone(&schema)));
        Ok(schema)
    }
}

/// Reads the OpenAPI v3 document of `api_version` and cuts the schema of `kind` out of it.
async fn read_schema(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<KindSchema, KindsError> {
    let fits = |text: &str| {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if !fits(version) || !(group.is_empty() || fits(group)) || !fits(kind) {
        return Err(KindsError::BadName(format!(
            "{api_version:?} and {kind:?} are not an API version and a kind, such as apps/v1 and Deployment"
        )));
    }
    let path = if group.is_empty() {
        format!("/openapi/v3/api/{version}")
    } else {
        format!("/openapi/v3/apis/{group}/{version}")
    };
    let no_such =
        || KindsError::NoSuchKind { api_version: api_version.to_owned(), kind: kind.to_owned() };
    let request = axum::http::Request::get(&path)
        .body(Vec::new())
        .map_err(|err| KindsError::BadName(format!("{path}: {err}")))?;
    let document: Value = match client.request(request).await {
        Ok(document) => document,
        Err(kube::Error::Api(status)) if status.code == 404 => return Err(no_such()),
        Err(err) => return Err(KindsError::of(err)),
    };
    let schemas = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or_else(|| KindsError::Unreachable(format!("{path} holds no schemas")))?;
    let found = schemas.values().find(|schema| {
        schema.get("x-kubernetes-group-version-kind").and_then(Value::as_array).is_some_and(
            |kinds| {
                kinds.iter().any(|gvk| {
                    gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind
                })
            },
        )
    });
    let found = found.ok_or_else(no_such)?;
    Ok(cut(schemas, found, api_version, kind))
}

/// The kind's schema in one document: [`DEPTH`] levels, fewer until it fits
/// [`MAX_SCHEMA_BYTES`]; `apiVersion` and `kind` fixed to the kind's.
pub fn cut(schemas: &Map<String, Value>, schema: &Value, api_version: &str, kind: &str) -> Value {
    let mut depth = DEPTH;
    loop {
        let mut cut = inline(schemas, schema, depth);
        if let Some(properties) = cut.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert(
                "apiVersion".to_owned(),
                json!({ "type": "string", "enum": [api_version] }),
            );
            properties.insert("kind".to_owned(), json!({ "type": "string", "enum": [kind] }));
        }
        if let Some(description) = resolve(schemas, schema).get("description") {
            cut["description"] = description.clone();
        }
        let size = serde_json::to_vec(&cut).map_or(usize::MAX, |bytes| bytes.len());
        if size <= MAX_SCHEMA_BYTES || depth == 1 {
            return cut;
        }
        depth -= 1;
    }
}

/// `schema` with its `$ref`s (and an `allOf` of one, as OpenAPI v3 wraps them) followed.
fn resolve<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    // References chain rarely; a loop of them ends here.
    for _ in 0..16 {
        let reference = current
            .get("$ref")
            .or_else(|| {
                current.get("allOf")?.as_array().filter(|all| all.len() == 1)?[0].get("$ref")
            })
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"));
        match reference.and_then(|name| schemas.get(name)) {
            Some(target) => current = target,
            None => return current,
        }
    }
    current
}

/// The parts of `schema` a mapping preview uses, `depth` levels of fields deep.
fn inline(schemas: &Map<String, Value>, schema: &Value, depth: usize) -> Value {
    let schema = resolve(schemas, schema);
    let mut out = Map::new();
    for key in ["type", "format", "enum", "required", "x-kubernetes-int-or-string"] {
        if let Some(value) = schema.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if depth == 0 {
        out.remove("required");
        return Value::Object(out);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let inlined = properties
            .iter()
            .map(|(name, field)| (name.clone(), inline(schemas, field, depth - 1)))
            .collect();
        out.insert("properties".to_owned(), Value::Object(inlined));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = schema.get(key).filter(|inner| inner.is_object()) {
            out.insert(key.to_owned(), inline(schemas, inner, depth - 1));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas() -> Map<String, Value> {
        let document = json!({
            "Thing": {
                "description": "A thing.",
                "type": "object",
                "x-kubernetes-group-version-kind": [{ "group": "example.com", "version": "v1", "kind": "Thing" }],
                "properties": {
                    "apiVersion": { "type": "string", "description": "long text" },
                    "spec": { "allOf": [{ "$ref": "#/components/schemas/Spec" }], "default": {} }
                }
            },
            "Spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": { "type": "integer", "format": "int32", "description": "how big" },
                    "inner": { "$ref": "#/components/schemas/Spec" }
                }
            }
        });
        document.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn references_are_followed_to_a_depth_and_descriptions_dropped_but_the_roots() {
        let schemas = schemas();
        let cut = cut(&schemas, &schemas["Thing"], "example.com/v1", "Thing");
        assert_eq!(cut["description"], "A thing.");
        assert_eq!(cut["properties"]["kind"], json!({ "type": "string", "enum": ["Thing"] }));
        assert_eq!(
            cut["properties"]["spec"]["properties"]["size"],
            json!({ "type": "integer", "format": "int32" })
        );
        // The schema refers to itself: it stops at the depth, open.
        let mut at = &cut["properties"]["spec"];
        let mut levels = 1;
        while let Some(inner) = at.pointer("/properties/inner") {
            at = inner;
            levels += 1;
        }
        assert_eq!(levels, DEPTH, "spec and each inner one a level");
        assert_eq!(at, &json!({ "type": "object" }), "left open, nothing required");
    }

    #[test]
    fn a_rule_lists_by_verb_group_and_resource_and_not_by_name() {
        let rule = |verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]| {
            let strings = |s: &[&str]| Some(s.iter().map(|s| (*s).to_owned()).collect());
            ResourceRule {
                verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
                api_groups: strings(groups),
                resources: strings(resources),
                resource_names: strings(names),
            }
        };
        assert!(lists(
            &rule(&["get", "list"], &["apps"], &["deployments"], &[]),
            "apps",
            "deployments"
        ));
        assert!(lists(&rule(&["*"], &["*"], &["*"], &[]), "", "pods"));
        assert!(!lists(&rule(&["get"], &["apps"], &["deployments"], &[]), "apps", "deployments"));
        assert!(!lists(&rule(&["list"], &[""], &["deployments"], &[]), "apps", "deployments"));
        assert!(!lists(
            &rule(&["list"], &["apps"], &["deployments"], &["web"]),
            "apps",
            "deployments"
        ));
    }
}
