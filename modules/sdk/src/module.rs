//! A module: a named set of components, and the catalogue it publishes as its `Module` resource.

use serde_json::Value;
use weir_model::{ComponentDescriptor, ModuleSpec, names::ComponentName};

use crate::{
    component::{Component, Node, build_node},
    error::NodeError,
    port::schema_of,
};

/// Builds a node of one component from its settings.
type BuildFn = fn(&Value) -> Result<Box<dyn Node>, NodeError>;

/// One registered component: its catalogue entry and how to build it.
#[derive(Debug, Clone)]
pub struct Registration {
    name: &'static str,
    trigger: bool,
    every_replica: bool,
    describe: fn() -> Result<ComponentDescriptor, NodeError>,
    build: BuildFn,
    #[cfg(feature = "testing")]
    compliance: ComplianceFn,
}

/// Checks one component against the node rules.
#[cfg(feature = "testing")]
type ComplianceFn =
    fn() -> futures::future::BoxFuture<'static, Result<(), crate::testing::Noncompliance>>;

impl Registration {
    fn of<C: Component>() -> Self {
        Self {
            name: C::NAME,
            trigger: C::describe().trigger,
            every_replica: C::EVERY_REPLICA,
            describe: describe::<C>,
            build: build_node::<C>,
            #[cfg(feature = "testing")]
            compliance: || Box::pin(crate::testing::check_compliance::<C>()),
        }
    }

    /// The component's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the component is a trigger (its nodes' `run` loops start runs).
    pub fn is_trigger(&self) -> bool {
        self.trigger
    }

    /// Whether its triggers run on every replica, not only the leader
    /// ([`Component::EVERY_REPLICA`]).
    pub fn runs_on_every_replica(&self) -> bool {
        self.every_replica
    }

    /// The component's catalogue entry, with the ports of its default settings.
    pub fn descriptor(&self) -> Result<ComponentDescriptor, NodeError> {
        (self.describe)()
    }

    /// Checks the component against the node rules (see [`crate::testing::check_compliance`]).
    #[cfg(feature = "testing")]
    pub async fn check_compliance(&self) -> Result<(), crate::testing::Noncompliance> {
        (self.compliance)().await
    }

    /// Builds a node from settings.
    pub fn build(&self, settings: &Value) -> Result<Box<dyn Node>, NodeError> {
        (self.build)(settings)
    }
}

fn describe<C: Component>() -> Result<ComponentDescriptor, NodeError> {
    let description = C::describe();
    let name = ComponentName::new(C::NAME).map_err(|err| NodeError::internal(err.to_string()))?;
    let ports = C::ports(&C::Settings::default())
        .iter()
        .map(crate::Port::descriptor)
        .collect::<Result<_, _>>()?;
    Ok(ComponentDescriptor {
        name,
        label: description.label.to_owned(),
        description: description.description.to_owned(),
        tags: description.tags.iter().map(|t| (*t).to_owned()).collect(),
        trigger: description.trigger,
        settings_schema: Some(schema_of::<C::Settings>()),
        ports,
        permissions: description.permissions.iter().map(policy_rule).collect(),
        kind_permissions: C::kind_permissions()
            .iter()
            .map(|p| weir_model::KindRule {
                subresource: p.subresource.to_owned(),
                verbs: p.verbs.iter().map(|v| (*v).to_owned()).collect(),
            })
            .collect(),
        permissions_by_kind: C::permissions_by_kind().iter().fold(
            std::collections::BTreeMap::new(),
            |mut by_kind, (kind, permission)| {
                by_kind
                    .entry((*kind).to_owned())
                    .or_insert_with(Vec::new)
                    .push(policy_rule(permission));
                by_kind
            },
        ),
    })
}

fn policy_rule(permission: &crate::Permission) -> weir_model::module::PolicyRule {
    weir_model::module::PolicyRule {
        api_groups: vec![permission.api_group.to_owned()],
        resources: vec![permission.resource.to_owned()],
        verbs: permission.verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: Vec::new(),
    }
}

/// A module's components, registered one per line in its table of contents:
///
/// ```
/// # use weir_sdk::Module;
/// let module = Module::new("common", env!("CARGO_PKG_VERSION"));
///     // .component::<Ticker>()
///     // .component::<Router>()
/// assert_eq!(module.name(), "common");
/// ```
#[derive(Debug, Clone)]
pub struct Module {
    name: &'static str,
    version: &'static str,
    components: Vec<Registration>,
    listener: Option<Serve>,
    guide: Option<&'static str>,
}

/// Serves a module's own listener until the token is cancelled; an error ends the process.
pub type Serve = fn(
    tokio::net::TcpListener,
    tokio_util::sync::CancellationToken,
) -> futures::future::BoxFuture<'static, std::io::Result<()>>;

impl Module {
    /// An empty module.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version, components: Vec::new(), listener: None, guide: None }
    }

    /// Gives the module a guide: Markdown the node reference (`docs/nodes.md`) shows after its
    /// components, for examples that span them.
    #[must_use]
    pub fn guide(mut self, markdown: &'static str) -> Self {
        self.guide = Some(markdown);
        self
    }

    /// The module's guide, if it has one.
    pub fn guide_text(&self) -> Option<&'static str> {
        self.guide
    }

    /// Gives the module a listener of its own, for requests from outside any flow (the http
    /// module's webhooks): the process hosting it binds the webhook address
    /// (`--webhook-listen`) and hands it to `serve`, on every replica.
    #[must_use]
    pub fn listener(mut self, serve: Serve) -> Self {
        self.listener = Some(serve);
        self
    }

    /// What serves the module's own listener, if it has one.
    pub fn serve(&self) -> Option<Serve> {
        self.listener
    }

    /// Registers component `C`.
    #[must_use]
    pub fn component<C: Component>(mut self) -> Self {
        self.components.push(Registration::of::<C>());
        self
    }

    /// The module's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The registered components, in registration order.
    pub fn components(&self) -> &[Registration] {
        &self.components
    }

    /// The registration of a component, by name.
    pub fn find(&self, component: &str) -> Option<&Registration> {
        self.components.iter().find(|c| c.name == component)
    }

    /// The catalogue the module publishes; fails on a component that breaks the naming rules.
    pub fn catalogue(&self) -> Result<ModuleSpec, NodeError> {
        Ok(ModuleSpec {
            version: self.version.to_owned(),
            components: self
                .components
                .iter()
                .map(Registration::descriptor)
                .collect::<Result<_, _>>()?,
        })
    }
}
