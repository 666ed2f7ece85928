//! Reading manifests: YAML (or JSON) files with one or more documents, each checked offline
//! against the same rules the CRD schema gives the apiserver, with errors that name the document
//! and the field.

use std::{cell::Cell, collections::HashMap, fmt};

use serde::de::{self, DeserializeOwned, DeserializeSeed as _};
use serde_json::{Map, Value};

use crate::{
    API_VERSION, Flow, FlowNode, Kind, Module,
    flow::{MAX_DESCRIPTION, MAX_LAYOUT},
    flow_node::MAX_EDGES,
    mapping::Mapping,
    names::{NameRule, NodeName},
};

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where the document stands in its file.
    pub position: Position,
    /// The document as JSON.
    pub value: Value,
}

/// Where a document stands in its file: documents count from 1, and the items of a `kind: List`
/// document from 0, as kubectl numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The document's number in the file, from 1.
    pub document: usize,
    /// The item's index when the document is a `List`.
    pub item: Option<usize>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            None => write!(f, "document {}", self.document),
            Some(item) => write!(f, "document {}, items[{item}]", self.document),
        }
    }
}

/// A file that is not YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {message}")]
pub struct SyntaxError {
    /// The document's number in the file, from 1.
    pub document: usize,
    /// What the YAML parser said, with line and column.
    pub message: String,
}

/// Splits a YAML or JSON text into its documents, skipping empty ones and unpacking `kind: List`.
///
/// YAML aliases are expanded where they stand, so a few kilobytes of aliases of aliases can
/// stand for billions of values; the parser's own limit counts repetitions, not what they
/// expand to. Here every value read counts against a budget that grows with the text, so a
/// file without aliases always fits and aliases may make it at most [`ALIAS_EXPANSION`] times
/// larger.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut documents = Vec::new();
    let budget = Cell::new(node_budget(text));
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value: Value = Counted(&budget)
            .deserialize(de)
            .map_err(|err| SyntaxError { document: number, message: err.to_string() })?;
        if value.is_null() {
            continue;
        }
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("items").is_some_and(Value::is_array);
        if let (true, Value::Object(mut list)) = (is_list, value.clone()) {
            let Some(Value::Array(items)) = list.remove("items") else { continue };
            for (item, value) in items.into_iter().enumerate() {
                documents.push(Document {
                    position: Position { document: number, item: Some(item) },
                    value,
                });
            }
        } else {
            documents.push(Document { position: Position { document: number, item: None }, value });
        }
    }
    Ok(documents)
}

/// Reads a text of one YAML document, such as a stored object, with the alias budget of
/// [`parse_documents`].
pub fn parse_document(text: &str) -> Result<Value, SyntaxError> {
    let budget = Cell::new(node_budget(text));
    Counted(&budget)
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .map_err(|err| SyntaxError { document: 1, message: err.to_string() })
}

/// How many times more values than its text has characters a manifest may hold once its
/// aliases are expanded.
pub const ALIAS_EXPANSION: usize = 10;

/// The values a text may hold: every value takes at least one character to write, so without
/// aliases a text never holds more values than it has characters.
fn node_budget(text: &str) -> usize {
    ALIAS_EXPANSION * text.len() + 1_000
}

/// Reads one document into JSON, counting each value (the expansion of an alias included)
/// against the budget shared by the file's documents.
struct Counted<'a>(&'a Cell<usize>);

impl Counted<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "aliases expand the file past {ALIAS_EXPANSION} values for each character of it: \
                 write the repeated parts out or use fewer aliases"
            ))),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.spend()?;
        // JSON has no NaN or infinity.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Counted(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.spend()?;
            fields.insert(key, map.next_value_seed(Counted(self.0))?);
        }
        Ok(Value::Object(fields))
    }
}

/// A field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct FieldError {
    /// Where the field is, such as `spec.edges[0].to.node`; empty for the document itself.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// A valid Weir resource.
#[derive(Debug, Clone, PartialEq)]
// Manifests are read a handful at a time; boxing would only add noise to every match.
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// A flow.
    Flow(Flow),
    /// A node.
    FlowNode(FlowNode),
    /// A module's catalogue.
    Module(Module),
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Flow(_) => Kind::Flow,
            Self::FlowNode(_) => Kind::FlowNode,
            Self::Module(_) => Kind::Module,
        }
    }
}

const TOP_LEVEL_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

const METADATA_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "generateName",
    "selfLink",
];

/// Checks one document against the rules of its kind: the checks of the CRD schema (required
/// fields, names, patterns, ranges, unknown fields) and the CEL rules (unique edges).
pub fn validate(document: &Value) -> Result<Resource, FieldError> {
    let Value::Object(fields) = document else {
        return Err(FieldError::new(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        ));
    };
    let kind = check_type(fields)?;
    if let Some(field) = fields.keys().find(|key| !TOP_LEVEL_FIELDS.contains(&key.as_str())) {
        return Err(FieldError::new(
            field.as_str(),
            "unknown field: a manifest has only apiVersion, kind, metadata, spec and status",
        ));
    }
    check_depth(document)?;
    check_metadata(fields.get("metadata"))?;
    if !fields.contains_key("spec") {
        return Err(FieldError::new("spec", "required field is missing"));
    }
    let resource = match kind {
        Kind::Flow => {
            let flow: Flow = decode(document)?;
            check_flow(&flow)?;
            Resource::Flow(flow)
        }
        Kind::FlowNode => {
            let node: FlowNode = decode(document)?;
            check_edges(&node)?;
            Resource::FlowNode(node)
        }
        Kind::Module => {
            let module: Module = decode(document)?;
            check_components(&module)?;
            Resource::Module(module)
        }
    };
    Ok(resource)
}

/// The bounds of a flow's spec that its schema states and decoding does not check.
fn check_flow(flow: &Flow) -> Result<(), FieldError> {
    let description = flow.spec.description.chars().count();
    if description > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "spec.description",
            format!("at most {MAX_DESCRIPTION} characters, and this is {description}"),
        ));
    }
    let placed = flow.spec.layout.len();
    if placed > MAX_LAYOUT {
        return Err(FieldError::new(
            "spec.layout",
            format!("places at most {MAX_LAYOUT} nodes, and this places {placed}"),
        ));
    }
    Ok(())
}

/// How deep a manifest may nest. Stored resources are read back inside lists, a few levels
/// deeper, by parsers that stop at 128 levels; this leaves them room.
pub const MAX_DEPTH: usize = 64;

/// Refuses a document nested deeper than [`MAX_DEPTH`], naming the first field that is; looked
/// at without recursion, as the document may be deeper than the stack allows.
fn check_depth(document: &Value) -> Result<(), FieldError> {
    let mut pending = vec![(document, String::new(), 1)];
    while let Some((value, path, depth)) = pending.pop() {
        let inside: Vec<(&Value, String)> = match value {
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, item)| (item, format!("{path}[{i}]"))).collect()
            }
            Value::Object(fields) => fields
                .iter()
                .map(|(key, field)| {
                    (field, if path.is_empty() { key.clone() } else { format!("{path}.{key}") })
                })
                .collect(),
            _ => continue,
        };
        if depth >= MAX_DEPTH && !inside.is_empty() {
            return Err(FieldError::new(
                path,
                format!("nests deeper than {MAX_DEPTH} levels, more than a manifest may"),
            ));
        }
        pending.extend(inside.into_iter().rev().map(|(value, path)| (value, path, depth + 1)));
    }
    Ok(())
}

/// [`validate`], and what the apiserver cannot check: every edge's mapping compiles. What
/// `weir validate`, `weir apply` and the editor ask of what they are given; a store asks only
/// [`validate`], so a node stored before keeps taking the status that says what is wrong.
pub fn check(document: &Value) -> Result<Resource, FieldError> {
    let resource = validate(document)?;
    if let Resource::FlowNode(node) = &resource {
        for (index, edge) in node.spec.edges.iter().enumerate() {
            // The first of the mapping's errors; the editor's check lists them all.
            if let Some(mapping) = &edge.mapping
                && let Err(errors) = Mapping::compile(mapping)
                && let Some(error) = errors.first()
            {
                let field = format!("spec.edges[{index}].mapping");
                return Err(FieldError::new(field, error.to_string()));
            }
        }
    }
    Ok(resource)
}

fn check_type(fields: &Map<String, Value>) -> Result<Kind, FieldError> {
    match fields.get("apiVersion") {
        None => {
            return Err(FieldError::new(
                "apiVersion",
                format!("required field is missing: Weir resources use {API_VERSION}"),
            ));
        }
        Some(Value::String(version)) if version == API_VERSION => {}
        Some(other) => {
            return Err(FieldError::new(
                "apiVersion",
                format!("{} is not served by Weir: use {API_VERSION}", show(other)),
            ));
        }
    }
    let kinds = || Kind::ALL.map(Kind::name).join(", ");
    match fields.get("kind") {
        None => Err(FieldError::new(
            "kind",
            format!("required field is missing: use one of {}", kinds()),
        )),
        Some(Value::String(kind)) => Kind::from_manifest(kind).ok_or_else(|| {
            FieldError::new("kind", format!("{kind:?} is not a Weir kind: use one of {}", kinds()))
        }),
        Some(other) => Err(FieldError::new(
            "kind",
            format!("{} is not a Weir kind: use one of {}", show(other), kinds()),
        )),
    }
}

fn check_metadata(metadata: Option<&Value>) -> Result<(), FieldError> {
    let Some(Value::Object(metadata)) = metadata else {
        return Err(FieldError::new(
            "metadata",
            "required mapping is missing: give at least a name",
        ));
    };
    if let Some(field) = metadata.keys().find(|key| !METADATA_FIELDS.contains(&key.as_str())) {
        return Err(FieldError::new(format!("metadata.{field}"), "unknown field"));
    }
    for (field, required) in [("name", true), ("namespace", false)] {
        match metadata.get(field) {
            None if required => {
                return Err(FieldError::new(
                    format!("metadata.{field}"),
                    "required field is missing",
                ));
            }
            None => {}
            Some(Value::String(name)) if NameRule::DnsLabel.accepts(name) => {}
            Some(other) => {
                return Err(FieldError::new(
                    format!("metadata.{field}"),
                    format!(
                        "{} is not a valid {field}: use {}",
                        show(other),
                        NameRule::DnsLabel.describe()
                    ),
                ));
            }
        }
    }
    for map in ["labels", "annotations"] {
        match metadata.get(map) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                if let Some((key, _)) = entries.iter().find(|(_, value)| !value.is_string()) {
                    return Err(FieldError::new(
                        format!("metadata.{map}.{key}"),
                        "must be a string: quote values such as \"true\" or \"1\"",
                    ));
                }
            }
            Some(_) => {
                return Err(FieldError::new(
                    format!("metadata.{map}"),
                    "must be a mapping of strings",
                ));
            }
        }
    }
    if let Some(Value::Object(labels)) = metadata.get("labels") {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or_default();
            if !is_label_value(value) {
                return Err(FieldError::new(
                    format!("metadata.labels.{key}"),
                    format!(
                        "{value:?} is not a valid label value: use at most 63 letters, digits, \
                         '-', '_' and '.', starting and ending with a letter or digit"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    value.is_empty()
        || (bytes.len() <= 63
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || b"-_.".contains(b)))
}

fn decode<T: DeserializeOwned>(document: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        FieldError::new(path, err.into_inner().to_string())
    })
}

fn check_edges(node: &FlowNode) -> Result<(), FieldError> {
    let edges = &node.spec.edges;
    if edges.len() > MAX_EDGES {
        return Err(FieldError::new(
            "spec.edges",
            format!("{} edges is too many: a node has at most {MAX_EDGES}", edges.len()),
        ));
    }
    let mut seen: HashMap<(&str, &NodeName, &str), usize> = HashMap::new();
    for (index, edge) in edges.iter().enumerate() {
        let key = (edge.port.as_str(), &edge.to.node, edge.to.port.as_str());
        if let Some(first) = seen.insert(key, index) {
            return Err(FieldError::new(
                format!("spec.edges[{index}]"),
                format!(
                    "duplicates spec.edges[{first}]: both join port {} to {}:{}",
                    edge.port, edge.to.node, edge.to.port
                ),
            ));
        }
        if let Some(retry) = &edge.retry
            && !(1..=100).contains(&retry.attempts)
        {
            return Err(FieldError::new(
                format!("spec.edges[{index}].retry.attempts"),
                format!("{} is out of range: use 1 to 100 attempts", retry.attempts),
            ));
        }
    }
    Ok(())
}

fn check_components(module: &Module) -> Result<(), FieldError> {
    let mut seen = HashMap::new();
    for (index, component) in module.spec.components.iter().enumerate() {
        if let Some(first) = seen.insert(&component.name, index) {
            return Err(FieldError::new(
                format!("spec.components[{index}].name"),
                format!("{} is already the name of spec.components[{first}]", component.name),
            ));
        }
    }
    Ok(())
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_unpack_and_empty_documents_are_skipped() {
        let text = "---\n# only a comment\n---\nkind: List\nitems:\n- a: 1\n- b: 2\n---\nc: 3\n";
        let docs = parse_documents(text).unwrap();
        let positions: Vec<String> = docs.iter().map(|d| d.position.to_string()).collect();
        assert_eq!(positions, ["document 2, items[0]", "document 2, items[1]", "document 3"]);
    }

    #[test]
    fn aliases_that_expand_past_the_budget_are_refused() {
        // 4,000 aliases of one 4,000-item list: 20 KB standing for 16 million values.
        let items = vec!["0"; 4_000].join(",");
        let aliases = vec!["*x"; 4_000].join(",");
        let bomb = format!("a: &x [{items}]\nb: [{aliases}]\n");
        let err = parse_documents(&format!("c: 1\n---\n{bomb}")).unwrap_err();
        assert_eq!(err.document, 2);
        assert!(err.message.contains("aliases expand the file"), "{err}");
        // A few aliases, as people write them, stay well inside the budget.
        let docs = parse_documents("a: &x {k: [1, 2, 3]}\nb: *x\nc: [*x, *x]\n").unwrap();
        assert_eq!(docs[0].value["c"][1]["k"][2], 3);
        // Without aliases every text fits, however many values it holds.
        assert_eq!(parse_documents(&format!("[{items}]")).unwrap()[0].value[3_999], 0);
        let err = parse_document(&bomb).unwrap_err();
        assert!(err.message.contains("aliases expand the file"), "{err}");
        assert_eq!(parse_document("a: &x [1]\nb: *x\n").unwrap()["b"][0], 1);
    }

    #[test]
    fn documents_nested_too_deep_are_refused_naming_the_field() {
        let node = |depth: usize| {
            let settings = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let text = format!(
                "apiVersion: weir.dev/v1alpha1\nkind: FlowNode\nmetadata: {{name: a}}\n\
                 spec: {{flow: f, module: common, component: debug, settings: {{keep: {settings}}}}}\n"
            );
            validate(&parse_documents(&text).unwrap()[0].value)
        };
        // The document, spec, settings and the number take four levels; keep's lists the rest.
        node(MAX_DEPTH - 4).unwrap();
        let err = node(MAX_DEPTH - 3).unwrap_err();
        assert_eq!(err.path, format!("spec.settings.keep{}", "[0]".repeat(MAX_DEPTH - 4)));
        assert_eq!(err.message, "nests deeper than 64 levels, more than a manifest may");
        let mut value = Value::from(1);
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        let mut deep = Value::Object(Map::from_iter([("spec".to_owned(), value)]));
        assert_eq!(check_depth(&deep).unwrap_err().path, format!("spec{}", "[0]".repeat(62)));
        // Dropped by recursion, a value this deep would overflow a test's stack.
        let mut value = deep["spec"].take();
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap_or_default();
        }
    }

    /// What the CRD schema bounds and decoding alone would take: a flow's description and
    /// layout, and an edge's durations.
    #[test]
    fn what_the_schema_bounds_is_refused_naming_the_field() {
        let flow = |spec: Value| {
            validate(&json!({
                "apiVersion": API_VERSION, "kind": "Flow", "metadata": { "name": "f" }, "spec": spec,
            }))
        };
        flow(json!({ "description": "é".repeat(MAX_DESCRIPTION) })).unwrap();
        let err = flow(json!({ "description": "é".repeat(MAX_DESCRIPTION + 1) })).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("spec.description", "at most 4096 characters, and this is 4097")
        );
        let layout = |nodes: usize| {
            let placed: Map<String, Value> =
                (0..nodes).map(|n| (format!("n{n}"), json!({ "left": 0, "top": 0 }))).collect();
            json!({ "layout": placed })
        };
        flow(layout(MAX_LAYOUT)).unwrap();
        let err = flow(layout(MAX_LAYOUT + 1)).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("spec.layout", "places at most 512 nodes, and this places 513")
        );
        let edge_timeout = |timeout: String| {
            validate(&json!({
                "apiVersion": API_VERSION, "kind": "FlowNode", "metadata": { "name": "a" },
                "spec": { "flow": "f", "module": "common", "component": "ticker", "edges": [
                    { "port": "out", "to": { "node": "b", "port": "in" }, "timeout": timeout },
                ] },
            }))
        };
        edge_timeout("1s".repeat(16)).unwrap();
        let err = edge_timeout("1s".repeat(17)).unwrap_err();
        assert_eq!(err.path, "spec.edges[0].timeout");
        assert!(err.message.contains("a duration is at most 32 characters"), "{err}");
    }

    #[test]
    fn check_compiles_the_mappings_that_validate_leaves_to_the_runtime() {
        let text = "apiVersion: weir.dev/v1alpha1\nkind: FlowNode\nmetadata: {name: a}\n\
                    spec: {flow: f, module: common, component: ticker, edges: [\
                    {port: out, to: {node: b, port: in}, mapping: {n: '{{ .n }}'}},\
                    {port: out, to: {node: c, port: in}, mapping: {n: '{{ .[ }}'}}]}\n";
        let document = &parse_documents(text).unwrap()[0].value;
        assert!(validate(document).is_ok(), "a store takes what the apiserver would");
        let err = check(document).unwrap_err();
        assert_eq!(err.path, "spec.edges[1].mapping");
        assert!(err.message.starts_with("n: {{ .[ }}: expected"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_document() {
        let err = parse_documents("a: 1\n---\nb: [1, 2\n").unwrap_err();
        assert_eq!(err.document, 2);
        assert!(err.message.contains("line"), "{err}");
    }
}
