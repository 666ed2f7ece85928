//! `resource_apply`: server-side apply of an object of the kind its settings name. The
//! apiserver merges the object into what is there and records which fields the field manager
//! (`weir` unless set) owns, so a flow that applies a ConfigMap's keys leaves alone what others
//! own. A field another manager owns is a conflict the node reports naming it, and takes over
//! only with `force`; a dry run lets the apiserver check and merge without saving.

use kube::api::{DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, KindPermission, NodeError, Port, Value,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{Changed, KindSettings, Target, namespace_of},
};

/// Settings of a resource apply.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceApplySettings {
    /// Which kind; every object applied must be of it.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to apply in; empty to take the object's. `weir rbac` grants a Role there,
    /// else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// The field manager the applied fields are owned by.
    pub field_manager: String,
    /// Take over fields another manager owns instead of failing on them.
    pub force: bool,
    /// Let the apiserver check and merge the object without saving it.
    pub dry_run: bool,
    /// Send failures (a denial, a conflict) to the `error` output as data instead of failing
    /// the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourceApplySettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "ConfigMap"),
            namespace: String::new(),
            field_manager: "weir".to_owned(),
            force: false,
            dry_run: false,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// A node of the resource apply component.
#[derive(Debug)]
pub struct ResourceApply {
    settings: ResourceApplySettings,
    target: Target,
    connection: Connection,
}

impl Component for ResourceApply {
    const NAME: &'static str = "resource_apply";
    type Settings = ResourceApplySettings;

    fn describe() -> Description {
        Description {
            label: "Resource apply",
            description: "Applies an object of any kind server-side: only the fields it holds are set and owned; a field another manager owns fails the apply unless forced. Dry runs change nothing.",
            tags: &["kubernetes", "apply", "create", "update"],
            trigger: false,
            permissions: &[],
        }
    }

    // Apply is a patch; one that creates the object is authorized as a create too.
    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["patch", "create"] }]
    }

    fn ports(settings: &ResourceApplySettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Value>("in"), Port::output::<Changed>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ResourceApplySettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        crate::dynamic::check_field_manager(&settings.field_manager)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let object = self.object(port, message.clone())?;
        match self.apply(cx, object).await {
            Ok(changed) => cx.emit("out", changed).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl ResourceApply {
    /// The message as an object of this node's kind.
    fn object(&self, port: &str, message: Value) -> Result<DynamicObject, NodeError> {
        let kind = self.target.kind();
        let said =
            |field: &str| message.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (api_version, named) = (said("apiVersion"), said("kind"));
        if api_version != kind.api_version() || named != kind.kind {
            return Err(NodeError::invalid(format!(
                "{port}: the object is {named} of {api_version}, not this node's {} of {}",
                kind.kind,
                kind.api_version()
            )));
        }
        let object: DynamicObject = serde_json::from_value(message)
            .map_err(|err| NodeError::invalid(format!("{port}: not an object: {err}")))?;
        if object.metadata.name.as_deref().is_none_or(str::is_empty) {
            return Err(NodeError::invalid(format!("{port}.metadata.name: missing")));
        }
        Ok(object)
    }

    async fn apply(&self, cx: &Context, mut object: DynamicObject) -> Result<Changed, NodeError> {
        let settings = &self.settings;
        let given = object.metadata.namespace.clone().unwrap_or_default();
        let namespace = namespace_of(&settings.namespace, &given)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let session = self.connection.session(cx).await?;
        let api = self.target.api_for(&session, &namespace, &name).await?;
        if !namespace.is_empty() {
            object.metadata.namespace = Some(namespace.clone());
        }
        let params = PatchParams {
            field_manager: Some(settings.field_manager.clone()),
            force: settings.force,
            dry_run: settings.dry_run,
            ..PatchParams::default()
        };
        let doing = self.target.doing("apply", &name, &namespace);
        let applied = api.patch(&name, &params, &Patch::Apply(&object)).await.map_err(|err| {
            match err {
                // Another manager's fields: a retry meets the same owner, so it is not
                // transient; force takes them over.
                kube::Error::Api(status) if status.code == 409 => NodeError::invalid(format!(
                    "cannot {doing}: {} (settings.force takes the fields over)",
                    status.message
                )),
                err => session.error(&doing, err),
            }
        })?;
        Ok(Changed::of(&applied, settings.dry_run))
    }
}
