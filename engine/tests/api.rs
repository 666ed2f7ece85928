//! The editor's API over real HTTP: the engine as `weir up` runs it (the common module hosted
//! in-process, the embedded store in a temporary directory) on a loopback port.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};
use weir_api::REQUEST_HEADER;
use weir_engine::{
    api::access::SharedToken,
    guard::Guard,
    hosting::Listeners,
    process::{Editor, Parts, Process, Users},
};
use weir_model::{API_VERSION, Kind, redact::KEPT};
use weir_store::{DynamicObject, Store, embedded::EmbeddedStore};

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// How long anything the engine does in the background may take in these tests.
const DEADLINE: Duration = Duration::from_secs(20);

/// The engine serving on a loopback port; stops when dropped.
struct Server {
    api: String,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    engine: Option<Process>,
    http: JoinHandle<()>,
    stop: CancellationToken,
    // Cancels `stop` however the test ends.
    _guard: DropGuard,
    data: tempfile::TempDir,
}

impl Server {
    async fn start() -> Result<Self> {
        Self::with_token(None).await
    }

    /// The engine as `weir up --token-file` runs it, when `token` is given.
    async fn with_token(token: Option<&str>) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(data.path())?);
        let stop = CancellationToken::new();
        let modules = vec![weir_common::module()];
        let any = "127.0.0.1:0".parse()?;
        let listeners = Listeners::bind(&modules, any, None, any).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let users = match token {
            Some(token) => Users::TokenHolder(SharedToken::new(token).map_err(anyhow::Error::msg)?),
            None => Users::Anyone,
        };
        let files = data.path().join("editor");
        let runs_kept = usize::from(weir_engine::cli::RUNS_KEPT);
        let webhooks = listeners.webhooks_url();
        let editor = Editor {
            users,
            guard: Guard::Local(address),
            files,
            bearer: None,
            runs_kept,
            webhooks,
        };
        // `weir up` on its embedded store: the flows of every namespace.
        let scope = weir_engine::scope::Scope::new(weir_store::DEFAULT_NAMESPACE, true);
        let parts = Parts::up(Arc::clone(&store), scope, modules, listeners, editor);
        let engine = Process::start(parts, &stop);
        let api = format!("http://{address}/api");
        let http = tokio::spawn({
            let (app, stop) = (engine.app.clone(), stop.clone());
            async move {
                let _ =
                    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
            }
        });
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(REQUEST_HEADER, "1".parse()?);
        if let Some(token) = token {
            headers.insert("authorization", format!("Bearer {token}").parse()?);
        }
        let server = Self {
            api,
            client: reqwest::Client::builder().default_headers(headers).build()?,
            store,
            engine: Some(engine),
            http,
            _guard: stop.clone().drop_guard(),
            stop,
            data,
        };
        // The hosted module publishes its catalogue once it runs.
        weir_testenv::eventually("the common module's catalogue", DEADLINE, || async {
            let (_, modules) = server.call(Method::GET, "/modules", None).await?;
            Ok(modules.as_array().filter(|m| !m.is_empty()).map(drop))
        })
        .await?;
        Ok(server)
    }

    /// A JSON request, as the editor sends it; the status and the JSON answer (null when the
    /// body is empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, value))
    }

    /// A request with a raw body of `content_type`; the status and the body as text.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<(StatusCode, String)> {
        let response = self
            .client
            .request(method, format!("{}{path}", self.api))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await?;
        Ok((response.status(), response.text().await?))
    }

    /// A request that must succeed with `expected`; its JSON answer.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        ensure!(status == expected, "{method} {path}: {status} {answer}");
        Ok(answer)
    }

    async fn stored(&self, kind: Kind, name: &str) -> Result<DynamicObject> {
        Ok(self.store.get(kind, "default", name).await?)
    }

    async fn stop(mut self) -> Result<()> {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, &mut self.http)
            .await
            .context("the HTTP server did not stop")??;
        if let Some(engine) = self.engine.take() {
            tokio::time::timeout(DEADLINE, engine.stopped())
                .await
                .context("the engine did not stop")?;
        }
        Ok(())
    }
}

fn flow(name: &str) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "Flow",
        "metadata": { "name": name },
        "spec": { "description": "Says hello.", "layout": { "tick": { "left": 80, "top": 120 } } },
    })
}

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
fn node(name: &str, flow: &str, component: &str, settings: Value, edges: Value) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "FlowNode",
        "metadata": { "name": name },
        "spec": { "flow": flow, "module": "common", "component": component, "settings": settings, "edges": edges },
    })
}

/// A ticker wired to a debug node.
fn hello(name: &str, interval: &str) -> Value {
    json!({
        "flow": flow(name),
        "nodes": [
            node("tick", name, "ticker", json!({ "interval": interval }),
                json!([{ "port": "out", "to": { "node": "greet", "port": "in" } }])),
            node("greet", name, "debug", json!({ "keep": 5 }), json!([])),
        ],
    })
}

fn names(nodes: &Value) -> Vec<&str> {
    nodes
        .as_array()
        .map(|nodes| nodes.iter().filter_map(|n| n.pointer("/metadata/name")?.as_str()).collect())
        .unwrap_or_default()
}

fn errors(answer: &Value) -> Vec<(String, String, String)> {
    let text =
        |e: &Value, key: &str| e.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    answer["errors"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| (text(e, "resource"), text(e, "field"), text(e, "message")))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_list_the_installed_catalogues() -> Result<()> {
    let server = Server::start().await?;
    let modules = server.ok(Method::GET, "/modules", None, StatusCode::OK).await?;
    let common = modules
        .as_array()
        .and_then(|all| all.iter().find(|m| m["metadata"]["name"] == "common"))
        .context("no common module")?;
    ensure!(common["kind"] == "Module" && common["apiVersion"] == API_VERSION, "{common}");
    let ticker = common["spec"]["components"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "ticker"))
        .context("no ticker")?;
    ensure!(ticker["settingsSchema"].is_object() && ticker["ports"].is_array(), "{ticker}");
    let (status, answer) = server.call(Method::GET, "/modules?namespace=Bad_Name", None).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST && answer["error"]["kind"] == "bad_request",
        "{answer}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_flow_reads_back_lists_and_saves_again_without_needless_writes() -> Result<()> {
    let server = Server::start().await?;
    let saved =
        server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "1m")), StatusCode::OK).await?;
    ensure!(saved["flow"]["metadata"]["name"] == "hello", "{saved}");
    ensure!(names(&saved["nodes"]) == ["greet", "tick"], "{saved}");

    let listed = server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    ensure!(
        listed[0]["flow"]["metadata"]["name"] == "hello" && listed[0]["nodes"] == 2,
        "{listed}"
    );

    // The nodes run and report their status, which the document carries.
    let document = weir_testenv::eventually("node status", DEADLINE, || async {
        let document = server.ok(Method::GET, "/flows/hello", None, StatusCode::OK).await?;
        let ready = document["nodes"].as_array().is_some_and(|nodes| {
            nodes.iter().all(|n| n.pointer("/status/conditions/0/status") == Some(&json!("True")))
        });
        Ok(ready.then_some(document))
    })
    .await?;

    // Saving what was read (status and server fields included) changes nothing.
    let again = json!({ "flow": document["flow"], "nodes": document["nodes"] });
    server.ok(Method::PUT, "/flows/hello", Some(again), StatusCode::OK).await?;
    for name in ["tick", "greet"] {
        let stored = server.stored(Kind::FlowNode, name).await?;
        ensure!(stored.metadata.generation == Some(1), "{name} was written again: {stored:?}");
        ensure!(stored.data.get("status").is_some(), "{name} lost its status");
    }
    ensure!(
        server.stored(Kind::Flow, "hello").await?.metadata.generation == Some(1),
        "flow written again"
    );

    // A node left out is deleted; a changed node is written.
    let mut smaller = hello("hello", "2m");
    smaller["nodes"] =
        json!([node("tick", "hello", "ticker", json!({ "interval": "2m" }), json!([]))]);
    let saved = server.ok(Method::PUT, "/flows/hello", Some(smaller), StatusCode::OK).await?;
    ensure!(names(&saved["nodes"]) == ["tick"], "{saved}");
    ensure!(
        server.stored(Kind::FlowNode, "tick").await?.metadata.generation == Some(2),
        "tick not updated"
    );
    ensure!(
        server.store.get(Kind::FlowNode, "default", "greet").await.is_err(),
        "greet left behind"
    );
    server.stop().await
}

/// `PUT /flows/hello` of `document`, made over `version` when given (`If-Match`), or as a new
/// flow for `new` (`If-None-Match: *`); the status, the answer and its `ETag`.
async fn save_over(
    server: &Server,
    document: &Value,
    version: Option<&str>,
) -> Result<(StatusCode, Value, String)> {
    let mut request = server
        .client
        .put(format!("{}/flows/hello", server.api))
        .header("content-type", JSON)
        .body(document.to_string());
    match version {
        Some("new") => request = request.header("if-none-match", "*"),
        Some(version) => request = request.header("if-match", version),
        None => {}
    }
    let response = request.send().await?;
    let status = response.status();
    let etag = etag(&response);
    Ok((status, serde_json::from_slice(&response.bytes().await?)?, etag))
}

fn etag(response: &reqwest::Response) -> String {
    let etag = response.headers().get("etag").and_then(|v| v.to_str().ok());
    etag.unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_over_a_version_someone_changed_since_is_refused_and_one_without_it_overwrites()
-> Result<()> {
    let server = Server::start().await?;
    let (status, _, first) = save_over(&server, &hello("hello", "1m"), None).await?;
    ensure!(status == StatusCode::OK && first.starts_with('"'), "{status} {first:?}");
    let read_at = server.stored(Kind::FlowNode, "tick").await?.metadata.resource_version;

    // The nodes run and write their status (new resourceVersions): the version stays, so an
    // editor open on a running flow can still save over what it read.
    let read = weir_testenv::eventually("a status written", DEADLINE, || async {
        let stored = server.stored(Kind::FlowNode, "tick").await?;
        Ok((stored.metadata.resource_version != read_at).then_some(()))
    });
    read.await?;
    let response = server.client.get(format!("{}/flows/hello", server.api)).send().await?;
    ensure!(etag(&response) == first, "the version moved with a status");

    // Someone else saves a change; a save over the first version is refused, names the flow
    // and changes nothing.
    let (status, _, theirs) = save_over(&server, &hello("hello", "2m"), Some(&first)).await?;
    ensure!(status == StatusCode::OK && theirs != first, "{status} {theirs:?}");
    let (status, answer, _) = save_over(&server, &hello("hello", "5m"), Some(&first)).await?;
    ensure!(status == StatusCode::PRECONDITION_FAILED, "{status} {answer}");
    ensure!(answer["error"]["kind"] == "stale", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.starts_with("flow default/hello was changed by someone else"), "{message}");
    let tick = server.stored(Kind::FlowNode, "tick").await?;
    ensure!(tick.data["spec"]["settings"]["interval"] == "2m", "their change was overwritten");

    // Over the version they left, or without one (overwrite), the save goes through.
    let (status, _, mine) = save_over(&server, &hello("hello", "5m"), Some(&theirs)).await?;
    ensure!(status == StatusCode::OK && mine != theirs, "{status}");
    let (status, _, _) = save_over(&server, &hello("hello", "6m"), None).await?;
    ensure!(status == StatusCode::OK, "{status}");
    let tick = server.stored(Kind::FlowNode, "tick").await?;
    ensure!(tick.data["spec"]["settings"]["interval"] == "6m", "not overwritten: {tick:?}");

    // A flow deleted since it was read is not brought back by a save over its version.
    server.ok(Method::DELETE, "/flows/hello", None, StatusCode::NO_CONTENT).await?;
    let (status, answer, _) = save_over(&server, &hello("hello", "7m"), Some("*")).await?;
    ensure!(status == StatusCode::PRECONDITION_FAILED, "{status} {answer}");
    ensure!(server.store.get(Kind::Flow, "default", "hello").await.is_err(), "brought back");

    // A new flow saves when its name is free, and is refused when the name was taken since.
    let (status, answer, _) = save_over(&server, &hello("hello", "8m"), Some("new")).await?;
    ensure!(status == StatusCode::OK, "{status} {answer}");
    let (status, answer, _) = save_over(&server, &hello("hello", "9m"), Some("new")).await?;
    ensure!(status == StatusCode::PRECONDITION_FAILED, "{status} {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.starts_with("flow default/hello exists already"), "{message}");
    let tick = server.stored(Kind::FlowNode, "tick").await?;
    ensure!(tick.data["spec"]["settings"]["interval"] == "8m", "replaced: {tick:?}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_naming_resource_and_field_and_nothing_is_saved() -> Result<()> {
    let server = Server::start().await?;
    let (status, text) = server.raw(Method::PUT, "/flows/hello", JSON, "{\"flow\": ").await?;
    ensure!(
        status == StatusCode::BAD_REQUEST && text.contains("the body is not JSON"),
        "{status} {text}"
    );
    let (status, answer) =
        server.call(Method::PUT, "/flows/hello", Some(json!({ "flow": {} }))).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && answer["error"]["message"].as_str().is_some_and(|m| m.contains("nodes")),
        "{status} {answer}"
    );
    let (status, answer) = server.call(Method::GET, "/flows/ghost", None).await?;
    ensure!(
        status == StatusCode::NOT_FOUND
            && answer
                == json!({ "error": { "kind": "not_found", "message": "flow default/ghost does not exist" } }),
        "{status} {answer}"
    );
    let (status, _) = server.call(Method::GET, "/flows/Ghost", None).await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}");

    let mut broken = hello("hello", "1m");
    broken["nodes"][0]["spec"]["edges"][0]["to"]["port"] = json!("input");
    broken["nodes"][1]["spec"]["component"] = json!("Debug");
    let (status, answer) = server.call(Method::PUT, "/flows/hello", Some(broken)).await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status} {answer}");
    let found = errors(&answer);
    ensure!(
        found.iter().any(|(r, f, _)| r == "FlowNode/greet" && f == "spec.component"),
        "{answer}"
    );

    let mut misfits = hello("hello", "1m");
    misfits["nodes"][0]["spec"]["edges"][0]["to"]["port"] = json!("input");
    misfits["nodes"][1]["spec"]["settings"] = json!({ "keep": "twenty", "password": "hunter2" });
    misfits["nodes"][1]["spec"]["flow"] = json!("other");
    let (status, answer) = server.call(Method::PUT, "/flows/hello", Some(misfits)).await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status} {answer}");
    let found = errors(&answer);
    let has =
        |resource: &str, field: &str| found.iter().any(|(r, f, _)| r == resource && f == field);
    ensure!(has("FlowNode/tick", "spec.edges[0].to.port"), "{answer}");
    ensure!(has("FlowNode/greet", "spec.flow"), "{answer}");
    ensure!(
        has("FlowNode/greet", "spec.settings.keep") || has("FlowNode/greet", "spec.settings"),
        "{answer}"
    );
    ensure!(!answer.to_string().contains("hunter2"), "a value was echoed: {answer}");
    let edge = found.iter().find(|(_, f, _)| f == "spec.edges[0].to.port").context("edge")?;
    ensure!(edge.2 == "greet has no input port input (its inputs: in)", "{edge:?}");

    let (status, _) = server.call(Method::GET, "/flows/hello", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "a refused flow was saved");
    ensure!(
        server.store.get(Kind::FlowNode, "default", "tick").await.is_err(),
        "a refused node was saved"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_without_saving() -> Result<()> {
    let server = Server::start().await?;
    let answer =
        server.ok(Method::POST, "/validate", Some(hello("hello", "1m")), StatusCode::OK).await?;
    ensure!(answer == json!({ "errors": [] }), "{answer}");
    let mut broken = hello("hello", "1m");
    broken["nodes"][0]["spec"]["edges"][0]["to"]["node"] = json!("nobody");
    let answer = server.ok(Method::POST, "/validate", Some(broken), StatusCode::OK).await?;
    ensure!(
        errors(&answer)
            == [(
                "FlowNode/tick".to_owned(),
                "spec.edges[0].to.node".to_owned(),
                "node nobody is not in flow hello".to_owned()
            )],
        "{answer}"
    );
    let (status, _) = server.call(Method::GET, "/flows/hello", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "validate saved the flow");
    server.stop().await
}

/// Mappings that would overflow jaq's stack or recurse without end are refused by the check,
/// naming node and field, and the engine lives on to answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_hostile_mappings_and_the_engine_survives() -> Result<()> {
    let server = Server::start().await?;
    let nested = |depth: usize| format!("{{{{ {}.{} }}}}", "(".repeat(depth), ")".repeat(depth));
    for (mapping, expected) in [
        (nested(3_000), "the expression is 6001 bytes long; at most 4000 are allowed"),
        (nested(1_000), "brackets nest 1000 deep; at most 64 levels are allowed"),
        ("{{ def f: [f]; f }}".to_owned(), "a function may not call itself in a mapping"),
        ("{{ .[ }}".to_owned(), "{{ .[ }}: expected"),
    ] {
        let mut flow = hello("hello", "1m");
        flow["nodes"][0]["spec"]["edges"][0]["mapping"] = json!({ "n": mapping });
        let answer = server.ok(Method::POST, "/validate", Some(flow), StatusCode::OK).await?;
        let errors = errors(&answer);
        ensure!(
            errors.len() == 1
                && errors[0].0 == "FlowNode/tick"
                && errors[0].1 == "spec.edges[0].mapping"
                && errors[0].2.starts_with("n: {{ ")
                && errors[0].2.contains(expected),
            "{expected}: {answer}"
        );
    }
    server.ok(Method::GET, "/modules", None, StatusCode::OK).await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_moves_nodes_without_touching_them() -> Result<()> {
    let server = Server::start().await?;
    server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "1m")), StatusCode::OK).await?;
    let layout = json!({ "layout": { "tick": { "left": 10.0, "top": 20.5 }, "greet": { "left": 300, "top": 20 } } });
    let moved = server.ok(Method::PUT, "/flows/hello/layout", Some(layout), StatusCode::OK).await?;
    ensure!(moved["kind"] == "Flow", "{moved}");
    // Whole numbers stay whole, so exports do not turn 10 into 10.0.
    ensure!(moved["spec"]["layout"]["tick"] == json!({ "left": 10, "top": 20.5 }), "{moved}");
    ensure!(moved["spec"]["description"] == "Says hello.", "{moved}");
    for name in ["tick", "greet"] {
        ensure!(
            server.stored(Kind::FlowNode, name).await?.metadata.generation == Some(1),
            "{name} touched"
        );
    }
    let (status, answer) = server
        .call(
            Method::PUT,
            "/flows/hello/layout",
            Some(json!({ "layout": { "Tick": { "left": 1, "top": 2 } } })),
        )
        .await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && answer["error"]["message"].as_str().is_some_and(|m| m.contains("layout")),
        "{answer}"
    );
    let (status, _) =
        server.call(Method::PUT, "/flows/ghost/layout", Some(json!({ "layout": {} }))).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_moves_the_nodes_and_refuses_a_taken_name() -> Result<()> {
    let server = Server::start().await?;
    server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "1m")), StatusCode::OK).await?;
    server
        .ok(
            Method::PUT,
            "/flows/taken",
            Some(json!({ "flow": flow("taken"), "nodes": [] })),
            StatusCode::OK,
        )
        .await?;
    let (status, answer) =
        server.call(Method::POST, "/flows/hello/rename", Some(json!({ "name": "taken" }))).await?;
    ensure!(
        status == StatusCode::CONFLICT && answer["error"]["kind"] == "conflict",
        "{status} {answer}"
    );
    let (status, answer) = server
        .call(Method::POST, "/flows/hello/rename", Some(json!({ "name": "No_Good" })))
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && errors(&answer)[0].1 == "name",
        "{status} {answer}"
    );
    let (status, _) =
        server.call(Method::POST, "/flows/ghost/rename", Some(json!({ "name": "spirit" }))).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    // Node names are unique in a namespace: another flow cannot take one.
    let thief = json!({ "flow": flow("taken"), "nodes": [node("tick", "taken", "debug", json!({}), json!([]))] });
    let (status, answer) = server.call(Method::PUT, "/flows/taken", Some(thief)).await?;
    let expected = "node tick belongs to flow hello: node names are unique in a namespace";
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && errors(&answer)
                == [("FlowNode/tick".to_owned(), "metadata.name".to_owned(), expected.to_owned())],
        "{status} {answer}"
    );

    let renamed = server
        .ok(
            Method::POST,
            "/flows/hello/rename",
            Some(json!({ "name": "greetings" })),
            StatusCode::OK,
        )
        .await?;
    // The nodes are the new flow's by the time the old is deleted, or in a cluster the garbage
    // collector would delete them with it (the controller mends owners too, but only after it
    // settles, 200 ms on).
    let greetings = server.stored(Kind::Flow, "greetings").await?.metadata.uid;
    for name in ["greet", "tick"] {
        let owners = server.stored(Kind::FlowNode, name).await?.metadata.owner_references;
        let flows: Vec<_> = owners
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.kind == "Flow")
            .map(|o| (o.name, Some(o.uid)))
            .collect();
        ensure!(flows == [("greetings".to_owned(), greetings.clone())], "{name}: {flows:?}");
    }
    ensure!(renamed["flow"]["metadata"]["name"] == "greetings", "{renamed}");
    ensure!(
        renamed["flow"]["spec"]["layout"]["tick"] == json!({ "left": 80, "top": 120 }),
        "{renamed}"
    );
    ensure!(names(&renamed["nodes"]) == ["greet", "tick"], "{renamed}");
    ensure!(
        renamed["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["spec"]["flow"] == "greetings")),
        "{renamed}"
    );
    let (status, _) = server.call(Method::GET, "/flows/hello", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "the old flow is still there");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_takes_the_nodes_along() -> Result<()> {
    let server = Server::start().await?;
    server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "1m")), StatusCode::OK).await?;
    server.ok(Method::DELETE, "/flows/hello", None, StatusCode::NO_CONTENT).await?;
    let (status, _) = server.call(Method::GET, "/flows/hello", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    ensure!(server.store.get(Kind::FlowNode, "default", "tick").await.is_err(), "tick left behind");
    let (status, answer) = server.call(Method::DELETE, "/flows/hello", None).await?;
    ensure!(status == StatusCode::NOT_FOUND && answer["error"]["kind"] == "not_found", "{answer}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_export_round_trips_and_a_broken_file_applies_nothing() -> Result<()> {
    let server = Server::start().await?;
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/manifests/valid/hello.yaml"
    ))?;

    let broken =
        file.replace("component: debug", "component: Debug").replace("kind: Flow\n", "kind: Flw\n");
    let (status, text) = server.raw(Method::POST, "/import", YAML, &broken).await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status} {text}");
    let answer: Value = serde_json::from_str(&text)?;
    let all = answer["errors"].as_array().context("errors")?;
    ensure!(all.len() == 2, "{answer}");
    ensure!(all[0]["document"] == 1 && all[0]["field"] == "kind", "{answer}");
    ensure!(
        all[1]["document"] == 2
            && all[1]["resource"] == "FlowNode/greet"
            && all[1]["field"] == "spec.component",
        "{answer}"
    );
    let (status, text) =
        server.raw(Method::POST, "/import", YAML, "kind: Flow\n---\nmetadata: {name: [\n").await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && text.contains("\"document\":2"),
        "{status} {text}"
    );
    let listed = server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    ensure!(listed == json!([]), "a broken import applied something: {listed}");

    let (status, text) = server.raw(Method::POST, "/import", YAML, &file).await?;
    ensure!(
        status == StatusCode::OK
            && serde_json::from_str::<Value>(&text)? == json!({ "flows": ["hello"] }),
        "{status} {text}"
    );
    let response = server.client.get(format!("{}/flows/hello/export", server.api)).send().await?;
    ensure!(response.headers()["content-type"] == "text/yaml", "{:?}", response.headers());
    let exported = response.text().await?;
    ensure!(exported == file, "export differs from the imported file:\n{exported}");
    let (status, _) = server.call(Method::GET, "/flows/ghost/export", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    server.stop().await
}

/// A module no process here runs, whose component has a secret setting.
async fn install_vault(server: &Server) -> Result<()> {
    let module: DynamicObject = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "Module",
        "metadata": { "name": "vault", "namespace": "default" },
        "spec": { "version": "1", "components": [{
            "name": "login", "label": "Login",
            "settingsSchema": {
                "type": "object",
                "properties": {
                    "user": { "type": "string" },
                    "password": { "type": "string", "x-weir-secret": true }
                }
            },
            "ports": [{ "name": "in", "direction": "in" }]
        }] },
    }))?;
    server.store.create(module).await?;
    Ok(())
}

fn login(password: &str, user: &str) -> Value {
    let mut login =
        node("login", "vault", "login", json!({ "user": user, "password": password }), json!([]));
    login["spec"]["module"] = json!("vault");
    json!({ "flow": flow("vault"), "nodes": [login] })
}

async fn stored_settings(server: &Server) -> Result<Value> {
    Ok(server.stored(Kind::FlowNode, "login").await?.data["spec"]["settings"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_settings_never_reach_the_editor_and_the_placeholder_keeps_them() -> Result<()> {
    let server = Server::start().await?;
    install_vault(&server).await?;
    let (status, answer) =
        server.call(Method::PUT, "/flows/vault", Some(login(KEPT, "bot"))).await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "a placeholder without a stored secret: {status} {answer}"
    );
    ensure!(
        errors(&answer)[0].0 == "FlowNode/login"
            && errors(&answer)[0].1 == "spec.settings.password",
        "{answer}"
    );

    let saved = server
        .ok(Method::PUT, "/flows/vault", Some(login("hunter2", "bot")), StatusCode::OK)
        .await?;
    ensure!(
        saved["nodes"][0]["spec"]["settings"] == json!({ "user": "bot", "password": KEPT }),
        "{saved}"
    );
    ensure!(stored_settings(&server).await?["password"] == "hunter2", "the secret was not stored");
    let read = server.ok(Method::GET, "/flows/vault", None, StatusCode::OK).await?;
    ensure!(!read.to_string().contains("hunter2"), "GET leaked the secret: {read}");

    // The placeholder sent back keeps the stored secret; the other fields change.
    let edited =
        server.ok(Method::PUT, "/flows/vault", Some(login(KEPT, "ops")), StatusCode::OK).await?;
    ensure!(!edited.to_string().contains("hunter2"), "{edited}");
    ensure!(
        stored_settings(&server).await? == json!({ "user": "ops", "password": "hunter2" }),
        "secret lost"
    );
    let answer =
        server.ok(Method::POST, "/validate", Some(login(KEPT, "ops")), StatusCode::OK).await?;
    ensure!(answer == json!({ "errors": [] }), "{answer}");

    // Exports conceal it too, and importing the export keeps it.
    let export = server
        .client
        .get(format!("{}/flows/vault/export", server.api))
        .send()
        .await?
        .text()
        .await?;
    ensure!(!export.contains("hunter2") && export.contains(KEPT), "{export}");
    let (status, text) = server.raw(Method::POST, "/import", YAML, &export).await?;
    ensure!(status == StatusCode::OK, "{status} {text}");
    ensure!(stored_settings(&server).await?["password"] == "hunter2", "import lost the secret");

    // A new value replaces it.
    server.ok(Method::PUT, "/flows/vault", Some(login("s3cret", "ops")), StatusCode::OK).await?;
    ensure!(
        stored_settings(&server).await?["password"] == "s3cret",
        "the new secret was not stored"
    );

    // A reference stands for text in a secret field, is concealed like a value and kept by
    // the placeholder; anywhere else, or malformed, it is refused naming the field.
    let reference = json!({ "secretKeyRef": { "name": "creds", "key": "password" } });
    let mut by_reference = login("", "ops");
    by_reference["nodes"][0]["spec"]["settings"]["password"] = reference.clone();
    let saved = server.ok(Method::PUT, "/flows/vault", Some(by_reference), StatusCode::OK).await?;
    ensure!(saved["nodes"][0]["spec"]["settings"]["password"] == KEPT, "{saved}");
    server.ok(Method::PUT, "/flows/vault", Some(login(KEPT, "dev")), StatusCode::OK).await?;
    ensure!(stored_settings(&server).await?["password"] == reference, "the reference was lost");
    for (field, value, expected) in [
        ("user", reference.clone(), "secretKeyRef is taken only in a field marked secret"),
        ("password", json!({ "secretKeyRef": { "name": "creds" } }), "a reference is"),
    ] {
        let mut bad = login("x", "ops");
        bad["nodes"][0]["spec"]["settings"][field] = value;
        let (status, answer) = server.call(Method::PUT, "/flows/vault", Some(bad)).await?;
        let problems = errors(&answer);
        ensure!(
            status == StatusCode::UNPROCESSABLE_ENTITY
                && problems[0].1 == format!("spec.settings.{field}")
                && answer.to_string().contains(expected),
            "{status} {answer}"
        );
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_delivers_through_the_module_and_reports_failures() -> Result<()> {
    let server = Server::start().await?;
    server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "1m")), StatusCode::OK).await?;
    let answer = weir_testenv::eventually("greet to answer", DEADLINE, || async {
        let (status, answer) = server
            .call(
                Method::POST,
                "/send",
                Some(json!({ "node": "greet", "port": "in", "message": { "n": 1 } })),
            )
            .await?;
        Ok((status == StatusCode::OK).then_some(answer))
    })
    .await?;
    ensure!(answer.get("answer").is_some(), "{answer}");

    let (status, answer) = server
        .call(Method::POST, "/send", Some(json!({ "node": "nobody", "port": "in", "message": {} })))
        .await?;
    ensure!(
        status == StatusCode::NOT_FOUND && answer["error"]["kind"] == "not_found",
        "{status} {answer}"
    );
    let (status, answer) = server
        .call(
            Method::POST,
            "/send",
            Some(json!({ "node": "tick", "port": "control", "message": { "action": "jump" } })),
        )
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && answer["error"]["kind"] == "invalid",
        "{status} {answer}"
    );
    // Past what gRPC's deadline header holds (99,999,999 hours): refused, not a panic.
    let too_long = json!({ "node": "greet", "port": "in", "message": {}, "timeout": "4166667d" });
    let (status, answer) = server.call(Method::POST, "/send", Some(too_long)).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("timeout: 360000028800s is longer")),
        "{status} {answer}"
    );
    let (status, answer) =
        server.call(Method::POST, "/send", Some(json!({ "node": "greet", "message": {} }))).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && answer["error"]["message"].as_str().is_some_and(|m| m.contains("port")),
        "{answer}"
    );

    install_vault(&server).await?;
    server.ok(Method::PUT, "/flows/vault", Some(login("hunter2", "bot")), StatusCode::OK).await?;
    let (status, answer) = server
        .call(Method::POST, "/send", Some(json!({ "node": "login", "port": "in", "message": {} })))
        .await?;
    ensure!(
        status == StatusCode::BAD_GATEWAY && answer["error"]["kind"] == "unreachable",
        "{status} {answer}"
    );
    server.stop().await
}

/// A router that takes messages with `n` over 10 to a debug node, and fails the others.
fn routed(name: &str) -> Value {
    let routes = json!({ "routes": [{ "name": "big", "condition": ".n > 10" }], "default": false });
    json!({
        "flow": flow(name),
        "nodes": [
            node("route", name, "router", routes,
                json!([{ "port": "big", "to": { "node": "big", "port": "in" } }])),
            node("big", name, "debug", json!({ "keep": 5 }), json!([])),
        ],
    })
}

/// The runs of flow `paths`, newest first, once there are `count`.
async fn runs(server: &Server, count: usize) -> Result<Vec<Value>> {
    weir_testenv::eventually(&format!("{count} runs kept"), DEADLINE, || async {
        let runs = server.ok(Method::GET, "/flows/paths/runs", None, StatusCode::OK).await?;
        let runs = runs.as_array().cloned().unwrap_or_default();
        // A run is listed once its first node answered or failed.
        let settled = runs.iter().all(|run| run["outcome"] != "running");
        Ok((runs.len() == count && settled).then_some(runs))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_kept_with_their_path_and_a_captured_message_is_sent_again() -> Result<()> {
    let server = Server::start().await?;
    server.ok(Method::PUT, "/flows/paths", Some(routed("paths")), StatusCode::OK).await?;
    let send = |message: Value| json!({ "node": "route", "port": "in", "message": message });
    weir_testenv::eventually("route to answer", DEADLINE, || async {
        let (status, _) =
            server.call(Method::POST, "/send", Some(send(json!({ "n": 20 })))).await?;
        Ok((status == StatusCode::OK).then_some(()))
    })
    .await?;
    let (status, _) = server.call(Method::POST, "/send", Some(send(json!({ "n": 1 })))).await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "no route takes n = 1: {status}");
    server
        .ok(
            Method::POST,
            "/send",
            Some(send(json!({ "n": 30, "token": "hunter2" }))),
            StatusCode::OK,
        )
        .await?;

    let listed = runs(&server, 3).await?;
    let shown: Vec<(&str, Vec<&str>)> = listed
        .iter()
        .map(|run| {
            let nodes =
                run["nodes"].as_array().map(|n| n.iter().filter_map(Value::as_str).collect());
            (run["outcome"].as_str().unwrap_or_default(), nodes.unwrap_or_default())
        })
        .collect();
    ensure!(
        shown
            == [
                ("succeeded", vec!["route", "big"]),
                ("failed", vec!["route"]),
                ("succeeded", vec!["route", "big"]),
            ],
        "newest first, each with the nodes it reached: {listed:?}"
    );
    ensure!(listed[1]["failures"] == 1 && listed[0]["failures"] == 0, "{listed:?}");
    ensure!(!format!("{listed:?}").contains("hunter2"), "{listed:?}");

    // One run whole: what each node received, emitted and answered, in order.
    let first = listed[2]["run"].as_str().context("a run id")?.to_owned();
    let record = server.ok(Method::GET, &format!("/runs/{first}"), None, StatusCode::OK).await?;
    let steps: Vec<(&str, &str)> = record["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .map(|m| (m["node"].as_str().unwrap_or_default(), m["what"].as_str().unwrap_or_default()))
        .collect();
    ensure!(
        steps
            == [
                ("route", "received"),
                ("route", "emitted"),
                ("big", "received"),
                ("big", "answered"),
                ("route", "answered"),
            ],
        "{record}"
    );
    ensure!(record["messages"][0]["payload"] == json!({ "n": 20 }), "{record}");
    ensure!(record["summary"]["run"] == first.as_str(), "{record}");

    // Replay: the first node's message, then big's, each a new run of its own.
    let replay = format!("/runs/{first}/replay");
    let answer = server.ok(Method::POST, &replay, None, StatusCode::OK).await?;
    ensure!(answer["answer"].is_object(), "{answer}");
    let again = runs(&server, 4).await?;
    ensure!(
        again[0]["nodes"] == json!(["route", "big"]) && again[0]["run"] != first.as_str(),
        "{again:?}"
    );
    let record = server
        .ok(
            Method::GET,
            &format!("/runs/{}", again[0]["run"].as_str().unwrap_or_default()),
            None,
            StatusCode::OK,
        )
        .await?;
    ensure!(record["messages"][0]["payload"] == json!({ "n": 20 }), "the same message: {record}");
    server.ok(Method::POST, &replay, Some(json!({ "node": "big" })), StatusCode::OK).await?;
    let again = runs(&server, 5).await?;
    ensure!(again[0]["nodes"] == json!(["big"]), "{again:?}");

    // What cannot be sent again is refused, naming why.
    let hidden = listed[0]["run"].as_str().context("a run id")?;
    let (status, answer) =
        server.call(Method::POST, &format!("/runs/{hidden}/replay"), None).await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && answer.to_string().contains("had secret fields")
            && answer["errors"][0]["resource"] == "FlowNode/route",
        "{status} {answer}"
    );
    let (status, answer) =
        server.call(Method::POST, &replay, Some(json!({ "node": "nobody" }))).await?;
    ensure!(
        status == StatusCode::NOT_FOUND && answer.to_string().contains("node nobody received"),
        "{status} {answer}"
    );
    let (status, answer) =
        server.call(Method::POST, &replay, Some(json!({ "node": "Not A Name" }))).await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status} {answer}");
    let gone = "0123456789abcdef0123456789abcdef";
    let (status, answer) = server.call(Method::GET, &format!("/runs/{gone}"), None).await?;
    ensure!(
        status == StatusCode::NOT_FOUND && answer.to_string().contains("the last 20 runs"),
        "{status} {answer}"
    );
    let (status, _) =
        server.call(Method::GET, &format!("/runs/{first}?namespace=other"), None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "another namespace's runs: {status}");
    let (status, _) = server.call(Method::GET, "/flows/ghost/runs", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");

    // A deleted flow's runs go with it.
    server.ok(Method::DELETE, "/flows/paths", None, StatusCode::NO_CONTENT).await?;
    weir_testenv::eventually("the deleted flow's runs forgotten", DEADLINE, || async {
        let (status, _) = server.call(Method::GET, &format!("/runs/{first}"), None).await?;
        Ok((status == StatusCode::NOT_FOUND).then_some(()))
    })
    .await?;
    server.stop().await
}

/// An open event stream.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(server: &Server, query: &str) -> Result<Self> {
        let response = server.client.get(format!("{}/events{query}", server.api)).send().await?;
        ensure!(response.status() == StatusCode::OK, "{}", response.status());
        ensure!(
            response.headers()["content-type"] == "text/event-stream",
            "{:?}",
            response.headers()
        );
        Ok(Self { response, buffer: String::new() })
    }

    /// The next event's type and data, within the deadline.
    async fn next(&mut self) -> Result<(String, Value)> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned)
                    };
                    // Blocks without an event are keep-alive comments.
                    if let (Some(kind), Some(data)) = (field("event: "), field("data: ")) {
                        return Ok((kind, serde_json::from_str(&data)?));
                    }
                    continue;
                }
                let Some(chunk) = self.response.chunk().await? else {
                    bail!("the event stream ended")
                };
                self.buffer.push_str(std::str::from_utf8(&chunk)?);
            }
        })
        .await
        .context("no event within the deadline")?
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_flow_streams_node_and_message_events_and_keeps_the_last_messages() -> Result<()>
{
    let server = Server::start().await?;
    let mut events = Events::open(&server, "?flow=hello").await?;
    server
        .ok(
            Method::PUT,
            "/flows/other",
            Some(json!({ "flow": flow("other"), "nodes": [] })),
            StatusCode::OK,
        )
        .await?;
    server.ok(Method::PUT, "/flows/hello", Some(hello("hello", "200ms")), StatusCode::OK).await?;
    let (mut received, mut counted, mut added) = (false, false, false);
    while !(received && counted && added) {
        let (kind, data) = events.next().await?;
        ensure!(data["flow"] == "hello" || kind == "missed", "another flow's event: {kind} {data}");
        match kind.as_str() {
            "message" if data["node"] == "greet" && data["what"] == "received" => {
                ensure!(data["direction"] == "in" && data["port"] == "in", "{data}");
                ensure!(data["payload"]["count"].is_u64() && data["time"].is_string(), "{data}");
                received = true;
            }
            "node"
                if data.pointer("/status/counters/messagesIn").and_then(Value::as_u64)
                    > Some(0) =>
            {
                counted = true;
            }
            "flow" if data["change"] == "added" => added = true,
            _ => {}
        }
    }

    let messages =
        server.ok(Method::GET, "/nodes/greet/messages?limit=3", None, StatusCode::OK).await?;
    let messages = messages.as_array().context("an array")?;
    ensure!(!messages.is_empty() && messages.len() <= 3, "{messages:?}");
    ensure!(
        messages.iter().any(|m| m["what"] == "received" && m["node"] == "greet"),
        "{messages:?}"
    );
    // Fields named like secrets are hidden from the editor even where no schema marks them.
    let message = json!({ "node": "greet", "port": "in", "message": { "token": "hunter2" } });
    server.ok(Method::POST, "/send", Some(message), StatusCode::OK).await?;
    let messages = server.ok(Method::GET, "/nodes/greet/messages", None, StatusCode::OK).await?;
    ensure!(!messages.to_string().contains("hunter2"), "{messages}");
    ensure!(messages.to_string().contains("<redacted>"), "{messages}");
    let (status, _) = server.call(Method::GET, "/nodes/greet/messages?limit=0", None).await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}");
    let (status, _) = server.call(Method::GET, "/nodes/nobody/messages", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");

    // The whole flow's in one request: every node's latest, secrets hidden alike.
    let all = server.ok(Method::GET, "/flows/hello/messages?limit=5", None, StatusCode::OK).await?;
    let all = all.as_array().context("an array")?;
    let nodes: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|m| m["node"].as_str()).collect();
    ensure!(nodes.contains("greet") && nodes.contains("tick"), "{all:?}");
    ensure!(all.len() <= 10, "at most 5 per node: {}", all.len());
    ensure!(!format!("{all:?}").contains("hunter2"), "{all:?}");
    let (status, _) = server.call(Method::GET, "/flows/ghost/messages", None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");

    // A new stream starts with every node's current status, once each has written one (at
    // most once a second, so a loaded machine may still be writing tick's).
    weir_testenv::eventually("both nodes reporting a status", DEADLINE, || async {
        let mut reported = 0;
        for node in ["greet", "tick"] {
            let object = server.store.get(Kind::FlowNode, "default", node).await?;
            reported += usize::from(object.data["status"].is_object());
        }
        Ok((reported == 2).then_some(()))
    })
    .await?;
    let mut fresh = Events::open(&server, "").await?;
    let mut opening = Vec::new();
    for _ in 0..2 {
        let (kind, data) = fresh.next().await?;
        ensure!(kind == "node" && data["status"].is_object(), "{kind} {data}");
        opening.push(data["node"].as_str().unwrap_or_default().to_owned());
    }
    opening.sort();
    ensure!(opening == ["greet", "tick"], "{opening:?}");
    drop((events, fresh));
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_follow_the_settings_and_unknown_routes_answer_json() -> Result<()> {
    let server = Server::start().await?;
    let settings = json!({ "settings": { "routes": [{ "name": "big", "condition": ".n > 10" }], "default": true } });
    let ports = server
        .ok(Method::POST, "/modules/common/components/router/ports", Some(settings), StatusCode::OK)
        .await?;
    let names: Vec<&str> =
        ports.as_array().context("ports")?.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(names == ["in", "big", "default"], "{ports}");
    let (status, _) =
        server.call(Method::POST, "/modules/vault/components/login/ports", Some(json!({}))).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    let (status, answer) = server.call(Method::GET, "/nothing/here", None).await?;
    ensure!(
        status == StatusCode::NOT_FOUND && answer["error"]["kind"] == "not_found",
        "{status} {answer}"
    );
    let (status, answer) = server.call(Method::PATCH, "/flows", None).await?;
    ensure!(
        status == StatusCode::METHOD_NOT_ALLOWED && answer["error"].is_object(),
        "{status} {answer}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_lists_solutions_and_installs_one_with_its_settings() -> Result<()> {
    let server = Server::start().await?;
    let listed = server.ok(Method::GET, "/solutions", None, StatusCode::OK).await?;
    let mirror = listed
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "image-mirror"))
        .context("the image mirror is listed")?;
    let required: Vec<&str> = mirror["settings"]
        .as_array()
        .context("settings")?
        .iter()
        .filter(|s| s["required"] == true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    ensure!(required == ["mirror"], "{mirror}");
    let concurrency = mirror["settings"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "concurrency"))
        .context("concurrency")?;
    ensure!(concurrency["minimum"] == 1 && concurrency["maximum"] == 256, "{concurrency}");

    // A required setting left out, an unknown one, a bad value, an unknown solution: nothing
    // is installed, and the answer says which.
    let refused = [
        // The path names the solution, so the message does not again.
        ("image-mirror", json!({}), StatusCode::BAD_REQUEST, "\"setting mirror is required"),
        (
            "image-mirror",
            json!({ "settings": { "mirror": "m:5000", "bogus": "1" } }),
            StatusCode::BAD_REQUEST,
            "has no setting bogus",
        ),
        (
            "image-mirror",
            json!({ "settings": { "mirror": "m:5000", "concurrency": "many" } }),
            StatusCode::BAD_REQUEST,
            "setting concurrency",
        ),
        (
            "image-mirror",
            json!({ "settings": { "mirror": "m:5000", "concurrency": "0" } }),
            StatusCode::BAD_REQUEST,
            "setting concurrency: 0 is below the minimum, 1",
        ),
        (
            "nothing-like-it",
            json!({}),
            StatusCode::NOT_FOUND,
            "there is no solution nothing-like-it",
        ),
    ];
    for (name, body, status, says) in refused {
        let (got, text) =
            server.call(Method::POST, &format!("/solutions/{name}/install"), Some(body)).await?;
        ensure!(got == status && text.to_string().contains(says), "{name}: {got} {text}");
    }
    let listed = server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    ensure!(listed == json!([]), "a refused install applied something: {listed}");

    let installed = server
        .ok(
            Method::POST,
            "/solutions/image-mirror/install",
            Some(json!({ "settings": { "mirror": "127.0.0.1:5000", "interval": "5m" } })),
            StatusCode::OK,
        )
        .await?;
    ensure!(installed == json!({ "flows": ["image-mirror"] }), "{installed}");
    let flow = server.ok(Method::GET, "/flows/image-mirror", None, StatusCode::OK).await?;
    let tick = flow["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["metadata"]["name"] == "mirror-tick"))
        .context("the ticker")?;
    ensure!(tick["spec"]["settings"]["interval"] == "5m", "{tick}");
    server.stop().await
}

/// `weir up` has no users: the session says so, and signing in is refused rather than faked.
/// (This one hosts no http module, so it has no webhook listener to name.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_engine_has_no_sessions() -> Result<()> {
    let server = Server::start().await?;
    let who = server.ok(Method::GET, "/session", None, StatusCode::OK).await?;
    ensure!(who == json!({ "open": true, "namespace": "default" }), "{who}");
    let (status, answer) =
        server.call(Method::POST, "/session", Some(json!({ "token": "abc" }))).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && answer["error"]["message"] == "this engine has no users to sign in as",
        "{status} {answer}"
    );
    // Without a token the flows are still there: access is open.
    server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    server.stop().await
}

/// A flow as a file to import, for the requests below.
const PLANTED: &str =
    "apiVersion: weir.dev/v1alpha1\nkind: Flow\nmetadata: {name: planted}\nspec: {}\n";

/// A request as a browser would send it for a page, without the test client's own headers;
/// the status and the error's message, or the body as text.
async fn as_browser(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(StatusCode, String)> {
    let mut request = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|answer| answer["error"]["message"].as_str().map(str::to_owned));
    Ok((status, message.unwrap_or(text)))
}

/// What a page of another site can make a browser send to `weir up`: each is refused with a
/// message saying why, and nothing is applied; the editor's own requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_other_sites_cannot_drive_weir_up() -> Result<()> {
    let server = Server::start().await?;
    let address = server.api.trim_start_matches("http://").trim_end_matches("/api").to_owned();
    let port = address.rsplit(':').next().context("port")?.to_owned();
    std::fs::create_dir_all(server.data.path().join("editor"))?;
    std::fs::write(server.data.path().join("editor/index.html"), "<title>Weir</title>")?;
    let url = |path: &str| format!("http://{address}{path}");
    let import = url("/api/import");
    let evil_host = format!("evil.example:{port}");
    let own_origin = format!("http://{address}");
    // What the case is, the request (method, URL, headers), and the status and message due.
    type Case<'a> = (&'a str, Method, &'a str, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let mcp = url("/api/mcp");
    let refused: [Case<'_>; 12] = [
        (
            "a form's text/plain import from another origin",
            Method::POST,
            &import,
            vec![("content-type", "text/plain"), ("origin", "http://evil.example")],
            StatusCode::FORBIDDEN,
            "Origin \"http://evil.example\" is not this weir up's own",
        ),
        (
            "a text/plain import without an Origin",
            Method::POST,
            &import,
            vec![("content-type", "text/plain")],
            StatusCode::FORBIDDEN,
            "a POST needs the header X-Weir-Request",
        ),
        (
            "a text/plain import with the header",
            Method::POST,
            &import,
            vec![("content-type", "text/plain"), ("x-weir-request", "1")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "must say it is JSON or YAML (Content-Type application/json or application/yaml), not \"text/plain\"",
        ),
        (
            "a YAML import without the header",
            Method::POST,
            &import,
            vec![("content-type", "application/yaml"), ("origin", own_origin.as_str())],
            StatusCode::FORBIDDEN,
            "X-Weir-Request",
        ),
        (
            "an import from a page of another site",
            Method::POST,
            &import,
            vec![
                ("content-type", "application/yaml"),
                ("x-weir-request", "1"),
                ("sec-fetch-site", "cross-site"),
            ],
            StatusCode::FORBIDDEN,
            "Sec-Fetch-Site: cross-site",
        ),
        (
            "an import from a sandboxed page",
            Method::POST,
            &import,
            vec![("content-type", "application/yaml"), ("x-weir-request", "1"), ("origin", "null")],
            StatusCode::FORBIDDEN,
            "Origin \"null\"",
        ),
        (
            "an import through a rebound name",
            Method::POST,
            &import,
            vec![
                ("content-type", "application/yaml"),
                ("x-weir-request", "1"),
                ("host", evil_host.as_str()),
            ],
            StatusCode::MISDIRECTED_REQUEST,
            "is not this weir up: it answers only requests for localhost",
        ),
        (
            "a read through a rebound name",
            Method::GET,
            &url("/api/flows"),
            vec![("host", evil_host.as_str())],
            StatusCode::MISDIRECTED_REQUEST,
            &format!("Host \"{evil_host}\" is not this weir up"),
        ),
        (
            "a read by a page of another site",
            Method::GET,
            &url("/api/flows"),
            vec![("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "cors")],
            StatusCode::FORBIDDEN,
            "a page of another site may not use weir",
        ),
        (
            "a form's text/plain MCP message (MCP clients need no X-Weir-Request)",
            Method::POST,
            &mcp,
            vec![("content-type", "text/plain")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "must say it is JSON or YAML",
        ),
        (
            "an MCP message from another origin",
            Method::POST,
            &mcp,
            vec![("content-type", "application/json"), ("origin", "http://evil.example")],
            StatusCode::FORBIDDEN,
            "Origin \"http://evil.example\" is not this weir up's own",
        ),
        (
            "an MCP message from a page of another site",
            Method::POST,
            &mcp,
            vec![("content-type", "application/json"), ("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
            "Sec-Fetch-Site: cross-site",
        ),
    ];
    for (case, method, url, headers, expected, says) in refused {
        let body = (method == Method::POST).then_some(PLANTED);
        let (status, text) = as_browser(method, url, &headers, body).await?;
        ensure!(status == expected && text.contains(says), "{case}: {status} {text}");
    }
    for path in ["/", "/metrics", "/healthz"] {
        let (status, text) =
            as_browser(Method::GET, &url(path), &[("host", evil_host.as_str())], None).await?;
        ensure!(
            status == StatusCode::MISDIRECTED_REQUEST,
            "{path} for {evil_host}: {status} {text}"
        );
    }
    ensure!(
        matches!(
            server.store.get(Kind::Flow, "default", "planted").await,
            Err(weir_store::StoreError::NotFound(_))
        ),
        "a refused import applied its flow"
    );
    let flows = server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    ensure!(flows == json!([]), "{flows}");

    // The editor's own requests: its origin, `same-origin`, the header and YAML.
    let editor = [
        ("content-type", "application/yaml"),
        ("x-weir-request", "1"),
        ("origin", own_origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let (status, text) = as_browser(Method::POST, &import, &editor, Some(PLANTED)).await?;
    ensure!(status == StatusCode::OK && text.contains("planted"), "{status} {text}");
    server.stored(Kind::Flow, "planted").await?;
    // `localhost` at the port is this weir up too, and a link from another site opens the
    // editor (a navigation reads nothing for the page that made it).
    let localhost = format!("localhost:{port}");
    let (status, text) =
        as_browser(Method::GET, &url("/api/flows"), &[("host", &localhost)], None).await?;
    ensure!(status == StatusCode::OK && text.contains("planted"), "{status} {text}");
    let link = [("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")];
    let (status, text) = as_browser(Method::GET, &url("/"), &link, None).await?;
    ensure!(status == StatusCode::OK && text.contains("Weir"), "{status} {text}");
    // An MCP client sends JSON and no Weir header of its own.
    let initialize = r#"{"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}"#;
    let json = [("content-type", "application/json")];
    let (status, text) = as_browser(Method::POST, &mcp, &json, Some(initialize)).await?;
    ensure!(status == StatusCode::OK && text.contains("\"serverInfo\""), "{status} {text}");
    server.stop().await
}

/// A body over the API's limit is refused, naming the limit, and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_naming_it() -> Result<()> {
    let server = Server::start().await?;
    let big = format!("{{\"flow\": {{\"metadata\": {{\"name\": \"{}\"}}}}}}", "x".repeat(9 << 20));
    let response = server
        .client
        .put(format!("{}/flows/big", server.api))
        .header("content-type", JSON)
        .body(big)
        .send()
        .await?;
    // The rest of the body is left unread, so the connection must not carry another request.
    let closes = response.headers().get("connection").is_some_and(|value| value == "close");
    let status = response.status();
    let text = response.text().await?;
    ensure!(
        status == StatusCode::PAYLOAD_TOO_LARGE
            && text.contains("the body is larger than 8 MiB, the most the API reads")
            && closes,
        "{status} {text} (connection: close {closes})"
    );
    ensure!(
        server.ok(Method::GET, "/flows", None, StatusCode::OK).await? == json!([]),
        "an oversized flow was saved"
    );
    server.stop().await
}

/// `weir up --token-file`: every API request must carry the token, in the header or the
/// session cookie signing in sets; any other is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_file_only_its_token_opens_the_api() -> Result<()> {
    const TOKEN: &str = "9f86d081884c7d659a2feaa0c55ad015";
    let server = Server::with_token(Some(TOKEN)).await?;
    let flows = format!("{}/flows", server.api);
    let header = "x-weir-request";
    // What the case is, its headers, and what the refusal says.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: [Case<'_>; 4] = [
        ("no token", vec![], "sign in: send the token of weir up's --token-file"),
        (
            "a wrong token",
            vec![("authorization", format!("Bearer {}", TOKEN.replace('9', "8")))],
            "this is not the token of weir up's --token-file",
        ),
        (
            "a token one character short",
            vec![("authorization", format!("Bearer {}", &TOKEN[1..]))],
            "this is not the token",
        ),
        (
            "a wrong cookie",
            vec![("cookie", "weir_session=nope".to_owned())],
            "this is not the token",
        ),
    ];
    for (case, headers, says) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for (method, body) in [(Method::GET, None), (Method::POST, Some(PLANTED))] {
            let mut headers = headers.clone();
            headers.extend([(header, "1"), ("content-type", "application/yaml")]);
            let url = if body.is_some() { format!("{}/import", server.api) } else { flows.clone() };
            let (status, text) = as_browser(method.clone(), &url, &headers, body).await?;
            ensure!(
                status == StatusCode::UNAUTHORIZED && text.contains(says),
                "{case}, {method}: {status} {text}"
            );
        }
    }
    ensure!(
        server.store.get(Kind::Flow, "default", "planted").await.is_err(),
        "an import without the token applied its flow"
    );
    // With the token (the test client sends it), and signed in with it.
    server.ok(Method::GET, "/flows", None, StatusCode::OK).await?;
    let signing = [(header, "1"), ("content-type", "application/json")];
    let body = json!({ "token": TOKEN }).to_string();
    let (status, text) =
        as_browser(Method::POST, &format!("{}/session", server.api), &signing, Some(&body)).await?;
    ensure!(status == StatusCode::OK && text.contains("--token-file"), "{status} {text}");
    let wrong = json!({ "token": "0123456789abcdef0123" }).to_string();
    let (status, text) =
        as_browser(Method::POST, &format!("{}/session", server.api), &signing, Some(&wrong))
            .await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status} {text}");
    let cookie = format!("weir_session={TOKEN}");
    let (status, text) = as_browser(Method::GET, &flows, &[("cookie", &cookie)], None).await?;
    ensure!(status == StatusCode::OK, "{status} {text}");
    let (status, text) =
        as_browser(Method::GET, &format!("{}/session", server.api), &[("cookie", &cookie)], None)
            .await?;
    ensure!(status == StatusCode::OK && text.contains("\"user\""), "{status} {text}");
    server.stop().await
}
