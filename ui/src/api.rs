//! The engine's editor API (docs/api.md), as the editor calls it: each function is one request,
//! and every failure becomes an [`ApiError`] whose text says what went wrong where. The bodies
//! are `weir_api`'s types, which the engine answers with.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use weir_api::{
    Answer, Applied, ErrorBody, FlowDocument, FlowSummary, Install, KindSchema, KubernetesOffer,
    MessageSeen, Problem, REQUEST_HEADER, Rename, Replay, RunRecord, RunSummary, SendRequest,
    SignIn, SolutionSummary,
};
use weir_model::{FlowNode, Module, NodeName, PortName};

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

async fn call<T: DeserializeOwned>(
    request: Result<Request, gloo_net::Error>,
    doing: &str,
) -> Result<T, ApiError> {
    read(send(request, doing).await?, doing).await
}

async fn read<T: DeserializeOwned>(response: Response, doing: &str) -> Result<T, ApiError> {
    response.json::<T>().await.map_err(|err| ApiError {
        message: format!("{doing}: the engine's answer cannot be read: {err}"),
        problems: Vec::new(),
    })
}

async fn send(
    request: Result<Request, gloo_net::Error>,
    doing: &str,
) -> Result<Response, ApiError> {
    answered(reach(request, doing).await?, doing).await
}

/// Sends a request; any answer, failures included.
async fn reach(
    request: Result<Request, gloo_net::Error>,
    doing: &str,
) -> Result<Response, ApiError> {
    let fail = |message: String| ApiError::from(format!("{doing}: {message}"));
    let request = request.map_err(|err| fail(err.to_string()))?;
    request.send().await.map_err(|err| fail(format!("the engine cannot be reached ({err})")))
}

/// The answer when it is a success, else the failure it tells.
async fn answered(response: Response, doing: &str) -> Result<Response, ApiError> {
    let fail = |message: String| ApiError::from(format!("{doing}: {message}"));
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
    Err(match body {
        Some(ErrorBody { error: Some(failure), errors }) => {
            ApiError { message: format!("{doing}: {}", failure.message), problems: errors }
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

/// A flow with its nodes, and its version (its `ETag`, which a save is made over).
pub async fn flow(name: &str) -> Result<(Document, Option<String>), ApiError> {
    let doing = format!("open flow {name}");
    let request = http_get(&in_namespace(&format!("/api/flows/{name}"))).build();
    versioned(send(request, &doing).await?, &doing).await
}

/// How a save ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Save {
    /// Saved: the flow as saved, and its new version.
    Saved(Box<Document>, Option<String>),
    /// Refused, as someone else changed the flow since the version it was made over.
    Stale(ApiError),
}

/// Saves a whole flow where the engine has what `expected` says.
pub async fn save(document: &Document, expected: Expected<'_>) -> Result<Save, ApiError> {
    let name = document.name();
    let doing = format!("save flow {name}");
    let nodes: Vec<&FlowNode> = document.nodes.iter().collect();
    let body = FlowDocument { flow: &document.flow, nodes };
    let mut builder = http_put(&in_namespace(&format!("/api/flows/{name}")));
    builder = match expected {
        Expected::At(version) => builder.header("if-match", version),
        Expected::Absent => builder.header("if-none-match", "*"),
        Expected::Anything => builder,
    };
    let response = reach(json(builder, &body), &doing).await?;
    // 412 Precondition Failed: the flow is not at that version any more.
    if response.status() == 412 {
        return Ok(Save::Stale(answered(response, &doing).await.err().unwrap_or_default()));
    }
    let (saved, version) = versioned(answered(response, &doing).await?, &doing).await?;
    Ok(Save::Saved(Box::new(saved), version))
}

/// What a save expects to find stored: the engine refuses it (412) otherwise.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// The flow at the version it was read at.
    At(&'a str),
    /// No flow of that name: the flow was made in the editor.
    Absent,
    /// Whatever is stored, which the save replaces.
    Anything,
}

/// A flow document answer, with its version.
async fn versioned(
    response: Response,
    doing: &str,
) -> Result<(Document, Option<String>), ApiError> {
    let version = response.headers().get("etag");
    let FlowDocument { flow, nodes } = read(response, doing).await?;
    Ok((Document { flow, nodes }, version))
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

/// Renames a flow; answers it under its new name, with its version.
pub async fn rename(name: &str, to: &str) -> Result<(Document, Option<String>), ApiError> {
    let doing = format!("rename flow {name}");
    let body = Rename { name: to.to_owned() };
    let request = json(http_post(&in_namespace(&format!("/api/flows/{name}/rename"))), &body);
    versioned(send(request, &doing).await?, &doing).await
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

/// Applies manifests (YAML); answers the flows they hold.
pub async fn import(yaml: String) -> Result<Vec<String>, ApiError> {
    let request = http_post(&in_namespace("/api/import"))
        .header("content-type", "application/yaml")
        .body(yaml);
    let imported: Applied = call(request, "import").await?;
    Ok(imported.flows)
}

/// Sends `message` to a node's input port; answers what the run returned.
pub async fn send_message(node: &str, port: &str, message: Value) -> Result<Value, ApiError> {
    let doing = format!("send to {node}:{port}");
    let named = |err: weir_model::names::InvalidName| ApiError::from(format!("{doing}: {err}"));
    let node = NodeName::new(node).map_err(named)?;
    let port = PortName::new(port).map_err(named)?;
    let body = SendRequest { node, port, message, timeout: None };
    let answer: Answer = call(json(http_post(&in_namespace("/api/send")), &body), &doing).await?;
    Ok(answer.answer)
}

/// The last messages seen on each node of a flow.
pub async fn messages(flow: &str) -> Result<Vec<MessageSeen>, ApiError> {
    let url = in_namespace(&format!("/api/flows/{flow}/messages?limit=50"));
    call(http_get(&url).build(), &format!("messages of flow {flow}")).await
}

/// The last runs of a flow the engine keeps, newest first.
pub async fn runs(flow: &str) -> Result<Vec<RunSummary>, ApiError> {
    let url = in_namespace(&format!("/api/flows/{flow}/runs"));
    call(http_get(&url).build(), &format!("runs of flow {flow}")).await
}

/// One kept run with its messages.
pub async fn run(id: &str) -> Result<RunRecord, ApiError> {
    let url = in_namespace(&format!("/api/runs/{id}"));
    call(http_get(&url).build(), &format!("run {id}")).await
}

/// Sends the message `node` received in run `id` to it again; answers what the new run
/// returned.
pub async fn replay(id: &str, node: &str) -> Result<Value, ApiError> {
    let doing = format!("send {node} its message of run {id} again");
    let node = NodeName::new(node).map_err(|err| ApiError::from(format!("{doing}: {err}")))?;
    let body = Replay { node: Some(node), timeout: None };
    let url = in_namespace(&format!("/api/runs/{id}/replay"));
    let answer: Answer = call(json(http_post(&url), &body), &doing).await?;
    Ok(answer.answer)
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
    let body = Install { settings: settings.clone() };
    let request = json(http_post(&in_namespace(&format!("/api/solutions/{name}/install"))), &body);
    let installed: Applied = call(request, &format!("install {name}")).await?;
    Ok(installed.flows)
}

/// The kinds and namespaces the signed-in user may list.
pub async fn offer() -> Result<KubernetesOffer, ApiError> {
    call(http_get(&in_namespace("/api/kubernetes/offer")).build(), "ask the cluster for its kinds")
        .await
}

/// The schema of `kind` in `api_version`, from the cluster's OpenAPI.
pub async fn kind_schema(api_version: &str, kind: &str) -> Result<KindSchema, ApiError> {
    let query = format!("/api/kubernetes/schema?apiVersion={api_version}&kind={kind}");
    call(http_get(&in_namespace(&query)).build(), &format!("read the schema of {kind}")).await
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

/// What the engine says of itself when the editor starts: who the editor works as, the
/// engine's own namespace and where its webhooks are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Who the editor works as.
    pub session: Session,
    /// The engine's own namespace.
    pub home: String,
    /// Where webhooks are reached, such as `http://127.0.0.1:7423/hooks/`, when known.
    pub webhooks: Option<String>,
}

impl From<weir_api::Session> for Started {
    fn from(who: weir_api::Session) -> Self {
        let (home, webhooks) = (who.namespace.clone(), who.webhooks.clone());
        Self { session: who.into(), home, webhooks }
    }
}

impl From<weir_api::Session> for Session {
    fn from(who: weir_api::Session) -> Self {
        match who {
            weir_api::Session { open: true, .. } => Self::Open,
            weir_api::Session { user: Some(user), .. } => Self::User(user),
            weir_api::Session { user: None, .. } => Self::SignedOut,
        }
    }
}

/// Who the editor works as, and what else the engine says of itself, asking the engine.
pub async fn session() -> Result<Started, ApiError> {
    let request = http_get("/api/session").build();
    let response = request
        .map_err(|err| ApiError::from(format!("ask who is signed in: {err}")))?
        .send()
        .await
        .map_err(|err| {
            ApiError::from(format!("ask who is signed in: the engine cannot be reached ({err})"))
        })?;
    if response.status() == 401 {
        return Ok(Started { session: Session::SignedOut, home: String::new(), webhooks: None });
    }
    if !response.ok() {
        return Err(
            format!("ask who is signed in: the engine answered {}", response.status()).into()
        );
    }
    let who: weir_api::Session = response
        .json()
        .await
        .map_err(|err| ApiError::from(format!("ask who is signed in: {err}")))?;
    Ok(who.into())
}

/// Signs in with a Kubernetes bearer token; the engine keeps it in a cookie the page cannot read.
pub async fn sign_in(token: &str) -> Result<Started, ApiError> {
    let body = SignIn { token: token.to_owned() };
    let who: weir_api::Session = call(json(http_post("/api/session"), &body), "sign in").await?;
    Ok(who.into())
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
