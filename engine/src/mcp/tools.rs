//! The tools an assistant builds flows with, each one request to the engine's API made as the
//! caller ([`Engine`]), so the API's checks, the caller's RBAC and its concealing of secrets
//! apply to an assistant as they apply to the editor. Each tool's input schema comes from its
//! arguments' type (schemars); a result is the API's answer as JSON text, and a failure is a
//! tool result with `isError` that names the tool, what it acted on and the API's reason.

use std::collections::BTreeMap;

use axum::http::Method;
use schemars::JsonSchema;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};
use weir_api::{ErrorBody, SendRequest};
use weir_model::{Module, names::NameRule};

use super::rpc::RpcError;

/// How the tools reach the engine's API, as the caller: over HTTP with the caller's token
/// (`weir mcp`), or inside the engine with the credentials of the MCP request (`/api/mcp`).
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Sends `method` to `path` (under `/api`, with its query) with a JSON `body`; answers
    /// the status and body, or why the engine could not be asked.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>)
    -> Result<Reply, String>;
}

/// The API's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// A tool's outcome: JSON for the assistant, or what went wrong.
type Outcome = Result<Value, String>;

/// The tools, as `tools/list` describes them.
pub fn list() -> Vec<Value> {
    TOOLS.iter().map(|tool| tool.describe()).collect()
}

/// Runs tool `name` with `arguments`: the MCP result (`content`, `isError`), or a protocol
/// error when there is no such tool or its arguments do not fit its schema.
pub async fn call(engine: &dyn Engine, name: &str, arguments: Value) -> Result<Value, RpcError> {
    let tool = TOOLS.iter().find(|tool| tool.name == name).ok_or_else(|| {
        let known: Vec<&str> = TOOLS.iter().map(|tool| tool.name).collect();
        RpcError::params(format!("no tool {name:?}: the tools are {}", known.join(", ")))
    })?;
    let outcome = (tool.run)(engine, arguments).await?;
    let (text, is_error) = match outcome {
        Ok(value) => (value.to_string(), false),
        Err(message) => (format!("{name}: {message}"), true),
    };
    Ok(json!({ "content": [{ "type": "text", "text": text }], "isError": is_error }))
}

type Run =
    for<'a> fn(&'a dyn Engine, Value) -> futures::future::BoxFuture<'a, Result<Outcome, RpcError>>;

/// One tool: its name, what it is for, its arguments' schema and how it runs.
struct Tool {
    name: &'static str,
    description: &'static str,
    schema: fn() -> schemars::Schema,
    run: Run,
}

impl Tool {
    fn describe(&self) -> Value {
        let mut schema = (self.schema)().to_value();
        if let Some(schema) = schema.as_object_mut() {
            // The name is the tool's; MCP wants the object schema alone.
            schema.remove("$schema");
            schema.remove("title");
        }
        json!({ "name": self.name, "description": self.description, "inputSchema": schema })
    }
}

/// A tool of arguments `A`, run by `f`.
macro_rules! tool {
    ($name:literal, $args:ty, $f:path, $description:expr) => {
        Tool {
            name: $name,
            description: $description,
            schema: || schemars::schema_for!($args),
            run: |engine, arguments| {
                Box::pin(async move {
                    let arguments: $args = arguments_of($name, arguments)?;
                    Ok($f(engine, arguments).await)
                })
            },
        }
    };
}

const TOOLS: &[Tool] = &[
    tool!(
        "list_components",
        ComponentsArgs,
        list_components,
        "The components flows are built of, from the installed modules' catalogues: each as \
         module/component with what it does, whether it is a trigger, its settings' JSON \
         Schema and its ports (name, direction in or out, the JSON Schema of their messages). \
         A FlowNode names one in spec.module and spec.component."
    ),
    tool!(
        "list_flows",
        NamespaceArgs,
        list_flows,
        "The flows of a namespace, each with its number of nodes and its status (Ready and \
         Degraded conditions naming node and edge)."
    ),
    tool!(
        "read_flow",
        FlowArgs,
        read_flow,
        "A flow with its nodes as stored ({flow, nodes}: the Flow and its FlowNode resources \
         with their status), secret settings shown as <secret>. The document validate_flow and \
         apply_flow take has the same shape."
    ),
    tool!(
        "validate_flow",
        DocumentArgs,
        validate_flow,
        "Checks a flow document without saving it, with the checks apply_flow makes: the \
         manifest rules, each component's settings against its schema, and every edge leaving \
         an output port and reaching an input port of a node in the flow, its mapping fitting \
         the target's schema. Answers {valid, errors}, each error naming the resource \
         (FlowNode/NAME) and the field."
    ),
    tool!(
        "apply_flow",
        DocumentArgs,
        apply_flow,
        "Saves a flow document as the caller: the Flow and each node given are created or \
         updated, and the flow's nodes not given are deleted. Refused, saving nothing, when a \
         check fails or the caller may not change flows. Answers the flow as saved."
    ),
    tool!(
        "send_message",
        SendArgs,
        send_message,
        "Delivers a test message to a node's input port, starting a run, and answers what the \
         flow answered. Needs the right to update the node."
    ),
    tool!(
        "read_messages",
        MessagesArgs,
        read_messages,
        "The debug messages: the latest messages each node received, emitted, answered or \
         failed with (secret fields redacted), oldest first, of one node or of every node of \
         a flow."
    ),
    tool!(
        "list_solutions",
        NoArgs,
        list_solutions,
        "The ready-made flows that install in one step, with the settings each install may \
         give (type, default, whether required)."
    ),
    tool!(
        "install_solution",
        InstallArgs,
        install_solution,
        "Installs a ready-made flow as the caller, with settings given as text (lists \
         comma-separated); in a cluster also the ServiceAccount its nodes act as, with the \
         rules they need. Answers the flows installed."
    ),
];

/// The namespace to act in.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NamespaceArgs {
    /// The namespace; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Which components to list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ComponentsArgs {
    /// Only this module's components, such as common or kubernetes.
    #[serde(default)]
    module: Option<String>,
    /// Only components of this name, such as ticker.
    #[serde(default)]
    component: Option<String>,
    /// The namespace whose modules to read; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// A flow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlowArgs {
    /// The flow's name.
    flow: String,
    /// Its namespace; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// A flow document.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DocumentArgs {
    /// The flow and its nodes: {"flow": {"apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
    /// "metadata": {"name": F}, "spec": {}}, "nodes": [{"apiVersion": "weir.dev/v1alpha1",
    /// "kind": "FlowNode", "metadata": {"name": N}, "spec": {"flow": F, "module": M,
    /// "component": C, "settings": {...}, "edges": [{"port": OUT, "to": {"node": N2, "port":
    /// IN}, "mapping": {...}}]}}]}. A mapping is JSON shaped like the target port's message;
    /// a string "{{ jq }}" in it is a jq expression over the message.
    document: Document,
    /// The namespace; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// A flow with its nodes.
#[derive(Debug, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Document {
    /// The Flow resource.
    flow: Map<String, Value>,
    /// Its FlowNode resources.
    nodes: Vec<Map<String, Value>>,
}

/// A message to send.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    /// The node.
    node: String,
    /// Its input port.
    port: String,
    /// The message, as the port's schema describes it.
    message: Value,
    /// How long the run may take, such as 30s or 2m.
    #[serde(default)]
    timeout: Option<String>,
    /// The node's namespace; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// Whose messages to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MessagesArgs {
    /// One node's messages.
    #[serde(default)]
    node: Option<String>,
    /// Every node of this flow; give node or flow.
    #[serde(default)]
    flow: Option<String>,
    /// How many per node, at most 50 (20 when not given).
    #[serde(default)]
    limit: Option<u32>,
    /// The namespace; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// A solution to install.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct InstallArgs {
    /// The solution, such as image-mirror.
    name: String,
    /// Its settings as text by name, such as {"mirror": "registry.local:5000"}.
    #[serde(default)]
    settings: BTreeMap<String, String>,
    /// The namespace to install into; the engine's own when not given.
    #[serde(default)]
    namespace: Option<String>,
}

/// Reads a tool's arguments; a misfit names the field.
fn arguments_of<A: DeserializeOwned>(tool: &str, arguments: Value) -> Result<A, RpcError> {
    serde_path_to_error::deserialize(arguments).map_err(|err| {
        let path = err.path().to_string();
        let place = if path == "." { String::new() } else { format!(" field {path}:") };
        RpcError::params(format!("{tool}: the arguments'{place} {}", err.into_inner()))
    })
}

/// `name` when it is a resource name; else why not, naming the argument.
fn checked<'a>(argument: &str, name: &'a str) -> Result<&'a str, String> {
    if NameRule::DnsLabel.accepts(name) {
        return Ok(name);
    }
    Err(format!(
        "argument {argument}: {name:?} is not a name: use {}",
        NameRule::DnsLabel.describe()
    ))
}

/// The query that names `namespace`, when one is given.
fn in_namespace(namespace: Option<&str>) -> Result<String, String> {
    Ok(match namespace {
        Some(namespace) => format!("namespace={}", checked("namespace", namespace)?),
        None => String::new(),
    })
}

/// `path` with `query` (which may be empty).
fn with_query(path: &str, query: &[String]) -> String {
    let query: Vec<&str> = query.iter().map(String::as_str).filter(|q| !q.is_empty()).collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

/// Asks the API, and reads a successful answer as JSON; `what` says what the request is for,
/// for a failure to name it.
async fn ask(
    engine: &dyn Engine,
    (method, path): (Method, &str),
    body: Option<&Value>,
    what: &str,
) -> Outcome {
    let reply = engine.call(method, path, body).await.map_err(|err| format!("{what}: {err}"))?;
    if (200..300).contains(&reply.status) {
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&reply.body)
            .map_err(|err| format!("{what}: the engine's answer is not JSON: {err}"));
    }
    Err(format!("{what}: {}", refusal(&reply)))
}

/// What a refusal of the API says: its message, or each problem of a refused document.
fn refusal(reply: &Reply) -> String {
    match serde_json::from_slice::<ErrorBody>(&reply.body) {
        Ok(ErrorBody { error: Some(failure), .. }) => {
            format!("{} (HTTP {}, {:?})", failure.message, reply.status, failure.kind)
        }
        Ok(ErrorBody { error: None, errors }) if !errors.is_empty() => {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!("refused (HTTP {}): {}", reply.status, problems.join("; "))
        }
        _ => format!(
            "the engine answered HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).chars().take(512).collect::<String>()
        ),
    }
}

async fn list_components(engine: &dyn Engine, args: ComponentsArgs) -> Outcome {
    let path = with_query("/modules", &[in_namespace(args.namespace.as_deref())?]);
    let modules = ask(engine, (Method::GET, &path), None, "read the module catalogues").await?;
    let modules: Vec<Module> = serde_json::from_value(modules)
        .map_err(|err| format!("the module catalogues do not read as modules: {err}"))?;
    let components: Vec<Value> = modules
        .iter()
        .filter(|module| {
            args.module.as_deref().is_none_or(|m| module.metadata.name.as_deref() == Some(m))
        })
        .flat_map(|module| {
            let name = module.metadata.name.clone().unwrap_or_default();
            module.spec.components.iter().map(move |component| (name.clone(), component))
        })
        .filter(|(_, component)| {
            args.component.as_deref().is_none_or(|c| component.name.as_str() == c)
        })
        .map(|(module, component)| {
            json!({
                "module": module,
                "component": component.name,
                "label": component.label,
                "description": component.description,
                "trigger": component.trigger,
                "settingsSchema": component.settings_schema,
                "ports": component.ports,
            })
        })
        .collect();
    let names: Vec<&str> = modules.iter().filter_map(|m| m.metadata.name.as_deref()).collect();
    if names.is_empty() {
        return Err("no module has published its catalogue here (yet): is a module running for \
             this namespace?"
            .to_owned());
    }
    if components.is_empty() {
        return Err(format!(
            "no component fits module {:?} and component {:?}; the modules are {}",
            args.module.unwrap_or_default(),
            args.component.unwrap_or_default(),
            names.join(", ")
        ));
    }
    Ok(Value::Array(components))
}

async fn list_flows(engine: &dyn Engine, args: NamespaceArgs) -> Outcome {
    let path = with_query("/flows", &[in_namespace(args.namespace.as_deref())?]);
    let flows = ask(engine, (Method::GET, &path), None, "list the flows").await?;
    Ok(Value::Array(
        flows
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                json!({
                    "flow": entry["flow"]["metadata"]["name"],
                    "nodes": entry["nodes"],
                    "suspend": entry["flow"]["spec"]["suspend"],
                    "conditions": entry["flow"]["status"]["conditions"],
                })
            })
            .collect(),
    ))
}

async fn read_flow(engine: &dyn Engine, args: FlowArgs) -> Outcome {
    let flow = checked("flow", &args.flow)?;
    let path = with_query(&format!("/flows/{flow}"), &[in_namespace(args.namespace.as_deref())?]);
    ask(engine, (Method::GET, &path), None, &format!("read flow {flow}")).await
}

async fn validate_flow(engine: &dyn Engine, args: DocumentArgs) -> Outcome {
    let path = with_query("/validate", &[in_namespace(args.namespace.as_deref())?]);
    let document = document_json(&args.document)?;
    let checked = ask(engine, (Method::POST, &path), Some(&document), "validate the flow").await?;
    let errors = checked.get("errors").cloned().unwrap_or_else(|| json!([]));
    let valid = errors.as_array().is_some_and(Vec::is_empty);
    Ok(json!({ "valid": valid, "errors": errors }))
}

async fn apply_flow(engine: &dyn Engine, args: DocumentArgs) -> Outcome {
    let name =
        args.document.flow.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
    let flow = checked("document.flow.metadata.name", name.unwrap_or_default())?;
    let path = with_query(&format!("/flows/{flow}"), &[in_namespace(args.namespace.as_deref())?]);
    let document = document_json(&args.document)?;
    ask(engine, (Method::PUT, &path), Some(&document), &format!("save flow {flow}")).await
}

fn document_json(document: &Document) -> Result<Value, String> {
    serde_json::to_value(document).map_err(|err| format!("cannot write the document: {err}"))
}

async fn send_message(engine: &dyn Engine, args: SendArgs) -> Outcome {
    let path = with_query("/send", &[in_namespace(args.namespace.as_deref())?]);
    let node = checked("node", &args.node)?;
    let timeout = args
        .timeout
        .map(|t| t.parse().map_err(|err| format!("argument timeout: {err}")))
        .transpose()?;
    let request = SendRequest {
        node: node.parse().map_err(|err| format!("argument node: {err}"))?,
        port: args.port.parse().map_err(|err| format!("argument port: {err}"))?,
        message: args.message,
        timeout,
    };
    let body =
        serde_json::to_value(&request).map_err(|err| format!("cannot write the message: {err}"))?;
    let what = format!("send to {node}:{}", args.port);
    ask(engine, (Method::POST, &path), Some(&body), &what).await
}

async fn read_messages(engine: &dyn Engine, args: MessagesArgs) -> Outcome {
    let base = match (&args.node, &args.flow) {
        (Some(node), None) => format!("/nodes/{}/messages", checked("node", node)?),
        (None, Some(flow)) => format!("/flows/{}/messages", checked("flow", flow)?),
        _ => return Err("give either node or flow".to_owned()),
    };
    let limit = args.limit.map(|limit| format!("limit={limit}")).unwrap_or_default();
    let path = with_query(&base, &[in_namespace(args.namespace.as_deref())?, limit]);
    ask(engine, (Method::GET, &path), None, "read the messages").await
}

async fn list_solutions(engine: &dyn Engine, _: NoArgs) -> Outcome {
    ask(engine, (Method::GET, "/solutions"), None, "list the solutions").await
}

async fn install_solution(engine: &dyn Engine, args: InstallArgs) -> Outcome {
    let name = checked("name", &args.name)?;
    // The API installs where the manifests say (`default`) unless told; the tools' default is
    // the engine's own namespace, as everywhere else.
    let namespace = match args.namespace {
        Some(namespace) => namespace,
        None => {
            let session = ask(engine, (Method::GET, "/session"), None, "ask the engine").await?;
            session["namespace"].as_str().unwrap_or_default().to_owned()
        }
    };
    let path =
        with_query(&format!("/solutions/{name}/install"), &[in_namespace(Some(&namespace))?]);
    let body = json!({ "settings": args.settings });
    ask(engine, (Method::POST, &path), Some(&body), &format!("install solution {name}")).await
}
