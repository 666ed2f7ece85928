//! `resource_delete`: deletes an object of the kind its settings name, with the propagation
//! policy its dependents follow, optionally only if it is still the object (uid) and version
//! (resourceVersion) the message expects.

use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, KindPermission, NodeError, Port, Value,
    read_message,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{KindSettings, Target, namespace_of},
};

/// What becomes of the object's dependents (those with an owner reference to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Propagation {
    /// Deleted by the garbage collector after the object is gone.
    #[default]
    Background,
    /// Deleted first; the object goes once they are gone.
    Foreground,
    /// Left, without their owner.
    Orphan,
}

/// Settings of a resource delete.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceDeleteSettings {
    /// Which kind.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to delete in; empty to take it from each message (or for a
    /// cluster-scoped kind). `weir rbac` grants a Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// What becomes of the object's dependents.
    pub propagation_policy: Propagation,
    /// An object that is already gone counts as deleted (`deleted: false` in the answer)
    /// instead of failing.
    pub missing_ok: bool,
    /// Let the apiserver check the deletion without deleting.
    pub dry_run: bool,
    /// Send failures (a denial, a moved object) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourceDeleteSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "ConfigMap"),
            namespace: String::new(),
            propagation_policy: Propagation::Background,
            missing_ok: false,
            dry_run: false,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to delete.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Doomed {
    /// The object's namespace, when the settings name none.
    #[serde(default)]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The resourceVersion it is expected at; if it moved, it is left.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// The uid it is expected to have; a re-created object of the same name is left.
    #[serde(default)]
    pub uid: Option<String>,
}

/// What the deletion did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The object's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether this deletion removed it (or, in a dry run, would); false when it was gone.
    pub deleted: bool,
    /// Whether the deletion was only checked.
    pub dry_run: bool,
}

/// A node of the resource delete component.
#[derive(Debug)]
pub struct ResourceDelete {
    settings: ResourceDeleteSettings,
    target: Target,
    connection: Connection,
}

impl Component for ResourceDelete {
    const NAME: &'static str = "resource_delete";
    type Settings = ResourceDeleteSettings;

    fn describe() -> Description {
        Description {
            label: "Resource delete",
            description: "Deletes an object of any kind with a propagation policy for its dependents, optionally only if it is still the uid and resourceVersion the message expects.",
            tags: &["kubernetes", "delete", "remove"],
            trigger: false,
            permissions: &[],
        }
    }

    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["delete"] }]
    }

    fn ports(settings: &ResourceDeleteSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Doomed>("in"), Port::output::<Deleted>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ResourceDeleteSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let doomed: Doomed = read_message(port, message.clone())?;
        match self.delete(cx, doomed).await {
            Ok(deleted) => cx.emit("out", deleted).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl ResourceDelete {
    async fn delete(&self, cx: &Context, doomed: Doomed) -> Result<Deleted, NodeError> {
        let settings = &self.settings;
        let namespace = namespace_of(&settings.namespace, &doomed.namespace)?;
        let session = self.connection.session(cx).await?;
        let api = self.target.api_for(&session, &namespace, &doomed.name).await?;
        let preconditions =
            (doomed.resource_version.is_some() || doomed.uid.is_some()).then_some(Preconditions {
                resource_version: doomed.resource_version,
                uid: doomed.uid,
            });
        let params = DeleteParams {
            dry_run: settings.dry_run,
            propagation_policy: Some(match settings.propagation_policy {
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            preconditions,
            ..DeleteParams::default()
        };
        let doing = self.target.doing("delete", &doomed.name, &namespace);
        let deleted = match api.delete(&doomed.name, &params).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 && settings.missing_ok => false,
            Err(err) => return Err(session.error(&doing, err)),
        };
        Ok(Deleted { namespace, name: doomed.name, deleted, dry_run: settings.dry_run })
    }
}
