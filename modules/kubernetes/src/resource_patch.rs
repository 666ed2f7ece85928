//! `resource_patch`: patches an object of the kind its settings name with a JSON merge patch,
//! a JSON patch or (for built-in kinds) a strategic merge patch. A message may give the
//! resourceVersion it expects the object at: the patch then carries it, so the apiserver
//! refuses it (a conflict, transient) when the object moved since.

use kube::api::{Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::{
    Component, Context, Description, JsonSchema, KindPermission, NodeError, Port, Value,
    read_message,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{Changed, KindSettings, Target, namespace_of},
};

/// How a patch is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PatchType {
    /// A JSON merge patch (RFC 7386): fields given replace, null removes.
    #[default]
    Merge,
    /// A JSON patch (RFC 6902): a list of operations.
    Json,
    /// A strategic merge patch: lists merge by their key; built-in kinds only.
    Strategic,
}

/// Settings of a resource patch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourcePatchSettings {
    /// Which kind.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to patch in; empty to take it from each message (or for a cluster-scoped
    /// kind). `weir rbac` grants a Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// How the message's patch is read.
    pub patch_type: PatchType,
    /// The field manager the change is recorded under.
    pub field_manager: String,
    /// Let the apiserver check the patch without saving it.
    pub dry_run: bool,
    /// Send failures (a denial, a conflict) to the `error` output as data instead of failing
    /// the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourcePatchSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "ConfigMap"),
            namespace: String::new(),
            patch_type: PatchType::Merge,
            field_manager: "weir".to_owned(),
            dry_run: false,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to patch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// The object's namespace, when the settings name none.
    #[serde(default)]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The patch: an object for a merge or strategic patch, a list of operations for a JSON
    /// patch.
    pub patch: Value,
    /// The resourceVersion the object is expected at; if it moved, the patch is refused.
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// A node of the resource patch component.
#[derive(Debug)]
pub struct ResourcePatch {
    settings: ResourcePatchSettings,
    target: Target,
    connection: Connection,
}

impl Component for ResourcePatch {
    const NAME: &'static str = "resource_patch";
    type Settings = ResourcePatchSettings;

    fn describe() -> Description {
        Description {
            label: "Resource patch",
            description: "Patches an object of any kind (merge, JSON or strategic patch), optionally only if it is still at the resourceVersion the message expects.",
            tags: &["kubernetes", "patch", "update"],
            trigger: false,
            permissions: &[],
        }
    }

    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["patch"] }]
    }

    fn ports(settings: &ResourcePatchSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Change>("in"), Port::output::<Changed>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ResourcePatchSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        crate::dynamic::check_field_manager(&settings.field_manager)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let change: Change = read_message(port, message.clone())?;
        let patch =
            self.patch_of(port, change.patch.clone(), change.resource_version.as_deref())?;
        match self.patch(cx, &change, patch).await {
            Ok(changed) => cx.emit("out", changed).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl ResourcePatch {
    /// The patch to send, carrying the expected resourceVersion when there is one: the
    /// apiserver takes a resourceVersion in the patched object as a precondition.
    fn patch_of(
        &self,
        port: &str,
        patch: Value,
        resource_version: Option<&str>,
    ) -> Result<Patch<Value>, NodeError> {
        match (self.settings.patch_type, patch) {
            (PatchType::Json, Value::Array(mut operations)) => {
                if let Some(version) = resource_version {
                    operations.push(json!({ "op": "add", "path": "/metadata/resourceVersion", "value": version }));
                }
                serde_json::from_value(Value::Array(operations))
                    .map(Patch::Json)
                    .map_err(|err| NodeError::invalid(format!("{port}.patch: {err}")))
            }
            (PatchType::Merge | PatchType::Strategic, Value::Object(mut fields)) => {
                if let Some(version) = resource_version {
                    let metadata = fields.entry("metadata").or_insert_with(|| json!({}));
                    let Some(metadata) = metadata.as_object_mut() else {
                        return Err(NodeError::invalid(format!(
                            "{port}.patch.metadata: must be an object"
                        )));
                    };
                    metadata.insert("resourceVersion".to_owned(), json!(version));
                }
                let patch = Value::Object(fields);
                Ok(if self.settings.patch_type == PatchType::Merge {
                    Patch::Merge(patch)
                } else {
                    Patch::Strategic(patch)
                })
            }
            (PatchType::Json, _) => Err(NodeError::invalid(format!(
                "{port}.patch: a JSON patch is a list of operations"
            ))),
            (_, _) => Err(NodeError::invalid(format!(
                "{port}.patch: a merge or strategic patch is an object"
            ))),
        }
    }

    async fn patch(
        &self,
        cx: &Context,
        change: &Change,
        patch: Patch<Value>,
    ) -> Result<Changed, NodeError> {
        let settings = &self.settings;
        let namespace = namespace_of(&settings.namespace, &change.namespace)?;
        let session = self.connection.session(cx).await?;
        let api = self.target.api_for(&session, &namespace, &change.name).await?;
        let params = PatchParams {
            field_manager: Some(settings.field_manager.clone()),
            dry_run: settings.dry_run,
            ..PatchParams::default()
        };
        let doing = self.target.doing("patch", &change.name, &namespace);
        let patched = api
            .patch(&change.name, &params, &patch)
            .await
            .map_err(|err| session.error(&doing, err))?;
        Ok(Changed::of(&patched, settings.dry_run))
    }
}
