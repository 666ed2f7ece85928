//! `POST /api/send`: delivers a message to a node's input port, starting a run, as `weir send`
//! does (through the gRPC endpoint the node's module publishes), and answers with what the flow
//! answered.

use axum::Json;
use weir_api::{Answer, SendRequest};
use weir_model::HumanDuration;

use super::{
    access::Caller,
    error::ApiError,
    extract::{Body, Params},
};
use crate::ops::{error::SendError, send::deliver};

/// Sends the message; answers `{"answer": …}`.
pub async fn post(caller: Caller, params: Params, body: Body) -> Result<Json<Answer>, ApiError> {
    let request: SendRequest = body.json()?;
    let namespace = params.namespace()?;
    let timeout = match request.timeout {
        Some(timeout) => timeout,
        None => crate::ops::send::DEFAULT_TIMEOUT
            .parse::<HumanDuration>()
            .map_err(|err| ApiError::internal(format!("the default send timeout: {err}")))?,
    };
    let (node, port) = (request.node.as_str(), request.port.as_str());
    // Reading a node is not enough to make it act: sending takes the right to change it.
    caller.may("update", &namespace, node).await?;
    let message = &request.message;
    let bearer = caller.token.as_deref();
    let answer = deliver(&*caller.store, &namespace, (node, port), message, timeout.get(), bearer)
        .await
        .map_err(|err| match err {
            SendError::NoNode { .. } => ApiError::not_found(err.to_string()),
            SendError::Store { source, .. } => source.into(),
            SendError::NotRunning { .. }
            | SendError::NoEndpoint { .. }
            | SendError::BadAnswer { .. } => ApiError::unreachable(err.to_string()),
            SendError::Unreachable { ref source, .. } => {
                ApiError::unreachable(format!("{err}: {source}"))
            }
            SendError::Failed { node, port, error } => {
                let message = format!("{node}:{port} failed: {}", error.message());
                ApiError::node(&error, message)
            }
        })?;
    Ok(Json(Answer { answer }))
}
