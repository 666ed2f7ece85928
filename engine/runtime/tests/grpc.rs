//! Deliveries from another module over gRPC on loopback: the answer of the local chain comes
//! back, the run's trigger and hop count carry on, failures keep their kind, and a caller's
//! deadline cancels the delivery.

mod support;

use std::time::Duration;

use support::{node, runtime, to};
use tokio_util::sync::CancellationToken;
use weir_proto::{
    DeliverRequest, deliver_response::Outcome, failure_of_status, module_client::ModuleClient,
};
use weir_sdk::{ErrorKind, NodeError, Value, json};

fn request(node: &str, message: &Value) -> DeliverRequest {
    DeliverRequest {
        namespace: "test".to_owned(),
        node: node.to_owned(),
        port: "in".to_owned(),
        message_json: serde_json::to_vec(message).expect("json"),
        trigger_json: br#"{"started":"elsewhere"}"#.to_vec(),
        hops: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_module_delivers_over_grpc() {
    let rt = runtime();
    rt.apply(&node("relay", "relay", json!({ "tag": "r" }), to("sink"))).await.expect("relay");
    rt.apply(&node("sink", "sink", json!({}), json!([]))).await.expect("sink");
    rt.apply(&node("broken", "flaky", json!({ "failures": 5, "kind": "transient" }), json!([])))
        .await
        .expect("flaky");
    rt.apply(&node("stuck", "stuck", json!({}), json!([]))).await.expect("stuck");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let server = tokio::spawn(weir_runtime::grpc::serve(rt.clone(), listener, stop.clone()));
    let mut client = ModuleClient::connect(address).await.expect("connect");

    let response =
        client.deliver(request("relay", &json!({ "path": [] }))).await.expect("call").into_inner();
    let Some(Outcome::AnswerJson(answer)) = response.outcome else {
        panic!("no answer: {response:?}")
    };
    let answer: Value = serde_json::from_slice(&answer).expect("json answer");
    assert_eq!(
        answer,
        json!({ "got": { "path": ["r"] }, "trigger": { "started": "elsewhere" }, "hops": 4 })
    );

    let response = client.deliver(request("broken", &json!({}))).await.expect("call").into_inner();
    let Some(Outcome::Failure(failure)) = response.outcome else {
        panic!("no failure: {response:?}")
    };
    let error = NodeError::from(failure);
    assert_eq!((error.kind(), error.message()), (ErrorKind::Transient, "failure 1"));

    let response = client.deliver(request("nobody", &json!({}))).await.expect("call").into_inner();
    let Some(Outcome::Failure(failure)) = response.outcome else {
        panic!("no failure: {response:?}")
    };
    assert_eq!(NodeError::from(failure).message(), "node test/nobody is not running");

    let mut call = tonic::Request::new(request("stuck", &json!({})));
    call.set_timeout(Duration::from_millis(100));
    let status = client.deliver(call).await.expect_err("a call past its deadline");
    assert_eq!(failure_of_status(&status, "test").kind(), ErrorKind::Cancelled, "{status:?}");

    stop.cancel();
    tokio::time::timeout(support::PATIENCE, server)
        .await
        .expect("the server stopped")
        .expect("no panic")
        .expect("served");
}
