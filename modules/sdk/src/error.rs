//! How a node fails. The kind decides what the runtime does (only transient failures are
//! retried) and survives every hop, in-process or over gRPC.

use serde::{Deserialize, Serialize};

/// What kind of failure a [`NodeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Bad input or settings: the same message would fail again, so it is never retried.
    Invalid,
    /// A passing failure (a timeout, a 429, a conflict): the runtime retries it by the edge's
    /// retry policy.
    Transient,
    /// The run was cancelled or its deadline passed.
    Cancelled,
    /// A bug or a broken invariant in the node or the runtime.
    Internal,
}

impl ErrorKind {
    /// The kind as written in status and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Transient => "transient",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }
}

/// The longest message a [`NodeError`] keeps, in bytes. Failures go to status, logs, the wire
/// and the editor, so a longer message (a script throwing megabytes) is cut there, ending in
/// [`CUT_MARKER`] and how many bytes were cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// What a cut message ends with, before the count of bytes cut.
pub const CUT_MARKER: &str = "… (cut: ";

/// A node's failure: a kind and a message that names the port, field or peer concerned, at
/// most [`MAX_MESSAGE_BYTES`] long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(from = "Unbounded")]
#[error("{message}")]
pub struct NodeError {
    kind: ErrorKind,
    message: String,
    /// Set once an edge has spent its retries on this failure, so the edges above it pass it
    /// on instead of running the whole subtree again (retries would multiply down a chain).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    retries_spent: bool,
    /// For a transient failure: the least wait before trying again that the far side asked
    /// for (an HTTP `Retry-After`), in milliseconds; the edge waits at least this long.
    #[serde(default, rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// A [`NodeError`] as it arrives, before its message is bounded.
#[derive(Deserialize)]
struct Unbounded {
    kind: ErrorKind,
    message: String,
    #[serde(default)]
    retries_spent: bool,
    #[serde(default, rename = "retryAfterMs")]
    retry_after_ms: Option<u64>,
}

impl From<Unbounded> for NodeError {
    fn from(Unbounded { kind, message, retries_spent, retry_after_ms }: Unbounded) -> Self {
        Self { kind, message: bounded(message), retries_spent, retry_after_ms }
    }
}

/// `message`, cut to [`MAX_MESSAGE_BYTES`] (on a character boundary) when longer.
fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    // Room for the marker and the count, so the whole stays within the bound.
    let cut =
        message.floor_char_boundary(MAX_MESSAGE_BYTES - CUT_MARKER.len() - " bytes)".len() - 20);
    message.truncate(cut);
    message.push_str(&format!("{CUT_MARKER}{} bytes)", total - cut));
    message
}

impl NodeError {
    /// A failure of the given kind; a message longer than [`MAX_MESSAGE_BYTES`] is cut.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: bounded(message.into()), retries_spent: false, retry_after_ms: None }
    }

    /// Bad input or settings; never retried.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// A passing failure; retried by the edge's policy.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// The run was cancelled or ran out of time.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    /// A bug or a broken invariant.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the runtime may try again: a transient failure no edge has spent its retries on.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient && !self.retries_spent
    }

    /// Whether an edge below has already retried it as often as its policy allows.
    pub fn retries_spent(&self) -> bool {
        self.retries_spent
    }

    /// The same failure, marked as retried as often as an edge allows: it stays transient for
    /// whoever reports it, but no edge above retries it again.
    #[must_use]
    pub fn with_retries_spent(mut self) -> Self {
        self.retries_spent = true;
        self
    }

    /// The same failure, asking the edge that retries it to wait at least `wait` first (what
    /// a server's `Retry-After` said, capped by the node).
    #[must_use]
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The least wait before trying again that the failure asks for, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_ms.map(std::time::Duration::from_millis)
    }

    /// The same failure with `context` in front of its message, such as the node it came from.
    #[must_use]
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self { message: bounded(format!("{context}: {}", self.message)), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(NodeError::transient("429 from registry").is_retryable());
        for error in [NodeError::invalid("x"), NodeError::cancelled("x"), NodeError::internal("x")]
        {
            assert!(!error.is_retryable(), "{error:?}");
        }
    }

    #[test]
    fn a_failure_whose_retries_are_spent_is_not_retried_again() {
        let spent = NodeError::transient("503").with_retries_spent().context("edge a.out → b.in");
        assert!(!spent.is_retryable() && spent.retries_spent(), "context keeps the mark");
        assert_eq!(spent.kind(), ErrorKind::Transient, "it is still a passing failure");
        let wire = serde_json::to_string(&spent).unwrap();
        assert_eq!(serde_json::from_str::<NodeError>(&wire).unwrap(), spent);
        assert!(!serde_json::to_string(&NodeError::transient("x")).unwrap().contains("retries"));
    }

    #[test]
    fn a_retry_after_survives_context_and_the_wire() {
        let wait = std::time::Duration::from_millis(2_500);
        let error = NodeError::transient("429").with_retry_after(wait).context("node hook");
        assert_eq!(error.retry_after(), Some(wait));
        let wire = serde_json::to_string(&error).unwrap();
        assert!(wire.contains(r#""retryAfterMs":2500"#), "{wire}");
        assert_eq!(serde_json::from_str::<NodeError>(&wire).unwrap(), error);
        assert_eq!(NodeError::transient("x").retry_after(), None);
    }

    #[test]
    fn long_messages_are_cut_with_a_marker_wherever_they_come_from() {
        let thrown = format!("script threw {}", "é".repeat(1_000_000));
        let error = NodeError::invalid(thrown.clone());
        assert!(error.message().len() <= MAX_MESSAGE_BYTES, "{}", error.message().len());
        assert!(thrown.starts_with(error.message().split(CUT_MARKER).next().unwrap()));
        assert!(error.message().ends_with(&format!(
            "{CUT_MARKER}{} bytes)",
            thrown.len() - error.message().split(CUT_MARKER).next().unwrap().len()
        )));
        let with_context = error.context("x".repeat(MAX_MESSAGE_BYTES));
        assert!(with_context.message().len() <= MAX_MESSAGE_BYTES);
        let wire = serde_json::json!({ "kind": "internal", "message": thrown }).to_string();
        let read: NodeError = serde_json::from_str(&wire).unwrap();
        assert!(read.message().len() <= MAX_MESSAGE_BYTES && read.message().contains(CUT_MARKER));
        let short = NodeError::invalid("x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(
            short.message().len(),
            MAX_MESSAGE_BYTES,
            "a message at the bound is kept whole"
        );
    }

    #[test]
    fn kind_and_message_survive_serialization() {
        let error = NodeError::transient("registry answered 503").context("node copy");
        let wire = serde_json::to_string(&error).unwrap();
        assert_eq!(wire, r#"{"kind":"transient","message":"node copy: registry answered 503"}"#);
        assert_eq!(serde_json::from_str::<NodeError>(&wire).unwrap(), error);
    }
}
