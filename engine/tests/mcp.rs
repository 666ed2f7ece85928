//! An assistant building flows through the Model Context Protocol, with an MCP client of the
//! test's own: over standard input and output (`weir mcp`, a process, using the engine's API
//! with the caller's token) and over streamable HTTP (`/api/mcp` of the engine). The engine
//! (`weir engine`) and the module processes (`weir module NAME`) run against a real
//! kube-apiserver, as in a cluster, and the image mirror copies between two real registries on
//! loopback; everything the assistant does goes through the tools alone, and only the test's
//! checks read the cluster.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use kube::Api;
use serde_json::{Value, json};
use weir_distribution::client::Registry;
use weir_testenv::{
    ControlPlane, Process, eventually,
    solution::{ACCOUNT, Apiserver as _, PATIENCE, Weir, deployment, engine_address},
};
use weir_testregistry::{
    login_secret, push_image, random_bytes, start_registry, start_registry_with_password,
};

/// The modules the image mirror uses, each in a process of its own.
const MODULES: [&str; 4] = ["common", "kubernetes", "js", "distribution"];

/// An MCP client of the test's own, over either transport.
enum Client {
    /// `weir mcp`, one JSON-RPC message a line.
    Stdio { child: Child, input: ChildStdin, output: BufReader<ChildStdout> },
    /// `POST /api/mcp` with a bearer token, in a session once initialized.
    Http { http: reqwest::Client, url: String, token: Option<String>, session: Option<String> },
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Self::Stdio { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What an HTTP message was answered with.
struct Posted {
    status: u16,
    session: Option<String>,
    body: String,
}

impl Client {
    /// `weir mcp` for the engine at `address`, signed in as `who` with `token` (a file of the
    /// run directory `dir`).
    fn stdio(address: &str, (who, token): (&str, &str), dir: &std::path::Path) -> Result<Self> {
        let token_file = dir.join(format!("mcp-token-{who}"));
        std::fs::write(&token_file, token)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["mcp", "--engine", &format!("http://{address}"), "--token-file"])
            .arg(&token_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start weir mcp")?;
        let input = child.stdin.take().context("no stdin")?;
        let output = BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(Self::Stdio { child, input, output })
    }

    /// The MCP endpoint of the engine at `address`, signed in with `token` when given.
    fn http(address: &str, token: Option<&str>) -> Self {
        Self::Http {
            http: reqwest::Client::new(),
            url: format!("http://{address}/api/mcp"),
            token: token.map(str::to_owned),
            session: None,
        }
    }

    /// POSTs one message as it is, with the session's id once there is one.
    async fn post(&self, message: &Value) -> Result<Posted> {
        let Self::Http { http, url, token, session } = self else { bail!("not over HTTP") };
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(message.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Posted { status, session, body: response.text().await? })
    }

    /// Sends a message and reads the answer, when it is a request (it has an `id`).
    async fn send(&mut self, message: &Value) -> Result<Option<Value>> {
        let wants_answer = message.get("id").is_some();
        match self {
            Self::Stdio { input, output, .. } => {
                writeln!(input, "{message}")?;
                input.flush()?;
                if !wants_answer {
                    return Ok(None);
                }
                let mut line = String::new();
                tokio::task::block_in_place(|| output.read_line(&mut line))?;
                ensure!(!line.is_empty(), "weir mcp ended without answering {message}");
                Ok(Some(serde_json::from_str(&line)?))
            }
            Self::Http { .. } => {
                let posted = self.post(message).await?;
                if !wants_answer {
                    ensure!(posted.status == 202, "{} {}", posted.status, posted.body);
                    return Ok(None);
                }
                ensure!(posted.status == 200, "{} {}", posted.status, posted.body);
                if let (Self::Http { session, .. }, Some(given)) = (&mut *self, posted.session) {
                    *session = Some(given);
                }
                Ok(Some(serde_json::from_str(&posted.body)?))
            }
        }
    }

    /// Calls `method` and gives its result; an error answer fails.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Result<Value> {
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let answer = self.send(&message).await?.context("no answer")?;
        ensure!(answer["id"] == id, "{answer}");
        ensure!(answer.get("error").is_none(), "{method} failed: {answer}");
        Ok(answer["result"].clone())
    }

    /// Initializes the session as an assistant does.
    async fn initialize(&mut self) -> Result<Value> {
        let params = json!({ "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "weir-test", "version": "1" } });
        let result = self.request(0, "initialize", params).await?;
        self.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await?;
        Ok(result)
    }

    /// Calls tool `name`: its JSON answer, or the error text when it failed.
    async fn tool(&mut self, name: &str, arguments: Value) -> Result<Result<Value, String>> {
        let result =
            self.request(1, "tools/call", json!({ "name": name, "arguments": arguments })).await?;
        let text = result["content"][0]["text"].as_str().context("no text content")?.to_owned();
        if result["isError"] == true {
            return Ok(Err(text));
        }
        Ok(Ok(serde_json::from_str(&text)?))
    }

    /// Calls tool `name`, which must succeed.
    async fn ok(&mut self, name: &str, arguments: Value) -> Result<Value> {
        self.tool(name, arguments).await?.map_err(|err| anyhow::anyhow!("{err}"))
    }
}

/// The engine for the flows of `namespace`, as the chart runs it, and its address.
async fn engine(plane: &ControlPlane, weir: &Weir, namespace: &str) -> Result<(Process, String)> {
    let engine = weir.start_engine(plane, namespace)?;
    let address =
        eventually("the engine serving", PATIENCE, || async { Ok(engine_address(&engine)) })
            .await?;
    Ok((engine, address))
}

/// A flow document of `nodes`.
fn document(flow: &str, nodes: &[Value]) -> Value {
    json!({
        "flow": { "apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
            "metadata": { "name": flow }, "spec": {} },
        "nodes": nodes,
    })
}

/// A node of flow `flow`.
fn node(flow: &str, name: &str, component: &str, settings: &Value, edges: &Value) -> Value {
    let (module, component) = component.split_once('/').unwrap_or_default();
    json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
        "metadata": { "name": name },
        "spec": { "flow": flow, "module": module, "component": component,
            "settings": settings, "edges": edges },
    })
}

impl Client {
    /// Waits until `list_flows` says `flow` is ready.
    async fn until_ready(&mut self, flow: &str) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            let listed = self.ok("list_flows", json!({})).await?;
            let ready = listed.as_array().into_iter().flatten().any(|entry| {
                entry["flow"] == flow
                    && entry["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            if ready {
                return Ok(());
            }
            ensure!(started.elapsed() < PATIENCE, "flow {flow} is not ready: {listed}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_builds_the_image_mirror_and_a_flow_of_its_own_through_the_tools_alone()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("assisted").await?;
    let apps = plane.namespace("assisted-apps").await?;
    let remote = start_registry().await?;
    let mirror = start_registry_with_password().await?;
    let source = Registry::new(&remote.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(4_096)], false, "amd64").await?;
    source.put_manifest("acme/app", "1", &image).await?;
    let original = format!("{}/acme/app:1", remote.host);
    weir_testenv::create::<Deployment>(&client, &apps, deployment("web", &original)).await?;
    // The mirror's login, which the copies carry and no tool may show.
    weir_testenv::create::<Secret>(&client, &flows, login_secret("mirror-login", &mirror.host))
        .await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    let (_engine, address) = engine(plane, &weir, &flows).await?;
    // The assistant's user may do anything, as a cluster admin may: the mirror's account
    // patches workloads everywhere, and whoever installs it grants that.
    let (_, alice) = plane.admin_account(&flows, "alice").await?;

    // Over standard input and output: what there is to build with.
    let mut stdio = Client::stdio(&address, ("alice", &alice), plane.run_dir())?;
    let started = stdio.initialize().await?;
    ensure!(started["protocolVersion"] == "2025-06-18", "{started}");
    ensure!(started["capabilities"]["tools"].is_object(), "{started}");
    let listed = stdio.request(2, "tools/list", json!({})).await?;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    ensure!(
        names
            == [
                "list_components",
                "list_flows",
                "read_flow",
                "validate_flow",
                "apply_flow",
                "send_message",
                "read_messages",
                "list_solutions",
                "install_solution"
            ],
        "{names:?}"
    );
    // The modules publish their catalogues a moment after they start.
    let started = std::time::Instant::now();
    let components = loop {
        let listed = stdio.tool("list_components", json!({})).await?;
        let all = |components: &Value| {
            MODULES
                .iter()
                .all(|m| components.as_array().into_iter().flatten().any(|c| c["module"] == *m))
        };
        match listed {
            Ok(components) if all(&components) => break components,
            listed => {
                ensure!(started.elapsed() < PATIENCE, "not every module is listed: {listed:?}");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let copy = components
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["module"] == "distribution" && c["component"] == "registry_copy")
        .context("no registry_copy among the components")?;
    ensure!(copy["settingsSchema"]["type"] == "object", "{copy}");
    ensure!(
        copy["ports"].as_array().is_some_and(|ports| ports.iter().any(|p| p["schema"].is_object())),
        "{copy}"
    );
    let solutions = stdio.ok("list_solutions", json!({})).await?;
    let gallery = solutions.to_string();
    ensure!(gallery.contains("\"image-mirror\"") && gallery.contains("\"mirror\""), "{gallery}");

    // The image mirror from nothing: installed in one step, ready, and run once.
    let settings = json!({
        "mirror": mirror.host,
        "mirrorPlainHttp": "true",
        "plainHttpSources": remote.host,
        "namespaces": apps,
        "interval": "24h",
        "firstTick": "afterInterval",
        "mirrorSecret": format!("{flows}/mirror-login"),
    });
    let installed = stdio
        .ok("install_solution", json!({ "name": "image-mirror", "settings": settings }))
        .await?;
    ensure!(installed == json!({ "flows": ["image-mirror"] }), "{installed}");
    stdio.until_ready("image-mirror").await?;
    let read = stdio.ok("read_flow", json!({ "flow": "image-mirror" })).await?;
    ensure!(read["nodes"].as_array().is_some_and(|n| n.len() > 10), "{read}");
    let report = stdio
        .ok(
            "send_message",
            json!({ "node": "mirror-tick", "port": "control",
                "message": { "action": "tick" }, "timeout": "5m" }),
        )
        .await?;
    ensure!(report.to_string().contains("web"), "{report}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &apps);
    let patched = deployments.get("web").await?;
    let now = patched
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default();
    ensure!(now.starts_with(&format!("{}/", mirror.host)), "{now}");
    // The debug messages: what the plan received and emitted in that run.
    let messages = stdio.ok("read_messages", json!({ "flow": "image-mirror" })).await?;
    let seen = |node: &str, what: &str| {
        messages.as_array().into_iter().flatten().any(|m| m["node"] == node && m["what"] == what)
    };
    ensure!(seen("mirror-plan", "received") && seen("mirror-plan", "emitted"), "{messages}");
    ensure!(messages.to_string().contains(&original), "{messages}");
    // The copy received the mirror's login: its password shown redacted, never itself.
    let copied: Vec<&Value> = messages
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["node"] == "mirror-copy" && m["what"] == "received")
        .collect();
    ensure!(!copied.is_empty(), "{messages}");
    ensure!(copied.iter().all(|m| m.to_string().contains("<redacted>")), "{copied:?}");
    ensure!(!messages.to_string().contains("s3cret"), "a password among the messages");

    // Over HTTP, a flow of its own, node by node: a wrong edge is named where it is.
    let mut http = Client::http(&address, Some(&alice));
    http.initialize().await?;
    let script = "export default (input) => ({ greeting: `hello ${input.name}` })";
    let shout = |to: &str| {
        node(
            "greeter",
            "shout",
            "js/js_eval",
            &json!({ "script": script }),
            &json!([{ "port": "response", "to": { "node": to, "port": "in" } }]),
        )
    };
    let show = node("greeter", "show", "common/debug", &json!({}), &json!([]));
    let wrong = document("greeter", &[shout("shw")]);
    let checked = http.ok("validate_flow", json!({ "document": wrong })).await?;
    ensure!(checked["valid"] == false, "{checked}");
    let problems = checked["errors"].as_array().cloned().unwrap_or_default();
    ensure!(
        problems.iter().any(|p| p["resource"] == "FlowNode/shout"
            && p["field"].as_str().is_some_and(|f| f.starts_with("spec.edges[0].to"))
            && p["message"].as_str().is_some_and(|m| m.contains("shw"))),
        "{checked}"
    );
    let refused = http.tool("apply_flow", json!({ "document": wrong })).await?;
    let refused = refused.err().context("a flow with a wrong edge was saved")?;
    ensure!(refused.starts_with("apply_flow: save flow greeter: refused (HTTP 422)"), "{refused}");
    ensure!(refused.contains("FlowNode/shout spec.edges[0].to"), "{refused}");
    // The sink first, then the node that feeds it, each step checked before it is applied.
    for step in [vec![show.clone()], vec![shout("show"), show]] {
        let document = document("greeter", &step);
        let checked = http.ok("validate_flow", json!({ "document": document })).await?;
        ensure!(checked == json!({ "valid": true, "errors": [] }), "{checked}");
        let saved = http.ok("apply_flow", json!({ "document": document })).await?;
        ensure!(saved["nodes"].as_array().map(Vec::len) == Some(step.len()), "{saved}");
    }
    http.until_ready("greeter").await?;
    http.ok("send_message", json!({ "node": "shout", "port": "in", "message": { "name": "mcp" } }))
        .await?;
    // The engine hears the module's messages a moment after the run answered.
    let started = std::time::Instant::now();
    let shown = loop {
        let messages = http.ok("read_messages", json!({ "node": "show" })).await?;
        if messages.to_string().contains("hello mcp") {
            break messages;
        }
        ensure!(started.elapsed() < PATIENCE, "the greeting never reached show: {messages}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    ensure!(shown[0]["node"] == "show" && shown[0]["flow"] == "greeter", "{shown}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_credentials_or_rights_are_refused() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("assisted-refused").await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let (_engine, address) = engine(plane, &weir, &flows).await?;
    // bob may read flows, and nothing more.
    weir_testenv::create::<ServiceAccount>(
        &client,
        &flows,
        json!({ "metadata": { "name": "bob" } }),
    )
    .await?;
    let role = json!({ "metadata": { "name": "flow-reader" },
        "rules": [{ "apiGroups": ["weir.dev"], "resources": ["flows", "flownodes"],
            "verbs": ["get", "list", "watch"] }] });
    weir_testenv::create::<Role>(&client, &flows, role).await?;
    let binding = json!({ "metadata": { "name": "bob" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flow-reader" },
        "subjects": [{ "kind": "ServiceAccount", "name": "bob", "namespace": flows }] });
    weir_testenv::create::<RoleBinding>(&client, &flows, binding).await?;
    let (_, bob) = plane.service_account(&flows, "bob").await?;
    let (_, alice) = plane.admin_account(&flows, "alice").await?;
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "weir-test", "version": "1" } } });

    // Without credentials, or with a token the cluster does not take: refused before any
    // message is read.
    for token in [None, Some("not-a-token")] {
        let posted = Client::http(&address, token).post(&initialize).await?;
        ensure!(
            posted.status == 401 && posted.session.is_none(),
            "{} {}",
            posted.status,
            posted.body
        );
        ensure!(posted.body.contains("unauthenticated"), "{}", posted.body);
    }

    // bob signs in and may look, but his change is refused, naming what he may not do.
    let flow = document("probe", &[node("probe", "idle", "common/debug", &json!({}), &json!([]))]);
    let mut http = Client::http(&address, Some(&bob));
    http.initialize().await?;
    ensure!(http.ok("list_flows", json!({})).await? == json!([]), "bob sees flows of nobody");
    let refused = http.tool("apply_flow", json!({ "document": flow })).await?;
    let refused = refused.err().context("bob applied a flow")?;
    ensure!(
        refused.starts_with("apply_flow: save flow probe: ")
            && refused.contains("flows.weir.dev")
            && refused.contains("Forbidden"),
        "{refused}"
    );
    // The same over standard input and output: weir mcp passes his token on, nothing more.
    let mut stdio = Client::stdio(&address, ("bob", &bob), plane.run_dir())?;
    stdio.initialize().await?;
    let refused = stdio.tool("apply_flow", json!({ "document": flow })).await?;
    ensure!(refused.is_err_and(|text| text.contains("flows.weir.dev")), "bob applied a flow");

    // A session is the caller's own: alice cannot use bob's, and none is needed to ask for one
    // but initialize.
    let ping = json!({ "jsonrpc": "2.0", "id": 2, "method": "ping" });
    let Client::Http { session, .. } = &http else { bail!("not over HTTP") };
    let mut stolen = Client::http(&address, Some(&alice));
    if let Client::Http { session: theirs, .. } = &mut stolen {
        theirs.clone_from(session);
    }
    let posted = stolen.post(&ping).await?;
    ensure!(posted.status == 404 && posted.body.contains("no such session"), "{}", posted.body);
    let posted = Client::http(&address, Some(&alice)).post(&ping).await?;
    ensure!(posted.status == 400 && posted.body.contains("Mcp-Session-Id"), "{}", posted.body);
    ensure!(http.post(&ping).await?.status == 200, "bob's own session");
    // An initialize refused starts no session; bob's ends when he says so, and the endpoint
    // offers no stream of its own.
    let broken = json!({ "jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {} });
    let posted = Client::http(&address, Some(&bob)).post(&broken).await?;
    ensure!(
        posted.status == 200 && posted.session.is_none() && posted.body.contains("-32602"),
        "{} {:?} {}",
        posted.status,
        posted.session,
        posted.body
    );
    let endpoint = format!("http://{address}/api/mcp");
    let plain = reqwest::Client::new();
    let streamed = plain.get(&endpoint).bearer_auth(&bob).send().await?;
    ensure!(streamed.status().as_u16() == 405, "{:?}", streamed.text().await);
    let ended = plain
        .delete(&endpoint)
        .bearer_auth(&bob)
        .header("mcp-session-id", session.as_deref().unwrap_or_default())
        .send()
        .await?;
    ensure!(ended.status().as_u16() == 204, "{:?}", ended.text().await);
    let posted = http.post(&ping).await?;
    ensure!(posted.status == 404, "an ended session answered: {}", posted.body);
    // alice, who may, applies it through the same tools.
    let mut alice = Client::http(&address, Some(&alice));
    alice.initialize().await?;
    let saved = alice.ok("apply_flow", json!({ "document": flow })).await?;
    ensure!(saved["flow"]["metadata"]["name"] == "probe", "{saved}");
    Ok(())
}
