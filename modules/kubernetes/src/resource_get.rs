//! `resource_get`: reads one object of the kind its settings name (any kind the apiserver
//! serves, custom resources included), whole or only the fields asked for.

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, Direction, JsonSchema, KindPermission, NodeError, Port, Value,
    read_message,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{
        DEFAULT_MAX_BYTES, KindSettings, Target, bounded, check_fields, check_max_bytes,
        namespace_of, object_schema, project,
    },
};

/// Settings of a resource get.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceGetSettings {
    /// Which kind.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to read in; empty to take it from each message (or for a cluster-scoped
    /// kind). `weir rbac` grants a Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// Only these fields of the object, as paths such as `/status/phase` (its namespace and
    /// name always come along); empty for the whole object.
    pub fields: Vec<String>,
    /// The most the object may be as JSON, in bytes; a larger one fails naming its size.
    pub max_bytes: u32,
    /// Send failures (a denial, an unknown object) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourceGetSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "ConfigMap"),
            namespace: String::new(),
            fields: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// Which object to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// Its namespace, when the settings name none.
    #[serde(default)]
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A node of the resource get component.
#[derive(Debug)]
pub struct ResourceGet {
    settings: ResourceGetSettings,
    target: Target,
    connection: Connection,
}

impl Component for ResourceGet {
    const NAME: &'static str = "resource_get";
    type Settings = ResourceGetSettings;

    fn describe() -> Description {
        Description {
            label: "Resource get",
            description: "Reads one object of any kind, custom resources included, whole or only the fields asked for.",
            tags: &["kubernetes", "get", "read", "object"],
            trigger: false,
            permissions: &[],
        }
    }

    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["get"] }]
    }

    fn ports(settings: &ResourceGetSettings) -> Vec<Port> {
        Port::with_error(
            vec![
                Port::input::<Wanted>("in"),
                Port::with_schema("out", Direction::Out, object_schema()),
            ],
            settings.error_port,
        )
    }

    fn build(settings: ResourceGetSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        check_fields("fields", &settings.fields)?;
        check_max_bytes(settings.max_bytes)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.get(cx, wanted).await {
            Ok(object) => cx.emit("out", object).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl ResourceGet {
    async fn get(&self, cx: &Context, wanted: Wanted) -> Result<Value, NodeError> {
        let namespace = namespace_of(&self.settings.namespace, &wanted.namespace)?;
        let session = self.connection.session(cx).await?;
        let api = self.target.api_for(&session, &namespace, &wanted.name).await?;
        let doing = self.target.doing("get", &wanted.name, &namespace);
        let object = api.get(&wanted.name).await.map_err(|err| session.error(&doing, err))?;
        let what = self.target.object(&wanted.name, &namespace);
        bounded(
            project(self.target.json_of(&object)?, &self.settings.fields),
            self.settings.max_bytes,
            &what,
        )
    }
}
