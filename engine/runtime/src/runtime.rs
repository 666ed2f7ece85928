//! The runtime: builds and stops node instances, runs triggers while they may run, and takes
//! in messages from outside a flow and from other modules (delivery along edges is
//! `delivery.rs`'s).

use std::{
    sync::{
        Arc, OnceLock, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use futures::{FutureExt as _, future::join_all};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use weir_model::{
    Direction, FlowNode, FlowNodeSpec,
    secret_ref::{self, Referred, field_path},
};
use weir_sdk::{Module, NodeError, NodeIdentity, NodeState, Run};
use weir_store::WatchEvent;

use crate::{
    delivery::{Attempt, Outlet, admit, panic_message},
    edge::Edge,
    flows::Flows,
    histogram::Histogram,
    inspect::{BACKLOG, Event},
    instance::{Failed, Instance},
    key::NodeKey,
    peers::Peers,
    replicas::Replicas,
    routing::Routing,
    shared::Shared,
    spans::Spans,
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

impl Runtime {
    /// A runtime for these modules, with no nodes yet.
    pub fn new(modules: Vec<Module>) -> Self {
        // A lone process leads for good; the sender is dropped and the value stays.
        Self::with_leadership(modules, watch::channel(true).1)
    }

    /// A runtime whose triggers run only while `leader` says this replica leads (see
    /// `weir_store::lease`); every replica handles deliveries.
    pub fn with_leadership(modules: Vec<Module>, leader: watch::Receiver<bool>) -> Self {
        let shared = Arc::new(Shared {
            modules,
            routing: Routing::default(),
            leader,
            peers: Peers::default(),
            wiring: Wiring::default(),
            accounts: OnceLock::new(),
            secrets: OnceLock::new(),
            spans: OnceLock::new(),
            hosting: AtomicBool::new(false),
            flows: Flows::default(),
            events: broadcast::channel(BACKLOG).0,
        });
        Self { shared }
    }

    /// Sends deliveries for `node`, a node of `component` in another module, `module`, to
    /// where that module serves.
    pub fn route(&self, node: NodeKey, module: &str, component: &str) {
        self.shared.routing.route(node, module, component);
    }

    /// Forgets a node of another module; says whether it was one.
    pub fn unroute(&self, node: &NodeKey) -> bool {
        self.shared.routing.unroute(node)
    }

    /// Takes in a change of the `Module` resources: where each module serves.
    pub fn follow_modules(&self, event: &WatchEvent) {
        self.shared.routing.follow_modules(event);
    }

    /// Says that `module` serves at `replicas`: a route given by hand rather than read from a
    /// `Module` resource (benchmarks and tests that serve a runtime themselves).
    pub fn serve(&self, module: &str, replicas: Replicas) {
        self.shared.routing.serve(module, replicas);
    }

    /// Presents `bearer` on every call to another module (in a cluster, where modules answer
    /// only authenticated callers). The first one given stays.
    pub fn present(&self, bearer: Bearer) {
        self.shared.peers.present(bearer);
    }

    /// Records a span for every delivery to this runtime's nodes in `spans` (an exporter of
    /// traces); the first one set stays.
    pub fn export_spans(&self, spans: Arc<dyn Spans>) {
        let _ = self.shared.spans.set(spans);
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
        self.refuse_if_suspended(&instance)
    }

    fn refuse_if_suspended(&self, instance: &Instance) -> Result<(), NodeError> {
        let NodeIdentity { namespace, flow, .. } = &*instance.identity;
        if self.shared.flows.suspended(namespace, flow) {
            return Err(NodeError::invalid(format!(
                "flow {namespace}/{flow} is suspended: it starts no new run until spec.suspend is \
                 false"
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
        let built = self.shared.routing.local(&key).map(|i| i.settings_digest);
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
        let kept = self.shared.routing.local(&key).map_or_else(
            || {
                Arc::new(NodeState::new(
                    flow_node.status.as_ref().and_then(|s| s.state.clone()).unwrap_or_default(),
                ))
            },
            |previous| Arc::clone(&previous.state),
        );
        let built = self.build(&key, flow_node, settings, kept);
        let previous = match &built {
            Ok(instance) => self.shared.routing.put(key, Arc::clone(instance)),
            Err(_) => self.shared.routing.take(&key),
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
        if let Some(instance) = self.shared.routing.take(key) {
            instance.stop().await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        let all = self.shared.routing.take_all();
        join_all(all.iter().map(|instance| instance.stop())).await;
    }

    /// Delivers a message that another module sent along an edge: the sender mapped it and
    /// retries it; this side admits it (the port's schema and the hop limit).
    pub async fn receive(
        &self,
        target: &NodeKey,
        port: &str,
        message: Value,
        run: Run,
        attempt: u32,
    ) -> Result<Value, NodeError> {
        // During a rollout the node may still be starting here, or run on another replica by
        // now: the sender's edge tries again.
        let instance =
            self.instance(target).map_err(|missing| NodeError::transient(missing.message()))?;
        self.runs_here(&instance)?;
        admit(&instance, port, &message, run.hops)?;
        self.shared.handle_at_depth(&instance, port, message, run, Attempt::now(attempt)).await
    }

    /// Delivers a message to a node's input port from outside any flow (`weir send`, the
    /// editor, another module), starting a run with it.
    pub async fn send(
        &self,
        target: &NodeKey,
        port: &str,
        message: Value,
    ) -> Result<Value, NodeError> {
        let instance = self.instance(target)?;
        self.refuse_if_suspended(&instance)?;
        self.runs_here(&instance)?;
        let run = Run {
            trigger: weir_sdk::Trigger::new(message.clone()),
            // The run's first delivery.
            trace: weir_sdk::TraceContext::default().child(),
            ..Run::default()
        };
        admit(&instance, port, &message, run.hops)?;
        self.shared.handle(&instance, port, message, run, Attempt::now(1)).await
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
        self.shared.routing.local(key).map(|i| i.counters())
    }

    /// A running node's most recent failure: its kind, message and time.
    pub fn last_error(&self, key: &NodeKey) -> Option<(weir_sdk::ErrorKind, String, SystemTime)> {
        let Failed { kind, message, at } = self.shared.routing.local(key)?.last_error()?;
        Some((kind, message, at))
    }

    /// What a running node keeps as its state (null when nothing).
    pub fn state(&self, key: &NodeKey) -> Option<Value> {
        Some(self.shared.routing.local(key)?.state.get())
    }

    /// What a running node says it cannot do now.
    pub fn degraded(&self, key: &NodeKey) -> Option<String> {
        self.shared.routing.local(key)?.state.degraded()
    }

    /// Every running node with its counters.
    pub fn node_counters(&self) -> Vec<(Arc<NodeIdentity>, weir_model::Counters)> {
        let nodes = self.shared.routing.locals();
        let mut all: Vec<_> =
            nodes.iter().map(|i| (Arc::clone(&i.identity), i.counters())).collect();
        all.sort_by(|a, b| (&a.0.namespace, &a.0.node).cmp(&(&b.0.namespace, &b.0.node)));
        all
    }

    /// Every running node, for what `/metrics` shows of it beyond its counters (its delivery
    /// latency).
    pub(crate) fn local_nodes(&self) -> Vec<Arc<Instance>> {
        let mut all = self.shared.routing.locals();
        all.sort_by(|a, b| {
            (&a.identity.namespace, &a.identity.node)
                .cmp(&(&b.identity.namespace, &b.identity.node))
        });
        all
    }

    /// The gauges each node reported, by node.
    pub(crate) fn node_gauges(&self) -> Vec<(Arc<NodeIdentity>, Vec<weir_sdk::Family>)> {
        let nodes = self.shared.routing.locals();
        let mut all: Vec<_> = nodes
            .iter()
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

    pub(crate) fn remote_latency(&self) -> &Histogram {
        self.shared.peers.latency()
    }

    /// Watches what happens at the nodes from now on. A watcher that falls more than a
    /// thousand events behind misses the oldest ones (and learns how many).
    pub fn inspect(&self) -> broadcast::Receiver<Arc<Event>> {
        self.shared.events.subscribe()
    }

    /// A running node's ports, as its settings resolved them.
    pub fn ports(&self, key: &NodeKey) -> Option<Vec<weir_model::flow_node::ResolvedPort>> {
        let instance = self.shared.routing.local(key)?;
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

    /// The generation of the spec a node was built from: none while it does not run here, or
    /// when its spec carried none.
    pub fn built_generation(&self, key: &NodeKey) -> Option<i64> {
        self.shared.routing.local(key).and_then(|i| i.generation)
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
            .map(|(index, edge)| {
                Edge::compile(key, edge).map_err(|unmapped| BuildError::Mapping {
                    edge: index,
                    label: unmapped.label,
                    problems: unmapped.problems,
                })
            })
            .collect::<Result<_, _>>()?;
        let mut inputs = Vec::new();
        for port in node.ports().iter().filter(|p| p.direction() == Direction::In) {
            let validator = jsonschema::validator_for(port.schema()).map_err(|err| {
                BuildError::PortSchema { port: port.name().to_owned(), problem: err.to_string() }
            })?;
            inputs.push((port.name().to_owned(), validator));
        }
        let identity = NodeIdentity {
            namespace: key.namespace.clone(),
            flow: spec.flow.to_string(),
            node: key.name.clone(),
        };
        let generation = flow_node.metadata.generation;
        let leader_only = registration.is_trigger() && !registration.runs_on_every_replica();
        // The node emits through an outlet that holds its edges and finds the node again
        // without a lookup.
        Ok(Arc::new_cyclic(|me| {
            let outlet = Outlet::new(Arc::downgrade(&self.shared), Weak::clone(me), edges);
            let mut instance = Instance::new(
                identity,
                generation,
                digest(settings),
                node,
                Arc::new(outlet),
                inputs,
                state,
            );
            instance.leader_only = leader_only;
            instance
        }))
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
            let context = instance.context(Run { cancel: term.clone(), ..Run::default() });
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
        self.shared.instance(key)
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
