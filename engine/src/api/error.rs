//! The API's error answers: `{"error": {"kind", "message"}}` with a status that fits, or 422
//! with `{"errors": [...]}` listing every problem of a submitted document at once.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use weir_api::{ErrorBody, Failure, FailureKind, Problem};
use weir_sdk::{ErrorKind, NodeError};
use weir_store::StoreError;

use crate::{
    kinds::KindsError,
    ops::error::{OpError, SolutionProblem},
};

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// One thing went wrong.
    Failed {
        /// The HTTP status.
        status: StatusCode,
        /// What kind of failure, for the editor to branch on (see `docs/api.md`).
        kind: FailureKind,
        /// What went wrong and where, lowercase.
        message: String,
    },
    /// A submitted document breaks rules: every problem, nothing saved (422).
    Invalid(Vec<Problem>),
}

impl ApiError {
    fn failed(status: StatusCode, kind: FailureKind, message: impl Into<String>) -> Self {
        Self::Failed { status, kind, message: message.into() }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::BAD_REQUEST, FailureKind::BadRequest, message)
    }

    /// 401: the request carries no credentials the cluster takes.
    pub fn unauthenticated() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            FailureKind::Unauthenticated,
            "sign in: send a Kubernetes bearer token (Authorization: Bearer TOKEN, or POST /api/session)",
        )
    }

    /// 401: the cluster refuses the token the caller signed in with.
    pub fn token_refused() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            FailureKind::Unauthenticated,
            "the cluster does not accept this token: it may have expired, or be for another cluster",
        )
    }

    /// 403: the cluster refused what the caller asked for, in its own words.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::FORBIDDEN, FailureKind::Forbidden, message)
    }

    /// 401: `weir up --token-file` wants its token and the request carries none.
    pub fn shared_token_missing() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            FailureKind::Unauthenticated,
            "sign in: send the token of weir up's --token-file (Authorization: Bearer TOKEN, or POST /api/session)",
        )
    }

    /// 401: the request carries a token that is not the one of `weir up --token-file`.
    pub fn shared_token_refused() -> Self {
        Self::failed(
            StatusCode::UNAUTHORIZED,
            FailureKind::Unauthenticated,
            "this is not the token of weir up's --token-file",
        )
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::NOT_FOUND, FailureKind::NotFound, message)
    }

    /// 409: the request collides with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::CONFLICT, FailureKind::Conflict, message)
    }

    /// 412: what the request was made over (`If-Match`) is not what is stored any more.
    pub fn stale(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::PRECONDITION_FAILED, FailureKind::Stale, message)
    }

    /// 502: a module cannot be reached, or answered with something that is not an answer.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::BAD_GATEWAY, FailureKind::Unreachable, message)
    }

    /// 500: a fault of the engine.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::failed(StatusCode::INTERNAL_SERVER_ERROR, FailureKind::Internal, message)
    }

    /// One problem as a 422 list.
    pub fn invalid(problem: Problem) -> Self {
        Self::Invalid(vec![problem])
    }

    /// A node's failure, with the status its kind calls for.
    pub fn node(error: &NodeError, message: String) -> Self {
        let (status, kind) = match error.kind() {
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, FailureKind::Invalid),
            ErrorKind::Transient => (StatusCode::SERVICE_UNAVAILABLE, FailureKind::Transient),
            ErrorKind::Cancelled => (StatusCode::GATEWAY_TIMEOUT, FailureKind::Cancelled),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, FailureKind::Internal),
        };
        Self::failed(status, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Failed { status, kind, message } => {
                if status.is_server_error() {
                    tracing::warn!(status = status.as_u16(), ?kind, "api: {message}");
                }
                let body = ErrorBody { error: Some(Failure { kind, message }), errors: Vec::new() };
                let mut response = (status, Json(body)).into_response();
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
                let body = ErrorBody { error: None, errors: problems };
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
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
        let err = match err {
            OpError::Store(source) => return source.into(),
            err => err,
        };
        let (status, kind) = match &err {
            OpError::Solution(SolutionProblem::Unknown { .. }) => {
                (StatusCode::NOT_FOUND, FailureKind::NotFound)
            }
            OpError::Solution(
                SolutionProblem::NoSuchSetting(_) | SolutionProblem::Settings { .. },
            ) => (StatusCode::BAD_REQUEST, FailureKind::BadRequest),
            err => err
                .store_error()
                .map_or((StatusCode::INTERNAL_SERVER_ERROR, FailureKind::Internal), status_of),
        };
        Self::failed(status, kind, chain(&err))
    }
}

/// What the cluster said of its kinds: 401, 502 when it cannot be reached, 404 for a kind it
/// does not serve, 400 for a name that is not one, 503 without a cluster.
impl From<KindsError> for ApiError {
    fn from(err: KindsError) -> Self {
        match err {
            KindsError::Unauthorized => Self::token_refused(),
            KindsError::Unreachable(_) => Self::unreachable(err.to_string()),
            KindsError::NoSuchKind { .. } => Self::not_found(err.to_string()),
            KindsError::BadName(_) => Self::bad_request(err.to_string()),
            KindsError::NoCluster(_) => Self::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                FailureKind::NoCluster,
                err.to_string(),
            ),
        }
    }
}

impl From<SolutionProblem> for ApiError {
    fn from(err: SolutionProblem) -> Self {
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

fn status_of(err: &StoreError) -> (StatusCode, FailureKind) {
    match err {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, FailureKind::NotFound),
        StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => {
            (StatusCode::CONFLICT, FailureKind::Conflict)
        }
        StoreError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, FailureKind::Invalid),
        StoreError::Forbidden { .. } => (StatusCode::FORBIDDEN, FailureKind::Forbidden),
        StoreError::Unauthenticated => (StatusCode::UNAUTHORIZED, FailureKind::Unauthenticated),
        StoreError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, FailureKind::TooLarge),
        StoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, FailureKind::Unavailable),
        StoreError::Corrupt { .. } | StoreError::Io { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, FailureKind::Internal)
        }
    }
}
