//! Checking a flow document before it is saved: the manifest rules (`weir_model::manifest`,
//! as `weir validate` applies them), that the flow and its nodes agree (names, namespace,
//! `spec.flow`), and, against the installed catalogues, that each component exists, its
//! settings fit its settings schema, and every edge leaves an output port and reaches an input
//! port of a node in the flow (`weir_model::check`). Every problem is reported at once. Secret
//! placeholders are filled in from the stored nodes first, so what is checked is what is saved.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use weir_api::Problem;
use weir_model::{
    FieldError, FlowNode, FlowNodeStatus, Kind, Resource, check::check_flow,
    flow_node::ResolvedPort, manifest, secret_ref,
};
use weir_store::{DynamicObject, Selector, Store};

use super::{document::FlowDocument, error::ApiError, ports, settings, state::Api};
use crate::catalogue::Catalogue;

/// A flow document that passed every check: the objects to write.
#[derive(Debug)]
pub struct Checked {
    /// The `Flow`, as its author controls it (no status, no server fields).
    pub flow: DynamicObject,
    /// Its nodes, likewise, with their secret settings filled in.
    pub nodes: Vec<DynamicObject>,
    /// The catalogues they were checked against, which tell their secret settings.
    pub catalogue: Catalogue,
}

/// Checks `submitted` for saving in `namespace`, as flow `name` when the path names it (else
/// as the flow it names itself).
pub async fn check(
    api: &Api,
    store: &dyn Store,
    namespace: &str,
    name: Option<&str>,
    submitted: FlowDocument,
) -> Result<Checked, ApiError> {
    let catalogue = Catalogue::read(store, namespace).await?;
    let stored: HashMap<String, DynamicObject> = store
        .list(Kind::FlowNode, Some(namespace), &Selector::everything())
        .await?
        .into_iter()
        .filter_map(|node| Some((node.metadata.name.clone()?, node)))
        .collect();
    let FlowDocument { flow: mut flow_doc, nodes: node_docs } = submitted;
    let own_name = flow_doc.pointer("/metadata/name").and_then(Value::as_str);
    let target = Target { flow: name.or(own_name).unwrap_or_default().to_owned(), namespace };
    let mut problems = Problems::default();
    check_flow_document(&flow_doc, &target, &mut problems);
    let mut seen = HashSet::new();
    let mut nodes = Vec::new();
    for (index, doc) in node_docs.into_iter().enumerate() {
        let twin =
            doc.pointer("/metadata/name").and_then(Value::as_str).and_then(|n| stored.get(n));
        nodes.push(check_node(&catalogue, &target, index, doc, twin, &mut seen, &mut problems)?);
    }
    // Edges join nodes: they are checked only when every node could be read.
    if nodes.iter().all(|n| n.typed.is_some()) {
        check_edges(api, &catalogue, &nodes, &mut problems).await;
    }
    if !problems.0.is_empty() {
        return Err(ApiError::Invalid(problems.0));
    }
    super::layout::normalize(&mut flow_doc);
    Ok(Checked {
        flow: authored(flow_doc, namespace)?,
        nodes: nodes.into_iter().map(|n| authored(n.doc, namespace)).collect::<Result<_, _>>()?,
        catalogue,
    })
}

/// Where a document is saved.
struct Target<'a> {
    /// The flow's name (empty when the document does not tell it).
    flow: String,
    namespace: &'a str,
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, resource: &str, error: FieldError) {
        self.0.push(Problem::new(Some(resource.to_owned()), &error.path, error.message));
    }
}

/// A submitted node, as far as it could be read.
struct Node<'a> {
    /// The document, its kept secrets filled in.
    doc: Value,
    /// The node, when the document follows the manifest rules.
    typed: Option<FlowNode>,
    /// The node of that name as stored.
    twin: Option<&'a DynamicObject>,
    /// Whether its settings fit its component's settings schema (or nothing says otherwise).
    settings_fit: bool,
    /// Its settings as checked: secret settings given by reference stand in as text.
    settings: Value,
}

fn check_flow_document(document: &Value, target: &Target<'_>, problems: &mut Problems) {
    let label = label(document, Kind::Flow, "flow");
    if let Err(error) = read_flow(document) {
        return problems.add(&label, error);
    }
    let own = document.pointer("/metadata/name").and_then(Value::as_str);
    if let Some(own) = own.filter(|own| *own != target.flow) {
        let message = format!("is {own}, but the flow is saved as {}", target.flow);
        problems.add(&label, field("metadata.name", message));
    }
    if let Err(error) = same_namespace(document, target.namespace) {
        problems.add(&label, error);
    }
}

fn check_node<'a>(
    catalogue: &Catalogue,
    target: &Target<'_>,
    index: usize,
    mut doc: Value,
    twin: Option<&'a DynamicObject>,
    seen: &mut HashSet<String>,
    problems: &mut Problems,
) -> Result<Node<'a>, ApiError> {
    let label = label(&doc, Kind::FlowNode, &format!("nodes[{index}]"));
    let twin_json = twin
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| ApiError::internal(format!("cannot read stored node {label}: {err}")))?;
    if let Err(error) = catalogue.restore(&mut doc, twin_json.as_ref()) {
        problems.add(&label, error);
    }
    let node = match read_node(&doc) {
        Ok(node) => node,
        Err(error) => {
            problems.add(&label, error);
            return Ok(Node { doc, typed: None, twin, settings_fit: false, settings: Value::Null });
        }
    };
    let name = node.metadata.name.clone().unwrap_or_default();
    if !seen.insert(name.clone()) {
        problems.add(&label, field("metadata.name", format!("node {name} is given twice")));
    }
    let flow = node.spec.flow.as_str();
    if !target.flow.is_empty() && flow != target.flow {
        let message = format!("is {flow}, but the node is saved in flow {}", target.flow);
        problems.add(&label, field("spec.flow", message));
    }
    if let Err(error) = same_namespace(&doc, target.namespace) {
        problems.add(&label, error);
    }
    let elsewhere =
        twin.and_then(|t| t.data.pointer("/spec/flow")?.as_str()).filter(|f| *f != target.flow);
    if let Some(other) = elsewhere {
        let message =
            format!("node {name} belongs to flow {other}: node names are unique in a namespace");
        problems.add(&label, field("metadata.name", message));
    }
    let schema = catalogue
        .component(node.spec.module.as_str(), node.spec.component.as_str())
        .and_then(|c| c.settings_schema.as_ref());
    let mut settings = Value::Object(node.spec.settings.clone());
    let misfit = schema.and_then(|schema| {
        if let Err(error) = secret_ref::references(schema, &settings) {
            return Some((error.path, error.message));
        }
        settings = secret_ref::stand_in(schema, &settings);
        settings::misfit(schema, &settings)
    });
    let settings_fit = misfit.is_none();
    if let Some((path, message)) = misfit {
        problems.add(&label, field(&path, message));
    }
    Ok(Node { doc, typed: Some(node), twin, settings_fit, settings })
}

/// Checks the flow's edges (and components) against the catalogues.
async fn check_edges(
    api: &Api,
    catalogue: &Catalogue,
    submitted: &[Node<'_>],
    problems: &mut Problems,
) {
    let mut nodes = Vec::new();
    for node in submitted {
        let Some(mut typed) = node.typed.clone() else { continue };
        let label = format!("FlowNode/{}", typed.metadata.name.as_deref().unwrap_or_default());
        let ports = match known_ports(api, &typed, node).await {
            Ok(ports) => ports,
            Err(message) => {
                problems.add(&label, field("spec.settings", message));
                None
            }
        };
        typed.status = ports.map(|ports| FlowNodeStatus { ports, ..Default::default() });
        nodes.push(typed);
    }
    for problem in check_flow(&nodes, catalogue.modules()) {
        // Without any catalogue every module looks uninstalled: check what can be checked.
        if catalogue.is_empty() && problem.field == "spec.module" {
            continue;
        }
        problems.add(&format!("FlowNode/{}", problem.node), field(&problem.field, problem.message));
    }
}

/// The node's ports as the checks should see them: its stored resolved ports when its module,
/// component and settings did not change; else the ports its settings give, when its module
/// runs in this process; else none (the catalogue's defaults are used). Fails with the reason
/// when the settings do not build.
async fn known_ports(
    api: &Api,
    node: &FlowNode,
    submitted: &Node<'_>,
) -> Result<Option<Vec<ResolvedPort>>, String> {
    let stored: Option<FlowNode> =
        submitted.twin.and_then(|t| serde_json::to_value(t).and_then(serde_json::from_value).ok());
    if let Some(stored) = stored
        && (&stored.spec.module, &stored.spec.component, &stored.spec.settings)
            == (&node.spec.module, &node.spec.component, &node.spec.settings)
        && let Some(status) = stored.status.filter(|s| !s.ports.is_empty())
    {
        return Ok(Some(status.ports));
    }
    if !submitted.settings_fit {
        return Ok(None);
    }
    let resolved = ports::resolve(
        api.runtime.as_ref(),
        node.spec.module.as_str(),
        node.spec.component.as_str(),
        &submitted.settings,
    )
    .await;
    match resolved {
        None => Ok(None),
        Some(Err(err)) => Err(err.message().to_owned()),
        Some(Ok(ports)) => Ok(Some(
            ports
                .into_iter()
                .map(|p| ResolvedPort { name: p.name, direction: p.direction, schema: p.schema })
                .collect(),
        )),
    }
}

/// Reads a Flow document by the manifest rules.
fn read_flow(document: &Value) -> Result<(), FieldError> {
    match manifest::validate(document)? {
        Resource::Flow(_) => Ok(()),
        other => Err(wrong_kind(other.kind(), Kind::Flow)),
    }
}

/// Reads a FlowNode document by the manifest rules, its mappings compiled.
fn read_node(document: &Value) -> Result<FlowNode, FieldError> {
    match manifest::check(document)? {
        Resource::FlowNode(node) => Ok(node),
        other => Err(wrong_kind(other.kind(), Kind::FlowNode)),
    }
}

fn wrong_kind(found: Kind, expected: Kind) -> FieldError {
    field("kind", format!("is {found}, but a {expected} belongs here"))
}

/// Fails when the document names a namespace other than the one it is saved in.
fn same_namespace(document: &Value, namespace: &str) -> Result<(), FieldError> {
    match document.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(own) if own != namespace => Err(field(
            "metadata.namespace",
            format!("is {own}, but the flow is saved in namespace {namespace}"),
        )),
        _ => Ok(()),
    }
}

/// `Kind/name` when the document has a name, else its place in the body.
fn label(document: &Value, kind: Kind, place: &str) -> String {
    match document.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{kind}/{name}"),
        None => place.to_owned(),
    }
}

fn field(path: &str, message: String) -> FieldError {
    FieldError { path: path.to_owned(), message }
}

/// The object as its author controls it, to write: what `weir export` keeps, in `namespace`.
fn authored(document: Value, namespace: &str) -> Result<DynamicObject, ApiError> {
    let unreadable = |err: &dyn std::fmt::Display| {
        ApiError::internal(format!("cannot prepare a checked document: {err}"))
    };
    let object: DynamicObject = serde_json::from_value(document).map_err(|e| unreadable(&e))?;
    let clean = crate::ops::export::clean(&object, false).map_err(|e| unreadable(&e))?;
    let mut object: DynamicObject = serde_json::from_value(clean).map_err(|e| unreadable(&e))?;
    object.metadata.namespace = Some(namespace.to_owned());
    Ok(object)
}
