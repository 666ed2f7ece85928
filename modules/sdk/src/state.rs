//! A node's own small JSON state, kept across runs, rebuilds and restarts: the runtime saves it
//! in the FlowNode's status (`status.state`, written at most once a second) and hands it back
//! when the node is built again.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use serde_json::Value;

use crate::{NodeError, gauge::Gauges};

/// The most a node may keep, encoded as JSON: state lives in the FlowNode, which etcd caps at
/// 1.5 MiB with everything else in it.
pub const MAX_STATE_BYTES: usize = 256 * 1024;

/// The size of `value` as JSON, counted without writing it anywhere: for bounds on what is
/// kept (state, held messages, events).
pub fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// One node's state; the runtime owns it, the node reads and replaces it through its context.
#[derive(Debug, Default)]
pub struct NodeState {
    value: Mutex<Value>,
    /// Grows with every change, so the runtime writes only what changed.
    version: AtomicU64,
    /// What the node reports on `/metrics`; not saved, a restarted node reports anew.
    gauges: Gauges,
    /// What the node says it cannot do now, shown as its `Degraded` condition and its flow's.
    degraded: Mutex<Option<String>>,
}

/// The longest `Degraded` message a node may give; longer ones are cut at a character
/// boundary with `…`, as a condition is read on one line.
pub const MAX_DEGRADED_CHARS: usize = 1024;

impl NodeState {
    /// State that starts as `value` (what the FlowNode's status kept, or null).
    pub fn new(value: Value) -> Self {
        Self {
            value: Mutex::new(value),
            version: AtomicU64::new(0),
            gauges: Gauges::default(),
            degraded: Mutex::new(None),
        }
    }

    /// The gauges the node reported.
    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    /// What the node said it cannot do now, if anything.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Says what the node cannot do now (`None`: all is well), cut to
    /// [`MAX_DEGRADED_CHARS`].
    pub fn set_degraded(&self, problem: Option<String>) {
        let problem = problem.map(|text| match text.char_indices().nth(MAX_DEGRADED_CHARS) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text,
        });
        *self.degraded.lock().unwrap_or_else(PoisonError::into_inner) = problem;
    }

    /// The current state.
    pub fn get(&self) -> Value {
        self.value.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the state; refuses state larger than [`MAX_STATE_BYTES`].
    pub fn set(&self, value: Value) -> Result<(), NodeError> {
        let size = json_size(&value);
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
