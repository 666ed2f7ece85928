//! Behaviour tests for flows, written as YAML and run in-process against real modules: send a
//! message into a node, then check the answer, the failure, and what each node received. The
//! modules' tests and the solutions use the same format.
//!
//! ```yaml
//! name: images with a pull secret take the secret route
//! nodes:                       # node name: FlowNode spec (the flow is filled in)
//!   route:
//!     module: common
//!     component: router
//!     settings: { routes: [{ name: secret, condition: ".pullSecret != null" }] }
//!     edges: [{ port: secret, to: { node: log, port: in } }]
//!   log: { module: common, component: debug }
//! steps:
//!   - send: route:in           # NODE:PORT
//!     message: { image: nginx, pullSecret: hub }
//!     answer: { seen: 1 }      # optional; objects match when they hold these fields
//!     received:                # optional; what each node got during the step, in order
//!       log: [{ image: nginx }]
//!   - send: route:in
//!     message: { image: redis }
//!     error: { kind: invalid, message: "no route took the message" }  # message: a part of it
//!   - wait: log                # for triggers: wait until the node has received this many
//!     received: 2              # messages since the scenario started
//!     within: 5s
//! ```
//!
//! `manifests: [flow.yaml]` (paths relative to the scenario file) adds the FlowNodes of
//! manifest files, as a solution's scenarios do.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use weir_model::{FlowNode, HumanDuration, manifest};
use weir_sdk::{ErrorKind, Module};

use crate::{
    inspect::{Event, Observed},
    key::NodeKey,
    runtime::Runtime,
};

/// The namespace scenario nodes live in.
const NAMESPACE: &str = "scenario";

/// A scenario that could not be read, or did not go as written.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// What went wrong, naming the step.
    pub problem: String,
}

/// One behaviour test.
#[derive(Debug)]
pub struct Scenario {
    file: PathBuf,
    name: String,
    nodes: Vec<FlowNode>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    name: String,
    #[serde(default)]
    manifests: Vec<PathBuf>,
    #[serde(default)]
    nodes: BTreeMap<String, Value>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum Step {
    Send {
        send: String,
        #[serde(default)]
        message: Value,
        #[serde(default)]
        answer: Option<Value>,
        #[serde(default)]
        error: Option<ExpectedError>,
        #[serde(default)]
        received: BTreeMap<String, Vec<Value>>,
    },
    Wait {
        wait: String,
        received: usize,
        within: HumanDuration,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    kind: ErrorKind,
    #[serde(default)]
    message: String,
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        let fail = |problem: String| ScenarioError { file: file.display().to_string(), problem };
        let text =
            std::fs::read_to_string(file).map_err(|err| fail(format!("cannot read: {err}")))?;
        let document: Document =
            serde_yaml_ng::from_str(&text).map_err(|err| fail(format!("does not read: {err}")))?;
        let mut nodes = Vec::new();
        for (name, spec) in document.nodes {
            let mut spec = spec;
            if let Some(fields) = spec.as_object_mut() {
                fields.entry("flow").or_insert_with(|| json!("scenario"));
            }
            let object = json!({
                "apiVersion": weir_model::API_VERSION,
                "kind": "FlowNode",
                "metadata": { "name": name, "namespace": NAMESPACE, "generation": 1 },
                "spec": spec,
            });
            let node: FlowNode = serde_json::from_value(object)
                .map_err(|err| fail(format!("nodes.{name}: {err}")))?;
            nodes.push(node);
        }
        let base = file.parent().unwrap_or(Path::new("."));
        for manifest_file in &document.manifests {
            let path = base.join(manifest_file);
            let text = std::fs::read_to_string(&path)
                .map_err(|err| fail(format!("cannot read {}: {err}", path.display())))?;
            let documents = manifest::parse_documents(&text)
                .map_err(|err| fail(format!("{}: {err}", path.display())))?;
            for document in documents {
                let resource = manifest::validate(&document.value).map_err(|err| {
                    fail(format!("{} {}: {err}", path.display(), document.position))
                })?;
                if let manifest::Resource::FlowNode(mut node) = resource {
                    node.metadata.namespace = Some(NAMESPACE.to_owned());
                    node.metadata.generation = Some(1);
                    nodes.push(node);
                }
            }
        }
        Ok(Self { file: file.to_owned(), name: document.name, nodes, steps: document.steps })
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the scenario on a fresh runtime hosting `modules`.
    pub async fn run(&self, modules: Vec<Module>) -> Result<(), ScenarioError> {
        let fail = |problem: String| ScenarioError {
            file: self.file.display().to_string(),
            problem: format!("{}: {problem}", self.name),
        };
        let runtime = Runtime::new(modules);
        let mut events = runtime.inspect();
        let mut received: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for node in &self.nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            runtime
                .apply(node)
                .await
                .map_err(|err| fail(format!("node {name} does not build: {err}")))?;
        }
        for (index, step) in self.steps.iter().enumerate() {
            let at =
                |problem: String| fail(format!("step {} ({}): {problem}", index + 1, step.label()));
            match step {
                Step::Send { send, message, answer, error, received: expected } => {
                    let (node, port) = send
                        .split_once(':')
                        .ok_or_else(|| at(format!("{send:?} is not NODE:PORT")))?;
                    let key = NodeKey { namespace: NAMESPACE.to_owned(), name: node.to_owned() };
                    let outcome = runtime.send(&key, port, message.clone()).await;
                    let during = drain(&mut events, &mut received);
                    match (outcome, error) {
                        (Ok(got), None) => {
                            if let Some(expected) = answer {
                                matches(expected, &got, "")
                                    .map_err(|why| at(format!("the answer {why}; it was {got}")))?;
                            }
                        }
                        (Ok(got), Some(_)) => {
                            return Err(at(format!("expected a failure, got the answer {got}")));
                        }
                        (Err(err), None) => {
                            return Err(at(format!(
                                "failed ({}): {}",
                                err.kind().as_str(),
                                err.message()
                            )));
                        }
                        (Err(err), Some(expected)) => {
                            if err.kind() != expected.kind
                                || !err.message().contains(&expected.message)
                            {
                                return Err(at(format!(
                                    "expected a failure ({}) saying {:?}, got ({}) {:?}",
                                    expected.kind.as_str(),
                                    expected.message,
                                    err.kind().as_str(),
                                    err.message()
                                )));
                            }
                        }
                    }
                    for (node, messages) in expected {
                        let got = during.get(node).cloned().unwrap_or_default();
                        matches(&json!(messages), &json!(got), "").map_err(|why| {
                            at(format!("what {node} received {why}; it got {}", json!(got)))
                        })?;
                    }
                }
                Step::Wait { wait, received: count, within } => {
                    // tokio's sleep computes the deadline without overflowing: a `within`
                    // past the clock's range waits for its far future.
                    let deadline = tokio::time::sleep(within.get()).deadline();
                    while received.get(wait).map_or(0, Vec::len) < *count {
                        match tokio::time::timeout_at(deadline, events.recv()).await {
                            Ok(Ok(event)) => record(&event, &mut received),
                            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                                let got = received.get(wait).map_or(0, Vec::len);
                                return Err(at(format!(
                                    "{wait} received {got} messages within {within}, not {count}"
                                )));
                            }
                        }
                    }
                }
            }
        }
        runtime.shutdown().await;
        Ok(())
    }
}

impl Step {
    fn label(&self) -> String {
        match self {
            Self::Send { send, .. } => format!("send {send}"),
            Self::Wait { wait, .. } => format!("wait for {wait}"),
        }
    }
}

/// Takes the events already published, adds them to `all`, and returns what each node
/// received among them.
fn drain(
    events: &mut broadcast::Receiver<Arc<Event>>,
    all: &mut BTreeMap<String, Vec<Value>>,
) -> BTreeMap<String, Vec<Value>> {
    let mut during = BTreeMap::new();
    loop {
        match events.try_recv() {
            Ok(event) => {
                record(&event, &mut during);
                record(&event, all);
            }
            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return during,
        }
    }
}

fn record(event: &Event, into: &mut BTreeMap<String, Vec<Value>>) {
    if let Observed::Received(message) = &event.what {
        into.entry(event.node.node.clone()).or_default().push(message.clone());
    }
}

/// Whether `actual` holds what `expected` says: objects need the expected fields (others may
/// be there), arrays the same length with each item matching, anything else equality.
fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                let here = format!("{path}/{key}");
                let got = got.get(key).ok_or_else(|| format!("has no {here}"))?;
                matches(value, got, &here)?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                let at = if path.is_empty() { String::new() } else { format!(" at {path}") };
                return Err(format!("has {} items{at}, not {}", got.len(), want.len()));
            }
            for (index, (want, got)) in want.iter().zip(got).enumerate() {
                matches(want, got, &format!("{path}/{index}"))?;
            }
            Ok(())
        }
        (want, got) if want == got => Ok(()),
        (want, got) => {
            let at = if path.is_empty() { String::new() } else { format!(" at {path}") };
            Err(format!("differs{at}: expected {want}, got {got}"))
        }
    }
}

/// Runs every `*.yaml` scenario in `dir` on fresh runtimes made by `modules`; the error lists
/// every scenario that failed.
pub async fn run_all(
    dir: &Path,
    modules: impl Fn() -> Vec<Module>,
) -> Result<usize, Vec<ScenarioError>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect(),
        Err(err) => {
            return Err(vec![ScenarioError {
                file: dir.display().to_string(),
                problem: format!("cannot list: {err}"),
            }]);
        }
    };
    files.sort();
    let mut failures = Vec::new();
    for file in &files {
        let outcome = match Scenario::load(file) {
            Ok(scenario) => scenario.run(modules()).await,
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            failures.push(err);
        }
    }
    if failures.is_empty() { Ok(files.len()) } else { Err(failures) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_match_on_the_fields_they_name() {
        let actual = json!({ "a": 1, "b": { "c": [1, 2], "d": "x" } });
        assert_eq!(matches(&json!({ "b": { "d": "x" } }), &actual, ""), Ok(()));
        assert_eq!(
            matches(&json!({ "b": { "c": [1] } }), &actual, ""),
            Err("has 2 items at /b/c, not 1".to_owned())
        );
        assert_eq!(
            matches(&json!({ "a": 2 }), &actual, ""),
            Err("differs at /a: expected 2, got 1".to_owned())
        );
        assert_eq!(matches(&json!({ "z": 2 }), &actual, ""), Err("has no /z".to_owned()));
    }
}
