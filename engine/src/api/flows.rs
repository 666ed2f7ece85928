//! `GET /api/flows`, `GET /api/flows/{flow}` and `DELETE /api/flows/{flow}`.

use axum::{Json, http::StatusCode, response::Response};
use weir_model::Kind;

use super::{
    access::Caller,
    document::{self, FlowSummary},
    error::ApiError,
    extract::{FlowAt, Params},
};

/// Every flow with its number of nodes, sorted by name.
pub async fn list(caller: Caller, params: Params) -> Result<Json<Vec<FlowSummary>>, ApiError> {
    Ok(Json(document::list(&*caller.store, &params.namespace()?).await?))
}

/// One flow with its nodes, its version as the `ETag`.
pub async fn get(caller: Caller, FlowAt { flow, namespace }: FlowAt) -> Result<Response, ApiError> {
    Ok(document::answer(document::read(&*caller.store, &namespace, &flow).await?))
}

/// Deletes a flow and its nodes.
pub async fn delete(
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
) -> Result<StatusCode, ApiError> {
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
