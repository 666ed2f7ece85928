//! `PUT /api/flows/{flow}` saves a whole flow: the Flow and every node given are created or
//! updated (a node whose spec did not change is not written, so its generation and status
//! stay), and the flow's other nodes are deleted. A save made over a version (`If-Match`, the
//! `ETag` the flow was read with) is refused when the flow changed since, and one made as a new
//! flow (`If-None-Match: *`) when the flow exists, so nobody's change is overwritten unseen. In a cluster, secret settings given as values go into a Secret of the
//! node's and the node keeps references (`secret_settings`). `POST /api/validate` runs the same
//! checks and saves nothing.

use std::collections::HashSet;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::Response,
};
use weir_api::Validation;
use weir_model::Kind;
use weir_store::StoreError;

use super::{
    access::Caller,
    check::{Checked, check},
    document::{self, FlowDocument},
    error::ApiError,
    extract::{Body, FlowAt, Params},
    secret_settings,
    state::Api,
};
use crate::ops::apply::apply_one;

/// Saves a flow document; answers with the document as saved and its new version.
pub async fn put(
    State(api): State<Api>,
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let submitted: FlowDocument = body.json()?;
    let checked = check(&api, &*caller.store, &namespace, Some(&flow), submitted).await?;
    if let Some(over) = headers.get(header::IF_MATCH) {
        unchanged_since(&caller, &namespace, &flow, over).await?;
    }
    let new = headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == b"*");
    save(&caller, &namespace, &flow, checked, new).await?;
    Ok(document::answer(document::read(&*caller.store, &namespace, &flow).await?))
}

/// Fails with 412 unless the stored flow is at a version `over` names (`*`: any, so long as the
/// flow exists). Checked just before writing; a save landing in between still wins, as the
/// objects of a flow cannot be written together.
async fn unchanged_since(
    caller: &Caller,
    namespace: &str,
    flow: &str,
    over: &HeaderValue,
) -> Result<(), ApiError> {
    let current = match document::read(&*caller.store, namespace, flow).await {
        Ok(current) => document::version(&current),
        Err(ApiError::Failed { kind: weir_api::FailureKind::NotFound, .. }) => {
            return Err(ApiError::stale(format!(
                "flow {namespace}/{flow} was deleted since this version of it was read"
            )));
        }
        Err(err) => return Err(err),
    };
    let given = over.to_str().unwrap_or_default();
    if given.trim() == "*" || given.split(',').any(|tag| tag.trim() == current) {
        return Ok(());
    }
    Err(ApiError::stale(format!(
        "flow {namespace}/{flow} was changed by someone else since this version of it was read"
    )))
}

/// The refusal of a new flow (`If-None-Match: *`, what the editor sends for a flow it made)
/// whose name is taken, so that it does not replace the flow of that name unseen.
fn taken(namespace: &str, flow: &str) -> ApiError {
    ApiError::stale(format!(
        "flow {namespace}/{flow} exists already: open it, or give the new flow another name"
    ))
}

/// Deletes the Flow a refused save of a new flow made; should that fail too, the empty Flow
/// stays, and the log says so.
async fn undo_create(store: &dyn weir_store::Store, namespace: &str, flow: &str) {
    match store.delete(Kind::Flow, namespace, flow).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(err) => {
            tracing::warn!(flow = %format!("{namespace}/{flow}"), error = %err, "a refused save left its new, empty flow");
        }
    }
}

/// Checks a flow document: `{"errors": [...]}`, empty when it could be saved.
pub async fn validate(
    State(api): State<Api>,
    caller: Caller,
    params: Params,
    body: Body,
) -> Result<Json<Validation>, ApiError> {
    let submitted: FlowDocument = body.json()?;
    let problems = match check(&api, &*caller.store, &params.namespace()?, None, submitted).await {
        Ok(_) => Vec::new(),
        Err(ApiError::Invalid(problems)) => problems,
        Err(err) => return Err(err),
    };
    Ok(Json(Validation { errors: problems }))
}

/// Writes a checked flow; `new`, it creates the Flow and fails when one of its name exists.
async fn save(
    caller: &Caller,
    namespace: &str,
    flow: &str,
    checked: Checked,
    new: bool,
) -> Result<(), ApiError> {
    let store = &*caller.store;
    let Checked { flow: flow_object, mut nodes, catalogue } = checked;
    let given: HashSet<String> = nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
    // A new flow takes its name before anything else is written: creating the Flow is the
    // check that no flow has it, so none is replaced nor has its nodes' Secrets written over.
    let flow_object = if new {
        match store.create(flow_object).await {
            Ok(_) => None,
            Err(StoreError::AlreadyExists(_)) => return Err(taken(namespace, flow)),
            Err(err) => return Err(err.into()),
        }
    } else {
        Some(flow_object)
    };
    // Secrets before the nodes: a caller who may not write them has changed nothing (a new
    // Flow made above goes again).
    let mut kept_apart = Vec::new();
    if let Some(client) = &caller.client {
        for node in &mut nodes {
            match secret_settings::keep_apart(client, &catalogue, namespace, node).await {
                Ok(Some(secret)) => {
                    kept_apart.push((node.metadata.name.clone().unwrap_or_default(), secret));
                }
                Ok(None) => {}
                Err(err) => {
                    if new {
                        undo_create(store, namespace, flow).await;
                    }
                    return Err(err);
                }
            }
        }
    }
    if let Some(flow_object) = flow_object {
        apply_one(store, flow_object).await?;
    }
    for node in nodes {
        apply_one(store, node).await?;
    }
    if let Some(client) = &caller.client {
        for (node, secret) in &kept_apart {
            secret_settings::own(client, store, namespace, node, secret).await?;
        }
    }
    for node in crate::ops::nodes_of(store, namespace, flow).await? {
        let Some(node_name) = node.metadata.name.filter(|n| !given.contains(n)) else { continue };
        match store.delete(Kind::FlowNode, namespace, &node_name).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
