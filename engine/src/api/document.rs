//! The document the editor edits: a flow with its nodes, read from the store with secret
//! settings concealed. The engine passes the stored JSON on as it is (`weir_api`'s types take
//! the resources as parameters). Each answer carries the document's version as its `ETag`, so
//! a save can be made over it (`If-Match`) and refused when someone changed the flow since.

use std::fmt::Write as _;

use axum::{
    Json,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
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

/// The version of a flow document: it changes when the spec of the Flow or of any node changes,
/// or a node comes or goes, and not when only a status does (those change all the time while
/// the flow runs, and each change makes a new resourceVersion). So it is made of each object's
/// uid and generation, the parts of resourceVersion that only authors move.
pub fn version(document: &FlowDocument) -> String {
    let mut parts = String::new();
    for object in std::iter::once(&document.flow).chain(&document.nodes) {
        let meta = |field: &str| object.pointer(&format!("/metadata/{field}")).cloned();
        let _ = writeln!(
            parts,
            "{} {} {}",
            meta("name").unwrap_or_default(),
            meta("uid").unwrap_or_default(),
            meta("generation").unwrap_or_default()
        );
    }
    let digest = Sha256::digest(parts.as_bytes());
    // A strong ETag: 64 bits tell versions of one flow apart.
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A flow document as an answer, with its version as the `ETag`.
pub fn answer(document: FlowDocument) -> Response {
    let etag = HeaderValue::from_str(&version(&document));
    let mut response = Json(document).into_response();
    if let Ok(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
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
