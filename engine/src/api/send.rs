//! `POST /api/send`: delivers a message to a node's input port, starting a run, as `weir send`
//! does (through the gRPC endpoint the node's module publishes), and answers with what the flow
//! answered.

use axum::Json;
use serde_json::Value;
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
    let target = (request.node.as_str(), request.port.as_str());
    let answer = deliver_as(&caller, &namespace, target, &request.message, request.timeout).await?;
    Ok(Json(Answer { answer }))
}

/// Delivers `message` to a node's input port for `caller`, who needs the right to change the
/// node, within `timeout` (`weir send`'s default when none); what the flow answered.
pub(super) async fn deliver_as(
    caller: &Caller,
    namespace: &str,
    (node, port): (&str, &str),
    message: &Value,
    timeout: Option<HumanDuration>,
) -> Result<Value, ApiError> {
    let timeout = match timeout {
        Some(timeout) => timeout,
        None => crate::ops::send::DEFAULT_TIMEOUT
            .parse::<HumanDuration>()
            .map_err(|err| ApiError::internal(format!("the default send timeout: {err}")))?,
    };
    // Reading a node is not enough to make it act: sending takes the right to change it.
    caller.may("update", namespace, node).await?;
    let bearer = caller.token.as_deref();
    deliver(&*caller.store, namespace, (node, port), message, timeout.get(), bearer).await.map_err(
        |err| match err {
            SendError::TooLong { .. } => ApiError::bad_request(err.to_string()),
            SendError::NoNode { .. } => ApiError::not_found(err.to_string()),
            SendError::Store { source, .. } => source.into(),
            SendError::NotRunning { .. }
            | SendError::NoEndpoint { .. }
            | SendError::Ambiguous { .. }
            | SendError::BadAnswer { .. } => ApiError::unreachable(err.to_string()),
            SendError::Unreachable { ref source, .. } => {
                ApiError::unreachable(format!("{err}: {source}"))
            }
            SendError::Failed { node, port, error } => {
                let message = format!("{node}:{port} failed: {}", error.message());
                ApiError::node(&error, message)
            }
        },
    )
}
