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
        ..DeliverRequest::default()
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
    let server = tokio::spawn(weir_runtime::grpc::serve(rt.clone(), listener, None, stop.clone()));
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

    // Stopping lets a delivery under way run for the drain, then cancels it: a call that would
    // never end does not hold the process.
    let mut stuck = client.clone();
    let under_way = tokio::spawn(async move { stuck.deliver(request("stuck", &json!({}))).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = std::time::Instant::now();
    stop.cancel();
    tokio::time::timeout(weir_runtime::grpc::DRAIN + support::PATIENCE, server)
        .await
        .expect("the server stopped")
        .expect("no panic")
        .expect("served");
    let drained = stopping.elapsed();
    assert!(drained >= weir_runtime::grpc::DRAIN, "stopped after {drained:?}, before the drain");
    let cut = tokio::time::timeout(support::PATIENCE, under_way).await.expect("the caller hears");
    let status = cut.expect("no panic").expect_err("the delivery under way was cancelled");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

/// Two runtimes, as two module processes would be: an edge from one reaches a node of the
/// other over gRPC, transient failures are retried across the wire, and when the other module
/// dies the delivery fails with a clear, retryable error instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_reaches_a_node_in_another_module() {
    use support::{Flaky, Relay, Sink, key, node_in};
    use weir_runtime::Runtime;
    use weir_sdk::Module;

    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right =
        Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>().component::<Flaky>()]);
    let far = node_in("right", "far", "sink", json!({}), json!([]));
    let shaky = node_in(
        "right",
        "shaky",
        "flaky",
        json!({ "failures": 2, "kind": "transient" }),
        json!([]),
    );
    for node in [&far, &shaky] {
        right.apply(node).await.expect("a node of the right module");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let server =
        tokio::spawn(weir_runtime::grpc::serve(right.clone(), listener, None, stop.clone()));

    let edge = |target: &str| json!([{ "port": "out", "to": { "node": target, "port": "in" }, "retry": { "attempts": 3, "initialBackoff": "1ms" }, "timeout": "5s" }]);
    let near = node_in("left", "near", "relay", json!({ "tag": "near" }), edge("far"));
    let to_shaky = node_in("left", "to-shaky", "relay", json!({}), edge("shaky"));
    for node in [&near, &to_shaky] {
        left.apply(node).await.expect("a node of the left module");
    }
    // The right side knows the flow's edges, as its host would from the store.
    for node in [&far, &shaky, &near, &to_shaky] {
        right.wire(key(node.metadata.name.as_deref().unwrap_or_default()), node);
    }
    left.serve("right", weir_runtime::replicas::Replicas::single(&endpoint));
    left.route(key("far"), "right", "sink");
    left.route(key("shaky"), "right", "flaky");

    let answer =
        left.send(&key("near"), "in", json!({ "path": [] })).await.expect("remote delivery");
    assert_eq!(
        answer,
        json!({ "got": { "path": ["near"] }, "trigger": { "path": [] }, "hops": 1 })
    );
    let answer =
        left.send(&key("to-shaky"), "in", json!({})).await.expect("retried across the wire");
    assert_eq!(answer, json!({ "calls": 3 }));

    // A delivery that claims an edge the store does not hold is refused, and nothing runs.
    let mut client = ModuleClient::connect(endpoint.clone()).await.expect("connect");
    for (source, port) in [("near", "other"), ("to-shaky", "out"), ("ghost", "out")] {
        let claim = DeliverRequest {
            node: "far".to_owned(),
            port: "in".to_owned(),
            source_node: source.to_owned(),
            source_port: port.to_owned(),
            ..request("far", &json!({ "forged": true }))
        };
        let status = client.deliver(claim).await.expect_err("a forged edge");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().starts_with("not along an edge: node test/"), "{status:?}");
    }
    assert_eq!(right.counters(&key("far")).map(|c| c.messages_in), Some(1), "the real edge's only");

    // The run's trace crosses the wire: the far side's events carry the near side's trace id.
    let mut far_events = ModuleClient::connect(endpoint.clone())
        .await
        .expect("connect")
        .inspect(weir_proto::InspectRequest { nodes: vec!["far".to_owned()], ..Default::default() })
        .await
        .expect("inspect")
        .into_inner();
    let mut near_events = left.inspect();
    left.send(&key("near"), "in", json!({ "path": [] })).await.expect("remote delivery");
    let near = near_events.recv().await.expect("an event at the near side");
    let far = tokio::time::timeout(support::PATIENCE, far_events.message())
        .await
        .expect("an event within patience")
        .expect("the stream")
        .expect("an event");
    assert_eq!((far.node.as_str(), far.kind()), ("far", weir_proto::EventKind::Received));
    assert_eq!(far.trace_id, near.trace.trace_hex().to_string());
    assert_eq!(
        serde_json::from_slice::<Value>(&far.message_json).expect("json"),
        json!({ "path": ["near"] })
    );

    // Probes see the module serving.
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .expect("a URL")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: "weir.v1.Module".to_owned() })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(status.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    stop.cancel();
    tokio::time::timeout(support::PATIENCE, server)
        .await
        .expect("stopped")
        .expect("no panic")
        .expect("served");
    let err = tokio::time::timeout(
        support::PATIENCE,
        left.send(&key("near"), "in", json!({ "path": [] })),
    )
    .await
    .expect("a dead module does not hang the caller")
    .expect_err("delivered to a dead module");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.message().starts_with(&format!("module {endpoint}")), "{err}");
}
