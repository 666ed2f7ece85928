//! The editor's API on the wire (`docs/api.md`): every request and answer body the engine
//! (`engine/src/api/`) and the editor (`ui/`) exchange, defined once, so a renamed field breaks
//! the build of both rather than the editor in the browser. No I/O; compiles to wasm32.
//!
//! Where a body carries resources, its type takes them as parameters: the editor reads the
//! model's types (the defaults), while the engine passes the stored JSON on as it is, so a field
//! the model does not know is neither lost nor a reason to fail the whole answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_model::{Flow, FlowNode, FlowNodeStatus, HumanDuration, NodeName, PortName, Position};

/// The header every request that changes something carries (any value): a page of another
/// site cannot send it without a CORS preflight, which the engine never grants.
pub const REQUEST_HEADER: &str = "x-weir-request";

/// An error answer: one failure, or (422) every problem of a submitted document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, when one thing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Each problem of a refused document, naming resource and field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Problem>,
}

/// One failure: its kind, for a client to branch on, and what went wrong where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What went wrong and where, lowercase.
    pub message: String,
}

/// The kinds of failure, each with its HTTP status (`docs/api.md`, Errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 400, 405, 415: the request cannot be read.
    BadRequest,
    /// 401: no credentials, or ones that are not taken.
    Unauthenticated,
    /// 403: the cluster (or the engine's guard) refused.
    Forbidden,
    /// 404: what the request names does not exist.
    NotFound,
    /// 409: the request collides with what exists.
    Conflict,
    /// 412: the flow changed since the version a save was made over (`If-Match`).
    Stale,
    /// 413: the body or an object is too large.
    TooLarge,
    /// 421: a request for another host (`weir up`).
    Misdirected,
    /// 422: a node refused the message as invalid, or the store refused an object.
    Invalid,
    /// 500: a fault of the engine or of a node.
    Internal,
    /// 502: a module cannot be reached.
    Unreachable,
    /// 503: a node failed with a passing error.
    Transient,
    /// 503: the store cannot be reached.
    Unavailable,
    /// 503: the engine has no cluster to ask (`weir up` without a kubeconfig).
    NoCluster,
    /// 504: a run was cancelled or ran out of time.
    Cancelled,
}

/// One problem of a submitted document or manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Problem {
    /// The document's number in an imported file, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The item's index when that document is a `kind: List`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The resource, as `Kind/name` (such as `FlowNode/tick`), or where it stands in the body
    /// (such as `nodes[2]`) when it has no name to tell it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The field at fault, such as `spec.edges[0].to.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// `GET /api/session`, and `POST /api/session`'s answer: who the caller is, the engine's own
/// namespace, where requests that name none go, and where webhooks are reached.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Session {
    /// The engine has no users (`weir up`): everyone may do everything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    /// The Kubernetes user the caller signed in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Their groups, with `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The engine's own namespace.
    #[serde(default)]
    pub namespace: String,
    /// Where the http module's webhooks are reached, ending in `/hooks/` (such as
    /// `http://127.0.0.1:7423/hooks/`), when the engine knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<String>,
}

/// What `POST /api/session` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// A bearer token the cluster takes, such as `kubectl create token NAME` prints.
    pub token: String,
}

/// `GET /api/flows`: one flow of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowSummary<F = Flow> {
    /// The `Flow`.
    pub flow: F,
    /// How many nodes name it.
    pub nodes: usize,
}

/// A flow with its nodes: what `GET`, `PUT` (both ways), rename and validate carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDocument<F = Flow, N = FlowNode> {
    /// The `Flow`, with the layout.
    pub flow: F,
    /// Its `FlowNode`s, sorted by name in answers, secret settings concealed.
    pub nodes: Vec<N>,
}

/// `POST /api/validate`'s answer: every problem, none when the document could be saved.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Validation {
    /// The problems.
    pub errors: Vec<Problem>,
}

/// What `PUT /api/flows/{flow}/layout` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Where each node sits.
    pub layout: BTreeMap<NodeName, Position>,
}

/// What `POST /api/flows/{flow}/rename` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The flow's new name.
    pub name: String,
}

/// What `POST /api/modules/{module}/components/{component}/ports` takes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsRequest {
    /// The node's settings; none means the component's defaults.
    #[serde(default)]
    pub settings: Map<String, Value>,
}

/// The answer of `POST /api/import` and of a solution's install: the flows applied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Their names, sorted.
    pub flows: Vec<String>,
}

/// What `POST /api/send` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The node.
    pub node: NodeName,
    /// Its input port.
    pub port: PortName,
    /// The message.
    pub message: Value,
    /// How long the whole run may take, such as `30s`; `weir send`'s default when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// `POST /api/send`'s answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    /// What the run answered.
    #[serde(default)]
    pub answer: Value,
}

/// `GET /api/solutions`: one solution of the gallery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The least value an integer may take.
    #[serde(default)]
    pub minimum: Option<i64>,
    /// The greatest value an integer may take.
    #[serde(default)]
    pub maximum: Option<i64>,
}

/// What `POST /api/solutions/{name}/install` takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// Each setting as text, as `--set key=value` takes it (a list comma-separated).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// `GET /api/kubernetes/offer`: what the kind and namespace pickers offer the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesOffer {
    /// The kinds the caller may list in the namespace asked about (in the preferred version of
    /// each group), sorted by kind.
    pub kinds: Vec<OfferedKind>,
    /// The namespaces the caller may pick: every namespace when they may list namespaces, else
    /// only the one asked about.
    pub namespaces: Vec<String>,
    /// Whether the caller may list namespaces.
    #[serde(default)]
    pub all_namespaces: bool,
    /// Whether the apiserver said its rules are incomplete (an authorizer other than RBAC may
    /// allow more than is offered).
    #[serde(default)]
    pub incomplete: bool,
}

/// A kind the caller may list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedKind {
    /// The kind, such as `Deployment`.
    pub kind: String,
    /// Its API version, such as `apps/v1`.
    pub api_version: String,
    /// Its resource (plural), such as `deployments`.
    pub resource: String,
    /// Whether its objects live in namespaces.
    #[serde(default)]
    pub namespaced: bool,
}

/// `GET /api/kubernetes/schema?apiVersion=&kind=`'s answer: the kind's JSON Schema as the
/// cluster serves it, cut to a size a browser takes (`docs/api.md`).
pub type KindSchema = Value;

/// The event types of `GET /api/events` (the SSE `event:` field), each with its data.
pub mod event {
    /// A node's status changed: [`super::NodeEvent`].
    pub const NODE: &str = "node";
    /// A node received, emitted, answered, failed or logged: [`super::MessageSeen`].
    pub const MESSAGE: &str = "message";
    /// A Flow changed: [`super::FlowEvent`].
    pub const FLOW: &str = "flow";
    /// The stream fell behind: [`super::Missed`].
    pub const MISSED: &str = "missed";
}

/// A `node` event: a node's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent<S = FlowNodeStatus> {
    /// The node.
    pub node: String,
    /// Its flow.
    #[serde(default)]
    pub flow: String,
    /// Its status.
    pub status: S,
}

/// A `flow` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEvent {
    /// The flow.
    pub flow: String,
    /// `added`, `modified` or `deleted`.
    pub change: String,
}

/// A `missed` event: this many events were dropped before they reached the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missed {
    /// How many.
    pub missed: u64,
}

/// A `message` event, and each entry of `GET …/messages`: a message seen at a node's port.
/// The engine writes the payload as the JSON text it already holds (`P` = `RawValue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSeen<P = Value> {
    /// The node.
    pub node: String,
    /// Its flow.
    #[serde(default)]
    pub flow: String,
    /// The port; empty for `logged`.
    pub port: String,
    /// `out` for `emitted`, else `in`.
    #[serde(default)]
    pub direction: String,
    /// `received`, `emitted`, `answered`, `failed` or `logged`.
    #[serde(default)]
    pub what: String,
    /// When, RFC 3339.
    #[serde(default)]
    pub time: String,
    /// The run's trace id.
    #[serde(default)]
    pub trace_id: String,
    /// How long handling took, for `answered` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// The message, secrets hidden by the engine; for `failed` `{"kind", "message"}`, for
    /// `logged` the line.
    pub payload: P,
}

/// `GET /api/flows/{flow}/runs`: one of the last runs of a flow the engine keeps (in memory,
/// never in the store), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run's id: its trace id, 32 hex digits.
    pub run: String,
    /// Its flow.
    pub flow: String,
    /// When its first message was seen, RFC 3339.
    pub started: String,
    /// When its latest message was seen, RFC 3339.
    pub latest: String,
    /// How the delivery to its first node has ended so far.
    pub outcome: RunOutcome,
    /// The nodes it reached, in the order it first reached them.
    pub nodes: Vec<String>,
    /// How many deliveries failed on the way, retried or not.
    pub failures: usize,
    /// How many messages are kept of it.
    pub messages: usize,
    /// How many messages past the bound of a run were not kept.
    #[serde(default)]
    pub dropped: usize,
}

/// How a run has ended so far: how the delivery to the first node it reached ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Its first node has not answered yet.
    Running,
    /// Its first node answered.
    Succeeded,
    /// Its first node failed.
    Failed,
}

impl RunOutcome {
    /// The outcome as the wire and the command line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// `GET /api/runs/{run}`: a kept run with every message kept of it, oldest first (`M` is
/// [`MessageSeen`], which the engine passes on as the JSON text it holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord<M = MessageSeen> {
    /// What the list shows of it.
    pub summary: RunSummary,
    /// Its messages.
    pub messages: Vec<M>,
}

/// What `POST /api/runs/{run}/replay` takes: which captured message to send again.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The node whose received message is sent to it again; the first node the run reached
    /// when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// How long the new run may take, such as `30s`; `weir send`'s default when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, value::RawValue};

    use super::*;

    #[test]
    fn an_error_answer_is_one_failure_or_a_list_of_problems() {
        let failed = ErrorBody {
            error: Some(Failure { kind: FailureKind::NotFound, message: "gone".to_owned() }),
            errors: Vec::new(),
        };
        let shown = serde_json::to_value(&failed).unwrap();
        assert_eq!(shown, json!({ "error": { "kind": "not_found", "message": "gone" } }));
        let refused = ErrorBody {
            error: None,
            errors: vec![Problem::new(Some("FlowNode/tick".to_owned()), "", "bad")],
        };
        let shown = serde_json::to_value(&refused).unwrap();
        assert_eq!(shown, json!({ "errors": [{ "resource": "FlowNode/tick", "message": "bad" }] }));
        assert_eq!(serde_json::from_value::<ErrorBody>(shown).unwrap(), refused);
    }

    #[test]
    fn the_payload_the_engine_writes_verbatim_is_the_one_the_editor_reads() {
        let payload = RawValue::from_string(r#"{"tick":2}"#.to_owned()).unwrap();
        let written = MessageSeen {
            node: "greet".to_owned(),
            flow: "hello".to_owned(),
            port: "in".to_owned(),
            direction: "in".to_owned(),
            what: "answered".to_owned(),
            time: "2026-11-23T17:40:49Z".to_owned(),
            trace_id: "40da78fe48f44aefdd01868d83bf467f".to_owned(),
            elapsed_ms: Some(1.5),
            payload,
        };
        let text = serde_json::to_string(&written).unwrap();
        assert!(text.contains(r#""traceId":"40da78fe48f44aefdd01868d83bf467f","elapsedMs":1.5"#));
        let read: MessageSeen = serde_json::from_str(&text).unwrap();
        assert_eq!(read.payload, json!({ "tick": 2 }));
        assert_eq!((read.node.as_str(), read.elapsed_ms), ("greet", Some(1.5)));
    }

    #[test]
    fn a_session_says_open_or_who_and_always_the_namespace() {
        let open = Session { open: true, namespace: "default".to_owned(), ..Session::default() };
        let shown = serde_json::to_value(&open).unwrap();
        assert_eq!(shown, json!({ "open": true, "namespace": "default" }));
        let user = json!({ "user": "alice", "groups": [], "namespace": "weir" });
        let read: Session = serde_json::from_value(user).unwrap();
        assert_eq!((read.open, read.user.as_deref(), read.webhooks), (false, Some("alice"), None));
        let hooks = Session { webhooks: Some("http://127.0.0.1:7423/hooks/".to_owned()), ..open };
        let shown = serde_json::to_value(&hooks).unwrap();
        assert_eq!(shown["webhooks"], "http://127.0.0.1:7423/hooks/");
    }
}
