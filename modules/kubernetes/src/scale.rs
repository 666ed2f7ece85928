//! `scale`: sets the replicas of anything with a scale subresource (Deployments, StatefulSets,
//! ReplicaSets, custom resources that declare one) and answers with the count it had, so a
//! flow that scales down at night can scale back up to it in the morning. The count is read
//! and written at the same resourceVersion, so a change in between is a conflict (transient)
//! rather than a wrong `previous`.

use kube::api::{Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::{
    Component, Context, Description, JsonSchema, KindPermission, NodeError, Port, Value,
    read_message,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{KindSettings, Target, namespace_of},
};

/// Settings of a scale.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ScaleSettings {
    /// Which kind; it must have a scale subresource.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to scale in; empty to take it from each message. `weir rbac` grants a
    /// Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// The field manager the change is recorded under.
    pub field_manager: String,
    /// Let the apiserver check the change without saving it.
    pub dry_run: bool,
    /// Send failures (a denial, a missing object) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ScaleSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("apps/v1", "Deployment"),
            namespace: String::new(),
            field_manager: "weir".to_owned(),
            dry_run: false,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to scale.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The object's namespace, when the settings name none.
    #[serde(default)]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The replicas it should have.
    pub replicas: u32,
}

/// What the scale did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scaled {
    /// The object's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The replicas it asked for before.
    pub previous: i32,
    /// The replicas it asks for now.
    pub replicas: i32,
    /// Whether the change was only checked.
    pub dry_run: bool,
}

/// A node of the scale component.
#[derive(Debug)]
pub struct Scale {
    settings: ScaleSettings,
    target: Target,
    connection: Connection,
}

impl Component for Scale {
    const NAME: &'static str = "scale";
    type Settings = ScaleSettings;

    fn describe() -> Description {
        Description {
            label: "Scale",
            description: "Sets the replicas of anything with a scale subresource and answers with the count it had before.",
            tags: &["kubernetes", "scale", "replicas", "deployments"],
            trigger: false,
            permissions: &[],
        }
    }

    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "scale", verbs: &["get", "patch"] }]
    }

    fn ports(settings: &ScaleSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Wanted>("in"), Port::output::<Scaled>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ScaleSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        crate::dynamic::check_field_manager(&settings.field_manager)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.scale(cx, wanted).await {
            Ok(scaled) => cx.emit("out", scaled).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl Scale {
    async fn scale(&self, cx: &Context, wanted: Wanted) -> Result<Scaled, NodeError> {
        let settings = &self.settings;
        let namespace = namespace_of(&settings.namespace, &wanted.namespace)?;
        let session = self.connection.session(cx).await?;
        let api = self.target.api_for(&session, &namespace, &wanted.name).await?;
        let (_, capabilities) = self.target.discover(&session.client).await?;
        if !capabilities.subresources.iter().any(|(resource, _)| resource.plural == "scale") {
            return Err(NodeError::invalid(format!(
                "kind {} has no scale subresource",
                self.target.kind().kind
            )));
        }
        let name = &wanted.name;
        let doing = format!("get the scale of {}", self.target.object(name, &namespace));
        let current = api.get_scale(name).await.map_err(|err| session.error(&doing, err))?;
        let previous = current.spec.and_then(|s| s.replicas).unwrap_or_default();
        let replicas = i32::try_from(wanted.replicas).map_err(|_| {
            NodeError::invalid(format!("in.replicas: {} is too many", wanted.replicas))
        })?;
        let patch = json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "replicas": replicas },
        });
        let params = PatchParams {
            field_manager: Some(settings.field_manager.clone()),
            dry_run: settings.dry_run,
            ..PatchParams::default()
        };
        let doing = format!("patch the scale of {}", self.target.object(name, &namespace));
        let scaled = api
            .patch_scale(name, &params, &Patch::Merge(patch))
            .await
            .map_err(|err| session.error(&doing, err))?;
        Ok(Scaled {
            namespace,
            name: wanted.name,
            previous,
            replicas: scaled.spec.and_then(|s| s.replicas).unwrap_or(replicas),
            dry_run: settings.dry_run,
        })
    }
}
