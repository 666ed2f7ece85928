//! The component trait a node author implements, and the type-erased [`Node`] the runtime
//! drives.
//!
//! The life of a node: the runtime decodes its settings, computes its ports, calls
//! [`Component::build`] (a failure becomes the node's status, and nothing is left half
//! started), then calls [`Component::handle`] for each message and, for triggers,
//! [`Component::run`] until it is cancelled. A settings change goes through the same path with
//! a fresh instance; [`Component::destroy`] runs before an instance is dropped.

use std::future::Future;

use futures::{FutureExt, future::BoxFuture};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use weir_model::Direction;

use crate::{context::Context, error::NodeError, port::Port};

/// What the editor's palette shows about a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// A short human label, such as `Ticker`.
    pub label: &'static str,
    /// What it does, in Markdown.
    pub description: &'static str,
    /// Words to find it by.
    pub tags: &'static [&'static str],
    /// Whether it starts runs on its own (its `run` is called, on the module's leader only
    /// unless [`Component::EVERY_REPLICA`]).
    pub trigger: bool,
    /// The Kubernetes RBAC rules its nodes need; the chart grants the module their union.
    pub permissions: &'static [Permission],
}

/// One Kubernetes RBAC rule a component needs: these verbs on a resource of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The API group, such as `apps`; empty for the core group.
    pub api_group: &'static str,
    /// The resource, plural, such as `deployments`.
    pub resource: &'static str,
    /// The verbs, such as `list` or `patch`.
    pub verbs: &'static [&'static str],
}

/// A rule a component needs on the kind its nodes' settings name (`apiVersion`, `kind`, and
/// `resource` for an irregular plural; see [`crate::ApiKind`]): these verbs on it, or on one of
/// its subresources. `weir rbac` turns it into a rule per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindPermission {
    /// A subresource such as `scale`; empty for the resource itself.
    pub subresource: &'static str,
    /// The verbs, such as `get` or `patch`.
    pub verbs: &'static [&'static str],
}

/// A node type. Implement it in one file per component; register it in the module's table of
/// contents with [`Module::component`](crate::Module::component).
pub trait Component: Sized + Send + Sync + 'static {
    /// The name in its module: lowercase snake_case, such as `workload_list`.
    const NAME: &'static str;

    /// The settings; their doc comments become the editor's help text, and their `Default`
    /// is what a new node starts with.
    type Settings: Serialize + DeserializeOwned + JsonSchema + Default + Send + Sync + 'static;

    /// For triggers: whether `run` runs on every replica of the module rather than on its
    /// leader only, as a trigger that answers requests from outside does (each replica
    /// serves what reaches it).
    const EVERY_REPLICA: bool = false;

    /// The palette entry.
    fn describe() -> Description;

    /// The rules its nodes need on the kind their settings name, beyond
    /// [`Description::permissions`]; none for a component whose settings name no kind.
    fn kind_permissions() -> &'static [KindPermission] {
        &[]
    }

    /// The rules its nodes need for each kind their `kinds` setting may name, by kind name
    /// (such as `Deployment`), beyond [`Description::permissions`]: a node needs those of the
    /// kinds it names, or of every kind here when it names none. None for a component without
    /// a `kinds` setting.
    fn permissions_by_kind() -> Vec<(&'static str, Permission)> {
        Vec::new()
    }

    /// The ports for these settings.
    fn ports(settings: &Self::Settings) -> Vec<Port>;

    /// Checks the settings and prepares the node; the error is shown on the node.
    fn build(settings: Self::Settings) -> Result<Self, NodeError>;

    /// Handles one message on the input `port` and returns the reply the caller receives.
    fn handle(
        &self,
        cx: &Context,
        port: &str,
        message: Value,
    ) -> impl Future<Output = Result<Value, NodeError>> + Send;

    /// For triggers: runs until `cx` is cancelled, starting runs with
    /// [`Context::start_run`] and [`Context::emit`]. Others keep the default, which returns
    /// at once.
    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), NodeError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// Releases what the node holds, before the instance is dropped.
    fn destroy(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A built node of any component, as the runtime holds it.
pub trait Node: Send + Sync {
    /// The node's ports.
    fn ports(&self) -> &[Port];

    /// The names of the node's outputs, the ports it may emit on.
    fn outputs(&self) -> std::sync::Arc<[String]> {
        self.ports()
            .iter()
            .filter(|p| p.direction() == Direction::Out)
            .map(|p| p.name().to_owned())
            .collect()
    }

    /// Handles a message on an input port; an unknown port is an invalid-input error.
    fn handle<'a>(
        &'a self,
        cx: &'a Context,
        port: &'a str,
        message: Value,
    ) -> BoxFuture<'a, Result<Value, NodeError>>;

    /// Runs a trigger until cancelled.
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), NodeError>>;

    /// Releases what the node holds.
    fn destroy(&self) -> BoxFuture<'_, ()>;
}

/// Decodes settings and builds a node of component `C`; errors name the settings field.
pub fn build_node<C: Component>(settings: &Value) -> Result<Box<dyn Node>, NodeError> {
    let settings: C::Settings = match settings {
        Value::Null => C::Settings::default(),
        other => serde_path_to_error::deserialize(other).map_err(|err| {
            let path = err.path().to_string();
            let field =
                if path == "." { "settings".to_owned() } else { format!("settings.{path}") };
            NodeError::invalid(format!("{field}: {}", err.into_inner()))
        })?,
    };
    let ports = C::ports(&settings);
    let component = C::build(settings)?;
    Ok(Box::new(Built { component, ports }))
}

struct Built<C> {
    component: C,
    ports: Vec<Port>,
}

impl<C: Component> Node for Built<C> {
    fn ports(&self) -> &[Port] {
        &self.ports
    }

    fn handle<'a>(
        &'a self,
        cx: &'a Context,
        port: &'a str,
        message: Value,
    ) -> BoxFuture<'a, Result<Value, NodeError>> {
        let known = self.ports.iter().any(|p| p.direction() == Direction::In && p.name() == port);
        if !known {
            let inputs: Vec<&str> = self
                .ports
                .iter()
                .filter(|p| p.direction() == Direction::In)
                .map(Port::name)
                .collect();
            let message = format!(
                "{} has no input port {port:?}; its inputs are {}",
                C::NAME,
                inputs.join(", ")
            );
            return async move { Err(NodeError::invalid(message)) }.boxed();
        }
        self.component.handle(cx, port, message).boxed()
    }

    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), NodeError>> {
        self.component.run(cx).boxed()
    }

    fn destroy(&self) -> BoxFuture<'_, ()> {
        self.component.destroy().boxed()
    }
}
