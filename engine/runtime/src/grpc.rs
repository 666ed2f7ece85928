//! The receiving side of `weir.v1.Module/Deliver`: other modules deliver messages along edges
//! to the nodes this runtime hosts. A caller's deadline or disconnect drops the delivery, which
//! cancels everything under it.

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use weir_proto::{
    DeliverRequest, DeliverResponse, Failure,
    deliver_response::Outcome,
    module_server::{Module, ModuleServer},
};
use weir_sdk::Run;

use crate::{NodeKey, Runtime};

/// Serves deliveries to `runtime`'s nodes on `listener` until `stop` is cancelled.
pub async fn serve(
    runtime: Runtime,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(ModuleServer::new(Deliveries { runtime }))
        // Without TCP_NODELAY an answer's last frame can wait for the caller's delayed ACK.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop.cancelled_owned(),
        )
        .await
}

struct Deliveries {
    runtime: Runtime,
}

#[tonic::async_trait]
impl Module for Deliveries {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        let request = request.into_inner();
        let message = json(&request.message_json, "message_json")?;
        let trigger = if request.trigger_json.is_empty() {
            Value::Null
        } else {
            json(&request.trigger_json, "trigger_json")?
        };
        let target = NodeKey { namespace: request.namespace, name: request.node };
        let run = Run {
            trigger: Arc::new(trigger),
            hops: request.hops,
            cancel: CancellationToken::new(),
        };
        let outcome = match self.runtime.receive(&target, &request.port, message, run).await {
            Ok(answer) => Outcome::AnswerJson(
                serde_json::to_vec(&answer).map_err(|err| Status::internal(err.to_string()))?,
            ),
            Err(error) => Outcome::Failure(Failure::from(&error)),
        };
        Ok(Response::new(DeliverResponse { outcome: Some(outcome) }))
    }
}

fn json(bytes: &[u8], field: &str) -> Result<Value, Status> {
    serde_json::from_slice(bytes)
        .map_err(|err| Status::invalid_argument(format!("{field} is not JSON: {err}")))
}
