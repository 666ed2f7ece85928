//! The one client of a delivery to a module: a delivery along an edge to another module
//! (`peers`, over its stream, `link`) and a message from outside any flow (`weir send`, the
//! editor's send, one unary `weir.v1.Module/Deliver` call) build the same request and read the
//! same outcome.

use std::time::Duration;

use serde_json::Value;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use weir_proto::{
    DeliverRequest, DeliverResponse, deliver_response::Outcome, failure_of_status,
    module_client::ModuleClient,
};
use weir_sdk::{NodeError, TraceContext, Trigger};

use crate::key::NodeKey;

/// The metadata entry that carries the W3C trace context of a delivery.
pub const TRACEPARENT: &str = "traceparent";

/// One message for a node in a module process.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The node.
    pub target: &'a NodeKey,
    /// Its input port.
    pub port: &'a str,
    /// The message.
    pub message: &'a Value,
    /// The run's first message (`$trigger` in mappings); none when this message starts the
    /// run, and so is its own trigger.
    pub trigger: Option<&'a Trigger>,
    /// How many hops the run has gone.
    pub hops: u32,
    /// The edge's source node and port; none from outside any flow.
    pub source: Option<(&'a str, &'a str)>,
    /// The delivery's place in its run's trace: its span in `traceparent`, its parent in the
    /// request.
    pub trace: TraceContext,
    /// Which attempt of the edge's retry policy this is, from 1.
    pub attempt: u32,
}

/// Why a delivery got no answer.
#[derive(Debug)]
pub enum Undelivered {
    /// The node, the flow downstream or the call failed, with the failure's kind.
    Failed(NodeError),
    /// The module answered with something that is not an answer.
    BadAnswer(&'static str),
}

impl<'a> Delivery<'a> {
    /// A message for `target`'s `port` from outside any flow (`weir send`, the editor): it
    /// starts a run, as its trigger, and is the run's first delivery.
    pub fn starting_run(target: &'a NodeKey, port: &'a str, message: &'a Value) -> Self {
        Self {
            target,
            port,
            message,
            trigger: None,
            hops: 0,
            source: None,
            trace: TraceContext::default().child(),
            attempt: 1,
        }
    }

    /// The request that carries the delivery, by a call or on a stream.
    pub(crate) fn request(&self) -> Result<DeliverRequest, Undelivered> {
        let encode = |value: &Value| {
            serde_json::to_vec(value)
                .map_err(|err| Undelivered::Failed(NodeError::internal(err.to_string())))
        };
        let (source_node, source_port) = self.source.unwrap_or_default();
        let message_json = encode(self.message)?;
        // A trigger that came from another module goes on as the JSON it came in.
        let trigger_json = self.trigger.map_or_else(|| message_json.clone(), |t| t.json().to_vec());
        Ok(DeliverRequest {
            namespace: self.target.namespace.clone(),
            node: self.target.name.clone(),
            port: self.port.to_owned(),
            message_json,
            trigger_json,
            hops: self.hops,
            source_node: source_node.to_owned(),
            source_port: source_port.to_owned(),
            attempt: self.attempt,
            parent_span_id: self.trace.parent_id,
        })
    }
}

/// Delivers through `client` to the module `who` names (its endpoint or name, for messages)
/// in one call with deadline `timeout`, presenting `authorization` (`Bearer TOKEN`) where the
/// module answers only authenticated callers, and reads the outcome: the answer, or the
/// failure with its kind.
pub async fn deliver(
    client: &mut ModuleClient<Channel>,
    who: &str,
    delivery: Delivery<'_>,
    timeout: Duration,
    authorization: Option<MetadataValue<Ascii>>,
) -> Result<Value, Undelivered> {
    let mut request = tonic::Request::new(delivery.request()?);
    request.set_timeout(timeout);
    if let Some(authorization) = authorization {
        request.metadata_mut().insert("authorization", authorization);
    }
    if let Ok(traceparent) = delivery.trace.traceparent().parse() {
        request.metadata_mut().insert(TRACEPARENT, traceparent);
    }
    let response = client
        .deliver(request)
        .await
        .map_err(|status| Undelivered::Failed(failure_of_status(&status, who)))?;
    outcome(response.into_inner())
}

/// What a module answered a delivery with: the answer, or the failure with its kind.
pub(crate) fn outcome(response: DeliverResponse) -> Result<Value, Undelivered> {
    match response.outcome {
        Some(Outcome::AnswerJson(answer)) => {
            serde_json::from_slice(&answer).map_err(|_| Undelivered::BadAnswer("bad JSON"))
        }
        Some(Outcome::Failure(failure)) => Err(Undelivered::Failed(failure.into())),
        None => Err(Undelivered::BadAnswer("neither an answer nor a failure")),
    }
}
