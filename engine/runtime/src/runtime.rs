//! The runtime: builds and stops node instances and carries messages between them.
//!
//! Expected flow of a delivery along an edge:
//! 1. the hop count grows by one; past [`HOP_LIMIT`] the run is refused (a loop);
//! 2. the edge's mapping, if any, shapes the message (`$trigger` is the run's first message);
//! 3. the result is checked against the target port's schema;
//! 4. the target handles it within the edge's timeout, in a child of the run's cancellation;
//! 5. a transient failure is retried with exponential backoff and jitter, up to the edge's
//!    attempts; any other failure returns at once. Once an edge has spent its retries on a
//!    failure, the edges above pass it on instead of retrying it again.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock, PoisonError, RwLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures::{
    FutureExt as _,
    future::{BoxFuture, join_all},
};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;
use weir_model::{
    Direction, FlowNode, FlowNodeSpec,
    secret_ref::{self, Referred, field_path},
};
use weir_sdk::{
    AccountToken, Context, Emitter, Module, NodeError, NodeIdentity, NodeState, Run, TraceContext,
};

use crate::{
    edge::Edge,
    flows::Flows,
    inspect::{self, BACKLOG, Event, What},
    instance::{Failed, Instance},
    peers::Peers,
    replicas::Replicas,
    trust::{Accounts, Bearer, SecretValues},
    wiring::{Unwired, Wiring},
};

/// The key of the node a FlowNode describes.
fn key_of(flow_node: &FlowNode) -> Result<NodeKey, BuildError> {
    Ok(NodeKey {
        namespace: flow_node.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned()),
        name: flow_node.metadata.name.clone().ok_or(BuildError::Unnamed)?,
    })
}

/// A digest of a node's settings, to tell whether they changed without keeping them.
fn digest(settings: &Value) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    settings.to_string().hash(&mut hasher);
    hasher.finish()
}

/// How long a mapping may evaluate on an async worker; one that takes longer is evaluated
/// again on a blocking thread, with its whole time budget, so it holds up no other delivery.
const INLINE_MAPPING_TIME: Duration = Duration::from_millis(5);

/// Evaluates an edge's mapping: in place when it is quick, as nearly all are, else on a
/// blocking thread.
async fn map(
    mapping: &Arc<weir_model::mapping::Mapping>,
    message: &Value,
    trigger: &Arc<Value>,
) -> Result<Value, weir_model::mapping::MappingError> {
    if let Some(evaluated) = mapping.evaluate_briefly(message, trigger, INLINE_MAPPING_TIME) {
        return evaluated;
    }
    let (mapping, message, trigger) = (Arc::clone(mapping), message.clone(), Arc::clone(trigger));
    tokio::task::spawn_blocking(move || mapping.evaluate(&message, &trigger)).await.unwrap_or_else(
        |err| {
            Err(weir_model::mapping::MappingError {
                path: String::new(),
                expression: None,
                message: format!("the evaluation failed: {err}"),
            })
        },
    )
}

/// How deep a run's call tree may go before it counts as a loop.
pub const HOP_LIMIT: u32 = 256;
/// How long a delivery waits for its target node to start (see `Runtime::target`).
const TARGET_GRACE: Duration = Duration::from_secs(2);

/// Every this many hops a delivery continues on a task of its own: a call tree is nested
/// futures, and polling hundreds of them in one go would overflow a thread's stack.
const HOPS_PER_TASK: u32 = 32;

/// How long a delivery may take, downstream work included, when its edge names no timeout.
pub const DEFAULT_EDGE_TIMEOUT: Duration = Duration::from_secs(600);

/// Names a node: its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// The FlowNode's namespace.
    pub namespace: String,
    /// The FlowNode's name.
    pub name: String,
}

impl std::fmt::Display for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a node could not be built; shown in the node's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The FlowNode has no name.
    #[error("the FlowNode has no metadata.name")]
    Unnamed,
    /// No hosted module offers the component.
    #[error("module {module} has no component {component}")]
    UnknownComponent {
        /// The module named by the node.
        module: String,
        /// The component named by the node.
        component: String,
    },
    /// The settings do not fit the component.
    #[error("{0}")]
    Settings(NodeError),
    /// A secret setting given by reference cannot be read.
    #[error("{field}: {error}")]
    Secret {
        /// The setting, such as `spec.settings.auth.password`.
        field: String,
        /// Why it cannot be read.
        error: NodeError,
    },
    /// An edge's mapping does not compile.
    #[error("spec.edges[{edge}] ({label}): {problems}")]
    Mapping {
        /// The edge's index.
        edge: usize,
        /// `node.port → node.port`.
        label: String,
        /// Every problem, with its place in the mapping.
        problems: String,
    },
    /// A port's schema is not a valid JSON Schema (a bug in the component).
    #[error("port {port}: the schema does not compile: {problem}")]
    PortSchema {
        /// The port.
        port: String,
        /// What the schema compiler said.
        problem: String,
    },
}

/// Hosts the nodes of some modules. Cheap to clone; clones share the nodes.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let modules: Vec<&str> = self.shared.modules.iter().map(Module::name).collect();
        f.debug_struct("Runtime").field("modules", &modules).finish_non_exhaustive()
    }
}

struct Shared {
    modules: Vec<Module>,
    nodes: RwLock<HashMap<NodeKey, Arc<Instance>>>,
    /// What every node's context emits through, made once: it holds the runtime weakly, so
    /// nodes do not keep their runtime alive.
    emitter: Arc<dyn Emitter>,
    /// Whether this replica leads, and so runs the triggers.
    leader: watch::Receiver<bool>,
    /// Nodes of other modules, reached over gRPC.
    peers: Peers,
    /// The edges the store holds, which deliveries from other modules must follow.
    wiring: Wiring,
    /// Where the tokens of the accounts flows act as come from, in a cluster.
    accounts: OnceLock<Arc<dyn Accounts>>,
    /// Where secret settings given by reference are read.
    secrets: OnceLock<Arc<dyn SecretValues>>,
    /// Whether a host has published the modules and applied the store's nodes.
    hosting: AtomicBool,
    /// The flows of the nodes: suspended or not, and the account each acts as.
    flows: Flows,
    /// What happens at the nodes, for whoever watches.
    events: broadcast::Sender<Arc<Event>>,
    /// Woken when a node starts here or a route to another module's node appears, for the
    /// deliveries waiting for their target.
    arrivals: tokio::sync::Notify,
}

impl Shared {
    /// A token of the account flow `flow` of `namespace` acts as; `None` where nodes act with
    /// the user's own credentials.
    async fn account_token(
        &self,
        namespace: &str,
        flow: &str,
    ) -> Result<Option<AccountToken>, NodeError> {
        let Some(accounts) = self.accounts.get().cloned() else { return Ok(None) };
        let account = self.flows.account(namespace, flow).ok_or_else(|| {
            NodeError::transient(format!(
                "flow {namespace}/{flow} is not known to this module yet, so neither is its account"
            ))
        })?;
        accounts.token(namespace, flow, &account).await.map(Some)
    }
}

/// Routes emits for the runtime it belongs to.
struct Router(Weak<Shared>);

impl Emitter for Router {
    fn emit<'a>(
        &'a self,
        from: &'a NodeIdentity,
        port: &'a str,
        message: Value,
        run: &'a Run,
    ) -> BoxFuture<'a, Result<Value, NodeError>> {
        Box::pin(async move {
            let shared =
                self.0.upgrade().ok_or_else(|| NodeError::cancelled("the runtime has stopped"))?;
            Runtime { shared }.emit(from, port, message, run).await
        })
    }

    fn log(&self, from: &NodeIdentity, run: &Run, line: &str) {
        tracing::debug!(node = %from, trace_id = %run.trace.trace_hex(), "{line}");
        let Some(shared) = self.0.upgrade() else { return };
        let runtime = Runtime { shared };
        let key = NodeKey { namespace: from.namespace.clone(), name: from.node.clone() };
        if runtime.watched()
            && let Ok(instance) = runtime.instance(&key)
        {
            runtime.publish(&instance, "", run.trace, What::Logged(inspect::kept_line(line)));
        }
    }

    fn account_token<'a>(
        &'a self,
        from: &'a NodeIdentity,
    ) -> BoxFuture<'a, Result<Option<AccountToken>, NodeError>> {
        Box::pin(async move {
            let shared =
                self.0.upgrade().ok_or_else(|| NodeError::cancelled("the runtime has stopped"))?;
            shared.account_token(&from.namespace, &from.flow).await
        })
    }

    fn report(&self, from: &NodeIdentity, error: &NodeError) {
        let Some(shared) = self.0.upgrade() else { return };
        let key = NodeKey { namespace: from.namespace.clone(), name: from.node.clone() };
        if let Ok(instance) = (Runtime { shared }).instance(&key) {
            instance.count_error(error);
        }
    }
}

impl Runtime {
    /// A runtime for these modules, with no nodes yet.
    pub fn new(modules: Vec<Module>) -> Self {
        // A lone process leads for good; the sender is dropped and the value stays.
        Self::with_leadership(modules, watch::channel(true).1)
    }

    /// A runtime whose triggers run only while `leader` says this replica leads (see
    /// `weir_store::lease`); every replica handles deliveries.
    pub fn with_leadership(modules: Vec<Module>, leader: watch::Receiver<bool>) -> Self {
        let shared = Arc::new_cyclic(|weak| Shared {
            modules,
            nodes: RwLock::new(HashMap::new()),
            emitter: Arc::new(Router(Weak::clone(weak))),
            leader,
            peers: Peers::default(),
            wiring: Wiring::default(),
            accounts: OnceLock::new(),
            secrets: OnceLock::new(),
            hosting: AtomicBool::new(false),
            flows: Flows::default(),
            events: broadcast::channel(BACKLOG).0,
            arrivals: tokio::sync::Notify::new(),
        });
        Self { shared }
    }

    /// Sends deliveries for `node`, a node of `component` that runs in another module, to
    /// that module's `replicas`.
    pub fn route(&self, node: NodeKey, component: &str, replicas: Replicas) {
        self.shared.peers.route(node, component, replicas);
        self.shared.arrivals.notify_waiters();
    }

    /// Forgets where a node of another module runs.
    pub fn unroute(&self, node: &NodeKey) {
        self.shared.peers.unroute(node);
    }

    /// Presents `bearer` on every call to another module (in a cluster, where modules answer
    /// only authenticated callers). The first one given stays.
    pub fn present(&self, bearer: Bearer) {
        self.shared.peers.present(bearer);
    }

    /// Makes nodes act as their flows' ServiceAccounts, with tokens from `accounts` (in a
    /// cluster). The first one given stays.
    pub fn act_as(&self, accounts: Arc<dyn Accounts>) {
        let _ = self.shared.accounts.set(accounts);
    }

    /// Reads secret settings given by reference from `source`. The first one given stays;
    /// without one, a node whose settings hold a reference does not build.
    pub fn read_secrets_with(&self, source: Arc<dyn SecretValues>) {
        let _ = self.shared.secrets.set(source);
    }

    /// Whether the runtime is hosting: its host published the modules and applied the nodes
    /// the store holds, so it runs what it should (readiness).
    pub fn hosting(&self) -> bool {
        self.shared.hosting.load(Ordering::Relaxed)
    }

    /// Says whether the runtime is hosting (its host does).
    pub(crate) fn set_hosting(&self, hosting: bool) {
        self.shared.hosting.store(hosting, Ordering::Relaxed);
    }

    /// Takes in a flow as the store holds it: a suspended flow's triggers stop, and start
    /// again when it is resumed.
    pub fn follow_flow(&self, flow: &weir_model::Flow) {
        self.shared.flows.follow(flow);
    }

    /// Forgets a deleted flow.
    pub fn forget_flow(&self, namespace: &str, name: &str) {
        self.shared.flows.forget(namespace, name);
    }

    /// The flows followed, as `(namespace, name)`.
    pub fn followed_flows(&self) -> Vec<(String, String)> {
        self.shared.flows.keys()
    }

    /// Refuses to start a run at `key` while its flow is suspended (deliveries of runs under
    /// way go on).
    pub fn may_start_run(&self, key: &NodeKey) -> Result<(), NodeError> {
        let instance = self.instance(key)?;
        let flow = &instance.identity.flow;
        if self.shared.flows.suspended(&key.namespace, flow) {
            return Err(NodeError::invalid(format!(
                "flow {}/{flow} is suspended: it starts no new run until spec.suspend is false",
                key.namespace
            )));
        }
        Ok(())
    }

    /// Records the flow and edges of a node of any module, as the store holds them, for
    /// [`Runtime::check_edge`].
    pub fn wire(&self, key: NodeKey, flow_node: &FlowNode) {
        self.shared.wiring.wire(key, flow_node);
    }

    /// Forgets the edges of a node that is gone.
    pub fn unwire(&self, key: &NodeKey) {
        self.shared.wiring.unwire(key);
    }

    /// Whether the store holds an edge from `source`'s `port` to `target`'s `target_port` in
    /// one flow, waiting a moment for a change this process has not heard of yet.
    pub async fn check_edge(
        &self,
        source: &NodeKey,
        port: &str,
        target: &NodeKey,
        target_port: &str,
    ) -> Result<(), Unwired> {
        self.shared.wiring.check(source, port, target, target_port).await
    }

    /// Whether this runtime runs the nodes of `module`.
    pub fn hosts(&self, module: &str) -> bool {
        self.shared.modules.iter().any(|m| m.name() == module)
    }

    /// Builds (or rebuilds, after a change) the node a FlowNode describes. Start and change
    /// take this one path: build the new instance first, then stop the old one and put the new
    /// one in its place. A node that fails to build is stopped and left out.
    /// Secret settings given by reference are read first, as the node's flow's account.
    pub async fn apply(&self, flow_node: &FlowNode) -> Result<(), BuildError> {
        let key = key_of(flow_node)?;
        match self.settings_of(&key, &flow_node.spec).await {
            Ok(settings) => self.put(key, flow_node, &settings).await,
            Err(err) => {
                self.remove(&key).await;
                Err(err)
            }
        }
    }

    /// Builds a node whose settings refer to Secrets again when they now hold other values
    /// (or it did not build before); says whether it did. A node whose Secrets cannot be read
    /// just now keeps running as it was.
    pub async fn refresh(&self, flow_node: &FlowNode) -> Result<bool, BuildError> {
        let key = key_of(flow_node)?;
        let settings = self.settings_of(&key, &flow_node.spec).await?;
        let built = self
            .shared
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map(|i| i.settings_digest);
        if built == Some(digest(&settings)) {
            return Ok(false);
        }
        self.put(key, flow_node, &settings).await.map(|()| true)
    }

    /// The node's settings with the values of the Secrets they refer to in place.
    async fn settings_of(&self, key: &NodeKey, spec: &FlowNodeSpec) -> Result<Value, BuildError> {
        let mut settings = Value::Object(spec.settings.clone());
        if !secret_ref::holds_reference(&settings) {
            return Ok(settings);
        }
        let schema = self
            .registration(spec)?
            .descriptor()
            .map_err(BuildError::Settings)?
            .settings_schema
            .unwrap_or_default();
        let references = secret_ref::references(&schema, &settings).map_err(|error| {
            BuildError::Secret { field: error.path, error: NodeError::invalid(error.message) }
        })?;
        for Referred { pointer, reference } in references {
            let failed = |error| BuildError::Secret {
                field: format!("spec.settings{}", field_path(&pointer)),
                error,
            };
            let source = self.shared.secrets.get().ok_or_else(|| {
                failed(NodeError::invalid(
                    "this process reads no Secrets: give the value itself".to_owned(),
                ))
            })?;
            let account = self
                .shared
                .account_token(&key.namespace, spec.flow.as_str())
                .await
                .map_err(failed)?;
            let value =
                source.read(&key.namespace, account.as_ref(), &reference).await.map_err(failed)?;
            secret_ref::fill(&mut settings, &pointer, value);
        }
        Ok(settings)
    }

    /// Builds the node from `settings` and puts it in place of the one running, if any.
    async fn put(
        &self,
        key: NodeKey,
        flow_node: &FlowNode,
        settings: &Value,
    ) -> Result<(), BuildError> {
        let kept =
            self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner).get(&key).map_or_else(
                || {
                    Arc::new(NodeState::new(
                        flow_node.status.as_ref().and_then(|s| s.state.clone()).unwrap_or_default(),
                    ))
                },
                |previous| Arc::clone(&previous.state),
            );
        let built = self.build(&key, flow_node, settings, kept);
        let previous = {
            let mut nodes = self.shared.nodes.write().unwrap_or_else(PoisonError::into_inner);
            match &built {
                Ok(instance) => {
                    self.shared.arrivals.notify_waiters();
                    nodes.insert(key.clone(), Arc::clone(instance))
                }
                Err(_) => nodes.remove(&key),
            }
        };
        if let Some(previous) = previous {
            previous.stop().await;
        }
        let instance = built?;
        self.start_trigger(&instance, flow_node);
        Ok(())
    }

    /// Stops a node and forgets it.
    pub async fn remove(&self, key: &NodeKey) {
        let removed = self.shared.nodes.write().unwrap_or_else(PoisonError::into_inner).remove(key);
        if let Some(instance) = removed {
            instance.stop().await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Instance>> = self
            .shared
            .nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, i)| i)
            .collect();
        join_all(all.iter().map(|instance| instance.stop())).await;
    }

    /// Delivers a message that another module sent along an edge: the sender mapped it and
    /// retries it; this side checks it against the port's schema and the hop limit.
    pub async fn receive(
        &self,
        target: &NodeKey,
        port: &str,
        message: Value,
        run: Run,
    ) -> Result<Value, NodeError> {
        if run.hops > HOP_LIMIT {
            return Err(NodeError::invalid(format!(
                "node {target}: the run went {HOP_LIMIT} hops deep; the flow loops without end"
            )));
        }
        // During a rollout the node may still be starting here, or run on another replica by
        // now: the sender's edge tries again.
        let instance =
            self.instance(target).map_err(|missing| NodeError::transient(missing.message()))?;
        self.runs_here(&instance)?;
        fit(&instance, port, &message)?;
        self.handle_at_depth(&instance, port, message, run).await
    }

    /// Delivers a message to a node's input port from outside any flow (`weir send`, the
    /// editor, another module), starting a run with it.
    pub async fn send(
        &self,
        target: &NodeKey,
        port: &str,
        message: Value,
    ) -> Result<Value, NodeError> {
        self.may_start_run(target)?;
        let run = Run { trigger: Arc::new(message.clone()), ..Run::default() };
        let instance = self.instance(target)?;
        self.runs_here(&instance)?;
        fit(&instance, port, &message)?;
        self.handle(&instance, port, message, run).await
    }

    /// Refuses, as transient, a message for a trigger's node on a replica that does not lead:
    /// the leader runs the trigger, so its control messages must go there (the sender tries
    /// again once it knows the leader).
    fn runs_here(&self, instance: &Instance) -> Result<(), NodeError> {
        if instance.leader_only && !self.leads() {
            return Err(NodeError::transient(format!(
                "node {}/{} is a trigger, which only the module's leader runs; this replica does \
                 not lead",
                instance.identity.namespace, instance.identity.node
            )));
        }
        Ok(())
    }

    /// The message counters of a running node.
    pub fn counters(&self, key: &NodeKey) -> Option<weir_model::Counters> {
        self.shared
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|i| i.counters())
    }

    /// A running node's most recent failure: its kind, message and time.
    pub fn last_error(&self, key: &NodeKey) -> Option<(weir_sdk::ErrorKind, String, SystemTime)> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let Failed { kind, message, at } = nodes.get(key)?.last_error()?;
        Some((kind, message, at))
    }

    /// What a running node keeps as its state (null when nothing).
    pub fn state(&self, key: &NodeKey) -> Option<Value> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        Some(nodes.get(key)?.state.get())
    }

    /// What a running node says it cannot do now.
    pub fn degraded(&self, key: &NodeKey) -> Option<String> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        nodes.get(key)?.state.degraded()
    }

    /// Every running node with its counters.
    pub fn node_counters(&self) -> Vec<(Arc<NodeIdentity>, weir_model::Counters)> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> =
            nodes.values().map(|i| (Arc::clone(&i.identity), i.counters())).collect();
        all.sort_by(|a, b| (&a.0.namespace, &a.0.node).cmp(&(&b.0.namespace, &b.0.node)));
        all
    }

    /// The gauges each node reported, by node.
    pub(crate) fn node_gauges(&self) -> Vec<(Arc<NodeIdentity>, Vec<weir_sdk::Family>)> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = nodes
            .values()
            .map(|i| (Arc::clone(&i.identity), i.state.gauges().snapshot()))
            .filter(|(_, gauges)| !gauges.is_empty())
            .collect();
        all.sort_by(|a, b| (&a.0.namespace, &a.0.node).cmp(&(&b.0.namespace, &b.0.node)));
        all
    }

    /// Whether this replica leads, and so runs the triggers.
    pub fn leads(&self) -> bool {
        *self.shared.leader.borrow()
    }

    /// Whether this replica leads, as it changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.shared.leader.clone()
    }

    /// How many deliveries to other modules were answered and how many failed.
    pub(crate) fn remote_outcomes(&self) -> (u64, u64) {
        self.shared.peers.outcomes()
    }

    pub(crate) fn remote_latency(&self) -> &crate::metrics::Histogram {
        self.shared.peers.latency()
    }

    /// Watches what happens at the nodes from now on. A watcher that falls more than a
    /// thousand events behind misses the oldest ones (and learns how many).
    pub fn inspect(&self) -> broadcast::Receiver<Arc<Event>> {
        self.shared.events.subscribe()
    }

    /// A running node's ports, as its settings resolved them.
    pub fn ports(&self, key: &NodeKey) -> Option<Vec<weir_model::flow_node::ResolvedPort>> {
        let nodes = self.shared.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let instance = nodes.get(key)?;
        Some(
            instance
                .node
                .ports()
                .iter()
                .filter_map(|port| {
                    let descriptor = port.descriptor().ok()?;
                    Some(weir_model::flow_node::ResolvedPort {
                        name: descriptor.name,
                        direction: descriptor.direction,
                        schema: descriptor.schema,
                    })
                })
                .collect(),
        )
    }

    /// The modules this runtime hosts.
    pub fn modules(&self) -> &[Module] {
        &self.shared.modules
    }

    /// The generation of the spec a node was built from, when it runs.
    pub fn generation(&self, key: &NodeKey) -> Option<Option<i64>> {
        self.shared
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|i| i.generation)
    }

    /// The registration of the component a node names.
    fn registration(
        &self,
        spec: &FlowNodeSpec,
    ) -> Result<&weir_sdk::module::Registration, BuildError> {
        self.shared
            .modules
            .iter()
            .find(|m| m.name() == spec.module.as_str())
            .and_then(|m| m.find(spec.component.as_str()))
            .ok_or_else(|| BuildError::UnknownComponent {
                module: spec.module.to_string(),
                component: spec.component.to_string(),
            })
    }

    fn build(
        &self,
        key: &NodeKey,
        flow_node: &FlowNode,
        settings: &Value,
        state: Arc<NodeState>,
    ) -> Result<Arc<Instance>, BuildError> {
        let spec = &flow_node.spec;
        let registration = self.registration(spec)?;
        let node = registration.build(settings).map_err(BuildError::Settings)?;
        let edges = spec
            .edges
            .iter()
            .enumerate()
            .map(|(i, e)| Edge::compile(key, i, e))
            .collect::<Result<_, _>>()?;
        let mut inputs = HashMap::new();
        for port in node.ports().iter().filter(|p| p.direction() == Direction::In) {
            let validator = jsonschema::validator_for(port.schema()).map_err(|err| {
                BuildError::PortSchema { port: port.name().to_owned(), problem: err.to_string() }
            })?;
            inputs.insert(port.name().to_owned(), validator);
        }
        let identity = NodeIdentity {
            namespace: key.namespace.clone(),
            flow: spec.flow.to_string(),
            node: key.name.clone(),
        };
        let generation = flow_node.metadata.generation;
        let mut instance =
            Instance::new(identity, generation, digest(settings), node, edges, inputs, state);
        instance.leader_only = registration.is_trigger() && !registration.runs_on_every_replica();
        Ok(Arc::new(instance))
    }

    fn start_trigger(&self, instance: &Arc<Instance>, flow_node: &FlowNode) {
        let Some(registration) = self.registration(&flow_node.spec).ok().filter(|r| r.is_trigger())
        else {
            return;
        };
        // A trigger that serves what reaches this replica runs here whoever leads: a closed
        // channel that says "leading" for good.
        let leader = if registration.runs_on_every_replica() {
            watch::channel(true).1
        } else {
            self.shared.leader.clone()
        };
        let (runtime, running) = (self.clone(), Arc::clone(instance));
        let task = tokio::spawn(async move { runtime.lead(&running, leader).await });
        *instance.trigger.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Runs a trigger's loop while `leader` says it may (this replica leads, or the trigger
    /// runs on every replica) and its flow is not suspended: starts it when both hold, cancels
    /// it when either stops holding, until the node stops.
    async fn lead(&self, instance: &Arc<Instance>, mut leader: watch::Receiver<bool>) {
        let identity = &instance.identity;
        let mut suspended = self.shared.flows.watch_suspended(&identity.namespace, &identity.flow);
        let mut panics = 0;
        loop {
            tokio::select! {
                // Closed without ever leading: a follower for good.
                go = may_run(&mut leader, &mut suspended, true) => if !go { return },
                () = instance.lifetime.cancelled() => return,
            }
            let term = instance.lifetime.child_token();
            let context = self.context(instance, Run { cancel: term.clone(), ..Run::default() });
            // A panic in the trigger or anywhere down its runs' chains ends here, not the task.
            let run = std::panic::AssertUnwindSafe(instance.node.run(&context)).catch_unwind();
            tokio::pin!(run);
            let finished = tokio::select! {
                outcome = &mut run => Some(outcome),
                _ = may_run(&mut leader, &mut suspended, false) => None,
            };
            let ended_by_itself = finished.is_some();
            let outcome = match finished {
                Some(outcome) => outcome,
                None => {
                    // Lost the lead or suspended: let the loop wind down through its
                    // cancellation.
                    tracing::info!(node = %instance.identity, "stopping the trigger: not leading, or the flow is suspended");
                    term.cancel();
                    run.await
                }
            };
            let (outcome, panicked) = match outcome {
                Ok(outcome) => (outcome, false),
                Err(panic) => (Err(panicked(&*panic)), true),
            };
            if let Err(err) = outcome {
                instance.count_error(&err);
                tracing::warn!(node = %instance.identity, error = %err, "the trigger stopped with an error");
            }
            if ended_by_itself && !panicked {
                return;
            }
            if panicked {
                // Started again, later after each panic in a row, until it runs or is stopped.
                panics += 1;
                let wait = TRIGGER_RESTART
                    .saturating_mul(1 << (panics - 1).min(6))
                    .min(TRIGGER_RESTART_MAX);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = instance.lifetime.cancelled() => return,
                }
            } else {
                panics = 0;
            }
        }
    }

    fn instance(&self, key: &NodeKey) -> Result<Arc<Instance>, NodeError> {
        self.shared
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| NodeError::invalid(format!("node {key} is not running")))
    }

    fn context(&self, instance: &Instance, run: Run) -> Context {
        Context::new(
            Arc::clone(&instance.identity),
            Arc::clone(&instance.outputs),
            Arc::clone(&self.shared.emitter),
            Arc::clone(&instance.state),
            run,
        )
    }

    /// Whether anyone watches the events; when nobody does, none are made.
    fn watched(&self) -> bool {
        self.shared.events.receiver_count() > 0
    }

    fn publish(&self, instance: &Instance, port: &str, trace: TraceContext, what: What) {
        let event = Event {
            at: SystemTime::now(),
            node: Arc::clone(&instance.identity),
            port: port.to_owned(),
            trace,
            what,
        };
        // No watcher left since `watched` was asked: nobody misses the event.
        let _ = self.shared.events.send(Arc::new(event));
    }

    /// Has a node handle one message, counting it.
    async fn handle(
        &self,
        instance: &Arc<Instance>,
        port: &str,
        message: Value,
        run: Run,
    ) -> Result<Value, NodeError> {
        instance.count_in();
        let started = self.watched().then(|| {
            let shown = inspect::kept(instance.redacted(port, &message));
            self.publish(instance, port, run.trace, What::Received(shown));
            Instant::now()
        });
        let trace = run.trace;
        let span = tracing::debug_span!(
            "handle",
            node = %instance.identity,
            port,
            trace_id = %trace.trace_hex(),
        );
        let context = self.context(instance, run);
        // A panic in the node fails this delivery, not the task that carries the run.
        let handled = std::panic::AssertUnwindSafe(instance.node.handle(&context, port, message));
        let result = handled.catch_unwind().instrument(span).await.unwrap_or_else(|panic| {
            Err(NodeError::internal(format!(
                "node {} panicked: {}",
                instance.identity,
                panic_message(&*panic)
            )))
        });
        if let Err(err) = &result {
            instance.count_error(err);
        }
        if let Some(started) = started {
            let elapsed = started.elapsed();
            let what = match &result {
                Ok(_) => What::Answered { elapsed },
                Err(err) => What::Failed { kind: err.kind(), message: err.to_string(), elapsed },
            };
            self.publish(instance, port, trace, what);
        }
        result
    }

    /// [`Runtime::handle`], moved to a task of its own every [`HOPS_PER_TASK`] hops; the task is
    /// aborted if the delivery is dropped (a timeout, a cancelled caller).
    async fn handle_at_depth(
        &self,
        target: &Arc<Instance>,
        port: &str,
        message: Value,
        run: Run,
    ) -> Result<Value, NodeError> {
        if !run.hops.is_multiple_of(HOPS_PER_TASK) {
            return self.handle(target, port, message, run).await;
        }
        let (runtime, target, port) = (self.clone(), Arc::clone(target), port.to_owned());
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            runtime.handle(&target, &port, message, run).await
        }));
        task.await.unwrap_or_else(|err| Err(NodeError::internal(format!("a node panicked: {err}"))))
    }

    /// Where an edge's target node runs: here, or in a peer module. A node that runs nowhere
    /// yet is waited for a moment, as the nodes of a flow applied at once start one by one and
    /// a trigger's first run can come before its targets; after that the failure is transient,
    /// since a node starting or a module restarting comes back.
    async fn target(&self, edge: &Edge, run: &Run) -> Result<Target, NodeError> {
        let deadline = tokio::time::Instant::now() + TARGET_GRACE;
        loop {
            // Listening before looking, so an arrival between the two is not missed.
            let arrival = self.shared.arrivals.notified();
            let mut arrival = std::pin::pin!(arrival);
            arrival.as_mut().enable();
            let missing = match self.instance(&edge.target) {
                Ok(local) => return Ok(Target::Local(local)),
                Err(missing) => missing,
            };
            if self.shared.peers.routes(&edge.target) {
                return Ok(Target::Remote);
            }
            tokio::select! {
                () = arrival => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(NodeError::transient(missing.message()).context(format!("edge {edge}")));
                }
                () = run.cancel.cancelled() => {
                    return Err(NodeError::transient(missing.message()).context(format!("edge {edge}")));
                }
            }
        }
    }

    async fn deliver(&self, edge: &Edge, message: &Value, run: &Run) -> Result<Value, NodeError> {
        let hops = run.hops + 1;
        if hops > HOP_LIMIT {
            return Err(NodeError::invalid(format!(
                "edge {edge}: the run went {HOP_LIMIT} hops deep; the flow loops without end"
            )));
        }
        let mapped = match &edge.mapping {
            Some(mapping) => map(mapping, message, &run.trigger)
                .await
                .map_err(|err| NodeError::invalid(format!("edge {edge}: mapping {err}")))?,
            None => message.clone(),
        };
        let target = self.target(edge, run).await?;
        if let Target::Local(local) = &target {
            // The receiving module checks a remote delivery against its port's schema.
            fit(local, &edge.target_port, &mapped)
                .map_err(|err| err.context(format!("edge {edge}")))?;
        }
        let mut mapped = Some(mapped);
        let mut attempt = 1;
        // The replica whose call just failed, for the next attempt to pass over.
        let mut failed_at: Option<String> = None;
        loop {
            // Keep a copy only while another attempt may need it.
            let message = if attempt < edge.attempts { mapped.clone() } else { mapped.take() };
            let child = Run {
                trigger: Arc::clone(&run.trigger),
                hops,
                cancel: run.cancel.clone(),
                trace: run.trace.child(),
            };
            let message = message.unwrap_or_default();
            let handled: BoxFuture<'_, Result<Value, NodeError>> = match &target {
                Target::Local(local) => {
                    Box::pin(self.handle_at_depth(local, &edge.target_port, message, child))
                }
                Target::Remote => Box::pin(async {
                    let peers = &self.shared.peers;
                    let endpoint =
                        peers.pick(&edge.target, failed_at.as_deref()).ok_or_else(|| {
                            NodeError::transient(format!(
                                "edge {edge}: no replica of the target's module serves now"
                            ))
                        })?;
                    let delivered = peers
                        .deliver(
                            &endpoint,
                            (&edge.source.name, &edge.port),
                            &edge.target,
                            &edge.target_port,
                            &message,
                            &child,
                            edge.timeout,
                        )
                        .await;
                    if delivered.is_err() {
                        failed_at = Some(endpoint);
                    }
                    delivered
                }),
            };
            // Dropping the delivery on a timeout or a cancelled run cancels everything under it.
            let result = tokio::select! {
                outcome = tokio::time::timeout(edge.timeout, handled) => outcome.unwrap_or_else(|_| {
                    Err(NodeError::cancelled(format!("edge {edge}: no answer within {:?}", edge.timeout)))
                }),
                () = run.cancel.cancelled() => return Err(NodeError::cancelled(format!("edge {edge}: the run was cancelled"))),
            };
            match result {
                Err(err) if err.is_retryable() && attempt < edge.attempts => {
                    // A server that said how long to wait (`Retry-After`) is waited for.
                    let wait = edge.backoff(attempt).max(err.retry_after().unwrap_or_default());
                    tracing::debug!(%edge, attempt, ?wait, error = %err, "retrying a transient failure");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = run.cancel.cancelled() => return Err(NodeError::cancelled(format!("edge {edge}: the run was cancelled"))),
                    }
                    attempt += 1;
                }
                // This edge owns the retries of what failed below it: the edges above pass
                // the failure on rather than running this subtree again.
                Err(err) if err.is_retryable() && edge.attempts > 1 => {
                    return Err(err.with_retries_spent());
                }
                other => return other,
            }
        }
    }
}

impl Runtime {
    async fn emit(
        &self,
        from: &NodeIdentity,
        port: &str,
        message: Value,
        run: &Run,
    ) -> Result<Value, NodeError> {
        let key = NodeKey { namespace: from.namespace.clone(), name: from.node.clone() };
        let source = self.instance(&key)?;
        source.count_out();
        let mut message = message;
        if port == weir_sdk::ERROR_PORT {
            source.conceal_failed_input(&mut message);
        }
        if self.watched() {
            let shown = inspect::kept(source.redacted(port, &message));
            self.publish(&source, port, run.trace, What::Emitted(shown));
        }
        let mut edges = source.edges.iter().filter(|e| e.port == port);
        let (first, second) = (edges.next(), edges.next());
        let (Some(first), Some(second)) = (first, second) else {
            // No edge: the message goes nowhere. One edge: its answer is the answer.
            return match first {
                Some(edge) => self.deliver(edge, &message, run).await,
                None => Ok(Value::Null),
            };
        };
        // Every edge gets the message; the caller gets the first edge's answer, or the first
        // failure in edge order once all have finished.
        let all = [first, second].into_iter().chain(edges);
        let results = join_all(all.map(|edge| self.deliver(edge, &message, run))).await;
        let mut answer = Value::Null;
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(value) if index == 0 => answer = value,
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(answer)
    }
}

/// How long a trigger that panicked waits before it starts again; doubled after each panic in
/// a row, up to [`TRIGGER_RESTART_MAX`].
const TRIGGER_RESTART: Duration = Duration::from_secs(1);
const TRIGGER_RESTART_MAX: Duration = Duration::from_secs(60);

/// A trigger's panic as an internal failure.
fn panicked(panic: &(dyn std::any::Any + Send)) -> NodeError {
    NodeError::internal(format!("the trigger panicked: {}", panic_message(panic)))
}

/// What a panic said, when it said something.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// Waits until a trigger may run (`want`) or may not (`!want`): it may while this replica leads
/// and its flow is not suspended. False when that can never come (a follower for good).
async fn may_run(
    leader: &mut watch::Receiver<bool>,
    suspended: &mut watch::Receiver<bool>,
    want: bool,
) -> bool {
    loop {
        let may = *leader.borrow_and_update() && !*suspended.borrow_and_update();
        if may == want {
            return true;
        }
        tokio::select! {
            changed = leader.changed() => {
                // A closed channel keeps its last value: leading, or following, for good.
                if changed.is_err() {
                    if !*leader.borrow() && want {
                        return false;
                    }
                    // Only the suspension can change now.
                    if suspended.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
            changed = suspended.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Where a delivery goes: a node of this process, or the endpoint of the module running it.
enum Target {
    Local(Arc<Instance>),
    Remote,
}

/// Checks a message against the schema of a node's input port.
fn fit(target: &Instance, port: &str, message: &Value) -> Result<(), NodeError> {
    let Some((field, problem)) = target.inputs.get(port).and_then(|v| misfit(v, message)) else {
        return Ok(());
    };
    let field = if field.is_empty() { "the message".to_owned() } else { format!("field {field}") };
    Err(NodeError::invalid(format!(
        "the message does not fit {}.{port}: {field}: {problem}",
        target.identity.node
    )))
}

/// The first way `value` does not fit the schema of `validator`: the JSON pointer of the field
/// (empty for the value itself) and what is wrong. The value may be a secret and the message
/// goes to status and logs, so it names the value's type, never the value.
pub fn misfit(validator: &jsonschema::Validator, value: &Value) -> Option<(String, String)> {
    let problem = validator.iter_errors(value).next()?;
    let shown = match problem.instance().as_ref() {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Some((problem.instance_path().to_string(), problem.masked_with(shown).to_string()))
}
