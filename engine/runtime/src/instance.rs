//! One running node: the built component, its emitter (which holds its compiled edges), the
//! validators of its inputs, its counters, last error and kept state, and its lifetime (a
//! cancellation token and, for triggers, the run task).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_model::Counters;
use weir_sdk::{
    Context, Emitter, ErrorKind, Node, NodeError, NodeIdentity, NodeParts, NodeState, Run,
};

use crate::histogram::Histogram;

pub(crate) struct Instance {
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) generation: Option<i64>,
    /// A digest of the settings it was built from, Secrets read, so that a changed Secret
    /// is noticed without keeping its value here.
    pub(crate) settings_digest: u64,
    pub(crate) node: Box<dyn Node>,
    /// What every context of the node shares, among it the emitter: the runtime's delivery
    /// along this node's edges.
    parts: Arc<NodeParts>,
    /// The validators of its input ports, by port; a node has few, so a list is quickest.
    inputs: Vec<(String, jsonschema::Validator)>,
    /// Cancelled when the node stops: ends its trigger loop and what it is handling.
    pub(crate) lifetime: CancellationToken,
    pub(crate) trigger: Mutex<Option<JoinHandle<()>>>,
    /// Whether its component is a trigger that only the leader runs, so its messages (a
    /// ticker's control) must go there.
    pub(crate) leader_only: bool,
    /// Shared with the instance this one replaced, so a rebuild keeps what the node kept.
    pub(crate) state: Arc<NodeState>,
    /// The schemas of the ports that carry secret fields, to hide them from watchers.
    secret_ports: HashMap<String, Value>,
    last_error: Mutex<Option<Failed>>,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    errors: AtomicU64,
    /// How long its deliveries took, downstream work included.
    latency: Histogram,
}

/// A node's most recent failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) at: SystemTime,
}

impl Instance {
    pub(crate) fn new(
        identity: NodeIdentity,
        generation: Option<i64>,
        settings_digest: u64,
        node: Box<dyn Node>,
        emitter: Arc<dyn Emitter>,
        inputs: Vec<(String, jsonschema::Validator)>,
        state: Arc<NodeState>,
    ) -> Self {
        let identity = Arc::new(identity);
        let parts =
            NodeParts::new(Arc::clone(&identity), node.outputs(), emitter, Arc::clone(&state));
        let secret_ports = node
            .ports()
            .iter()
            .filter(|port| weir_model::redact::has_secrets(port.schema()))
            .map(|port| (port.name().to_owned(), port.schema().clone()))
            .collect();
        Self {
            identity,
            generation,
            settings_digest,
            node,
            parts: Arc::new(parts),
            inputs,
            lifetime: CancellationToken::new(),
            trigger: Mutex::new(None),
            leader_only: false,
            state,
            secret_ports,
            last_error: Mutex::new(None),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Histogram::default(),
        }
    }

    /// The validator of the input port `port`.
    pub(crate) fn input(&self, port: &str) -> Option<&jsonschema::Validator> {
        self.inputs.iter().find(|(name, _)| name == port).map(|(_, validator)| validator)
    }

    /// The node's view of the runtime in `run`.
    pub(crate) fn context(&self, run: Run) -> Context {
        Context::new(Arc::clone(&self.parts), run)
    }

    pub(crate) fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, elapsed: std::time::Duration) {
        self.latency.observe(elapsed);
    }

    pub(crate) fn latency(&self) -> &Histogram {
        &self.latency
    }

    pub(crate) fn count_out(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure and keeps it as the node's last error.
    pub(crate) fn count_error(&self, error: &NodeError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let failed =
            Failed { kind: error.kind(), message: error.to_string(), at: SystemTime::now() };
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(failed);
    }

    pub(crate) fn last_error(&self) -> Option<Failed> {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `message` as watchers may see it: the port's secret fields hidden.
    pub(crate) fn redacted(&self, port: &str, message: &Value) -> Value {
        let mut shown = message.clone();
        if let Some(schema) = self.secret_ports.get(port) {
            weir_model::redact::redact(schema, &mut shown);
        }
        shown
    }

    /// A failure this node sends as data, without the secrets of the input it echoes: that
    /// input came in on one of the node's input ports, whose schemas say which fields are
    /// secret, and the error port's own schema cannot know.
    pub(crate) fn conceal_failed_input(&self, failure: &mut Value) {
        let Some(input) = failure.get_mut("input") else { return };
        for (port, schema) in &self.secret_ports {
            if self.input(port).is_some() {
                weir_model::redact::redact(schema, input);
            }
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        Counters {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops the node: cancels what it does, waits for its trigger loop, then lets it clean up.
    pub(crate) async fn stop(&self) {
        self.lifetime.cancel();
        let task = self.trigger.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task
            && let Err(err) = task.await
            && err.is_panic()
        {
            tracing::error!(node = %self.identity, "the trigger loop panicked");
        }
        self.node.destroy().await;
    }
}
