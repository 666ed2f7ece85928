//! One running node: the built component, its compiled edges, the validators of its inputs, its
//! counters, and its lifetime (a cancellation token and, for triggers, the run task).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_model::Counters;
use weir_sdk::{Node, NodeIdentity};

use crate::edge::Edge;

pub(crate) struct Instance {
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) generation: Option<i64>,
    pub(crate) node: Box<dyn Node>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) inputs: HashMap<String, jsonschema::Validator>,
    pub(crate) outputs: Arc<[String]>,
    /// Cancelled when the node stops: ends its trigger loop and what it is handling.
    pub(crate) lifetime: CancellationToken,
    pub(crate) trigger: Mutex<Option<JoinHandle<()>>>,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    errors: AtomicU64,
}

impl Instance {
    pub(crate) fn new(
        identity: NodeIdentity,
        generation: Option<i64>,
        node: Box<dyn Node>,
        edges: Vec<Edge>,
        inputs: HashMap<String, jsonschema::Validator>,
    ) -> Self {
        let outputs = node.outputs();
        Self {
            identity: Arc::new(identity),
            generation,
            node,
            edges,
            inputs,
            outputs,
            lifetime: CancellationToken::new(),
            trigger: Mutex::new(None),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
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
