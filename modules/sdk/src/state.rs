//! A node's own small JSON state, kept across runs, rebuilds and restarts: the runtime saves it
//! in the FlowNode's status (`status.state`, written at most once a second) and hands it back
//! when the node is built again.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use serde_json::Value;

use crate::NodeError;

/// The most a node may keep, encoded as JSON: state lives in the FlowNode, which etcd caps at
/// 1.5 MiB with everything else in it.
pub const MAX_STATE_BYTES: usize = 256 * 1024;

/// One node's state; the runtime owns it, the node reads and replaces it through its context.
#[derive(Debug, Default)]
pub struct NodeState {
    value: Mutex<Value>,
    /// Grows with every change, so the runtime writes only what changed.
    version: AtomicU64,
}

impl NodeState {
    /// State that starts as `value` (what the FlowNode's status kept, or null).
    pub fn new(value: Value) -> Self {
        Self { value: Mutex::new(value), version: AtomicU64::new(0) }
    }

    /// The current state.
    pub fn get(&self) -> Value {
        self.value.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the state; refuses state larger than [`MAX_STATE_BYTES`].
    pub fn set(&self, value: Value) -> Result<(), NodeError> {
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_STATE_BYTES {
            return Err(NodeError::invalid(format!(
                "node state of {size} bytes is over the limit of {MAX_STATE_BYTES}"
            )));
        }
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = value;
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// How many times the state was replaced.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}
