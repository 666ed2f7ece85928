//! Flows with their nodes as clean manifests (no status, no server fields, keys sorted, secret
//! settings concealed), which `kubectl apply` and `weir apply` take unchanged: `weir export`
//! and the editor's export print the same.

use serde_json::{Map, Value};
use weir_store::{DynamicObject, Store};

use super::error::OpError;
use crate::catalogue::Catalogue;

/// A flow and its nodes as clean manifests, secret settings concealed by the catalogue.
pub async fn manifests(
    store: &dyn Store,
    catalogue: &Catalogue,
    flow: &DynamicObject,
    keep_namespace: bool,
) -> Result<Vec<Value>, OpError> {
    let name = flow.metadata.name.as_deref().unwrap_or_default();
    let namespace = flow.metadata.namespace.as_deref().unwrap_or(weir_store::DEFAULT_NAMESPACE);
    let mut documents = vec![clean(flow, keep_namespace)?];
    for node in super::nodes_of(store, namespace, name).await? {
        let mut document = clean(&node, keep_namespace)?;
        catalogue.conceal(&mut document);
        documents.push(document);
    }
    Ok(documents)
}

/// Manifests as one YAML text, `---` between documents.
pub fn to_yaml(documents: &[Value]) -> Result<String, OpError> {
    let mut text = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_yaml_ng::to_string(document)?);
    }
    Ok(text)
}

/// The object as its author would write it: type, name, labels, annotations and spec, with keys
/// sorted, so the same flow exports to the same bytes from either store (the apiserver does not
/// keep key order) and diffs well in Git.
pub fn clean(object: &DynamicObject, keep_namespace: bool) -> Result<Value, OpError> {
    let mut value = serde_json::to_value(object).map_err(|source| OpError::Unreadable {
        what: format!("cannot write {} as a manifest", weir_store::describe(object)),
        source,
    })?;
    let Some(fields) = value.as_object_mut() else { return Ok(value) };
    fields.shift_remove("status");
    if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
        let mut kept = Map::new();
        for key in ["name", "namespace", "labels", "annotations"] {
            if key == "namespace" && !keep_namespace {
                continue;
            }
            if let Some(field) = metadata.shift_remove(key) {
                kept.insert(key.to_owned(), field);
            }
        }
        *metadata = kept;
    }
    sort_keys(&mut value);
    Ok(value)
}

fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.sort_keys();
            fields.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}
