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

/// How many events a watcher may fall behind before it misses some. With messages and lines
/// bounded as below, the events waiting for the slowest watcher hold at most about
/// `BACKLOG × MAX_MESSAGE_BYTES` (64 MiB).
pub(crate) const BACKLOG: usize = 1024;

/// Messages in events larger than this, as JSON, are shown as their size only.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Lines a node logs longer than this are cut, ending in `…`.
pub const MAX_LINE_BYTES: usize = 4 * 1024;

/// An event's message as JSON, or `{"truncated": true, "bytes": N}` when it is larger than
/// [`MAX_MESSAGE_BYTES`], so watchers keep and send bounded events.
pub fn message_json(message: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(message).unwrap_or_default();
    if json.len() <= MAX_MESSAGE_BYTES {
        return json;
    }
    serde_json::to_vec(&truncated(json.len())).unwrap_or_default()
}

/// `message` as an event holds it: itself, or its size only when larger than
/// [`MAX_MESSAGE_BYTES`], so the events waiting for a slow watcher stay small.
pub(crate) fn kept(message: Value) -> Value {
    let size = weir_sdk::json_size(&message);
    if size > MAX_MESSAGE_BYTES { truncated(size) } else { message }
}

/// `line` as an event holds it: cut to [`MAX_LINE_BYTES`] on a character boundary, ending in
/// `…`.
pub fn kept_line(line: &str) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.to_owned();
    }
    format!("{}…", &line[..line.floor_char_boundary(MAX_LINE_BYTES - '…'.len_utf8())])
}

/// What an event shows of a message too large to keep.
fn truncated(bytes: usize) -> Value {
    serde_json::json!({ "truncated": true, "bytes": bytes })
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
    pub what: Observed,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone)]
pub enum Observed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_bounded_messages_and_lines() {
        let small = serde_json::json!({ "n": 1 });
        assert_eq!(kept(small.clone()), small);
        let big = Value::String("x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(
            kept(big.clone()),
            serde_json::json!({ "truncated": true, "bytes": MAX_MESSAGE_BYTES + 2 })
        );
        assert_eq!(message_json(&big), br#"{"truncated":true,"bytes":65538}"#);
        assert_eq!(kept_line("short"), "short");
        let line = kept_line(&"é".repeat(MAX_LINE_BYTES));
        assert!(line.len() <= MAX_LINE_BYTES && line.ends_with('…'), "{}", line.len());
    }
}
