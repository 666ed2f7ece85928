//! `weir export`: flows with their nodes as clean manifests (no status, no server fields, keys
//! sorted, secret settings concealed), which `kubectl apply` and `weir apply` take unchanged.
//! The editor's export (`GET /api/flows/{flow}/export`) prints the same.

use std::io::Write;

use anyhow::{Result, anyhow};
use serde_json::{Map, Value};
use weir_model::Kind;
use weir_store::{DynamicObject, Selector, Store};

use crate::{catalogue::Catalogue, cli::ExportArgs};

/// Runs `weir export`.
pub async fn run(store: &dyn Store, args: ExportArgs, out: &mut impl Write) -> Result<()> {
    let mut failures = Vec::new();
    let flows = if args.flows.is_empty() {
        store.list(Kind::Flow, Some(&args.namespace), &Selector::everything()).await?
    } else {
        let mut flows = Vec::new();
        for name in &args.flows {
            match store.get(Kind::Flow, &args.namespace, name).await {
                Ok(flow) => flows.push(flow),
                Err(err) => failures.push(anyhow!(err)),
            }
        }
        flows
    };
    let catalogue = Catalogue::read(store, &args.namespace).await?;
    let mut documents = Vec::new();
    for flow in flows {
        documents.extend(manifests(store, &catalogue, &flow, args.keep_namespace).await?);
    }
    write!(out, "{}", to_yaml(&documents)?)?;
    super::all_or_error(failures)
}

/// A flow and its nodes as clean manifests, secret settings concealed by the catalogue.
pub async fn manifests(
    store: &dyn Store,
    catalogue: &Catalogue,
    flow: &DynamicObject,
    keep_namespace: bool,
) -> Result<Vec<Value>> {
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
pub fn to_yaml(documents: &[Value]) -> Result<String> {
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
pub fn clean(object: &DynamicObject, keep_namespace: bool) -> Result<Value> {
    let mut value = serde_json::to_value(object)?;
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
