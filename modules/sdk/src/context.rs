//! What a node sees of the runtime while it works: who it is, the run it is part of, a way to
//! emit on its outputs, and cancellation.

use std::{any::Any, fmt, sync::Arc};

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use weir_model::mapping::{Expression, MappingError};

use crate::{error::NodeError, state::NodeState, trace::TraceContext, trigger::Trigger};

/// `message` as a [`Value`]: moved when it is one already, since encoding a `Value` again
/// would copy it whole on every hop.
fn into_value<M: Serialize + 'static>(message: M) -> Result<Value, serde_json::Error> {
    let mut slot = Some(message);
    if let Some(value) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
        return Ok(value.take().unwrap_or_default());
    }
    slot.map_or(Ok(Value::Null), serde_json::to_value)
}

/// Which node this is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// The namespace of the node's FlowNode.
    pub namespace: String,
    /// The flow it belongs to.
    pub flow: String,
    /// The node's name.
    pub node: String,
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.node)
    }
}

/// Where emits go: the runtime routes them along the port's edges; the test harness records
/// and answers them.
pub trait Emitter: Send + Sync {
    /// Delivers `message` from `from`'s output `port` and returns what the downstream chain
    /// returned.
    fn emit<'a>(
        &'a self,
        from: &'a NodeIdentity,
        port: &'a str,
        message: Value,
        run: &'a Run,
    ) -> BoxFuture<'a, Result<Value, NodeError>>;

    /// Records a failure of `from` that no caller receives (a trigger's run that failed), so it
    /// shows in the node's counters and last error.
    fn report(&self, from: &NodeIdentity, error: &NodeError) {
        let _ = (from, error);
    }

    /// Shows a line the node wrote (a script's `console.log`) to whoever watches the node.
    fn log(&self, from: &NodeIdentity, run: &Run, line: &str) {
        let _ = (from, run, line);
    }

    /// A token of the ServiceAccount `from`'s flow acts as, in a cluster; `None` where nodes
    /// act with the user's own credentials (`weir up`, the test harness).
    fn account_token<'a>(
        &'a self,
        from: &'a NodeIdentity,
    ) -> BoxFuture<'a, Result<Option<AccountToken>, NodeError>> {
        let _ = from;
        Box::pin(async { Ok(None) })
    }
}

/// A short-lived bearer token of the ServiceAccount a flow acts as (`Flow.spec.
/// serviceAccountName`), for the Kubernetes calls its nodes make.
#[derive(Clone)]
pub struct AccountToken {
    /// The account, as `namespace/name`.
    pub account: String,
    /// The bearer token; never logged or shown.
    pub token: Arc<str>,
}

impl fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountToken").field("account", &self.account).finish_non_exhaustive()
    }
}

/// The flow run a message belongs to: the message that started it, how deep the call tree
/// has gone, and its cancellation.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The message the trigger emitted to start the run, `$trigger` in mappings; shared, as
    /// every hop of the run carries it.
    pub trigger: Trigger,
    /// How many deliveries deep this message is; the runtime stops a run that loops past its
    /// hop limit.
    pub hops: u32,
    /// Cancelled when the run is abandoned or its deadline passes.
    pub cancel: CancellationToken,
    /// The run's trace, and this delivery's place in it.
    pub trace: TraceContext,
}

/// What every context of one node shares: who it is, the outputs it declared, where its
/// emits go and its kept state. Made once per node, so a delivery's context takes one
/// reference rather than four.
pub struct NodeParts {
    identity: Arc<NodeIdentity>,
    outputs: Arc<[String]>,
    emitter: Arc<dyn Emitter>,
    state: Arc<NodeState>,
}

impl NodeParts {
    /// The parts of node `identity`, whose declared outputs are `outputs`.
    pub fn new(
        identity: Arc<NodeIdentity>,
        outputs: Arc<[String]>,
        emitter: Arc<dyn Emitter>,
        state: Arc<NodeState>,
    ) -> Self {
        Self { identity, outputs, emitter, state }
    }
}

/// The node's view of the runtime, passed to every call.
#[derive(Clone)]
pub struct Context {
    node: Arc<NodeParts>,
    run: Run,
}

impl fmt::Debug for NodeParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeParts")
            .field("node", &self.identity)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Context {
    /// A context of `node` in `run`; the runtime and the harness make these, nodes only
    /// receive them.
    pub fn new(node: Arc<NodeParts>, run: Run) -> Self {
        Self { node, run }
    }

    /// Which node this is.
    pub fn node(&self) -> &NodeIdentity {
        &self.node.identity
    }

    /// The message that started this run (`$trigger` in mappings).
    pub fn trigger(&self) -> &Value {
        self.run.trigger.value()
    }

    /// Evaluates `expression` (from the node's settings) over `input` with `$trigger` bound to
    /// this run's trigger, which is read only when the expression reads it.
    pub fn evaluate(&self, expression: &Expression, input: &Value) -> Result<Value, MappingError> {
        expression.evaluate(input, self.run.trigger.value_if(expression.reads_trigger()))
    }

    /// The same node in a new run that `trigger` starts: what a trigger does before it emits.
    #[must_use]
    pub fn start_run(&self, trigger: Value) -> Self {
        let run = Run {
            trigger: Trigger::new(trigger),
            hops: 0,
            cancel: self.run.cancel.child_token(),
            trace: TraceContext::default(),
        };
        Self { run, ..self.clone() }
    }

    /// The same run with `trigger` as `$trigger` from here down: what a node that gives each
    /// of several messages a scope of its own does (an array split's items), so mappings past
    /// a step that does not pass the message on can still read it. Unlike
    /// [`Context::start_run`], the trace, the depth (and so the hop limit) and cancellation
    /// stay the run's.
    #[must_use]
    pub fn with_trigger(&self, trigger: Value) -> Self {
        let run = Run { trigger: Trigger::new(trigger), ..self.run.clone() };
        Self { run, ..self.clone() }
    }

    /// The node's kept state (see [`NodeState`]), read as `T`; `T::default()` while the node
    /// has kept nothing. State that no longer reads as `T` (the component changed its state
    /// type) is an invalid error naming the node.
    pub fn state<T: DeserializeOwned + Default>(&self) -> Result<T, NodeError> {
        match self.node.state.get() {
            Value::Null => Ok(T::default()),
            value => serde_json::from_value(value).map_err(|err| {
                NodeError::invalid(format!(
                    "the kept state of node {} does not read: {err}",
                    self.node.identity
                ))
            }),
        }
    }

    /// Replaces the node's kept state; the runtime saves it in the FlowNode's status within
    /// about a second. State is for small things (a cursor, a last-seen digest), at most
    /// [`crate::state::MAX_STATE_BYTES`].
    pub fn save_state(&self, state: impl Serialize) -> Result<(), NodeError> {
        let value = serde_json::to_value(state).map_err(|err| {
            NodeError::internal(format!(
                "cannot encode the state of node {}: {err}",
                self.node.identity
            ))
        })?;
        self.node.state.set(value)
    }

    /// Replaces every series of the gauge family `gauge` the node reports on `/metrics` (see
    /// [`crate::gauge`]); the runtime adds the node's namespace, flow and name as labels.
    pub fn set_gauge(
        &self,
        gauge: crate::Gauge,
        series: Vec<crate::Series>,
    ) -> Result<(), NodeError> {
        self.node.state.gauges().replace(gauge, series)
    }

    /// Says what the node cannot do now, such as images it cannot mirror (`None` once all is
    /// well): the FlowNode's `Degraded` condition, and its Flow's, carry the message until the
    /// node says otherwise or is rebuilt.
    pub fn set_degraded(&self, problem: Option<String>) {
        self.node.state.set_degraded(problem);
    }

    /// Emits `message` on the output `port` and returns what the downstream chain returned, or
    /// its error. Emitting on a port the node did not declare is an internal error. A
    /// [`Value`] is handed on as it is; any other type is encoded to one.
    pub async fn emit<M: Serialize + 'static>(
        &self,
        port: &str,
        message: M,
    ) -> Result<Value, NodeError> {
        if !self.node.outputs.iter().any(|p| p == port) {
            return Err(NodeError::internal(format!(
                "node {} emitted on {port:?}, which is not one of its outputs ({})",
                self.node.identity,
                self.node.outputs.join(", ")
            )));
        }
        if self.run.cancel.is_cancelled() {
            return Err(NodeError::cancelled(format!(
                "the run was cancelled before {} emitted on {port}",
                self.node.identity
            )));
        }
        let message = into_value(message).map_err(|err| {
            NodeError::internal(format!("cannot encode the message for port {port}: {err}"))
        })?;
        self.node.emitter.emit(&self.node.identity, port, message, &self.run).await
    }

    /// Whether the node has the output `port` (ports follow the settings, so an optional
    /// `error` output is there only when switched on).
    pub fn has_output(&self, port: &str) -> bool {
        self.node.outputs.iter().any(|p| p == port)
    }

    /// Answers a failure of handling `input`: sent as data to the node's `error` output when
    /// it has one (its answer becomes the reply), returned as the error otherwise.
    pub async fn fail(&self, error: NodeError, input: Value) -> Result<Value, NodeError> {
        if !self.has_output(crate::ERROR_PORT) {
            return Err(error);
        }
        self.emit(crate::ERROR_PORT, crate::Failure::new(&error, input)).await
    }

    /// Records a failure no caller receives, such as a run a trigger started that failed: it
    /// shows in the node's error counter and last error.
    pub fn report(&self, error: &NodeError) {
        self.node.emitter.report(&self.node.identity, error);
    }

    /// Writes a line to the node's debug stream (the inspect events the editor shows), such as
    /// what a user's script printed. It must not hold secrets.
    pub fn log(&self, line: &str) {
        self.node.emitter.log(&self.node.identity, &self.run, line);
    }

    /// A token of the ServiceAccount the node's flow acts as, in a cluster: a node that calls
    /// the Kubernetes API makes every call with it, so the flow can do no more than its
    /// account may. `None` where nodes act with the user's own credentials (`weir up`).
    pub async fn account_token(&self) -> Result<Option<AccountToken>, NodeError> {
        self.node.emitter.account_token(&self.node.identity).await
    }

    /// The run this context belongs to.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Whether the run (or the node) has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.run.cancel.is_cancelled()
    }

    /// Completes when the run (or the node) is cancelled; long waits select on it.
    pub async fn cancelled(&self) {
        self.run.cancel.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;

    impl Emitter for Silent {
        fn emit<'a>(
            &'a self,
            _: &'a NodeIdentity,
            _: &'a str,
            _: Value,
            _: &'a Run,
        ) -> BoxFuture<'a, Result<Value, NodeError>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }

    #[test]
    fn with_trigger_changes_only_the_trigger_and_start_run_starts_afresh() {
        let identity = NodeIdentity { namespace: "ns".into(), flow: "f".into(), node: "n".into() };
        let run = Run { hops: 7, ..Run::default() };
        let parts =
            NodeParts::new(Arc::new(identity), Arc::from([]), Arc::new(Silent), Arc::default());
        let cx = Context::new(Arc::new(parts), run);
        let item = serde_json::json!({ "item": "nginx", "index": 0, "total": 1 });

        let scoped = cx.with_trigger(item.clone());
        assert_eq!(scoped.trigger(), &item);
        assert_eq!((scoped.run().hops, scoped.run().trace), (7, cx.run().trace));
        cx.run().cancel.cancel();
        assert!(scoped.is_cancelled(), "the scope is cancelled with its run");

        let fresh = cx.start_run(item);
        assert_eq!(fresh.run().hops, 0);
        assert_ne!(fresh.run().trace.trace_id, cx.run().trace.trace_id);
    }

    #[test]
    fn a_trigger_that_came_as_json_is_parsed_only_for_an_expression_that_reads_it() {
        let identity = NodeIdentity { namespace: "ns".into(), flow: "f".into(), node: "n".into() };
        let trigger = Trigger::from_json(br#"{"kind":"Pod","name":"web"}"#.to_vec()).unwrap();
        let run = Run { trigger: trigger.clone(), ..Run::default() };
        let parts =
            NodeParts::new(Arc::new(identity), Arc::from([]), Arc::new(Silent), Arc::default());
        let cx = Context::new(Arc::new(parts), run);
        let message = serde_json::json!({ "image": "nginx" });

        let own = Expression::compile(".image", "settings.key").unwrap();
        assert_eq!(cx.evaluate(&own, &message).unwrap(), "nginx");
        assert_eq!(format!("{trigger:?}"), "Trigger(27 bytes of JSON)", "not parsed");

        let its = Expression::compile(".image + \"/\" + $trigger.name", "settings.key").unwrap();
        assert_eq!(cx.evaluate(&its, &message).unwrap(), "nginx/web");
        assert!(format!("{trigger:?}").contains("\"web\""), "parsed once read: {trigger:?}");
    }

    #[test]
    fn a_value_is_handed_on_as_it_is_and_anything_else_is_encoded() {
        #[derive(Serialize)]
        struct Greeting {
            text: &'static str,
        }
        let message = serde_json::json!({ "name": "web", "tags": ["a", "b"] });
        assert_eq!(into_value(message.clone()).expect("a value"), message);
        assert_eq!(
            into_value(Greeting { text: "hi" }).expect("encoded"),
            serde_json::json!({ "text": "hi" })
        );
        assert_eq!(into_value(7_u8).expect("encoded"), serde_json::json!(7));
    }
}
