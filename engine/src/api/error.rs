//! The API's error answers: `{"error": {"kind", "message"}}` with a status that fits, or 422
//! with `{"errors": [...]}` listing every problem of a submitted document at once.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;
use weir_sdk::{ErrorKind, NodeError};
use weir_store::StoreError;

use crate::ops::OpError;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// One thing went wrong.
    Failed {
        /// The HTTP status.
        status: StatusCode,
        /// What kind of failure, for the editor to branch on (see `docs/api.md`).
        kind: &'static str,
        /// What went wrong and where, lowercase.
        message: String,
    },
    /// A submitted document breaks rules: every problem, nothing saved (422).
    Invalid(Vec<Problem>),
}

/// One problem of a submitted document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The document's number in an imported file, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The item's index when that document is a `kind: List`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The resource, as `Kind/name` (such as `FlowNode/tick`), or where it stands in the body
    /// (such as `nodes[2]`) when it has no name to tell it by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The field at fault, such as `spec.edges[0].to.port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem of `resource`, at `field` when one is named (an empty path names none).
    pub fn new(resource: Option<String>, field: &str, message: impl Into<String>) -> Self {
        Self {
            document: None,
            item: None,
            resource,
            field: (!field.is_empty()).then(|| field.to_owned()),
            message: message.into(),
        }
    }
}

impl ApiError {
    fn failed(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self::Failed { status, kind, message: message.into() }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: the request carries no credentials the cluster takes.
    pub fn unauthenticated() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in: send a Kubernetes bearer token (Authorization: Bearer TOKEN, or POST /api/session)",
        )
    }

    /// 401: the cluster refuses the token the caller signed in with.
    pub fn token_refused() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the cluster does not accept this token: it may have expired, or be for another cluster",
        )
    }

    /// 403: the cluster refused what the caller asked for, in its own words.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 401: `weir up --token-file` wants its token and the request carries none.
    pub fn shared_token_missing() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in: send the token of weir up's --token-file (Authorization: Bearer TOKEN, or POST /api/session)",
        )
    }

    /// 401: the request carries a token that is not the one of `weir up --token-file`.
    pub fn shared_token_refused() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this is not the token of weir up's --token-file",
        )
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request collides with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::CONFLICT, "conflict", message)
    }

    /// 502: a module cannot be reached, or answered with something that is not an answer.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::BAD_GATEWAY, "unreachable", message)
    }

    /// 500: a fault of the engine.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// One problem as a 422 list.
    pub fn invalid(problem: Problem) -> Self {
        Self::Invalid(vec![problem])
    }

    /// A node's failure, with the status its kind calls for.
    pub fn node(error: &NodeError, message: String) -> Self {
        let status = match error.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::failed(status, error.kind().as_str(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Failed { status, kind, message } => {
                if status.is_server_error() {
                    tracing::warn!(status = status.as_u16(), kind, "api: {message}");
                }
                let mut response =
                    (status, Json(json!({ "error": { "kind": kind, "message": message } })))
                        .into_response();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    // The rest of the body stays unread, so the server closes the connection:
                    // said here, a client does not send its next request on it.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
                }
                response
            }
            Self::Invalid(problems) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "errors": problems })))
                    .into_response()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let (status, kind) = status_of(&err);
        let message = match err {
            // The cause (which file, what the system said) is the useful part.
            StoreError::Corrupt { .. } | StoreError::Io { .. } => {
                format!("{:#}", anyhow::Error::new(err))
            }
            err => err.to_string(),
        };
        Self::failed(status, kind, message)
    }
}

/// An operation's failure: a store error behind it decides the status, a solution that is not
/// there is 404, settings that do not fit it are 400; the message is the whole chain.
impl From<OpError> for ApiError {
    fn from(err: OpError) -> Self {
        use crate::ops::solution::SolutionProblem;
        let err = match err {
            OpError::Store(source) => return source.into(),
            err => err,
        };
        let (status, kind) = match &err {
            OpError::Solution(SolutionProblem::Unknown { .. }) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            OpError::Solution(
                SolutionProblem::NoSuchSetting(_) | SolutionProblem::Settings { .. },
            ) => (StatusCode::BAD_REQUEST, "bad_request"),
            err => {
                err.store_error().map_or((StatusCode::INTERNAL_SERVER_ERROR, "internal"), status_of)
            }
        };
        Self::failed(status, kind, chain(&err))
    }
}

impl From<crate::ops::solution::SolutionProblem> for ApiError {
    fn from(err: crate::ops::solution::SolutionProblem) -> Self {
        OpError::from(err).into()
    }
}

/// An error with its causes, as one line: `what failed: why: why that`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

fn status_of(err: &StoreError) -> (StatusCode, &'static str) {
    match err {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => {
            (StatusCode::CONFLICT, "conflict")
        }
        StoreError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        StoreError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        StoreError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        StoreError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        StoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        StoreError::Corrupt { .. } | StoreError::Io { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}
