//! `/api/mcp`: the Model Context Protocol over streamable HTTP (`crate::mcp`), for assistants
//! that reach the engine itself. It sits behind the API's own authentication, so a caller
//! without credentials the engine takes is refused before any message is read, and each tool
//! is one request to the API's routes, made in-process with the credentials the MCP request
//! carries: the caller acts as themselves, with their own rights.
//!
//! A `POST` carries one JSON-RPC message and is answered with `application/json` (a request's
//! answer) or `202 Accepted` (a notification); no server-sent stream is offered, so `GET` is
//! 405. `initialize` starts a session whose id (`Mcp-Session-Id`) every later message carries;
//! a session belongs to the credentials that started it, and `DELETE` ends it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use weir_api::REQUEST_HEADER;

use super::{
    access::{self, Authenticator},
    extract,
};
use crate::mcp::{
    rpc::{self, Incoming, RpcError, code},
    server,
    tools::{Engine, Reply},
};

/// The header that names a session.
const SESSION_HEADER: &str = "mcp-session-id";

/// The header that names the protocol version after `initialize`.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// How many sessions are kept at most; the least recently used goes first.
const MAX_SESSIONS: usize = 1024;

/// How long an unused session is kept.
const SESSION_IDLE: Duration = Duration::from_secs(3600);

/// The largest answer of the API a tool reads: a large flow, or many messages.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// The MCP route, for `router` to serve beside the API's routes; `api` is those routes, which
/// the tools call in-process.
pub fn routes(api: Router, authenticator: Authenticator) -> Router {
    let mcp = Mcp { api, sessions: Arc::default() };
    Router::new()
        .route("/mcp", post(message).get(no_stream).delete(end))
        .layer(middleware::from_fn_with_state(authenticator, access::authenticate))
        .layer(DefaultBodyLimit::max(rpc::MAX_MESSAGE_BYTES))
        .with_state(mcp)
}

#[derive(Clone)]
struct Mcp {
    api: Router,
    sessions: Arc<Sessions>,
}

/// The sessions under way, each with a digest of the credentials that started it.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Kept>>);

struct Kept {
    caller: [u8; 32],
    used: Instant,
}

impl Sessions {
    fn start(&self, caller: [u8; 32]) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = Instant::now();
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|_, session| now.duration_since(session.used) < SESSION_IDLE);
        if kept.len() >= MAX_SESSIONS
            && let Some(oldest) = kept.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| id.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(id.clone(), Kept { caller, used: now });
        id
    }

    /// Whether session `id` is under way for `caller`; marks it used.
    fn known(&self, id: &str, caller: [u8; 32]) -> bool {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.get_mut(id) {
            Some(session) if session.caller == caller && session.used.elapsed() < SESSION_IDLE => {
                session.used = Instant::now();
                true
            }
            _ => false,
        }
    }

    fn end(&self, id: &str, caller: [u8; 32]) -> bool {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.get(id).is_some_and(|session| session.caller == caller) {
            kept.remove(id);
            return true;
        }
        false
    }
}

/// Who sends, as a digest of their credentials (none on an engine without users).
fn caller_of(headers: &HeaderMap) -> [u8; 32] {
    Sha256::digest(access::token_of(headers).unwrap_or_default().as_bytes()).into()
}

/// A JSON-RPC error answered with `status`.
fn refused(status: StatusCode, id: &Value, error: &RpcError) -> Response {
    (status, axum::Json(rpc::error(id, error))).into_response()
}

fn bad(message: impl Into<String>) -> Response {
    refused(StatusCode::BAD_REQUEST, &Value::Null, &RpcError::new(code::INVALID_REQUEST, message))
}

/// One message of a session, or the `initialize` that starts one.
async fn message(State(mcp): State<Mcp>, headers: HeaderMap, body: extract::Body) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        let error = RpcError::new(code::INVALID_REQUEST, "a message is sent as application/json");
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, &Value::Null, &error);
    }
    if let Some(version) = headers.get(VERSION_HEADER) {
        let version = version.to_str().unwrap_or_default();
        if !server::PROTOCOL_VERSIONS.contains(&version) {
            return bad(format!(
                "MCP-Protocol-Version {version:?} is not spoken here: {}",
                server::PROTOCOL_VERSIONS.join(", ")
            ));
        }
    }
    let message = rpc::read(&body.0);
    if let (false, [Err((id, error))]) = (message.batch, &message.items[..]) {
        return refused(StatusCode::BAD_REQUEST, id, error);
    }
    let caller = caller_of(&headers);
    // An initialize comes alone, never in a batch.
    let starts = !message.batch
        && matches!(&message.items[..], [Ok(Incoming::Request { method, .. })] if method == "initialize");
    let session = if starts {
        mcp.sessions.start(caller)
    } else {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|id| id.to_str().ok()) else {
            return bad("send the Mcp-Session-Id header that initialize answered");
        };
        if !mcp.sessions.known(id, caller) {
            let error = RpcError::new(
                code::INVALID_REQUEST,
                "no such session: it ended or was never started with these credentials; \
                 initialize again",
            );
            return refused(StatusCode::NOT_FOUND, &Value::Null, &error);
        }
        id.to_owned()
    };
    let engine = InProcess { api: mcp.api.clone(), credentials: credentials(&headers) };
    let Some(answer) = server::answer(&engine, message).await else {
        return StatusCode::ACCEPTED.into_response();
    };
    // An initialize that was refused starts nothing.
    let refused = starts && answer.get("error").is_some();
    if refused {
        mcp.sessions.end(&session, caller);
    }
    let mut response = axum::Json(answer).into_response();
    if let Some(value) = (!refused).then(|| HeaderValue::from_str(&session).ok()).flatten() {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

/// No stream of the server's own: everything is answered where it is asked.
async fn no_stream() -> Response {
    let mut response = (
        StatusCode::METHOD_NOT_ALLOWED,
        "this MCP endpoint offers no event stream: POST each message",
    )
        .into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
    response
}

/// Ends a session.
async fn end(State(mcp): State<Mcp>, headers: HeaderMap) -> Response {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|id| id.to_str().ok()) else {
        return bad("send the Mcp-Session-Id header of the session to end");
    };
    if mcp.sessions.end(id, caller_of(&headers)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let error = RpcError::new(code::INVALID_REQUEST, "no such session");
        refused(StatusCode::NOT_FOUND, &Value::Null, &error)
    }
}

/// The headers that carry who the caller is, to pass on to the API.
fn credentials(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    [header::AUTHORIZATION, header::COOKIE]
        .into_iter()
        .flat_map(|name| {
            headers.get_all(&name).iter().map(move |value| (name.clone(), value.clone()))
        })
        .collect()
}

/// The API's routes, called in-process with the MCP request's credentials.
struct InProcess {
    api: Router,
    credentials: Vec<(HeaderName, HeaderValue)>,
}

#[async_trait::async_trait]
impl Engine for InProcess {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in &self.credentials {
            request = request.header(name, value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .header(REQUEST_HEADER, "1")
                .body(Body::from(body.to_string())),
            None => request.header(REQUEST_HEADER, "1").body(Body::empty()),
        }
        .map_err(|err| format!("cannot make the request {path}: {err}"))?;
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|err| format!("the API failed: {err}"))?;
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body(), MAX_ANSWER_BYTES).await.map_err(|err| {
            format!("cannot read the API's answer (at most {} MiB): {err}", MAX_ANSWER_BYTES >> 20)
        })?;
        Ok(Reply { status, body: body.to_vec() })
    }
}
