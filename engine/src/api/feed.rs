//! What happens, as it happens, for the editor: node status and flow changes (from watching
//! the store) and messages at the nodes (from the in-process runtime's inspect events, or, where
//! modules run apart, from each module's `Inspect` stream). Each
//! is serialized once and fanned out through a bounded broadcast channel, so a slow event
//! stream misses events (and is told how many) instead of holding up the engine; messages are
//! also kept per node for `GET /api/nodes/{node}/messages`.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, value::RawValue};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use weir_api::{FlowEvent, MessageSeen, Missed, NodeEvent, event};
use weir_model::{Kind, redact::redact_by_name};
use weir_proto::{InspectRequest, module_client::ModuleClient};
use weir_runtime::{
    Runtime,
    grpc::Inspected,
    inspect::{self, Observed},
    replicas::Replicas,
    trust::Bearer,
};
use weir_store::{DynamicObject, Store, WatchEvent};

use super::{history::History, recorder::Recorder};
use crate::scope::Scope;

/// How many events an event stream may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// How long to wait before watching a module's messages again after its stream broke.
const REINSPECT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// One event for the editor's event stream.
#[derive(Debug)]
pub struct FeedEvent {
    /// The SSE event type: `node`, `message`, `flow` or `missed`.
    pub kind: &'static str,
    /// The namespace it happened in; none for what concerns every stream (`missed`).
    pub namespace: Option<String>,
    /// The flow it concerns.
    pub flow: String,
    /// The event's JSON.
    pub data: Arc<str>,
}

impl FeedEvent {
    /// Whether a stream of `namespace`, for `flow` when it names one, shows this.
    pub fn concerns(&self, namespace: &str, flow: Option<&str>) -> bool {
        let Some(own) = &self.namespace else { return true };
        own == namespace && flow.is_none_or(|flow| flow == self.flow)
    }

    /// `missed`: `count` events were dropped before they reached a stream.
    pub fn missed(count: u64) -> Self {
        let data = to_data(&Missed { missed: count });
        Self { kind: event::MISSED, namespace: None, flow: String::new(), data }
    }
}

/// Which modules' messages the feed watches, and as whom.
#[derive(Debug)]
struct Watching {
    /// The nodes' namespace; every namespace when empty.
    namespace: String,
    /// What the engine presents to the modules, in a cluster.
    bearer: Option<Arc<Bearer>>,
}

/// The feed's handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    events: broadcast::Sender<Arc<FeedEvent>>,
    recorder: Arc<Recorder>,
    history: Arc<History>,
}

impl Feed {
    /// Starts following the flows of `scope` in the store, and `runtime`'s messages when there
    /// is one, until `stop`, keeping the last `runs_kept` runs of each flow.
    pub fn start(
        store: Arc<dyn Store>,
        runtime: Option<&Runtime>,
        scope: &Scope,
        bearer: Option<Arc<Bearer>>,
        runs_kept: usize,
        stop: &CancellationToken,
    ) -> Self {
        let feed = Self {
            events: broadcast::channel(BACKLOG).0,
            recorder: Arc::default(),
            history: Arc::new(History::new(runs_kept)),
        };
        let nodes = weir_store::follow(
            Arc::clone(&store),
            Kind::FlowNode,
            scope.of(Kind::FlowNode),
            stop.clone(),
        );
        tokio::spawn(feed.clone().follow_nodes(nodes));
        let flows =
            weir_store::follow(Arc::clone(&store), Kind::Flow, scope.of(Kind::Flow), stop.clone());
        tokio::spawn(feed.clone().follow_flows(flows));
        match runtime {
            Some(runtime) => {
                tokio::spawn(feed.clone().follow_messages(runtime.inspect(), stop.clone()));
            }
            // Modules run apart (a cluster): their Inspect streams, at the endpoints they publish.
            None => {
                let modules =
                    weir_store::follow(store, Kind::Module, scope.of(Kind::Module), stop.clone());
                let namespace = scope.of(Kind::FlowNode).unwrap_or_default();
                let watching = Watching { namespace, bearer };
                tokio::spawn(feed.clone().follow_modules(modules, watching, stop.clone()));
            }
        }
        feed
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.events.subscribe()
    }

    /// The messages kept per node.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The runs kept per flow.
    pub fn history(&self) -> &History {
        &self.history
    }

    fn send(&self, event: FeedEvent) {
        // No stream open: nobody misses it.
        let _ = self.events.send(Arc::new(event));
    }

    /// A `node` event whenever a node's status changes.
    async fn follow_nodes(self, mut events: BoxStream<'static, WatchEvent>) {
        let mut known: HashMap<(String, String), Value> = HashMap::new();
        while let Some(event) = events.next().await {
            let (applied, deleted) = split(event, known.keys());
            for key in deleted {
                known.remove(&key);
                self.recorder.forget(&key.0, &key.1);
            }
            for object in applied {
                let status = object.data.get("status").cloned().unwrap_or(Value::Null);
                if known.get(&key(&object)) != Some(&status) {
                    known.insert(key(&object), status);
                    self.send(node_event(&object));
                }
            }
        }
    }

    /// A `flow` event whenever a flow is added, changed or deleted.
    async fn follow_flows(self, mut events: BoxStream<'static, WatchEvent>) {
        let mut known: HashMap<(String, String), Option<String>> = HashMap::new();
        while let Some(event) = events.next().await {
            let (applied, deleted) = split(event, known.keys());
            for key in deleted {
                known.remove(&key);
                self.history.forget(&key.0, &key.1);
                self.send(flow_event(key, "deleted"));
            }
            for object in applied {
                let version = object.metadata.resource_version.clone();
                let change = match known.insert(key(&object), version.clone()) {
                    None => "added",
                    Some(before) if before != version => "modified",
                    Some(_) => continue,
                };
                self.send(flow_event(key(&object), change));
            }
        }
    }

    /// A `message` event for everything the runtime's nodes receive, emit, answer, fail or log.
    async fn follow_messages(
        self,
        mut events: broadcast::Receiver<Arc<inspect::Event>>,
        stop: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = stop.cancelled() => return,
            };
            match event {
                Ok(event) => self.seen(&event),
                Err(RecvError::Lagged(missed)) => self.send(FeedEvent::missed(missed)),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Follows the modules' catalogues and watches each module's `Inspect` stream (for the
    /// nodes of `namespace`, all when empty) at the endpoint it publishes, again whenever the
    /// endpoint changes or the stream breaks.
    async fn follow_modules(
        self,
        mut modules: BoxStream<'static, WatchEvent>,
        watching_as: Watching,
        stop: CancellationToken,
    ) {
        let watching_as = Arc::new(watching_as);
        let mut serving: HashMap<String, Replicas> = HashMap::new();
        // One stream per replica, by endpoint: each replica handles its share of deliveries.
        let mut watching: HashMap<String, CancellationToken> = HashMap::new();
        while let Some(event) = modules.next().await {
            weir_runtime::replicas::follow(&mut serving, &event);
            let live: HashSet<&String> = serving.values().flat_map(Replicas::endpoints).collect();
            watching.retain(|at, watcher| {
                let keep = live.contains(at);
                if !keep {
                    watcher.cancel();
                }
                keep
            });
            for at in live {
                if watching.contains_key(at) {
                    continue;
                }
                let watcher = stop.child_token();
                let inspect =
                    self.clone().inspect(at.clone(), Arc::clone(&watching_as), watcher.clone());
                tokio::spawn(inspect);
                watching.insert(at.clone(), watcher);
            }
        }
        for watcher in watching.values() {
            watcher.cancel();
        }
    }

    /// Reads one module's `Inspect` stream until `stop`, connecting again after a pause
    /// whenever it cannot be reached or the stream ends.
    async fn inspect(self, endpoint: String, watching: Arc<Watching>, stop: CancellationToken) {
        loop {
            let reading = async {
                let mut client = ModuleClient::connect(endpoint.clone()).await?;
                let filter =
                    InspectRequest { namespace: watching.namespace.clone(), ..Default::default() };
                let mut request = tonic::Request::new(filter);
                if let Some(header) = watching.bearer.as_deref().and_then(Bearer::header) {
                    request.metadata_mut().insert("authorization", header);
                }
                let mut events = client.inspect(request).await?.into_inner();
                while let Some(wire) = events.message().await? {
                    match weir_runtime::grpc::read_event(wire) {
                        Some(Inspected::Event(event)) => self.seen(&event),
                        Some(Inspected::Missed(missed)) => self.send(FeedEvent::missed(missed)),
                        None => {}
                    }
                }
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            };
            tokio::select! {
                read = reading => {
                    if let Err(err) = read {
                        tracing::debug!(endpoint, error = %err, "cannot watch a module's messages");
                    }
                }
                () = stop.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(REINSPECT_DELAY) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// A message seen at a node: kept for the node and its run, and sent to the event streams.
    fn seen(&self, event: &inspect::Event) {
        let data = message_json(event);
        let node = &event.node;
        self.recorder.record(&node.namespace, &node.node, Arc::clone(&data));
        self.history.record(event, Arc::clone(&data));
        self.send(FeedEvent {
            kind: event::MESSAGE,
            namespace: Some(node.namespace.clone()),
            flow: node.flow.clone(),
            data,
        });
    }
}

/// A node's `node` event: its name, flow and status.
pub fn node_event(object: &DynamicObject) -> FeedEvent {
    let (namespace, name) = key(object);
    let flow = object.data.pointer("/spec/flow").and_then(Value::as_str).unwrap_or_default();
    let status = object.data.get("status").unwrap_or(&Value::Null);
    let data = to_data(&NodeEvent { node: name, flow: flow.to_owned(), status });
    FeedEvent { kind: event::NODE, namespace: Some(namespace), flow: flow.to_owned(), data }
}

fn flow_event((namespace, flow): (String, String), change: &str) -> FeedEvent {
    let data = to_data(&FlowEvent { flow: flow.clone(), change: change.to_owned() });
    FeedEvent { kind: event::FLOW, namespace: Some(namespace), flow, data }
}

/// An event's JSON.
fn to_data(event: &impl Serialize) -> Arc<str> {
    // Types of strings, numbers and JSON values always serialize.
    serde_json::to_string(event).unwrap_or_default().into()
}

/// A watch event as the objects now present or changed, and the keys of those gone (a
/// `Synced` replaces what was `known`).
fn split<'a>(
    event: WatchEvent,
    known: impl Iterator<Item = &'a (String, String)>,
) -> (Vec<DynamicObject>, Vec<(String, String)>) {
    match event {
        WatchEvent::Synced(objects) => {
            let present: HashSet<_> = objects.iter().map(key).collect();
            let gone = known.filter(|k| !present.contains(*k)).cloned().collect();
            (objects, gone)
        }
        WatchEvent::Applied(object) => (vec![object], Vec::new()),
        WatchEvent::Deleted(object) => (Vec::new(), vec![key(&object)]),
    }
}

fn key(object: &DynamicObject) -> (String, String) {
    let namespace = object.metadata.namespace.as_deref().unwrap_or(weir_store::DEFAULT_NAMESPACE);
    (namespace.to_owned(), object.metadata.name.clone().unwrap_or_default())
}

/// An inspect event as the editor's `message` JSON. The runtime hid the fields port schemas
/// mark secret; fields named like secrets are hidden too, as the debug node hides them, for
/// ports without a schema. Messages and lines are bounded the way the runtime's inspect stream
/// bounds them.
fn message_json(event: &inspect::Event) -> Arc<str> {
    let shown = |message: &Value| {
        let mut message = message.clone();
        redact_by_name(&mut message);
        inspect::message_json(&message)
    };
    let (what, direction, payload) = match &event.what {
        Observed::Received(message) => ("received", "in", shown(message)),
        Observed::Emitted(message) => ("emitted", "out", shown(message)),
        Observed::Answered { .. } => ("answered", "in", b"null".to_vec()),
        Observed::Failed { kind, message, .. } => {
            let failure = serde_json::json!({ "kind": kind.as_str(), "message": message });
            ("failed", "in", failure.to_string().into_bytes())
        }
        // Lines from a peer's stream are bounded here as the runtime bounds its own.
        Observed::Logged(line) => {
            ("logged", "in", Value::from(inspect::kept_line(line)).to_string().into_bytes())
        }
    };
    let elapsed_ms = match &event.what {
        // Microseconds are as fine as anyone reads them.
        Observed::Answered { elapsed } | Observed::Failed { elapsed, .. } => {
            Some((elapsed.as_secs_f64() * 1e6).round() / 1e3)
        }
        _ => None,
    };
    // The payload is JSON text already: it goes in as it is rather than parsed back.
    let payload = String::from_utf8(payload).ok().and_then(|p| RawValue::from_string(p).ok());
    let null = || RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!());
    to_data(&MessageSeen {
        node: event.node.node.clone(),
        flow: event.node.flow.clone(),
        port: event.port.clone(),
        direction: direction.to_owned(),
        what: what.to_owned(),
        time: Timestamp::try_from(event.at).map(|t| t.to_string()).unwrap_or_default(),
        trace_id: event.trace.trace_hex().to_string(),
        elapsed_ms,
        payload: payload.unwrap_or_else(null),
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use weir_sdk::{NodeIdentity, TraceContext};

    use super::*;

    #[test]
    fn a_peers_huge_line_reaches_the_editor_cut() {
        let event = inspect::Event {
            at: SystemTime::now(),
            node: Arc::new(NodeIdentity {
                namespace: "default".to_owned(),
                flow: "f".to_owned(),
                node: "n".to_owned(),
            }),
            port: String::new(),
            trace: TraceContext::default(),
            what: Observed::Logged("x".repeat(10 << 20)),
        };
        let shown = message_json(&event);
        let payload = serde_json::from_str::<Value>(&shown).unwrap()["payload"].clone();
        let line = payload.as_str().unwrap();
        assert!(line.len() <= inspect::MAX_LINE_BYTES && line.ends_with('…'), "{}", line.len());
    }
}
