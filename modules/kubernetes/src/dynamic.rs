//! What the components that work on any kind share: the kind their settings name, found in the
//! apiserver's discovery (so custom resources work as built-in kinds do), the namespace a call
//! goes to, paging through a list, a projection that keeps only the fields a flow asked for,
//! and the bound on how large an object may travel in a message.

use std::fmt;

use kube::{
    Api, Client,
    api::{DynamicObject, ListParams, ObjectList},
    core::GroupVersionKind,
    discovery::{ApiCapabilities, ApiResource, Scope},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::OnceCell;
use weir_sdk::{ApiKind, JsonSchema, NodeError, Value, json_size};

use crate::access::{Session, scope};

/// The kind a node works on; flattened into each component's settings, whose `weir rbac`
/// rule follows from it (see [`ApiKind`]). Settings without it name no kind, which the build
/// refuses naming the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct KindSettings {
    /// The kind's API version: `v1` for the core group, `group/version` otherwise, such as
    /// `apps/v1` or a custom resource's `example.com/v1`.
    pub api_version: String,
    /// The kind, such as `Pod`, `Deployment` or a custom resource's kind.
    #[schemars(extend("x-weir-picker" = "kubernetes-kind"))]
    pub kind: String,
    /// Its resource name (plural, lowercase) when not the plural Kubernetes guesses from the
    /// kind (`Ingress`: `ingresses`); empty to guess. The node checks it against the
    /// apiserver, and `weir rbac` names it in the flow's rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
}

impl KindSettings {
    /// A kind of `api_version`, such as `v1` and `ConfigMap`, as a component's default.
    pub fn of(api_version: &str, kind: &str) -> Self {
        Self { api_version: api_version.to_owned(), kind: kind.to_owned(), resource: String::new() }
    }
}

/// The most an object may be, as JSON, by default in a message (1 MiB); settings may say less
/// or more, up to [`MAX_BYTES_LIMIT`].
pub const DEFAULT_MAX_BYTES: u32 = 1024 * 1024;
/// The highest `maxBytes` a node may set (8 MiB): etcd keeps no object larger than 1.5 MiB,
/// so only a list or a log gets near it.
pub const MAX_BYTES_LIMIT: u32 = 8 * 1024 * 1024;

/// The schema of a port (or field) holding an object of the kind the node's settings name:
/// the editor puts the kind's own schema in its place (`x-weir-kubernetes-object`), read from
/// the cluster, so mappings preview with the kind's fields.
pub fn object_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "description": "An object of the kind the settings name.",
        "x-weir-kubernetes-object": true,
    })
}

/// Checks a `maxBytes` setting.
pub fn check_max_bytes(max_bytes: u32) -> Result<(), NodeError> {
    if !(1024..=MAX_BYTES_LIMIT).contains(&max_bytes) {
        return Err(NodeError::invalid(format!(
            "settings.maxBytes: {max_bytes} is not between 1024 and {MAX_BYTES_LIMIT}"
        )));
    }
    Ok(())
}

/// Checks a `fieldManager` setting: the name the apiserver records for what a node writes.
pub fn check_field_manager(field_manager: &str) -> Result<(), NodeError> {
    if field_manager.trim().is_empty() {
        return Err(NodeError::invalid("settings.fieldManager: must not be empty"));
    }
    Ok(())
}

/// A node's kind, resolved against the apiserver on first use and kept.
#[derive(Debug)]
pub struct Target {
    kind: ApiKind,
    found: OnceCell<(ApiResource, ApiCapabilities)>,
}

impl Target {
    /// The kind `settings` name; a bad name is an invalid error naming the setting.
    pub fn new(settings: &KindSettings) -> Result<Self, NodeError> {
        let kind = ApiKind::new(&settings.api_version, &settings.kind, &settings.resource)
            .map_err(|err| NodeError::invalid(err.to_string()))?;
        Ok(Self { kind, found: OnceCell::new() })
    }

    /// The kind as the settings name it.
    pub fn kind(&self) -> &ApiKind {
        &self.kind
    }

    /// The resource as messages name it: `deployments.apps`.
    pub fn resource(&self) -> String {
        self.kind.qualified()
    }

    /// The kind as the apiserver serves it: found in discovery (once; a kind not served yet,
    /// such as a custom resource whose definition is still to come, is looked for again on
    /// the next message). A plural other than the one the node's rule names is refused, since
    /// the flow's account would hold a rule for the wrong resource.
    pub async fn discover(
        &self,
        client: &Client,
    ) -> Result<&(ApiResource, ApiCapabilities), NodeError> {
        self.found
            .get_or_try_init(|| async {
                let kind = &self.kind;
                let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
                let found = kube::discovery::pinned_kind(client, &gvk).await.map_err(|err| {
                    let not_served = || {
                        NodeError::invalid(format!(
                            "the cluster serves no kind {} in {}",
                            kind.kind,
                            kind.api_version()
                        ))
                    };
                    match err {
                        kube::Error::Discovery(_) => not_served(),
                        kube::Error::Api(status) if status.code == 404 => not_served(),
                        err => NodeError::transient(format!(
                            "cannot look up kind {} in {}: {err}",
                            kind.kind,
                            kind.api_version()
                        )),
                    }
                })?;
                if found.0.plural != kind.resource {
                    return Err(NodeError::invalid(format!(
                        "settings.resource: kind {} is served as {}, not {}; set resource to {}",
                        kind.kind, found.0.plural, kind.resource, found.0.plural
                    )));
                }
                Ok(found)
            })
            .await
    }

    /// The API of this kind in `namespace` (every namespace, or a cluster-scoped kind, when
    /// empty); a namespace for a cluster-scoped kind is refused.
    pub async fn api(
        &self,
        session: &Session,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, NodeError> {
        let (resource, capabilities) = self.discover(&session.client).await?;
        let client = session.client.clone();
        match (&capabilities.scope, namespace.is_empty()) {
            (Scope::Cluster, false) => Err(NodeError::invalid(format!(
                "kind {} is cluster-scoped, so it takes no namespace (given {namespace})",
                self.kind.kind
            ))),
            (Scope::Cluster, true) | (Scope::Namespaced, true) => {
                Ok(Api::all_with(client, resource))
            }
            (Scope::Namespaced, false) => Ok(Api::namespaced_with(client, namespace, resource)),
        }
    }

    /// Whether the kind is namespaced (once discovered).
    pub async fn namespaced(&self, session: &Session) -> Result<bool, NodeError> {
        Ok(matches!(self.discover(&session.client).await?.1.scope, Scope::Namespaced))
    }

    /// The API for one object `name`: namespaced kinds need a namespace.
    pub async fn api_for(
        &self,
        session: &Session,
        namespace: &str,
        name: &str,
    ) -> Result<Api<DynamicObject>, NodeError> {
        if namespace.is_empty() && self.namespaced(session).await? {
            return Err(NodeError::invalid(format!(
                "{} {name}: a namespace is needed (in the settings or the message)",
                self.resource()
            )));
        }
        self.api(session, namespace).await
    }

    /// An object of this kind, for messages: `configmaps app in namespace web`, or its
    /// objects everywhere when `name` is empty.
    pub fn object(&self, name: &str, namespace: &str) -> String {
        let mut named = self.resource();
        if !name.is_empty() {
            named = format!("{named} {name}");
        }
        if !namespace.is_empty() || name.is_empty() {
            named = format!("{named} {}", scope(namespace));
        }
        named
    }

    /// What a call does, for messages: `get configmaps app in namespace web`.
    pub fn doing(&self, verb: &str, name: &str, namespace: &str) -> String {
        format!("{verb} {}", self.object(name, namespace))
    }
}

/// The namespace a node's call goes to: its `namespace` setting, or else the message's. A
/// message may not send a node to another namespace than its setting, since the flow's rule
/// covers only that one.
pub fn namespace_of(setting: &str, message: &str) -> Result<String, NodeError> {
    match (setting.is_empty(), message.is_empty()) {
        (false, false) if setting != message => Err(NodeError::invalid(format!(
            "in.namespace: {message} is not this node's namespace {setting}; its rule covers only that"
        ))),
        (false, _) => Ok(setting.to_owned()),
        (true, _) => Ok(message.to_owned()),
    }
}

/// Where a paged list ended.
#[derive(Debug, Default)]
pub struct Paged {
    /// The continue token of what is left, when the list stopped at its maximum.
    pub continue_token: Option<String>,
    /// The resourceVersion the list was read at, from which a watch goes on.
    pub resource_version: String,
}

/// Reads a list a page of `params.limit` at a time, handing each item to `each`, until the
/// list ends or `max` items were read (the last page asks for no more than that, so nothing is
/// skipped); says where it ended, so a caller can pick up where it stopped.
pub async fn pages<K>(
    api: &Api<K>,
    mut params: ListParams,
    max: Option<usize>,
    session: &Session,
    doing: &str,
    mut each: impl FnMut(K) -> Result<(), NodeError>,
) -> Result<Paged, NodeError>
where
    K: Clone + DeserializeOwned + fmt::Debug,
{
    let page_size = params.limit;
    let mut read = 0;
    let mut resource_version = None;
    loop {
        if let (Some(max), Some(size)) = (max, page_size) {
            let left = u32::try_from(max - read).unwrap_or(u32::MAX);
            params.limit = Some(size.min(left));
        }
        let page: ObjectList<K> =
            api.list(&params).await.map_err(|err| session.error(doing, err))?;
        // Every page is of the first one's snapshot.
        if resource_version.is_none() {
            resource_version = page.metadata.resource_version.clone();
        }
        let next = page.metadata.continue_.filter(|token| !token.is_empty());
        for item in page.items {
            each(item)?;
            read += 1;
        }
        match next {
            Some(token) if max.is_none_or(|max| read < max) => {
                params = params.continue_token(&token);
            }
            next => {
                let resource_version = resource_version.unwrap_or_default();
                return Ok(Paged { continue_token: next, resource_version });
            }
        }
    }
}

/// The paths of a projection: JSON pointers such as `/status/phase` (`~1` for a `/` inside a
/// key, as in labels), checked at build; `field` names the setting.
pub fn check_fields(field: &str, paths: &[String]) -> Result<(), NodeError> {
    for (i, path) in paths.iter().enumerate() {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(NodeError::invalid(format!(
                "settings.{field}[{i}]: {path:?} is not a path such as /status/phase"
            )));
        }
    }
    Ok(())
}

/// `object` with only the fields at `paths` (and its namespace and name, so every item can
/// still be told apart); a path through an array applies to each of its items, so
/// `/spec/containers/image` keeps every container's image. No paths: the whole object.
pub fn project(object: Value, paths: &[String]) -> Value {
    if paths.is_empty() {
        return object;
    }
    let mut kept = Value::Object(serde_json::Map::new());
    let identity = ["/metadata/namespace".to_owned(), "/metadata/name".to_owned()];
    for path in identity.iter().chain(paths) {
        let steps: Vec<String> =
            path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        copy(&object, &mut kept, &steps);
    }
    kept
}

fn copy(from: &Value, into: &mut Value, steps: &[String]) {
    let Some((step, rest)) = steps.split_first() else {
        *into = from.clone();
        return;
    };
    match from {
        Value::Object(fields) => {
            let Some(value) = fields.get(step) else { return };
            if !into.is_object() {
                *into = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(kept) = into {
                // A path that leads nowhere leaves no empty field behind.
                let mut slot = kept.remove(step).unwrap_or(Value::Null);
                copy(value, &mut slot, rest);
                if !slot.is_null() || rest.is_empty() {
                    kept.insert(step.clone(), slot);
                }
            }
        }
        Value::Array(items) => {
            if !into.is_array() {
                *into = Value::Array(vec![Value::Null; items.len()]);
            }
            if let Value::Array(kept) = into {
                for (item, slot) in items.iter().zip(kept.iter_mut()) {
                    copy(item, slot, steps);
                }
            }
        }
        _ => {}
    }
}

/// `value` when it is at most `max_bytes` as JSON; else an invalid error naming `what`, its
/// size and the setting that bounds it.
pub fn bounded(value: Value, max_bytes: u32, what: &str) -> Result<Value, NodeError> {
    let size = json_size(&value);
    if size > max_bytes as usize {
        return Err(NodeError::invalid(format!(
            "{what} is {size} bytes, over this node's limit of {max_bytes} (settings.maxBytes); \
             settings.fields can keep only the fields needed"
        )));
    }
    Ok(value)
}

impl Target {
    /// An object of this kind as JSON, with its `apiVersion` and `kind` (which the items of a
    /// list leave out), so an object reads the same however it was read.
    pub fn json_of(&self, object: &DynamicObject) -> Result<Value, NodeError> {
        let mut json = serde_json::to_value(object).map_err(|err| {
            NodeError::internal(format!("cannot encode an object as JSON: {err}"))
        })?;
        if let Some(fields) = json.as_object_mut() {
            fields.insert("apiVersion".to_owned(), Value::String(self.kind.api_version()));
            fields.insert("kind".to_owned(), Value::String(self.kind.kind.clone()));
        }
        Ok(json)
    }
}

/// What a change did to an object, as the change components answer.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// The object's API version.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace; empty for a cluster-scoped kind.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Its resourceVersion after the change.
    pub resource_version: String,
    /// Its generation after the change, for kinds that count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Whether the change was only checked by the apiserver, not saved.
    pub dry_run: bool,
}

impl Changed {
    /// What `object` says of itself after a change.
    pub fn of(object: &DynamicObject, dry_run: bool) -> Self {
        let types = object.types.clone().unwrap_or_default();
        let meta = &object.metadata;
        Self {
            api_version: types.api_version,
            kind: types.kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            generation: meta.generation,
            dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_projection_keeps_the_asked_fields_and_the_identity() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "web", "namespace": "shop", "labels": { "app.kubernetes.io/name": "web", "tier": "front" } },
            "spec": { "containers": [{ "name": "a", "image": "nginx" }, { "name": "b", "image": "envoy" }] },
            "status": { "phase": "Running", "podIP": "10.0.0.1" },
        });
        let paths = [
            "/status/phase",
            "/spec/containers/image",
            "/metadata/labels/app.kubernetes.io~1name",
            "/nope/x",
        ]
        .map(str::to_owned);
        assert_eq!(
            project(pod, &paths),
            json!({
                "metadata": { "namespace": "shop", "name": "web", "labels": { "app.kubernetes.io/name": "web" } },
                "status": { "phase": "Running" },
                "spec": { "containers": [{ "image": "nginx" }, { "image": "envoy" }] },
            })
        );
        let err = check_fields("fields", &["status".to_owned()]).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.fields[0]: \"status\" is not a path such as /status/phase"
        );
    }

    #[test]
    fn a_message_cannot_move_a_node_out_of_its_namespace() {
        assert_eq!(namespace_of("web", "").ok().as_deref(), Some("web"));
        assert_eq!(namespace_of("", "api").ok().as_deref(), Some("api"));
        let err = namespace_of("web", "kube-system").unwrap_err();
        assert_eq!(
            err.message(),
            "in.namespace: kube-system is not this node's namespace web; its rule covers only that"
        );
    }

    #[test]
    fn an_object_over_the_limit_is_named_with_its_size() {
        let err =
            bounded(json!({ "data": "x".repeat(2000) }), 1024, "configmaps big in namespace web")
                .unwrap_err();
        assert_eq!(
            err.message(),
            "configmaps big in namespace web is 2011 bytes, over this node's limit of 1024 \
             (settings.maxBytes); settings.fields can keep only the fields needed"
        );
    }
}
