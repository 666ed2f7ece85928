//! The engine's editor API (docs/api.md), as the editor calls it: each function is one request,
//! and every failure becomes an [`ApiError`] whose text says what went wrong where.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use weir_model::{Flow, FlowNodeStatus, Module};

use crate::document::Document;

/// A failed request: one message, or the list of problems a save or import was refused for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiError {
    /// What went wrong.
    pub message: String,
    /// For a refused save or import: each problem, naming resource and field.
    pub problems: Vec<Problem>,
}

impl From<String> for ApiError {
    fn from(message: String) -> Self {
        Self { message, problems: Vec::new() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for problem in &self.problems {
            write!(f, "\n{problem}")?;
        }
        Ok(())
    }
}

/// One problem with a flow or manifest, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Problem {
    /// The resource, such as `FlowNode/tick`, or a document of an import.
    #[serde(default)]
    pub resource: Option<String>,
    /// The field, such as `spec.edges[0].to.port`.
    #[serde(default)]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place: Vec<&str> =
            [self.resource.as_deref(), self.field.as_deref()].into_iter().flatten().collect();
        if place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", place.join(" "), self.message)
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
    #[serde(default)]
    errors: Vec<Problem>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// A flow in the flow list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowSummary {
    /// The Flow.
    pub flow: Flow,
    /// How many nodes it has.
    pub nodes: usize,
}

/// A node's status as the event stream reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeEvent {
    /// The node.
    pub node: String,
    /// Its status.
    pub status: FlowNodeStatus,
}

/// A message seen on a node's port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Seen {
    /// The node.
    pub node: String,
    /// The port.
    pub port: String,
    /// `in` or `out`.
    #[serde(default)]
    pub direction: String,
    /// `received`, `emitted`, `answered`, `failed` or `logged`.
    #[serde(default)]
    pub what: String,
    /// The message, secrets already hidden by the engine.
    #[serde(default)]
    pub payload: Value,
    /// When, RFC 3339.
    #[serde(default)]
    pub time: String,
}

async fn call<T: DeserializeOwned>(
    request: Result<Request, gloo_net::Error>,
    doing: &str,
) -> Result<T, ApiError> {
    let response = send(request, doing).await?;
    response.json::<T>().await.map_err(|err| ApiError {
        message: format!("{doing}: the engine's answer cannot be read: {err}"),
        problems: Vec::new(),
    })
}

async fn send(
    request: Result<Request, gloo_net::Error>,
    doing: &str,
) -> Result<Response, ApiError> {
    let fail =
        |message: String| ApiError { message: format!("{doing}: {message}"), problems: Vec::new() };
    let request = request.map_err(|err| fail(err.to_string()))?;
    let response = request
        .send()
        .await
        .map_err(|err| fail(format!("the engine cannot be reached ({err})")))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
    Err(match body {
        Some(ErrorBody { error: Some(detail), errors }) => {
            ApiError { message: format!("{doing}: {}", detail.message), problems: errors }
        }
        Some(ErrorBody { error: None, errors }) if !errors.is_empty() => {
            ApiError { message: format!("{doing}: refused"), problems: errors }
        }
        _ => fail(format!("the engine answered {status}")),
    })
}

fn json(builder: RequestBuilder, body: &impl Serialize) -> Result<Request, gloo_net::Error> {
    builder.json(body)
}

/// The header the engine wants on every request that changes something (docs/api.md): a page
/// of another site cannot send it, so such a page cannot drive the engine through the browser.
/// Sent on every request, so no route is ever without it.
const REQUEST_HEADER: &str = "x-weir-request";

fn http_get(url: &str) -> RequestBuilder {
    Request::get(url).header(REQUEST_HEADER, "1")
}

fn http_put(url: &str) -> RequestBuilder {
    Request::put(url).header(REQUEST_HEADER, "1")
}

fn http_post(url: &str) -> RequestBuilder {
    Request::post(url).header(REQUEST_HEADER, "1")
}

fn http_delete(url: &str) -> RequestBuilder {
    Request::delete(url).header(REQUEST_HEADER, "1")
}

/// Where the editor keeps the namespace it works in, across reloads.
const NAMESPACE_KEY: &str = "weir.namespace";

thread_local! {
    /// Read once: choosing another namespace reloads the page.
    static NAMESPACE: String = web_sys::window()
        .and_then(|window| window.local_storage().ok().flatten())
        .and_then(|storage| storage.get_item(NAMESPACE_KEY).ok().flatten())
        .unwrap_or_default();
}

/// The namespace the editor works in, as the user chose it; empty for the engine's own.
pub fn namespace() -> String {
    NAMESPACE.with(Clone::clone)
}

/// Makes the editor work in `namespace` from now on (empty: the engine's own).
pub fn choose_namespace(namespace: &str) {
    let storage = web_sys::window().and_then(|window| window.local_storage().ok().flatten());
    if let Some(storage) = storage {
        let _ = match namespace {
            "" => storage.remove_item(NAMESPACE_KEY),
            chosen => storage.set_item(NAMESPACE_KEY, chosen),
        };
    }
}

/// `path` of the API, in the namespace the editor works in.
pub fn in_namespace(path: &str) -> String {
    NAMESPACE.with(|namespace| with_namespace(path, namespace))
}

fn with_namespace(path: &str, namespace: &str) -> String {
    if namespace.is_empty() {
        return path.to_owned();
    }
    let joiner = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joiner}namespace={namespace}")
}

/// The module catalogues.
pub async fn modules() -> Result<Vec<Module>, ApiError> {
    call(http_get(&in_namespace("/api/modules")).build(), "list modules").await
}

/// The flows.
pub async fn flows() -> Result<Vec<FlowSummary>, ApiError> {
    call(http_get(&in_namespace("/api/flows")).build(), "list flows").await
}

/// A flow with its nodes.
pub async fn flow(name: &str) -> Result<Document, ApiError> {
    call(
        http_get(&in_namespace(&format!("/api/flows/{name}"))).build(),
        &format!("open flow {name}"),
    )
    .await
}

/// Saves a whole flow; answers it as saved.
pub async fn save(document: &Document) -> Result<Document, ApiError> {
    let name = document.name();
    call(
        json(http_put(&in_namespace(&format!("/api/flows/{name}"))), document),
        &format!("save flow {name}"),
    )
    .await
}

/// Deletes a flow and its nodes.
pub async fn delete(name: &str) -> Result<(), ApiError> {
    send(
        http_delete(&in_namespace(&format!("/api/flows/{name}"))).build(),
        &format!("delete flow {name}"),
    )
    .await
    .map(drop)
}

/// Renames a flow.
pub async fn rename(name: &str, to: &str) -> Result<Document, ApiError> {
    let body = serde_json::json!({ "name": to });
    call(
        json(http_post(&in_namespace(&format!("/api/flows/{name}/rename"))), &body),
        &format!("rename flow {name}"),
    )
    .await
}

/// The flow's manifests, as `kubectl apply` takes them.
pub async fn export(name: &str) -> Result<String, ApiError> {
    let response = send(
        http_get(&in_namespace(&format!("/api/flows/{name}/export"))).build(),
        &format!("export flow {name}"),
    )
    .await?;
    response.text().await.map_err(|err| ApiError {
        message: format!("export flow {name}: {err}"),
        problems: Vec::new(),
    })
}

#[derive(Deserialize)]
struct Imported {
    flows: Vec<String>,
}

/// Applies manifests (YAML); answers the flows they hold.
pub async fn import(yaml: String) -> Result<Vec<String>, ApiError> {
    let request = http_post(&in_namespace("/api/import"))
        .header("content-type", "application/yaml")
        .body(yaml);
    let imported: Imported = call(request, "import").await?;
    Ok(imported.flows)
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    answer: Value,
}

/// Sends `message` to a node's input port; answers what the run returned.
pub async fn send_message(node: &str, port: &str, message: Value) -> Result<Value, ApiError> {
    let body = serde_json::json!({ "node": node, "port": port, "message": message });
    let answer: Answer =
        call(json(http_post(&in_namespace("/api/send")), &body), &format!("send to {node}:{port}"))
            .await?;
    Ok(answer.answer)
}

/// The last messages seen on each node of a flow.
pub async fn messages(flow: &str) -> Result<Vec<Seen>, ApiError> {
    let url = in_namespace(&format!("/api/flows/{flow}/messages?limit=50"));
    call(http_get(&url).build(), &format!("messages of flow {flow}")).await
}

/// A solution of the gallery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SolutionSummary {
    /// The name to install it by.
    pub name: String,
    /// Its title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// What an install may change.
    #[serde(default)]
    pub settings: Vec<SolutionSetting>,
}

/// One setting of a solution.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SolutionSetting {
    /// Its name.
    pub name: String,
    /// What it means.
    #[serde(default)]
    pub description: String,
    /// `string`, `boolean`, `integer`, `duration` or `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value the manifests hold.
    #[serde(default)]
    pub default: Value,
    /// Whether an install must give it.
    #[serde(default)]
    pub required: bool,
    /// The values it may take, when it is one of a few.
    #[serde(default, rename = "enum")]
    pub values: Vec<String>,
}

/// The solutions the engine offers.
pub async fn solutions() -> Result<Vec<SolutionSummary>, ApiError> {
    call(http_get(&in_namespace("/api/solutions")).build(), "list solutions").await
}

/// Installs a solution with settings given as text (as `--set` takes them); answers its flows.
pub async fn install(
    name: &str,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<String>, ApiError> {
    let body = serde_json::json!({ "settings": settings });
    let request = json(http_post(&in_namespace(&format!("/api/solutions/{name}/install"))), &body);
    let installed: Imported = call(request, &format!("install {name}")).await?;
    Ok(installed.flows)
}

/// Who the editor works as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// The engine has no users (`weir up`): everyone may do everything.
    Open,
    /// Signed in to an engine in a cluster, as this Kubernetes user.
    User(String),
    /// The engine wants a Kubernetes token first.
    SignedOut,
}

#[derive(Deserialize)]
struct Who {
    #[serde(default)]
    open: bool,
    #[serde(default)]
    user: Option<String>,
    /// The engine's own namespace, where requests naming none go.
    #[serde(default)]
    namespace: String,
}

impl From<Who> for Session {
    fn from(who: Who) -> Self {
        match who {
            Who { open: true, .. } => Self::Open,
            Who { user: Some(user), .. } => Self::User(user),
            Who { user: None, .. } => Self::SignedOut,
        }
    }
}

/// Who the editor works as, and the engine's own namespace, asking the engine.
pub async fn session() -> Result<(Session, String), ApiError> {
    let request = http_get("/api/session").build();
    let response = request
        .map_err(|err| ApiError::from(format!("ask who is signed in: {err}")))?
        .send()
        .await
        .map_err(|err| {
            ApiError::from(format!("ask who is signed in: the engine cannot be reached ({err})"))
        })?;
    if response.status() == 401 {
        return Ok((Session::SignedOut, String::new()));
    }
    if !response.ok() {
        return Err(
            format!("ask who is signed in: the engine answered {}", response.status()).into()
        );
    }
    let who: Who = response
        .json()
        .await
        .map_err(|err| ApiError::from(format!("ask who is signed in: {err}")))?;
    let home = who.namespace.clone();
    Ok((who.into(), home))
}

/// Signs in with a Kubernetes bearer token; the engine keeps it in a cookie the page cannot read.
pub async fn sign_in(token: &str) -> Result<(Session, String), ApiError> {
    let body = serde_json::json!({ "token": token });
    let who: Who = call(json(http_post("/api/session"), &body), "sign in").await?;
    let home = who.namespace.clone();
    Ok((who.into(), home))
}

/// Signs out: the engine drops the session cookie.
pub async fn sign_out() -> Result<(), ApiError> {
    send(http_delete("/api/session").build(), "sign out").await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::with_namespace;

    #[test]
    fn a_chosen_namespace_joins_the_query() {
        assert_eq!(with_namespace("/api/flows", ""), "/api/flows");
        assert_eq!(with_namespace("/api/flows", "team-a"), "/api/flows?namespace=team-a");
        assert_eq!(
            with_namespace("/api/flows/f/messages?limit=50", "team-a"),
            "/api/flows/f/messages?limit=50&namespace=team-a"
        );
    }
}
