//! `weir export`: flows with their nodes as clean manifests (no status, no server fields, keys
//! sorted), which `kubectl apply` and `weir apply` take unchanged.

use std::io::Write;

use anyhow::{Result, anyhow};
use serde_json::{Map, Value};
use weir_model::Kind;
use weir_store::{DynamicObject, Selector, Store};

use crate::cli::ExportArgs;

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
    let mut documents = Vec::new();
    for flow in flows {
        let name = flow.metadata.name.clone().unwrap_or_default();
        documents.push(clean(&flow, args.keep_namespace)?);
        for node in super::nodes_of(store, &args.namespace, &name).await? {
            documents.push(clean(&node, args.keep_namespace)?);
        }
    }
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            writeln!(out, "---")?;
        }
        write!(out, "{}", serde_yaml_ng::to_string(document)?)?;
    }
    super::all_or_error(failures)
}

/// The object as its author would write it: type, name, labels, annotations and spec, with keys
/// sorted, so the same flow exports to the same bytes from either store (the apiserver does not
/// keep key order) and diffs well in Git.
fn clean(object: &DynamicObject, keep_namespace: bool) -> Result<Value> {
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
