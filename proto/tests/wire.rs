//! Failures keep their kind across a real gRPC hop on loopback, and a deadline set by the
//! caller reaches the server and comes back as a cancellation.

use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, transport::Server};
use weir_proto::{
    DeliverRequest, DeliverResponse, Failure,
    deliver_response::Outcome,
    failure_of_status,
    module_client::ModuleClient,
    module_server::{Module, ModuleServer},
};
use weir_sdk::{ErrorKind, NodeError};

/// Answers by port: `echo` returns the message, `invalid`/`transient`/`cancelled`/`internal`
/// fail with that kind, `slow` never answers.
struct Fake;

#[tonic::async_trait]
impl Module for Fake {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        let request = request.into_inner();
        let failure = |error: NodeError| Outcome::Failure(Failure::from(&error));
        let outcome = match request.port.as_str() {
            "echo" => Outcome::AnswerJson(request.message_json),
            "invalid" => failure(NodeError::invalid("in.name: must not be empty")),
            "transient" => failure(NodeError::transient("registry answered 429")),
            "cancelled" => failure(NodeError::cancelled("the run was cancelled")),
            "internal" => failure(NodeError::internal("a bug")),
            _ => std::future::pending().await,
        };
        Ok(Response::new(DeliverResponse { outcome: Some(outcome) }))
    }

    type InspectStream = tokio_stream::Empty<Result<weir_proto::NodeEvent, Status>>;

    async fn inspect(
        &self,
        _: Request<weir_proto::InspectRequest>,
    ) -> Result<Response<Self::InspectStream>, Status> {
        Err(Status::unimplemented("the fake has no nodes to inspect"))
    }

    type DeliverAlongEdgesStream = tokio_stream::Empty<Result<weir_proto::EdgeAnswer, Status>>;

    async fn deliver_along_edges(
        &self,
        _: Request<tonic::Streaming<weir_proto::EdgeDelivery>>,
    ) -> Result<Response<Self::DeliverAlongEdgesStream>, Status> {
        Err(Status::unimplemented("the fake answers only unary deliveries"))
    }
}

async fn serve() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder().add_service(ModuleServer::new(Fake)).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ),
    );
    (address, stop)
}

fn request(port: &str) -> DeliverRequest {
    DeliverRequest {
        namespace: "default".to_owned(),
        node: "copy".to_owned(),
        port: port.to_owned(),
        message_json: br#"{"image":"nginx"}"#.to_vec(),
        trigger_json: b"{}".to_vec(),
        hops: 3,
        source_node: "plan".to_owned(),
        source_port: "out".to_owned(),
        attempt: 2,
        parent_span_id: 7,
    }
}

#[tokio::test]
async fn failure_kinds_survive_the_hop() {
    let (address, stop) = serve().await;
    let mut client = ModuleClient::connect(address).await.expect("connect");
    let answer = client.deliver(request("echo")).await.expect("call").into_inner();
    assert_eq!(answer.outcome, Some(Outcome::AnswerJson(br#"{"image":"nginx"}"#.to_vec())));
    for (port, kind) in [
        ("invalid", ErrorKind::Invalid),
        ("transient", ErrorKind::Transient),
        ("cancelled", ErrorKind::Cancelled),
        ("internal", ErrorKind::Internal),
    ] {
        let response = client.deliver(request(port)).await.expect("call").into_inner();
        let Some(Outcome::Failure(failure)) = response.outcome else {
            panic!("{port}: no failure")
        };
        let error = NodeError::from(failure);
        assert_eq!(error.kind(), kind, "{port}");
        assert_eq!(error.is_retryable(), kind == ErrorKind::Transient);
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn the_callers_deadline_reaches_the_server() {
    let (address, stop) = serve().await;
    let mut client = ModuleClient::connect(address).await.expect("connect");
    let mut call = Request::new(request("slow"));
    call.set_timeout(Duration::from_millis(100));
    let status = client.deliver(call).await.expect_err("a call past its deadline");
    let error = failure_of_status(&status, "distribution");
    assert_eq!(error.kind(), ErrorKind::Cancelled, "{status:?}");
    assert!(error.message().starts_with("module distribution: "), "{error}");
    let _ = stop.send(());
}

#[test]
fn an_unknown_kind_from_a_newer_peer_is_never_retried() {
    let error =
        NodeError::from(Failure { kind: 42, message: "new".to_owned(), ..Failure::default() });
    assert_eq!(error.kind(), ErrorKind::Internal);
}

#[test]
fn a_failure_whose_retries_are_spent_stays_so_across_the_wire() {
    let spent = NodeError::transient("registry answered 503").with_retries_spent();
    let back = NodeError::from(Failure::from(&spent));
    assert_eq!(back, spent);
    assert!(!back.is_retryable(), "no edge in the calling module retries it again");
    let fresh = NodeError::from(Failure::from(&NodeError::transient("503")));
    assert!(fresh.is_retryable());
}

#[test]
fn a_retry_after_crosses_the_wire() {
    let throttled = NodeError::transient("slack answered 429")
        .with_retry_after(Duration::from_secs(3))
        .with_retries_spent();
    assert_eq!(NodeError::from(Failure::from(&throttled)), throttled);
    let plain = NodeError::from(Failure::from(&NodeError::transient("503")));
    assert_eq!(plain.retry_after(), None);
}

#[test]
fn a_refusal_on_the_stream_reads_as_the_status_it_stands_for() {
    for (status, kind) in [
        (Status::permission_denied("not along an edge"), ErrorKind::Internal),
        (Status::deadline_exceeded("no answer within 50ms"), ErrorKind::Cancelled),
        (Status::resource_exhausted("too many under way"), ErrorKind::Transient),
        (Status::unavailable("the module stopped"), ErrorKind::Transient),
    ] {
        let back = Status::from(weir_proto::Refusal::from(&status));
        assert_eq!((back.code(), back.message()), (status.code(), status.message()));
        assert_eq!(failure_of_status(&back, "m").kind(), kind, "{status:?}");
    }
}
