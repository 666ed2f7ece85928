//! What happens at the nodes, as it happens: every message a node receives and emits, and how
//! each delivery ended. The editor's live view and `weir.v1.Module/Inspect` read these events.
//! Nothing is recorded while nobody watches, and secret fields (see `weir_model::redact`) are
//! hidden before an event leaves the node.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde_json::Value;
use weir_sdk::{ErrorKind, NodeIdentity, TraceContext};

/// How many events a watcher may fall behind before it misses some.
pub(crate) const BACKLOG: usize = 1024;

/// Messages in events larger than this, as JSON, are shown as their size only.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// An event's message as JSON, or `{"truncated": true, "bytes": N}` when it is larger than
/// [`MAX_MESSAGE_BYTES`], so watchers keep and send bounded events.
pub fn message_json(message: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(message).unwrap_or_default();
    if bytes.len() <= MAX_MESSAGE_BYTES {
        return bytes;
    }
    serde_json::to_vec(&serde_json::json!({ "truncated": true, "bytes": bytes.len() }))
        .unwrap_or_default()
}

/// One thing that happened at a node.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it happened.
    pub at: SystemTime,
    /// The node.
    pub node: Arc<NodeIdentity>,
    /// The port the message came in or went out on.
    pub port: String,
    /// The run's trace, and the delivery's place in it.
    pub trace: TraceContext,
    /// What happened.
    pub what: What,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone)]
pub enum What {
    /// A message arrived at an input port (secret fields hidden).
    Received(Value),
    /// The node emitted a message on an output port (secret fields hidden).
    Emitted(Value),
    /// The node finished handling a message.
    Answered {
        /// How long the node and everything downstream of it took.
        elapsed: Duration,
    },
    /// The node wrote a line to its debug stream (a script's `console.log`).
    Logged(String),
    /// Handling a message failed.
    Failed {
        /// The failure's kind.
        kind: ErrorKind,
        /// What went wrong.
        message: String,
        /// How long it took to fail.
        elapsed: Duration,
    },
}
