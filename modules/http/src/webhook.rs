//! `webhook`: a trigger that starts a run for each request to
//! `/hooks/{namespace}/{flow}/{node}` (plus an optional sub-path) on the module's webhook
//! listener, and answers with what the run answered.
//!
//! Unlike timers it runs on every replica, each serving what reaches it. A request is checked
//! in this order, each failure answered at once: method (405), sub-path (404), the node's
//! concurrency (429), size (413, before reading when announced), a body that arrives too
//! slowly (408), the caller (401, see [`crate::signature`]), the body's content type (400), a
//! GitHub delivery id already accepted within `deliveryWindow` (200 without a run, or 409
//! while its run is under way; see [`crate::deliveries`]).
//! The run's trigger holds the method, path, sub-path parameters, query, headers (never
//! `Authorization`, `Proxy-Authorization` or `Cookie`) and the body read by content type. The
//! run's answer becomes the response: `{status, headers, body}` (what `http/respond` answers)
//! sets them, null is 204, anything else is a JSON 200. A failed run is answered with a status
//! for its kind and only the run's trace id as the correlation id; the failure itself goes to
//! the node's status and the log under that id. With `respond: immediately` the request is
//! answered at once and the run goes on: 202 with the id unless `immediateStatus` and
//! `immediateBody` say otherwise (Slack's slash commands want a 200 whose body the user sees
//! within 3 seconds).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use weir_sdk::{
    Component, Context, Description, ErrorKind, HumanDuration, JsonSchema, NodeError, Port, Value,
};

use crate::{
    body::{self, Encoding},
    deliveries::{self, Deliveries, Seen},
    hooks,
    request::HttpMethod,
    signature::{Checker, HookAuth},
};

/// Settings of a webhook.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The methods it answers; others get 405.
    pub methods: Vec<HttpMethod>,
    /// A sub-path after `/hooks/{namespace}/{flow}/{node}/`, such as `{repo}/push`: each
    /// `{name}` matches one segment and lands in the trigger's `params`. Empty: no sub-path.
    pub path: String,
    /// Who may call it.
    pub auth: HookAuth,
    /// The largest body taken, in bytes (413 beyond); at most 64 MiB.
    pub max_body_bytes: u64,
    /// `afterRun`: answer with what the run answered; `immediately`: answer at once (see
    /// `immediateStatus` and `immediateBody`) and run on.
    pub respond: Respond,
    /// The status of the answer `respond: immediately` gives, between 200 and 299.
    pub immediate_status: u16,
    /// The body of the answer `respond: immediately` gives: a string is sent as text, anything
    /// else as JSON; null is `{"id": …}` with the run's correlation id.
    pub immediate_body: Value,
    /// How many requests this node handles at once on each replica (429 beyond).
    pub concurrency: u32,
    /// How long a run may take before the caller gets 504 (and the run is cancelled).
    pub timeout: HumanDuration,
    /// How long the body may take to arrive (408 beyond), so a slow caller cannot hold a
    /// place for long.
    pub read_timeout: HumanDuration,
    /// How long a GitHub delivery id (`X-GitHub-Delivery`) is remembered once its run went
    /// well (no failure, no 5xx answer): the same delivery again within it (GitHub's "Redeliver", or a replay) is answered
    /// 200 with `duplicate: true` and not run; `0s` runs every delivery. GitHub signs the body
    /// only, so a replay under a new id is not caught; each replica remembers its own.
    pub delivery_window: HumanDuration,
    /// The most delivery ids remembered (the oldest go first beyond it), up to 100000.
    pub delivery_memory: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            methods: vec![HttpMethod::Post],
            path: String::new(),
            auth: HookAuth::default(),
            max_body_bytes: 1 << 20,
            respond: Respond::AfterRun,
            immediate_status: 202,
            immediate_body: Value::Null,
            concurrency: 32,
            timeout: HumanDuration::from_secs(30),
            read_timeout: HumanDuration::from_secs(10),
            // GitHub redelivers deliveries of the last three days.
            delivery_window: HumanDuration::from_secs(3 * 86_400),
            delivery_memory: 10_000,
        }
    }
}

/// When a webhook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Respond {
    /// Once the run answered, with its answer.
    AfterRun,
    /// At once, with `immediateStatus` and `immediateBody`; the run goes on.
    Immediately,
}

/// What each request emits, and what starts the run.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incoming {
    /// The run's correlation id (its trace id), as the caller is told on failure.
    pub id: String,
    /// The method, such as `POST`.
    pub method: String,
    /// The whole path, such as `/hooks/default/deploy/hook/acme/push`.
    pub path: String,
    /// What each `{name}` of the settings' `path` matched.
    pub params: BTreeMap<String, String>,
    /// The query's parameters (one given twice as a list).
    pub query: Map<String, Value>,
    /// The headers by lowercase name, without credentials.
    pub headers: BTreeMap<String, String>,
    /// The body: JSON as JSON, a form as an object, text as a string, anything else as base64;
    /// null when there was none.
    pub body: Value,
    /// How `body` was read: `none`, `json`, `form`, `text` or `base64`.
    pub body_encoding: Encoding,
}

/// The largest body a webhook may be set to take.
const MAX_BODY_BYTES: u64 = 64 << 20;
/// The most requests a node may be set to handle at once.
const MAX_CONCURRENCY: u32 = 10_000;
/// The most delivery ids a node may be set to remember.
const MAX_DELIVERY_MEMORY: u32 = 100_000;
/// GitHub's delivery id.
const DELIVERY_HEADER: &str = "x-github-delivery";
/// Headers never copied into a trigger: they carry the caller's credentials.
const CREDENTIAL_HEADERS: [HeaderName; 3] =
    [header::AUTHORIZATION, header::PROXY_AUTHORIZATION, header::COOKIE];

/// A node of the webhook component.
#[derive(Debug)]
pub struct Webhook {
    pub(crate) core: Arc<Core>,
}

/// What answers a webhook's requests, shared with the listener while the node runs.
#[derive(Debug)]
pub struct Core {
    methods: Vec<axum::http::Method>,
    pattern: Vec<Segment>,
    checker: Checker,
    max_body_bytes: u64,
    respond: Respond,
    immediate_status: StatusCode,
    immediate_body: Value,
    places: Arc<Semaphore>,
    /// The runs of `respond: immediately`, which outlive their request but not the node.
    background: TaskTracker,
    timeout: Duration,
    read_timeout: Duration,
    /// The GitHub deliveries accepted, unless `deliveryWindow` is 0.
    deliveries: Option<Arc<Deliveries>>,
}

/// One segment of a sub-path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Component for Webhook {
    const NAME: &'static str = "webhook";
    const EVERY_REPLICA: bool = true;
    type Settings = WebhookSettings;

    fn describe() -> Description {
        Description {
            label: "Webhook",
            description: "Starts a run for each request to /hooks/{namespace}/{flow}/{node} on \
                the webhook listener and answers with the run's answer; checks bearer tokens or \
                GitHub, Slack and other HMAC signatures.",
            tags: &["trigger", "http", "webhook", "github", "slack", "api"],
            trigger: true,
            permissions: &[],
        }
    }

    fn ports(_: &WebhookSettings) -> Vec<Port> {
        vec![Port::output::<Incoming>("out")]
    }

    fn build(settings: WebhookSettings) -> Result<Self, NodeError> {
        let invalid =
            |field: &str, why: String| NodeError::invalid(format!("settings.{field}: {why}"));
        if settings.methods.is_empty() {
            return Err(invalid("methods", "name at least one method".to_owned()));
        }
        if settings.max_body_bytes > MAX_BODY_BYTES {
            return Err(invalid(
                "maxBodyBytes",
                format!("{} is more than {MAX_BODY_BYTES} (64 MiB)", settings.max_body_bytes),
            ));
        }
        if settings.concurrency == 0 || settings.concurrency > MAX_CONCURRENCY {
            return Err(invalid(
                "concurrency",
                format!("{} is not between 1 and {MAX_CONCURRENCY}", settings.concurrency),
            ));
        }
        for (field, duration) in
            [("timeout", &settings.timeout), ("readTimeout", &settings.read_timeout)]
        {
            if duration.get().is_zero() || duration.get() > Duration::from_secs(3600) {
                return Err(invalid(field, format!("{duration} is not between 1ms and 1h")));
            }
        }
        let immediate_status = StatusCode::from_u16(settings.immediate_status)
            .ok()
            .filter(StatusCode::is_success)
            .ok_or_else(|| {
                invalid(
                    "immediateStatus",
                    format!("{} is not between 200 and 299", settings.immediate_status),
                )
            })?;
        if settings.delivery_memory == 0 || settings.delivery_memory > MAX_DELIVERY_MEMORY {
            return Err(invalid(
                "deliveryMemory",
                format!("{} is not between 1 and {MAX_DELIVERY_MEMORY}", settings.delivery_memory),
            ));
        }
        let window = settings.delivery_window.get();
        let deliveries =
            (!window.is_zero()).then(|| Deliveries::new(window, settings.delivery_memory as usize));
        let pattern = parse_pattern(&settings.path).map_err(|why| invalid("path", why))?;
        let checker = Checker::new(&settings.auth).map_err(NodeError::invalid)?;
        let core = Core {
            methods: settings.methods.iter().map(|m| m.method()).collect(),
            pattern,
            checker,
            max_body_bytes: settings.max_body_bytes,
            respond: settings.respond,
            immediate_status,
            immediate_body: settings.immediate_body,
            places: Arc::new(Semaphore::new(settings.concurrency as usize)),
            background: TaskTracker::new(),
            timeout: settings.timeout.get(),
            read_timeout: settings.read_timeout.get(),
            deliveries,
        };
        Ok(Self { core: Arc::new(core) })
    }

    async fn handle(&self, _: &Context, port: &str, _: Value) -> Result<Value, NodeError> {
        Err(NodeError::invalid(format!("webhook has no input {port}: requests start its runs")))
    }

    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        let route = hooks::register(&self.core, cx);
        cx.cancelled().await;
        drop(route);
        // Runs answered at once are cancelled with the node: wait for them to wind down, so
        // nothing outlives it.
        self.core.background.close();
        self.core.background.wait().await;
        self.core.background.reopen();
        Ok(())
    }
}

/// A sub-path pattern as segments; `{name}` must be a whole segment.
fn parse_pattern(path: &str) -> Result<Vec<Segment>, String> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(Vec::new());
    }
    path.split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name)
                if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(Segment::Param(name.to_owned()))
            }
            Some(_) => Err(format!("{segment:?} is not a parameter such as {{repo}}")),
            None if segment.is_empty() || segment.contains(['{', '}']) => {
                Err(format!("{path:?} has an empty segment or a stray brace"))
            }
            None => Ok(Segment::Literal(segment.to_owned())),
        })
        .collect()
}

/// What each `{name}` matched, or none when `rest` does not match.
fn match_pattern(pattern: &[Segment], rest: &str) -> Option<BTreeMap<String, String>> {
    let rest = rest.trim_end_matches('/');
    let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    if segments.len() != pattern.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (segment, wanted) in segments.iter().zip(pattern) {
        match wanted {
            Segment::Literal(literal) if literal == segment => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) if !segment.is_empty() => {
                params.insert(name.clone(), (*segment).to_owned());
            }
            Segment::Param(_) => return None,
        }
    }
    Some(params)
}

/// An answer with a JSON body.
fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

impl Core {
    /// Answers one request for the node of `cx`; `rest` is the path after the node's name.
    pub(crate) async fn answer(
        &self,
        cx: &Context,
        rest: &str,
        request: Request<Body>,
    ) -> Response {
        let (parts, body) = request.into_parts();
        if !self.methods.contains(&parts.method) {
            let allowed: Vec<&str> = self.methods.iter().map(axum::http::Method::as_str).collect();
            let mut refused =
                answer(StatusCode::METHOD_NOT_ALLOWED, json!({ "error": "method not allowed" }));
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                refused.headers_mut().insert(header::ALLOW, allow);
            }
            return refused;
        }
        let Some(params) = match_pattern(&self.pattern, rest) else {
            return answer(StatusCode::NOT_FOUND, json!({ "error": "no such webhook" }));
        };
        let Ok(place) = Arc::clone(&self.places).try_acquire_owned() else {
            let mut busy = answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": "too many requests at once" }),
            );
            busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return busy;
        };
        let too_large = || {
            answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the body is larger than {} bytes", self.max_body_bytes) }),
            )
        };
        let announced = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|length| length > self.max_body_bytes) {
            return too_large();
        }
        let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let bytes = match tokio::time::timeout(self.read_timeout, axum::body::to_bytes(body, limit))
            .await
        {
            Err(_) => {
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    json!({ "error": "the body came too slowly" }),
                );
            }
            // The only failure of a body a client sent whole is its length.
            Ok(Err(_)) => return too_large(),
            Ok(Ok(bytes)) => bytes,
        };
        let now = chrono::Utc::now().timestamp();
        if let Err(refusal) = self.checker.check(&parts.headers, &bytes, now) {
            tracing::debug!(node = %cx.node(), %refusal, "a webhook caller was refused");
            return answer(
                StatusCode::UNAUTHORIZED,
                json!({ "error": format!("unauthorized: {refusal}") }),
            );
        }
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let (body, body_encoding) = match body::parse(content_type, &bytes) {
            Ok(parsed) => parsed,
            Err(err) => {
                return answer(StatusCode::BAD_REQUEST, json!({ "error": err.to_string() }));
            }
        };
        let delivery = match self.delivery(&parts.headers) {
            Ok(delivery) => delivery,
            Err(answered) => return *answered,
        };
        let query = parts.uri.query().map_or_else(Map::new, |query| {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(query).unwrap_or_default();
            body::form_object(pairs)
        });
        let run = cx.start_run(Value::Null);
        let id = run.run().trace.trace_hex().to_string();
        let incoming = Incoming {
            id: id.clone(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            params,
            query,
            headers: kept_headers(&parts.headers),
            body,
            body_encoding,
        };
        let trigger = match serde_json::to_value(&incoming) {
            Ok(trigger) => trigger,
            Err(err) => {
                return self.failed(
                    cx,
                    &id,
                    &NodeError::internal(format!("cannot encode the request: {err}")),
                );
            }
        };
        let run = run.with_trigger(trigger.clone());
        if self.respond == Respond::Immediately {
            let accepted = self.accepted(&id);
            let (cx, timeout) = (cx.clone(), self.timeout);
            self.background.spawn(async move {
                let _place = place;
                let ran = tokio::time::timeout(timeout, run.emit("out", trigger)).await;
                let failure = match ran {
                    Ok(Ok(_)) => {
                        if let Some(delivery) = delivery {
                            delivery.keep();
                        }
                        return;
                    }
                    Ok(Err(err)) => err,
                    Err(_) => NodeError::cancelled(format!("the run took longer than {timeout:?}")),
                };
                tracing::warn!(node = %cx.node(), id, error = %failure, "a webhook's run failed");
                cx.report(&failure);
            });
            return accepted;
        }
        let ran = tokio::time::timeout(self.timeout, run.emit("out", trigger)).await;
        drop(place);
        match ran {
            Ok(Ok(answered)) => match response(answered) {
                Ok(answered) => {
                    // A flow answering 5xx itself failed the delivery: a redelivery runs again.
                    if let Some(delivery) = delivery
                        && !answered.status().is_server_error()
                    {
                        delivery.keep();
                    }
                    answered
                }
                Err(err) => self.failed(cx, &id, &err),
            },
            Ok(Err(err)) => self.failed(cx, &id, &err),
            Err(_) => self.failed(
                cx,
                &id,
                &NodeError::cancelled(format!("the run took longer than {:?}", self.timeout)),
            ),
        }
    }

    /// The GitHub delivery a request carries, taken as new (none without the header, or when
    /// the node remembers none); otherwise the answer it gets: 200 for one accepted before,
    /// 409 while its run is under way, 400 for an id longer than GitHub's.
    fn delivery(&self, headers: &HeaderMap) -> Result<Option<deliveries::Accepted>, Box<Response>> {
        let (Some(deliveries), Some(id)) = (&self.deliveries, headers.get(DELIVERY_HEADER)) else {
            return Ok(None);
        };
        let id = id.to_str().ok().filter(|id| id.len() <= deliveries::MAX_ID_BYTES).ok_or_else(|| {
            Box::new(answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("the {DELIVERY_HEADER} header is not an id of at most {} characters", deliveries::MAX_ID_BYTES) }),
            ))
        })?;
        match deliveries.begin(id, Instant::now()) {
            Seen::New(accepted) => Ok(Some(accepted)),
            Seen::Done => Err(Box::new(answer(
                StatusCode::OK,
                json!({ "duplicate": true, "delivery": id,
                    "note": "this delivery was accepted before; it is not run again" }),
            ))),
            Seen::Running => Err(Box::new(answer(
                StatusCode::CONFLICT,
                json!({ "error": "this delivery is being handled; it is not run twice at once",
                    "delivery": id }),
            ))),
        }
    }

    /// The answer of `respond: immediately` to the request whose run is `id`.
    fn accepted(&self, id: &str) -> Response {
        match &self.immediate_body {
            Value::Null => answer(self.immediate_status, json!({ "id": id })),
            Value::String(text) => (
                self.immediate_status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text.clone(),
            )
                .into_response(),
            body => answer(self.immediate_status, body.clone()),
        }
    }

    /// The answer to a failed run: a status for its kind and the correlation id; the failure
    /// itself goes to the node's status and the log.
    fn failed(&self, cx: &Context, id: &str, failure: &NodeError) -> Response {
        tracing::warn!(node = %cx.node(), id, error = %failure, "a webhook's run failed");
        cx.report(failure);
        let status = match failure.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        answer(status, json!({ "error": "the flow failed", "id": id }))
    }
}

/// The headers a trigger keeps: all but credentials, by lowercase name.
fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut kept = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        if CREDENTIAL_HEADERS.contains(name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        kept.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    kept
}

/// The response a run's answer makes: `{status, headers?, body?}` sets them, null is 204,
/// anything else is the JSON body of a 200.
fn response(answered: Value) -> Result<Response, NodeError> {
    let shaped = |fields: &Map<String, Value>| {
        fields.get("status").is_some_and(Value::is_u64)
            && fields.keys().all(|k| matches!(k.as_str(), "status" | "headers" | "body"))
    };
    let mut fields = match answered {
        Value::Null => return Ok(StatusCode::NO_CONTENT.into_response()),
        Value::Object(fields) if shaped(&fields) => fields,
        other => return Ok(answer(StatusCode::OK, other)),
    };
    let bad = |why: String| NodeError::invalid(format!("the run's answer {why}"));
    let code = fields.get("status").and_then(Value::as_u64).unwrap_or(200);
    let status = u16::try_from(code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|status| !status.is_informational())
        .ok_or_else(|| bad(format!("has status {code}, which is not between 200 and 999")))?;
    let mut headers = HeaderMap::new();
    if let Some(given) = fields.remove("headers") {
        let Value::Object(given) = given else {
            return Err(bad("has headers that are not an object".to_owned()));
        };
        for (name, value) in given {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("has {name:?}, which is not a header name")))?;
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            let value = HeaderValue::from_str(&text).map_err(|_| {
                bad(format!("has header {name} with characters a header cannot carry"))
            })?;
            headers.insert(header, value);
        }
    }
    let (bytes, content_type) = match fields.remove("body").unwrap_or(Value::Null) {
        Value::Null => (Vec::new(), None),
        Value::String(text) => (text.into_bytes(), Some("text/plain; charset=utf-8")),
        other => (other.to_string().into_bytes(), Some("application/json")),
    };
    if let Some(content_type) = content_type
        && !headers.contains_key(header::CONTENT_TYPE)
    {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    let mut shaped = (status, bytes).into_response();
    shaped.headers_mut().extend(headers);
    Ok(shaped)
}

#[cfg(test)]
mod tests {
    use weir_sdk::testing::Harness;

    use super::*;

    #[test]
    fn sub_paths_match_their_pattern_and_capture_parameters() {
        let pattern = parse_pattern("{repo}/push").unwrap();
        let params = match_pattern(&pattern, "acme/push").unwrap();
        assert_eq!(params, BTreeMap::from([("repo".to_owned(), "acme".to_owned())]));
        assert_eq!(match_pattern(&pattern, "acme/pull"), None);
        assert_eq!(match_pattern(&pattern, "acme"), None);
        assert_eq!(match_pattern(&[], ""), Some(BTreeMap::new()));
        assert_eq!(match_pattern(&[], "extra"), None);
        assert_eq!(
            parse_pattern("a/{b c}").unwrap_err(),
            "\"{b c}\" is not a parameter such as {repo}"
        );
        assert!(parse_pattern("a//b").is_err());
    }

    #[test]
    fn an_answer_sets_status_headers_and_body_or_is_the_body() {
        let shaped =
            response(json!({ "status": 201, "headers": { "x-id": "7" }, "body": "made" })).unwrap();
        assert_eq!(shaped.status(), StatusCode::CREATED);
        assert_eq!(shaped.headers()["x-id"], "7");
        assert_eq!(shaped.headers()["content-type"], "text/plain; charset=utf-8");
        let plain = response(json!({ "seen": 1 })).unwrap();
        assert_eq!(
            (plain.status(), plain.headers()["content-type"].to_str().unwrap()),
            (StatusCode::OK, "application/json")
        );
        assert_eq!(response(Value::Null).unwrap().status(), StatusCode::NO_CONTENT);
        let err = response(json!({ "status": 42 })).unwrap_err();
        assert_eq!(
            err.message(),
            "the run's answer has status 42, which is not between 200 and 999"
        );
        let err = response(json!({ "status": 200, "headers": { "bad name": "x" } })).unwrap_err();
        assert_eq!(err.message(), "the run's answer has \"bad name\", which is not a header name");
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let refused =
            |settings: Value| Harness::build::<Webhook>(&settings).unwrap_err().to_string();
        assert_eq!(refused(json!({ "methods": [] })), "settings.methods: name at least one method");
        assert_eq!(
            refused(json!({ "concurrency": 0 })),
            "settings.concurrency: 0 is not between 1 and 10000"
        );
        assert_eq!(
            refused(json!({ "maxBodyBytes": 1_000_000_000 })),
            "settings.maxBodyBytes: 1000000000 is more than 67108864 (64 MiB)"
        );
        assert_eq!(
            refused(json!({ "auth": { "type": "slack" } })),
            "settings.auth.secret: this type of auth needs a secret"
        );
        assert!(refused(json!({ "path": "{}" })).starts_with("settings.path: "));
        assert_eq!(
            refused(json!({ "immediateStatus": 404 })),
            "settings.immediateStatus: 404 is not between 200 and 299"
        );
        assert_eq!(
            refused(json!({ "immediateStatus": 42 })),
            "settings.immediateStatus: 42 is not between 200 and 299"
        );
        assert_eq!(
            refused(json!({ "deliveryMemory": 0 })),
            "settings.deliveryMemory: 0 is not between 1 and 100000"
        );
    }
}
