//! `POST /api/flows/{flow}/rename`: a new Flow with the same spec (layout included), every node
//! moved to it (node names stay) and owned by it, then the old Flow deleted. Moving a node
//! changes its spec, so it is rebuilt.

use axum::response::Response;
use serde_json::Value;
use weir_api::{Problem, Rename};
use weir_model::{FlowName, Kind};
use weir_store::{DynamicObject, StoreError};

use super::{
    access::Caller,
    document,
    error::ApiError,
    extract::{Body, FlowAt},
    modify::modify_object,
};

/// Renames a flow; answers with the document under its new name.
pub async fn post(
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
    body: Body,
) -> Result<Response, ApiError> {
    let request: Rename = body.json()?;
    let new = FlowName::new(request.name)
        .map_err(|err| ApiError::invalid(Problem::new(None, "name", err.to_string())))?;
    let new = new.as_str();
    let store = &*caller.store;
    let old = super::document::existing_flow(store, &namespace, &flow).await?;
    let exists = || ApiError::conflict(format!("flow {namespace}/{new} already exists"));
    if new == flow {
        return Err(exists());
    }
    let mut copy: DynamicObject =
        serde_json::from_value(crate::ops::export::clean(&old, false)?)
            .map_err(|err| ApiError::internal(format!("cannot copy flow {flow}: {err}")))?;
    copy.metadata.name = Some(new.to_owned());
    copy.metadata.namespace = Some(namespace.clone());
    let created = store.create(copy).await.map_err(|err| match err {
        StoreError::AlreadyExists(_) => exists(),
        err => err.into(),
    })?;
    let uid = created.metadata.uid.as_deref();
    for node in crate::ops::nodes_of(store, &namespace, &flow).await? {
        let node_name = node.metadata.name.unwrap_or_default();
        modify_object(store, Kind::FlowNode, &namespace, &node_name, |node| {
            let Some(spec) = node.data.get_mut("spec").and_then(Value::as_object_mut) else {
                return false;
            };
            spec.insert("flow".to_owned(), Value::from(new));
            // Owned by the old flow still, the node would go with it below: in a cluster the
            // garbage collector deletes what a deleted object owned.
            crate::controller::owned_by_flow(node, new, uid);
            true
        })
        .await?;
    }
    match store.delete(Kind::Flow, &namespace, &flow).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(document::answer(document::read(store, &namespace, new).await?))
}
