//! `GET /api/flows`, `GET /api/flows/{flow}` and `DELETE /api/flows/{flow}`.

use axum::{Json, extract::Path, http::StatusCode};
use weir_model::Kind;

use super::{
    access::Caller,
    document::{self, FlowDocument, FlowSummary},
    error::ApiError,
    extract::{Params, name},
};

/// Every flow with its number of nodes, sorted by name.
pub async fn list(caller: Caller, params: Params) -> Result<Json<Vec<FlowSummary>>, ApiError> {
    Ok(Json(document::list(&*caller.store, &params.namespace()?).await?))
}

/// One flow with its nodes.
pub async fn get(
    caller: Caller,
    Path(flow): Path<String>,
    params: Params,
) -> Result<Json<FlowDocument>, ApiError> {
    let flow = name("flow", "the path", &flow)?;
    Ok(Json(document::read(&*caller.store, &params.namespace()?, &flow).await?))
}

/// Deletes a flow and its nodes.
pub async fn delete(
    caller: Caller,
    Path(flow): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let flow = name("flow", "the path", &flow)?;
    let namespace = params.namespace()?;
    crate::ops::delete::delete(&*caller.store, Kind::Flow, &namespace, &flow, |_, _| {})
        .await
        .map_err(|err| match ApiError::from(err) {
            ApiError::Failed { status: StatusCode::NOT_FOUND, .. } => {
                ApiError::not_found(format!("flow {namespace}/{flow} does not exist"))
            }
            other => other,
        })?;
    Ok(StatusCode::NO_CONTENT)
}
