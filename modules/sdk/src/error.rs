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

/// A node's failure: a kind and a message that names the port, field or peer concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    kind: ErrorKind,
    message: String,
    /// Set once an edge has spent its retries on this failure, so the edges above it pass it
    /// on instead of running the whole subtree again (retries would multiply down a chain).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    retries_spent: bool,
}

impl NodeError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retries_spent: false }
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

    /// The same failure with `context` in front of its message, such as the node it came from.
    #[must_use]
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self { message: format!("{context}: {}", self.message), ..self }
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
    fn kind_and_message_survive_serialization() {
        let error = NodeError::transient("registry answered 503").context("node copy");
        let wire = serde_json::to_string(&error).unwrap();
        assert_eq!(wire, r#"{"kind":"transient","message":"node copy: registry answered 503"}"#);
        assert_eq!(serde_json::from_str::<NodeError>(&wire).unwrap(), error);
    }
}
