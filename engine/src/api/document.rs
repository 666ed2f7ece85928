//! The document the editor edits: a flow with its nodes, read from the store with secret
//! settings concealed. The engine passes the stored JSON on as it is (`weir_api`'s types take
//! the resources as parameters).

use serde_json::Value;
use weir_model::Kind;
use weir_store::{DynamicObject, Selector, Store, StoreError};

use super::error::ApiError;
use crate::catalogue::Catalogue;

/// A flow and its nodes (sorted by name, with their status), each as its JSON: as answered,
/// and as submitted to be saved or checked (each document checked by the manifest rules before
/// it is read as a resource).
pub type FlowDocument = weir_api::FlowDocument<Value, Value>;

/// One entry of the flow list.
pub type FlowSummary = weir_api::FlowSummary<Value>;

/// The stored Flow called `flow`; 404 when there is none.
pub async fn existing_flow(
    store: &dyn Store,
    namespace: &str,
    flow: &str,
) -> Result<DynamicObject, ApiError> {
    store.get(Kind::Flow, namespace, flow).await.map_err(|err| match err {
        StoreError::NotFound(_) => {
            ApiError::not_found(format!("flow {namespace}/{flow} does not exist"))
        }
        err => err.into(),
    })
}

/// Reads a flow and its nodes; 404 when the flow does not exist.
pub async fn read(
    store: &dyn Store,
    namespace: &str,
    flow: &str,
) -> Result<FlowDocument, ApiError> {
    let object = existing_flow(store, namespace, flow).await?;
    let catalogue = Catalogue::read(store, namespace).await?;
    let mut nodes = Vec::new();
    for node in crate::ops::nodes_of(store, namespace, flow).await? {
        nodes.push(shown(&catalogue, node)?);
    }
    Ok(FlowDocument { flow: to_json(object)?, nodes })
}

/// Every flow of a namespace with its number of nodes, sorted by name.
pub async fn list(store: &dyn Store, namespace: &str) -> Result<Vec<FlowSummary>, ApiError> {
    let everything = Selector::everything();
    let flows = store.list(Kind::Flow, Some(namespace), &everything).await?;
    let nodes = store.list(Kind::FlowNode, Some(namespace), &everything).await?;
    flows
        .into_iter()
        .map(|flow| {
            let name = flow.metadata.name.as_deref();
            let count = nodes
                .iter()
                .filter(|n| n.data.pointer("/spec/flow").and_then(Value::as_str) == name)
                .count();
            Ok(FlowSummary { flow: to_json(flow)?, nodes: count })
        })
        .collect()
}

/// A node as the editor may see it: secret settings concealed.
pub fn shown(catalogue: &Catalogue, node: DynamicObject) -> Result<Value, ApiError> {
    let mut value = to_json(node)?;
    catalogue.conceal(&mut value);
    Ok(value)
}

/// An object as its JSON.
pub fn to_json(object: DynamicObject) -> Result<Value, ApiError> {
    serde_json::to_value(object)
        .map_err(|err| ApiError::internal(format!("cannot show a stored object: {err}")))
}
