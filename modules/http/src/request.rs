//! `request`: sends an HTTP request and emits the answer, its body read by content type.
//!
//! The URL, method, headers, query and body come from the settings, and the message adds to
//! or replaces them, so an edge's mapping shapes each request. Credentials (bearer, basic or
//! a header of its own) come from the settings, marked secret, and go only to the URL's own
//! origin: a redirect elsewhere is followed without them. Failures say what the server
//! answered in the way the runtime understands: 429, 408 and 5xx are transient and carry the
//! server's `Retry-After` (capped) for the edge to wait, other 4xx are invalid, and a
//! connection that failed or timed out is transient. Link-local and cloud metadata addresses
//! are refused (see [`crate::address`]). No secret of the settings appears in an error: the
//! URL is shown without its query, and whatever the server said is cleaned of them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bytes::Bytes;
use reqwest::{
    Method, Response, StatusCode, Url,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Port, REDACTED, Value,
    read_message,
};

use crate::{
    address::{Cidr, Guard, Refused},
    body::{self, Encoding},
};

/// Settings of a request.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RequestSettings {
    /// The method, unless the message gives one.
    pub method: HttpMethod,
    /// The URL (`http` or `https`), unless the message gives one.
    pub url: String,
    /// The URL when it is itself a credential, such as a Slack or Teams incoming webhook's
    /// (secret; may be given by Secret reference): used when neither the message nor `url`
    /// gives one, and never shown, as errors and answers name only its scheme and host.
    #[schemars(extend("x-weir-secret" = true))]
    pub secret_url: String,
    /// Headers sent with every request; the message's `headers` add to them and win.
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to every request's URL, after the message's own.
    pub query: BTreeMap<String, String>,
    /// How the message's `body` is sent: `json`, `form` (an object of fields) or `text` (a
    /// string).
    pub body_type: BodyType,
    /// Credentials, sent only to the URL's own scheme, host and port.
    pub auth: Auth,
    /// How the server's certificate is checked.
    pub tls: Tls,
    /// How long the whole request may take, redirects and the answer's body included; at most
    /// an hour.
    pub timeout: HumanDuration,
    /// How long connecting may take.
    pub connect_timeout: HumanDuration,
    /// How many redirects are followed, at most 20; `0` makes a redirect an error.
    pub max_redirects: u32,
    /// The largest answer body read, in bytes; at most 64 MiB.
    pub max_response_bytes: u64,
    /// The longest a server's `Retry-After` is honoured; a longer one is cut to this.
    pub max_retry_after: HumanDuration,
    /// Blocks of link-local or metadata addresses requests may reach after all, as CIDRs
    /// such as `169.254.170.2/32`; none by default.
    pub allow_addresses: Vec<String>,
    /// Emit an answer of any status on `out`, for the flow to read its `status` (a relay
    /// passing a service's answer on), instead of failing on those other than 2xx and
    /// retrying 429 and 5xx.
    pub accept_any_status: bool,
    /// Send failures to the `error` output as data instead of failing the caller.
    pub error_port: bool,
}

/// Without the secret URL, and the credentials only as [`Auth`] shows them.
impl std::fmt::Debug for RequestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret_url = if self.secret_url.is_empty() { "" } else { weir_sdk::REDACTED };
        f.debug_struct("RequestSettings")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("secret_url", &secret_url)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            method: HttpMethod::Get,
            url: String::new(),
            secret_url: String::new(),
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
            body_type: BodyType::Json,
            auth: Auth::default(),
            tls: Tls::default(),
            timeout: HumanDuration::from_secs(30),
            connect_timeout: HumanDuration::from_secs(10),
            max_redirects: 5,
            max_response_bytes: 10 << 20,
            max_retry_after: HumanDuration::from_secs(60),
            allow_addresses: Vec::new(),
            accept_any_status: false,
            error_port: false,
        }
    }
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl HttpMethod {
    pub(crate) fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Head => Method::HEAD,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Patch => Method::PATCH,
            Self::Delete => Method::DELETE,
            Self::Options => Method::OPTIONS,
        }
    }
}

/// How a body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    /// As JSON (`application/json`).
    Json,
    /// As a URL-encoded form (`application/x-www-form-urlencoded`) of an object's fields.
    Form,
    /// As text (`text/plain; charset=utf-8`) of a string.
    Text,
}

/// Credentials of a request.
#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Auth {
    /// `none`, `bearer` (the `token`), `basic` (`username` and `password`) or `header` (the
    /// `token` as the header `headerName`, such as `X-Api-Key`).
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// The bearer token, or the header's value (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub token: String,
    /// The user name of basic authentication.
    pub username: String,
    /// The password of basic authentication (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub password: String,
    /// The header a `header` credential goes in.
    pub header_name: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("header_name", &self.header_name)
            .finish_non_exhaustive()
    }
}

/// A kind of credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic` of the username and password.
    Basic,
    /// The token in a header of its own.
    Header,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Tls {
    /// CA certificates (PEM) to trust besides the usual public ones, such as a cluster's own
    /// CA; may be given by Secret reference.
    #[schemars(extend("x-weir-secret" = true))]
    pub ca: String,
    /// Accept any certificate, checking nothing. Only for tests against a server whose
    /// certificate cannot be trusted otherwise.
    pub insecure: bool,
}

/// What the `in` input takes: whatever the settings do not fix.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Outgoing {
    /// The URL, in place of the settings' one.
    pub url: Option<String>,
    /// The method, in place of the settings' one.
    pub method: Option<HttpMethod>,
    /// Headers, added to the settings' ones (and winning over them).
    pub headers: BTreeMap<String, String>,
    /// Query parameters, added to the URL.
    pub query: BTreeMap<String, String>,
    /// The body, sent as the settings' `bodyType` says; none for no body.
    pub body: Option<Value>,
}

/// What the `out` output carries: the server's answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The status, such as `200`.
    pub status: u16,
    /// The headers, by lowercase name; a header given several times is joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body: JSON as JSON, a form as an object, text as a string, anything else as
    /// base64; null when there was none.
    pub body: Value,
    /// How `body` was read: `none`, `json`, `form`, `text` or `base64`.
    pub body_encoding: Encoding,
    /// The URL that answered (after redirects), without its query.
    pub url: String,
    /// How long the request took, from sending it to the answer's last byte, redirects
    /// included, in milliseconds.
    pub elapsed_ms: u64,
}

/// The longest a request may take.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The most redirects a request may follow.
const MAX_REDIRECTS: u32 = 20;
/// The largest answer body a node may be set to read.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// How much of an error answer's body is read to quote in the error.
const ERROR_BODY_READ: usize = 4 << 10;
/// How many characters of an error answer's body an error quotes.
const ERROR_BODY_SHOWN: usize = 300;

/// A node of the request component.
#[derive(Debug)]
pub struct Request {
    client: reqwest::Client,
    guard: Guard,
    settings: RequestSettings,
    /// The settings' headers, checked once.
    headers: HeaderMap,
    /// The credentials' header, sent only to the first URL's origin.
    credentials: Option<(HeaderName, HeaderValue)>,
    /// Every secret the settings hold, removed from whatever an error quotes.
    secrets: Secrets,
}

/// The shortest part of a secret URL that errors conceal.
const SHORTEST_CONCEALED: usize = 8;

/// Secret strings, and a way to clean a text of them.
struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({})", self.0.len())
    }
}

impl Secrets {
    fn conceal(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), REDACTED))
    }
}

impl Component for Request {
    const NAME: &'static str = "request";
    type Settings = RequestSettings;

    fn describe() -> Description {
        Description {
            label: "HTTP request",
            description: "Sends an HTTP request and emits the answer, its body read by content \
                type. 429 and 5xx are retried (honouring Retry-After); credentials never leave \
                the URL's origin; cloud metadata addresses are refused.",
            tags: &["http", "request", "api", "rest", "webhook", "slack", "teams"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &RequestSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Outgoing>("in"), Port::output::<Answer>("out")],
            settings.error_port,
        )
    }

    fn build(settings: RequestSettings) -> Result<Self, NodeError> {
        let invalid =
            |field: &str, why: String| NodeError::invalid(format!("settings.{field}: {why}"));
        if settings.timeout.get() > MAX_TIMEOUT || settings.timeout.get().is_zero() {
            return Err(invalid(
                "timeout",
                format!("{} is not between 1ms and 1h", settings.timeout),
            ));
        }
        if settings.max_redirects > MAX_REDIRECTS {
            return Err(invalid(
                "maxRedirects",
                format!("{} is more than {MAX_REDIRECTS}", settings.max_redirects),
            ));
        }
        if settings.max_response_bytes > MAX_RESPONSE_BYTES {
            return Err(invalid(
                "maxResponseBytes",
                format!(
                    "{} is more than {MAX_RESPONSE_BYTES} (64 MiB)",
                    settings.max_response_bytes
                ),
            ));
        }
        for (field, url) in
            [("settings.url", &settings.url), ("settings.secretUrl", &settings.secret_url)]
        {
            if !url.is_empty() {
                parse_url(field, url)?;
            }
        }
        let allowed = settings
            .allow_addresses
            .iter()
            .enumerate()
            .map(|(i, text)| {
                text.parse::<Cidr>()
                    .map_err(|err| invalid(&format!("allowAddresses[{i}]"), err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let guard = Guard::new(allowed);
        let headers = header_map("settings.headers", &settings.headers)?;
        let (credentials, mut secrets) = credentials(&settings.auth)?;
        if !settings.secret_url.is_empty() {
            secrets.0.push(settings.secret_url.clone());
            // What the URL holds past its origin is the credential, and a server may quote
            // its own path back ("no such hook /services/…"): the longest first. A short part
            // (`/api`, `?wait=true`) holds no credential, and concealing it everywhere would
            // garble the errors.
            let url = parse_url("settings.secretUrl", &settings.secret_url)?;
            let path = url.path();
            let query = url.query().unwrap_or_default();
            let parts = [format!("{path}?{query}"), query.to_owned(), path.to_owned()];
            secrets.0.extend(
                parts
                    .into_iter()
                    .filter(|part| part.len() >= SHORTEST_CONCEALED && !part.ends_with('?')),
            );
        }

        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout.get())
            .dns_resolver(Arc::new(guard.clone()))
            .user_agent(concat!("weir-http/", env!("CARGO_PKG_VERSION")));
        if !settings.tls.ca.trim().is_empty() {
            let certificates = reqwest::Certificate::from_pem_bundle(settings.tls.ca.as_bytes())
                .map_err(|_| invalid("tls.ca", "is not PEM certificates".to_owned()))?;
            if certificates.is_empty() {
                return Err(invalid("tls.ca", "holds no PEM certificate".to_owned()));
            }
            for certificate in certificates {
                client = client.add_root_certificate(certificate);
            }
        }
        if settings.tls.insecure {
            client = client.danger_accept_invalid_certs(true);
        }
        let client = client
            .build()
            .map_err(|err| NodeError::internal(format!("cannot make the HTTP client: {err}")))?;
        Ok(Self { client, guard, settings, headers, credentials, secrets })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let outgoing: Outgoing = read_message(port, message.clone())?;
        let sent = tokio::select! {
            sent = tokio::time::timeout(self.settings.timeout.get(), self.send(port, outgoing)) => {
                sent.unwrap_or_else(|_| Err(NodeError::transient(format!(
                    "no complete answer within {}", self.settings.timeout
                ))))
            }
            () = cx.cancelled() => Err(NodeError::cancelled(format!(
                "the run was cancelled while {} waited for an answer", cx.node().node
            ))),
        };
        match sent {
            Ok(answer) => cx.emit("out", answer).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

/// One request as the message and settings make it.
struct Planned {
    method: Method,
    url: Url,
    /// Whether the URL is a credential (`secretUrl`), shown by its origin only.
    secret: bool,
    headers: HeaderMap,
    body: Option<(Bytes, &'static str)>,
}

impl Request {
    /// Sends `outgoing`, following redirects, and reads the answer.
    async fn send(&self, port: &str, outgoing: Outgoing) -> Result<Answer, NodeError> {
        let Planned { mut method, mut url, secret, headers, mut body } =
            self.plan(port, outgoing)?;
        let show = |url: &Url| if secret { origin_of(url) } else { shown(url) };
        let origin = url.origin();
        let mut redirects = 0;
        let started = std::time::Instant::now();
        loop {
            let doing = format!("{method} {}", show(&url));
            self.guard
                .check_url(&url)
                .map_err(|err| NodeError::invalid(format!("{doing}: {err}")))?;
            // Credentials go to the origin they were given for, never along a redirect
            // elsewhere; the same holds for cookies and authorization given as plain headers.
            let at_origin = url.origin() == origin;
            let sent = if at_origin { headers.clone() } else { without_credentials(&headers) };
            let mut request = self.client.request(method.clone(), url.clone()).headers(sent);
            if at_origin && let Some((name, value)) = &self.credentials {
                request = request.header(name, value);
            }
            if let Some((bytes, content_type)) = &body {
                request = request.body(bytes.clone());
                if !headers.contains_key(header::CONTENT_TYPE) {
                    request = request.header(header::CONTENT_TYPE, *content_type);
                }
            }
            let response = request.send().await.map_err(|err| self.failure(&doing, &err))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(header::LOCATION)
            {
                if redirects == self.settings.max_redirects {
                    return Err(NodeError::invalid(format!(
                        "{doing}: answered {status}, and settings.maxRedirects ({}) are followed already",
                        self.settings.max_redirects
                    )));
                }
                redirects += 1;
                url = next_url(&doing, &url, location)?;
                // As browsers do: 303 always, and 301 and 302 after a POST, continue as GET.
                if status == StatusCode::SEE_OTHER
                    || (method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    method = Method::GET;
                    body = None;
                }
                continue;
            }
            if !status.is_success() && !self.settings.accept_any_status {
                return Err(self.refusal(&doing, response).await);
            }
            let url = show(response.url());
            return self.answer(&doing, url, response, started).await;
        }
    }

    /// The request the settings and the message make.
    fn plan(&self, port: &str, outgoing: Outgoing) -> Result<Planned, NodeError> {
        let method = outgoing.method.unwrap_or(self.settings.method).method();
        let secret = outgoing.url.is_none() && self.settings.url.is_empty();
        let mut url = match &outgoing.url {
            Some(url) => parse_url(&format!("{port}.url"), url)?,
            None if !self.settings.url.is_empty() => parse_url("settings.url", &self.settings.url)?,
            None if !self.settings.secret_url.is_empty() => {
                parse_url("settings.secretUrl", &self.settings.secret_url)?
            }
            None => {
                return Err(NodeError::invalid(format!(
                    "{port}.url: no URL; give one in the message, settings.url or settings.secretUrl"
                )));
            }
        };
        let query = outgoing.query.iter().chain(&self.settings.query);
        let mut added = query.peekable();
        if added.peek().is_some() {
            url.query_pairs_mut().extend_pairs(added);
        }
        let mut headers = self.headers.clone();
        headers.extend(header_map(&format!("{port}.headers"), &outgoing.headers)?);
        let body = outgoing
            .body
            .map(|body| encode_body(port, self.settings.body_type, &body))
            .transpose()?;
        Ok(Planned { method, url, secret, headers, body })
    }

    /// A request that got no answer: refused by the address guard (invalid), or a
    /// connection that failed (transient).
    fn failure(&self, doing: &str, error: &reqwest::Error) -> NodeError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<Refused>() {
                return NodeError::invalid(format!("{doing}: {refused}"));
            }
            source = cause.source();
        }
        NodeError::transient(self.secrets.conceal(&format!("{doing}: {}", chain(error))))
    }

    /// The failure an answer other than success stands for, quoting the start of its body.
    async fn refusal(&self, doing: &str, mut response: Response) -> NodeError {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let mut quoted = Vec::new();
        while quoted.len() < ERROR_BODY_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => quoted.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&quoted);
        let text: String = text.trim().chars().take(ERROR_BODY_SHOWN).collect();
        let detail = if text.is_empty() { String::new() } else { format!(": {text}") };
        let message = self.secrets.conceal(&format!("{doing}: answered {status}{detail}"));
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        if !transient {
            return NodeError::invalid(message);
        }
        let error = NodeError::transient(message);
        match retry_after {
            Some(wait) => error.with_retry_after(wait.min(self.settings.max_retry_after.get())),
            None => error,
        }
    }

    /// An answer, its body read up to the limit and parsed by content type; `started` is
    /// when the request was first sent.
    async fn answer(
        &self,
        doing: &str,
        url: String,
        mut response: Response,
        started: std::time::Instant,
    ) -> Result<Answer, NodeError> {
        let limit = self.settings.max_response_bytes;
        let too_large = || {
            NodeError::invalid(format!(
                "{doing}: the answer's body is larger than settings.maxResponseBytes ({limit} bytes)"
            ))
        };
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let content_type = headers.get(header::CONTENT_TYPE.as_str()).cloned();
        let mut read = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.failure(doing, &err))? {
            if (read.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            read.extend_from_slice(&chunk);
        }
        let (body, body_encoding) = body::parse(content_type.as_deref(), &read)
            .map_err(|err| NodeError::invalid(format!("{doing}: {err}")))?;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(Answer { status, headers, body, body_encoding, url, elapsed_ms })
    }
}

/// A URL a request may go to: absolute, `http` or `https`, with no credentials in it.
fn parse_url(field: &str, text: &str) -> Result<Url, NodeError> {
    let invalid = |why: &str| NodeError::invalid(format!("{field}: {why}"));
    let url = Url::parse(text).map_err(|err| invalid(&format!("not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!("the scheme {:?} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("a URL may not hold credentials; give them in settings.auth"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL names no host"));
    }
    Ok(url)
}

/// Where a redirect leads, relative to the URL that answered it.
fn next_url(doing: &str, url: &Url, location: &HeaderValue) -> Result<Url, NodeError> {
    let invalid = |why: String| NodeError::invalid(format!("{doing}: redirected {why}"));
    let location =
        location.to_str().map_err(|_| invalid("to a location that is not text".to_owned()))?;
    let next = url
        .join(location)
        .map_err(|err| invalid(format!("to a location that is not a URL ({err})")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "to the scheme {:?}, which is not http or https",
            next.scheme()
        )));
    }
    Ok(next)
}

/// A URL that is a credential as errors and answers show it: its origin only.
fn origin_of(url: &Url) -> String {
    format!("{}/…", url.origin().ascii_serialization())
}

/// A URL as errors and answers show it: without credentials or query, which may hold secrets.
fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// `headers` checked, as a header map; an error names the header, never its value.
fn header_map(field: &str, headers: &BTreeMap<String, String>) -> Result<HeaderMap, NodeError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NodeError::invalid(format!("{field}: {name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            NodeError::invalid(format!(
                "{field}.{name}: the value has characters a header cannot carry"
            ))
        })?;
        map.insert(header, value);
    }
    Ok(map)
}

/// The headers without those that carry credentials, for a redirect to another origin.
fn without_credentials(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION] {
        kept.remove(name);
    }
    kept
}

/// The credentials' header, and the secrets errors must never quote.
fn credentials(auth: &Auth) -> Result<(Option<(HeaderName, HeaderValue)>, Secrets), NodeError> {
    use base64::Engine as _;
    let invalid = |why: &str| NodeError::invalid(format!("settings.auth: {why}"));
    let secret_value = |text: &str| {
        let mut value = HeaderValue::from_str(text)
            .map_err(|_| invalid("the credentials have characters a header cannot carry"))?;
        value.set_sensitive(true);
        Ok::<_, NodeError>(value)
    };
    let header = match auth.kind {
        AuthKind::None => None,
        AuthKind::Bearer if auth.token.is_empty() => {
            return Err(invalid("a bearer credential needs a token"));
        }
        AuthKind::Bearer => {
            Some((header::AUTHORIZATION, secret_value(&format!("Bearer {}", auth.token))?))
        }
        AuthKind::Basic if auth.username.is_empty() || auth.password.is_empty() => {
            return Err(invalid("basic credentials need a username and a password"));
        }
        AuthKind::Basic => {
            let pair = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", auth.username, auth.password));
            Some((header::AUTHORIZATION, secret_value(&format!("Basic {pair}"))?))
        }
        AuthKind::Header if auth.token.is_empty() || auth.header_name.is_empty() => {
            return Err(invalid("a header credential needs a headerName and a token"));
        }
        AuthKind::Header => {
            let name = HeaderName::from_bytes(auth.header_name.as_bytes())
                .map_err(|_| invalid(&format!("{:?} is not a header name", auth.header_name)))?;
            Some((name, secret_value(&auth.token)?))
        }
    };
    let secrets = [&auth.token, &auth.password]
        .into_iter()
        .filter(|secret| !secret.is_empty())
        .cloned()
        .chain(
            header.iter().map(|(_, value)| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        )
        .collect();
    Ok((header, Secrets(secrets)))
}

/// The body bytes and their content type.
fn encode_body(
    port: &str,
    kind: BodyType,
    body: &Value,
) -> Result<(Bytes, &'static str), NodeError> {
    match kind {
        BodyType::Json => {
            let bytes = serde_json::to_vec(body)
                .map_err(|err| NodeError::internal(format!("cannot encode {port}.body: {err}")))?;
            Ok((bytes.into(), "application/json"))
        }
        BodyType::Text => match body {
            Value::String(text) => Ok((Bytes::from(text.clone()), "text/plain; charset=utf-8")),
            other => Err(NodeError::invalid(format!(
                "{port}.body: a text body is a string, not {}",
                type_name(other)
            ))),
        },
        BodyType::Form => {
            let Value::Object(fields) = body else {
                return Err(NodeError::invalid(format!(
                    "{port}.body: a form body is an object of fields, not {}",
                    type_name(body)
                )));
            };
            let mut pairs = Vec::new();
            for (name, value) in fields {
                let values = match value {
                    Value::Array(values) => values.iter().collect(),
                    one => vec![one],
                };
                for value in values {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        Value::Null => continue,
                        other => {
                            return Err(NodeError::invalid(format!(
                                "{port}.body.{name}: a form field is a string, number or boolean, not {}",
                                type_name(other)
                            )));
                        }
                    };
                    pairs.push((name.as_str(), text));
                }
            }
            let encoded = serde_urlencoded::to_string(&pairs)
                .map_err(|err| NodeError::internal(format!("cannot encode {port}.body: {err}")))?;
            Ok((encoded.into(), "application/x-www-form-urlencoded"))
        }
    }
}

/// The JSON type of `value`, for errors that must not quote it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How long a `Retry-After` header asks to wait: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or_default())
}

/// What went wrong with a request that got no answer, with its causes; never the URL, which
/// reqwest's own message quotes with its query.
fn chain(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use weir_sdk::json;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let after = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers)
        };
        assert_eq!(after("120"), Some(Duration::from_secs(120)));
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date");
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        assert!(after(&soon).is_some_and(|wait| wait > Duration::from_secs(80)), "{soon}");
        assert_eq!(after("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn form_bodies_take_scalars_and_lists_of_them() {
        let (bytes, content_type) =
            encode_body("in", BodyType::Form, &json!({ "a": "x y", "b": [1, true], "c": null }))
                .unwrap();
        assert_eq!(
            (&bytes[..], content_type),
            (&b"a=x+y&b=1&b=true"[..], "application/x-www-form-urlencoded")
        );
        let err =
            encode_body("in", BodyType::Form, &json!({ "a": { "secret": "s" } })).unwrap_err();
        assert_eq!(
            err.message(),
            "in.body.a: a form field is a string, number or boolean, not an object"
        );
        let err = encode_body("in", BodyType::Form, &json!([1])).unwrap_err();
        assert_eq!(err.message(), "in.body: a form body is an object of fields, not an array");
    }

    #[test]
    fn urls_are_shown_without_what_may_be_secret() {
        let url: Url = "https://hooks.example.com:8443/services/T1/B2/x?token=t#f".parse().unwrap();
        assert_eq!(shown(&url), "https://hooks.example.com:8443/services/T1/B2/x");
        assert_eq!(origin_of(&url), "https://hooks.example.com:8443/…");
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        headers.insert(header::COOKIE, HeaderValue::from_static("s=1"));
        headers.insert("x-team", HeaderValue::from_static("a"));
        let kept = without_credentials(&headers);
        assert_eq!(kept.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-team"]);
    }
}
