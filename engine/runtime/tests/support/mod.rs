//! Small components and helpers the runtime's tests share.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use weir_model::FlowNode;
use weir_runtime::{NodeKey, Runtime};
use weir_sdk::{Component, Context, Description, JsonSchema, Module, NodeError, Port, Value, json};

/// The `weir` binary's allocator (engine/src/main.rs), so that the benches and tests built
/// with these helpers run on the stack the binary gives a runtime.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Adds its tag to `.path` and passes the message on, answering with what downstream answered.
pub struct Relay {
    tag: String,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RelaySettings {
    /// Added to the message's path.
    tag: String,
}

impl Component for Relay {
    const NAME: &'static str = "relay";
    type Settings = RelaySettings;
    fn describe() -> Description {
        Description { label: "Relay", ..Description::default() }
    }
    fn ports(_: &RelaySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Value>("out")]
    }
    fn build(settings: RelaySettings) -> Result<Self, NodeError> {
        Ok(Self { tag: settings.tag })
    }
    async fn handle(&self, cx: &Context, _: &str, mut message: Value) -> Result<Value, NodeError> {
        if let Some(path) = message.get_mut("path").and_then(Value::as_array_mut) {
            path.push(json!(self.tag));
        }
        cx.emit("out", message).await
    }
}

/// Answers with what it received; its input only takes `{name: string}` when `typed`, and
/// `{user, password}` with a secret password when `login`.
pub struct Sink {
    refuse: bool,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SinkSettings {
    /// Accept only `{name: string}`.
    typed: bool,
    /// Accept only `{user: string, password: string}`; the password is secret.
    login: bool,
    /// Refuse every message, sending the failure (with the message) to an `error` output.
    refuse: bool,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct Person {
    name: String,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct Login {
    user: String,
    #[schemars(extend("x-weir-secret" = true))]
    password: String,
}

impl Component for Sink {
    const NAME: &'static str = "sink";
    type Settings = SinkSettings;
    fn describe() -> Description {
        Description { label: "Sink", ..Description::default() }
    }
    fn ports(settings: &SinkSettings) -> Vec<Port> {
        let mut ports = vec![match (settings.typed, settings.login) {
            (true, _) => Port::input::<Person>("in"),
            (_, true) => Port::input::<Login>("in"),
            _ => Port::input::<Value>("in"),
        }];
        if settings.refuse {
            ports.push(Port::error());
        }
        ports
    }
    fn build(settings: SinkSettings) -> Result<Self, NodeError> {
        Ok(Self { refuse: settings.refuse })
    }
    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        if self.refuse {
            return cx.fail(NodeError::invalid("refused"), message).await;
        }
        // Moved into the answer rather than through `json!`, which would serialize a copy.
        let mut answer = serde_json::Map::new();
        answer.insert("got".to_owned(), message);
        answer.insert("trigger".to_owned(), cx.trigger().clone());
        answer.insert("hops".to_owned(), cx.run().hops.into());
        Ok(Value::Object(answer))
    }
}

/// Fails its first `failures` calls with `kind` (`transient`, `panic`, else invalid), then
/// answers with the number of calls.
pub struct Flaky {
    failures: u32,
    kind: String,
    calls: AtomicU32,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FlakySettings {
    /// Calls that fail before one succeeds.
    failures: u32,
    /// `transient` or `invalid`.
    kind: String,
}

impl Component for Flaky {
    const NAME: &'static str = "flaky";
    type Settings = FlakySettings;
    fn describe() -> Description {
        Description { label: "Flaky", ..Description::default() }
    }
    fn ports(_: &FlakySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }
    fn build(settings: FlakySettings) -> Result<Self, NodeError> {
        Ok(Self { failures: settings.failures, kind: settings.kind, calls: AtomicU32::new(0) })
    }
    async fn handle(&self, _: &Context, _: &str, _: Value) -> Result<Value, NodeError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call <= self.failures {
            let message = format!("failure {call}");
            return Err(match self.kind.as_str() {
                "transient" => NodeError::transient(message),
                "panic" => panic!("{message}"),
                _ => NodeError::invalid(message),
            });
        }
        Ok(json!({ "calls": call }))
    }
}

/// Counts the messages it got in its kept state and answers with the count; its `step`
/// setting only exists to make a rebuild.
pub struct Tally;

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TallySettings {
    /// Ignored.
    step: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Count {
    count: u64,
}

impl Component for Tally {
    const NAME: &'static str = "tally";
    type Settings = TallySettings;
    fn describe() -> Description {
        Description { label: "Tally", ..Description::default() }
    }
    fn ports(_: &TallySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }
    fn build(_: TallySettings) -> Result<Self, NodeError> {
        Ok(Self)
    }
    async fn handle(&self, cx: &Context, _: &str, _: Value) -> Result<Value, NodeError> {
        let Count { count } = cx.state()?;
        cx.save_state(Count { count: count + 1 })?;
        Ok(json!(count + 1))
    }
}

/// Answers with the message it got, reading nothing else of the run.
pub struct Echo;

impl Component for Echo {
    const NAME: &'static str = "echo";
    type Settings = RelaySettings;
    fn describe() -> Description {
        Description { label: "Echo", ..Description::default() }
    }
    fn ports(_: &RelaySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }
    fn build(_: RelaySettings) -> Result<Self, NodeError> {
        Ok(Self)
    }
    async fn handle(&self, _: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        Ok(message)
    }
}

/// Waits until cancelled.
pub struct Stuck;

impl Component for Stuck {
    const NAME: &'static str = "stuck";
    type Settings = RelaySettings;
    fn describe() -> Description {
        Description { label: "Stuck", ..Description::default() }
    }
    fn ports(_: &RelaySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }
    fn build(_: RelaySettings) -> Result<Self, NodeError> {
        Ok(Self)
    }
    async fn handle(&self, cx: &Context, _: &str, _: Value) -> Result<Value, NodeError> {
        cx.cancelled().await;
        Err(NodeError::cancelled("stopped waiting"))
    }
}

/// Starts one run per entry of `runs`, then waits to be stopped; remembers being destroyed.
pub struct Trigger {
    runs: Vec<Value>,
    name: String,
    panic_once: bool,
}

/// Triggers that panicked already, by name.
static PANICKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub static DESTROYED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Triggers whose loop ended after being cancelled, by name.
pub static STOPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TriggerSettings {
    /// One run is started with each of these as its trigger message.
    runs: Vec<Value>,
    /// Remembered in the destroyed list.
    name: String,
    /// Panics the first time it runs (once per name).
    panic_once: bool,
}

impl Component for Trigger {
    const NAME: &'static str = "trigger";
    type Settings = TriggerSettings;
    fn describe() -> Description {
        Description { label: "Trigger", trigger: true, ..Description::default() }
    }
    fn ports(_: &TriggerSettings) -> Vec<Port> {
        vec![Port::output::<Value>("out")]
    }
    fn build(settings: TriggerSettings) -> Result<Self, NodeError> {
        Ok(Self { runs: settings.runs, name: settings.name, panic_once: settings.panic_once })
    }
    async fn handle(&self, _: &Context, port: &str, _: Value) -> Result<Value, NodeError> {
        Err(NodeError::invalid(format!("no input {port}")))
    }
    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        if self.panic_once {
            let mut panicked = PANICKED.lock().expect("panicked list");
            if !panicked.contains(&self.name) {
                panicked.push(self.name.clone());
                drop(panicked);
                panic!("boom");
            }
        }
        for trigger in &self.runs {
            cx.start_run(trigger.clone()).emit("out", trigger.clone()).await?;
        }
        cx.cancelled().await;
        STOPPED.lock().expect("stopped list").push(self.name.clone());
        Ok(())
    }
    async fn destroy(&self) {
        DESTROYED.lock().expect("destroyed list").push(self.name.clone());
    }
}

/// A [`Trigger`] that runs on every replica, leader or not, as a webhook does.
pub struct Serving(Trigger);

impl Component for Serving {
    const NAME: &'static str = "serving";
    const EVERY_REPLICA: bool = true;
    type Settings = TriggerSettings;
    fn describe() -> Description {
        Description { label: "Serving", trigger: true, ..Description::default() }
    }
    fn ports(settings: &TriggerSettings) -> Vec<Port> {
        Trigger::ports(settings)
    }
    fn build(settings: TriggerSettings) -> Result<Self, NodeError> {
        Trigger::build(settings).map(Self)
    }
    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        self.0.handle(cx, port, message).await
    }
    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        self.0.run(cx).await
    }
    async fn destroy(&self) {
        self.0.destroy().await;
    }
}

/// How long a test waits for something that should happen at once, before failing rather
/// than hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn eventually(condition: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the condition never held");
}

/// The test module: every component above.
pub fn module() -> Module {
    Module::new("test", "0.0.0")
        .component::<Relay>()
        .component::<Sink>()
        .component::<Flaky>()
        .component::<Stuck>()
        .component::<Trigger>()
        .component::<Serving>()
        .component::<Tally>()
}

pub fn runtime() -> Runtime {
    Runtime::new(vec![module()])
}

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
pub fn node(name: &str, component: &str, settings: Value, edges: Value) -> FlowNode {
    node_in("test", name, component, settings, edges)
}

/// A FlowNode of `module`.
#[allow(clippy::needless_pass_by_value)]
pub fn node_in(
    module: &str,
    name: &str,
    component: &str,
    settings: Value,
    edges: Value,
) -> FlowNode {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "FlowNode",
        "metadata": { "name": name, "namespace": "test", "generation": 1 },
        "spec": { "flow": "f", "module": module, "component": component, "settings": settings, "edges": edges },
    }))
    .expect("a valid FlowNode")
}

pub fn to(node: &str) -> Value {
    json!([{ "port": "out", "to": { "node": node, "port": "in" } }])
}

pub fn key(name: &str) -> NodeKey {
    NodeKey { namespace: "test".to_owned(), name: name.to_owned() }
}

/// A Tokio runtime of two workers, as each module process runs on.
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The sending node of a hop between two modules: a `relay` of module `left` whose edge goes to
/// `far`.
pub fn near() -> FlowNode {
    let edges = json!([{ "port": "out", "to": { "node": "far", "port": "in" } }]);
    node_in("left", "near", "relay", json!({}), edges)
}

/// The sending node of a hop that a whole object started, as a resource watch's runs are: a
/// `relay` of module `left` whose edge maps a Pod to its first image for `answer`, so the run's
/// trigger is the Pod and the message a line.
pub fn near_pod() -> FlowNode {
    let mapping = json!({ "image": "{{ .spec.containers[0].image }}" });
    let edges =
        json!([{ "port": "out", "to": { "node": "answer", "port": "in" }, "mapping": mapping }]);
    node_in("left", "near-pod", "relay", json!({}), edges)
}

/// The receiving module of those hops: `right`, running `far` (a `sink`) and `answer` (an
/// `echo`), with all the nodes' edges wired so that it takes `near`'s and `near-pod`'s
/// deliveries.
pub async fn far_module() -> Runtime {
    let right =
        Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>().component::<Echo>()]);
    let far = node_in("right", "far", "sink", json!({}), json!([]));
    let answer = node_in("right", "answer", "echo", json!({}), json!([]));
    for node in [&far, &answer] {
        right.apply(node).await.expect("a node of the right module");
    }
    for node in [far, answer, near(), near_pod()] {
        right.wire(key(node.metadata.name.as_deref().unwrap_or_default()), &node);
    }
    right
}

/// The sending module of those hops, delivering `near`'s and `near-pod`'s messages to the
/// module at `endpoint`.
pub async fn near_module(endpoint: &str) -> Runtime {
    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    left.serve("right", weir_runtime::replicas::Replicas::single(endpoint));
    left.route(key("far"), "right", "sink");
    left.route(key("answer"), "right", "echo");
    for node in [near(), near_pod()] {
        left.apply(&node).await.expect("a node of the left module");
    }
    left
}

/// Serves `runtime` over gRPC on loopback, behind `gate` when given, until `stop`; its endpoint.
pub async fn serve_on_loopback(
    runtime: Runtime,
    gate: Option<std::sync::Arc<dyn weir_runtime::trust::Gate>>,
    stop: &tokio_util::sync::CancellationToken,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(weir_runtime::grpc::serve(runtime, listener, gate, stop.clone()));
    endpoint
}

/// `count` messages sent to `near` one at a time, each timed from its send to its answer.
pub async fn hops_timed(left: &Runtime, count: usize) -> Vec<Duration> {
    let message = json!({ "image": "docker.io/library/nginx:1.27", "namespace": "web" });
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = std::time::Instant::now();
        left.send(&key("near"), "in", message.clone()).await.expect("delivery");
        took.push(started.elapsed());
    }
    took
}
