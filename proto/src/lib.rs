//! The gRPC contract between Weir's module processes (`weir/v1/module.proto`), and the mapping
//! of failures to the wire and back so that their kind survives the hop.

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
mod generated {
    tonic::include_proto!("weir.v1");
}

pub use generated::*;
use weir_sdk::{ErrorKind as Kind, NodeError};

impl From<&NodeError> for Failure {
    fn from(error: &NodeError) -> Self {
        let kind = match error.kind() {
            Kind::Invalid => ErrorKind::Invalid,
            Kind::Transient => ErrorKind::Transient,
            Kind::Cancelled => ErrorKind::Cancelled,
            Kind::Internal => ErrorKind::Internal,
        };
        Self {
            kind: kind.into(),
            message: error.message().to_owned(),
            retries_spent: error.retries_spent(),
            retry_after_ms: error
                .retry_after()
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl From<Failure> for NodeError {
    fn from(failure: Failure) -> Self {
        // A kind this side does not know (a newer peer) is treated as internal: never retried.
        let kind = match ErrorKind::try_from(failure.kind) {
            Ok(ErrorKind::Invalid) => Kind::Invalid,
            Ok(ErrorKind::Transient) => Kind::Transient,
            Ok(ErrorKind::Cancelled) => Kind::Cancelled,
            Ok(ErrorKind::Internal | ErrorKind::Unspecified) | Err(_) => Kind::Internal,
        };
        let mut error = NodeError::new(kind, failure.message);
        if let Some(wait) = failure.retry_after_ms {
            error = error.with_retry_after(std::time::Duration::from_millis(wait));
        }
        if failure.retries_spent { error.with_retries_spent() } else { error }
    }
}

/// Whether hyper dropped the request before sending it (its connection was closing): the
/// source chain holds a hyper error that says it was cancelled. A deadline that passed is not
/// this (its source is tonic's `TimeoutExpired`).
fn dropped_unsent(status: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = cause {
        if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return true;
        }
        cause = error.source();
    }
    false
}

impl From<&tonic::Status> for Refusal {
    fn from(status: &tonic::Status) -> Self {
        Self { code: status.code().into(), message: status.message().to_owned() }
    }
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        Self::new(tonic::Code::from(refusal.code), refusal.message)
    }
}

/// The failure a gRPC status stands for, when the call itself failed (the peer is gone, the
/// deadline passed) rather than the node.
pub fn failure_of_status(status: &tonic::Status, peer: &str) -> NodeError {
    use std::error::Error as _;
    use tonic::Code;
    let message = format!("module {peer}: {}", status.message());
    // The connection itself broke (the peer died or was cut off): which attempt it was and
    // whether the peer acted on it are unknown, as with any network failure; retry it.
    if status.code() == Code::Unknown
        && let Some(broken) =
            status.source().and_then(|s| s.downcast_ref::<tonic::transport::Error>())
    {
        let mut cause = broken.to_string();
        let mut source = broken.source();
        while let Some(inner) = source {
            // Layers often repeat the message of the layer below.
            let inner_text = inner.to_string();
            if !cause.ends_with(&inner_text) {
                cause = format!("{cause}: {inner_text}");
            }
            source = inner.source();
        }
        return NodeError::transient(format!("module {peer}: the connection broke ({cause})"));
    }
    match status.code() {
        // Cancelled by the transport below (hyper dropped the request as its connection
        // closed, as when the peer stops taking calls): the peer never took it, so another
        // attempt (at another replica) is safe.
        Code::Cancelled if dropped_unsent(status) => NodeError::transient(format!(
            "module {peer}: the request was dropped before the module took it ({})",
            status.message()
        )),
        Code::DeadlineExceeded | Code::Cancelled => NodeError::cancelled(message),
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted => {
            NodeError::transient(message)
        }
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition => {
            NodeError::invalid(message)
        }
        _ => NodeError::internal(message),
    }
}
