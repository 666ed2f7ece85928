//! Testing support for node authors: build a node from settings JSON, push messages into its
//! ports, see and answer what it emits, and check a component against the node rules.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use weir_model::names::NameRule;

use crate::{
    component::{Component, Node, build_node},
    context::{Context, Emitter, NodeIdentity, NodeParts, Run},
    error::NodeError,
    port::schema_of,
    state::NodeState,
    trace::TraceContext,
    trigger::Trigger,
};

/// What a node emitted during a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The output port.
    pub port: String,
    /// The message.
    pub message: Value,
}

type Answer = dyn Fn(&str, &Value) -> Result<Value, NodeError> + Send + Sync;
type Took = dyn Fn(&str, &Value) -> Duration + Send + Sync;

/// One node of a component under test.
pub struct Harness {
    node: Box<dyn Node>,
    recorder: Arc<Recorder>,
    context: Context,
    cancel: CancellationToken,
    state: Arc<NodeState>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("context", &self.context).finish_non_exhaustive()
    }
}

struct Recorder {
    emitted: Mutex<Vec<Emitted>>,
    answer: Mutex<Arc<Answer>>,
    took: Mutex<Arc<Took>>,
    reported: Mutex<Vec<NodeError>>,
    logged: Mutex<Vec<String>>,
}

impl Emitter for Recorder {
    fn emit<'a>(
        &'a self,
        _: &'a NodeIdentity,
        port: &'a str,
        message: Value,
        _: &'a Run,
    ) -> BoxFuture<'a, Result<Value, NodeError>> {
        let answer = Arc::clone(&self.answer.lock().unwrap_or_else(PoisonError::into_inner));
        let took = Arc::clone(&self.took.lock().unwrap_or_else(PoisonError::into_inner));
        let (reply, took) = (answer(port, &message), took(port, &message));
        self.emitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Emitted { port: port.to_owned(), message });
        Box::pin(async move {
            if !took.is_zero() {
                tokio::time::sleep(took).await;
            }
            reply
        })
    }

    fn report(&self, _: &NodeIdentity, error: &NodeError) {
        self.reported.lock().unwrap_or_else(PoisonError::into_inner).push(error.clone());
    }

    fn log(&self, _: &NodeIdentity, _: &Run, line: &str) {
        self.logged.lock().unwrap_or_else(PoisonError::into_inner).push(line.to_owned());
    }
}

impl Harness {
    /// Builds a node of `C` from settings JSON, as the runtime would; downstream answers
    /// every emit with `null` until told otherwise.
    pub fn build<C: Component>(settings: &Value) -> Result<Self, NodeError> {
        let node = build_node::<C>(settings)?;
        let outputs = node.outputs();
        let recorder = Arc::new(Recorder {
            emitted: Mutex::new(Vec::new()),
            answer: Mutex::new(Arc::new(|_, _| Ok(Value::Null))),
            took: Mutex::new(Arc::new(|_, _| Duration::ZERO)),
            reported: Mutex::new(Vec::new()),
            logged: Mutex::new(Vec::new()),
        });
        let identity = NodeIdentity {
            namespace: "test".to_owned(),
            flow: "test".to_owned(),
            node: C::NAME.replace('_', "-"),
        };
        let cancel = CancellationToken::new();
        let run = Run {
            trigger: Trigger::default(),
            hops: 0,
            cancel: cancel.clone(),
            trace: TraceContext::default(),
        };
        let state = Arc::new(NodeState::default());
        let parts = NodeParts::new(
            Arc::new(identity),
            outputs,
            Arc::clone(&recorder) as Arc<dyn Emitter>,
            Arc::clone(&state),
        );
        let context = Context::new(Arc::new(parts), run);
        Ok(Self { node, recorder, context, cancel, state })
    }

    /// Makes downstream answer each emit with `answer(port, message)`.
    pub fn answer_with(
        &self,
        answer: impl Fn(&str, &Value) -> Result<Value, NodeError> + Send + Sync + 'static,
    ) {
        *self.recorder.answer.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(answer);
    }

    /// Makes downstream take `took(port, message)` to answer each emit (at once until told
    /// otherwise), as a slow run would.
    pub fn answer_after(&self, took: impl Fn(&str, &Value) -> Duration + Send + Sync + 'static) {
        *self.recorder.took.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(took);
    }

    /// Delivers `message` to the input `port` and returns the node's reply.
    pub async fn send(&self, port: &str, message: Value) -> Result<Value, NodeError> {
        self.node.handle(&self.context, port, message).await
    }

    /// What the node said it cannot do now.
    pub fn degraded(&self) -> Option<String> {
        self.state.degraded()
    }

    /// The gauges the node reported.
    pub fn gauges(&self) -> Vec<crate::Family> {
        self.state.gauges().snapshot()
    }

    /// Runs the node's trigger loop until [`Harness::cancel`] or until it returns.
    pub async fn run(&self) -> Result<(), NodeError> {
        self.node.run(&self.context).await
    }

    /// Cancels the node's context, as stopping the node does.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// What the node emitted so far, in order.
    pub fn emitted(&self) -> Vec<Emitted> {
        self.recorder.emitted.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The failures the node reported with [`Context::report`], in order.
    pub fn reported(&self) -> Vec<NodeError> {
        self.recorder.reported.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The node's ports, as its settings made them.
    pub fn ports(&self) -> &[crate::Port] {
        self.node.ports()
    }

    /// The lines the node wrote with [`Context::log`], in order.
    pub fn logged(&self) -> Vec<String> {
        self.recorder.logged.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What the node keeps as its state (null until it saves some).
    pub fn kept_state(&self) -> Value {
        self.state.get()
    }

    /// Gives the node `state` as if it had kept it before a restart.
    pub fn keep_state(&self, state: Value) -> Result<(), NodeError> {
        self.state.set(state)
    }

    /// The node's context, for tests that drive it by hand.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// A broken node rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("component {component}: {problem}")]
pub struct Noncompliance {
    /// The component's name.
    pub component: &'static str,
    /// The rule it breaks.
    pub problem: String,
}

/// Checks component `C` against the rules every node follows (docs/specs/node.md): snake_case
/// name, a label, a settings schema, default settings that build, port names that follow the
/// rule and do not repeat, and a typed error for a message on an unknown port.
pub async fn check_compliance<C: Component>() -> Result<(), Noncompliance> {
    let fail = |problem: String| Noncompliance { component: C::NAME, problem };
    if !NameRule::SnakeCase.accepts(C::NAME) {
        return Err(fail(format!("the name must use {}", NameRule::SnakeCase.describe())));
    }
    if C::describe().label.trim().is_empty() {
        return Err(fail("describe() gives no label".to_owned()));
    }
    if !schema_of::<C::Settings>().is_object() {
        return Err(fail("the settings schema is not an object".to_owned()));
    }
    let harness = Harness::build::<C>(&Value::Null)
        .map_err(|err| fail(format!("default settings do not build: {err}")))?;
    let mut seen = std::collections::HashSet::new();
    for port in harness.node.ports() {
        if !NameRule::SnakeCase.accepts(port.name()) {
            return Err(fail(format!("port {:?} breaks the naming rule", port.name())));
        }
        if !seen.insert(port.name()) {
            return Err(fail(format!("port {:?} is declared twice", port.name())));
        }
    }
    match harness.send("no_such_port", Value::Null).await {
        Err(err) if err.kind() == crate::ErrorKind::Invalid => Ok(()),
        other => Err(fail(format!(
            "a message on an unknown port gave {other:?} instead of an invalid-input error"
        ))),
    }
}
