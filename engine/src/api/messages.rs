//! The last messages seen at each node (kept by `recorder.rs`) for the editor's debug panel:
//! `GET /api/nodes/{node}/messages?limit=N`, or every node of a flow at once with
//! `GET /api/flows/{flow}/messages?limit=N`.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::header,
    response::IntoResponse,
};
use weir_model::Kind;
use weir_store::StoreError;

use super::{
    access::Caller,
    error::ApiError,
    extract::{FlowAt, Params, name},
    recorder::PER_NODE,
    state::Api,
};

/// How many events `GET …/messages` answers with when not told.
const DEFAULT_LIMIT: usize = 20;

/// A node's latest `message` events, oldest first, as a JSON array.
pub async fn list(
    State(api): State<Api>,
    caller: Caller,
    Path(node): Path<String>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let node = name("node", "the path", &node)?;
    let namespace = params.namespace()?;
    let limit = params.limit(DEFAULT_LIMIT, PER_NODE)?;
    // Read the node so a wrong name is a 404, not an empty list.
    caller.store.get(Kind::FlowNode, &namespace, &node).await.map_err(|err| match err {
        StoreError::NotFound(_) => {
            ApiError::not_found(format!("node {namespace}/{node} does not exist"))
        }
        err => err.into(),
    })?;
    let events = api.feed.recorder().latest(&namespace, &node, limit);
    // Each event is JSON already: join them rather than parse them back.
    let body = format!("[{}]", events.iter().map(|e| &**e).collect::<Vec<_>>().join(","));
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

/// The latest `message` events of every node of a flow (each node's oldest first), as a JSON
/// array: what the editor's debug panel starts from when it opens a flow, in one request.
pub async fn list_for_flow(
    State(api): State<Api>,
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let limit = params.limit(DEFAULT_LIMIT, PER_NODE)?;
    super::document::existing_flow(&*caller.store, &namespace, &flow).await?;
    let nodes = crate::ops::nodes_of(&*caller.store, &namespace, &flow).await?;
    let recorder = api.feed.recorder();
    let events: Vec<Arc<str>> = nodes
        .iter()
        .filter_map(|node| node.metadata.name.as_deref())
        .flat_map(|node| recorder.latest(&namespace, node, limit))
        .collect();
    let body = format!("[{}]", events.iter().map(|e| &**e).collect::<Vec<_>>().join(","));
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}
