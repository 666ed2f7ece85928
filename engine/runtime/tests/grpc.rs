//! Deliveries from another module over gRPC on loopback: the answer of the local chain comes
//! back, the run's trigger and hop count carry on, failures keep their kind, and a caller's
//! deadline cancels the delivery, by a call and on the stream of deliveries along edges.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use support::{node, runtime, to};
use tokio_util::sync::CancellationToken;
use weir_proto::{
    DeliverRequest, DeliverResponse, EdgeAnswer, EdgeDelivery, deliver_response::Outcome,
    edge_answer, failure_of_status, module_client::ModuleClient,
};
use weir_runtime::{
    grpc::STREAM_IN_FLIGHT,
    spans::{DeliverySpan, Outcome as Ended, Spans},
};
use weir_sdk::{Component, Context, Description, ErrorKind, NodeError, Port, Value, json};

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

    // What is not JSON is refused before any node runs, naming the field.
    let cut_short = br#"{"a":"#.to_vec();
    let bad_message =
        DeliverRequest { message_json: cut_short.clone(), ..request("sink", &json!({})) };
    let bad_trigger = DeliverRequest { trigger_json: cut_short, ..request("sink", &json!({})) };
    for (field, broken) in [("message_json", bad_message), ("trigger_json", bad_trigger)] {
        let status = client.deliver(broken).await.expect_err("not JSON");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(&format!("{field} is not JSON: EOF")), "{status:?}");
    }
    let sink = support::key("sink");
    assert_eq!(rt.counters(&sink).map(|c| c.messages_in), Some(1), "the relay's delivery only");

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

/// The spans of the deliveries a runtime handled: node and how each ended.
#[derive(Debug, Default)]
struct Kept(std::sync::Mutex<Vec<(String, Ended)>>);

impl Spans for Kept {
    fn record(&self, span: &DeliverySpan) {
        let kept = (span.node.node.clone(), span.outcome.clone());
        self.0.lock().expect("not poisoned").push(kept);
    }
}

impl Kept {
    /// How many deliveries to `node` were dropped before they ended.
    fn dropped(&self, node: &str) -> usize {
        let kept = self.0.lock().expect("not poisoned");
        kept.iter().filter(|(at, outcome)| at == node && *outcome == Ended::Dropped).count()
    }
}

/// A delivery along `source` (node, port) to `node`'s `in`, as a frame of the stream.
fn framed(id: u64, node: &str, source: (&str, &str), timeout: Duration) -> EdgeDelivery {
    let request = DeliverRequest {
        source_node: source.0.to_owned(),
        source_port: source.1.to_owned(),
        ..request(node, &json!({ "path": [] }))
    };
    let timeout_micros = u64::try_from(timeout.as_micros()).expect("a short timeout");
    EdgeDelivery { id, request: Some(request), timeout_micros, ..EdgeDelivery::default() }
}

/// Waits for the next answer on `answers`, for a test's patience at most.
async fn next(answers: &mut tonic::Streaming<EdgeAnswer>) -> EdgeAnswer {
    tokio::time::timeout(support::PATIENCE, answers.message())
        .await
        .expect("an answer within patience")
        .expect("the stream")
        .expect("an answer")
}

/// The stream of deliveries along edges: each delivery on it passes the checks a call does (a
/// claimed edge the store lacks is refused, and so is a delivery naming no edge), its deadline
/// and its cancellation reach the receiver, which drops it, and the receiver takes only a
/// bounded number under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_on_a_stream_is_checked_and_cancelled_on_its_own() {
    let rt = runtime();
    let kept = Arc::new(Kept::default());
    rt.export_spans(Arc::clone(&kept) as Arc<dyn Spans>);
    let edges = json!([
        { "port": "out", "to": { "node": "far", "port": "in" } },
        { "port": "out", "to": { "node": "stuck", "port": "in" } },
    ]);
    let nodes = [
        node("near", "relay", json!({}), edges),
        node("far", "sink", json!({}), json!([])),
        node("stuck", "stuck", json!({}), json!([])),
    ];
    for node in &nodes {
        rt.apply(node).await.expect("a node");
        rt.wire(support::key(node.metadata.name.as_deref().unwrap_or_default()), node);
    }
    let stop = CancellationToken::new();
    let address = support::serve_on_loopback(rt.clone(), None, &stop).await;
    let mut client = ModuleClient::connect(address).await.expect("connect");
    let (frames, outbound) = tokio::sync::mpsc::channel(2 * STREAM_IN_FLIGHT);
    let mut answers = client
        .deliver_along_edges(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .expect("a stream")
        .into_inner();
    let send = |frame| {
        let frames = frames.clone();
        async move { frames.send(frame).await.expect("the stream takes frames") }
    };
    let refusal = |answer: EdgeAnswer| match answer.outcome {
        Some(edge_answer::Outcome::Refusal(refusal)) => tonic::Status::from(refusal),
        other => panic!("not refused: {other:?}"),
    };

    send(framed(1, "far", ("near", "out"), support::PATIENCE)).await;
    let answer = next(&mut answers).await;
    assert_eq!(answer.id, 1);
    let Some(edge_answer::Outcome::Response(DeliverResponse {
        outcome: Some(Outcome::AnswerJson(answer)),
    })) = answer.outcome
    else {
        panic!("no answer: {answer:?}")
    };
    let answer: Value = serde_json::from_slice(&answer).expect("json answer");
    assert_eq!(answer["got"], json!({ "path": [] }));

    for (id, source) in [(2, ("near", "other")), (3, ("ghost", "out"))] {
        send(framed(id, "far", source, support::PATIENCE)).await;
        let answer = next(&mut answers).await;
        assert_eq!(answer.id, id);
        let status = refusal(answer);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().starts_with("not along an edge: node test/"), "{status:?}");
    }
    send(framed(4, "far", ("", ""), support::PATIENCE)).await;
    let status = refusal(next(&mut answers).await);
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(rt.counters(&support::key("far")).map(|c| c.messages_in), Some(1));

    // Past its deadline, a delivery fails as a call past its deadline does, and the receiver
    // dropped it.
    send(framed(5, "stuck", ("near", "out"), Duration::from_millis(50))).await;
    let status = refusal(next(&mut answers).await);
    assert_eq!(failure_of_status(&status, "test").kind(), ErrorKind::Cancelled, "{status:?}");
    support::eventually(|| kept.dropped("stuck") == 1).await;

    // Cancelled by the sender once it is under way: dropped, and the cancellation
    // acknowledged by an answer with no outcome.
    let mut events = rt.inspect();
    send(framed(6, "stuck", ("near", "out"), Duration::ZERO)).await;
    while events.recv().await.expect("an event").node.node != "stuck" {}
    send(EdgeDelivery { id: 6, cancel: true, ..EdgeDelivery::default() }).await;
    support::eventually(|| kept.dropped("stuck") == 2).await;
    let acknowledged = next(&mut answers).await;
    assert_eq!((acknowledged.id, acknowledged.outcome), (6, None));

    // The receiver takes only so many under way on one stream.
    let first = 100;
    for id in first..=first + STREAM_IN_FLIGHT as u64 {
        send(framed(id, "stuck", ("near", "out"), Duration::ZERO)).await;
    }
    let answer = next(&mut answers).await;
    assert_eq!(answer.id, first + STREAM_IN_FLIGHT as u64, "the one past the bound");
    let status = refusal(answer);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(failure_of_status(&status, "test").kind(), ErrorKind::Transient);
    stop.cancel();
}

/// An edge from `out` to `target`'s `in` that tries once and waits `timeout` for the answer.
fn once_within(target: &str, timeout: &str) -> Value {
    json!([{ "port": "out", "to": { "node": target, "port": "in" }, "timeout": timeout, "retry": { "attempts": 1 } }])
}

/// A TCP forwarder on loopback, standing in for the network between two modules.
struct Forwarder {
    /// Its endpoint.
    address: String,
    /// Cancelled, cuts the connections made so far, as a network failure would.
    cuts: Arc<std::sync::Mutex<CancellationToken>>,
    /// Cancelled, stops moving bytes but holds every connection open, as a peer that went
    /// silent (a node lost, a cut that drops packets) would.
    silence: CancellationToken,
    /// How many connections it took.
    connections: Arc<AtomicUsize>,
}

async fn forwarder(upstream: String) -> Forwarder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let cuts = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
    let (silence, connections) = (CancellationToken::new(), Arc::new(AtomicUsize::new(0)));
    tokio::spawn({
        let (cuts, silence, connections) =
            (Arc::clone(&cuts), silence.clone(), Arc::clone(&connections));
        async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let cut = cuts.lock().expect("not poisoned").clone();
                let (silence, upstream) = (silence.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.cancelled() => {}
                        () = silence.cancelled() => std::future::pending().await,
                    }
                });
            }
        }
    });
    Forwarder { address, cuts, silence, connections }
}

/// Deliveries along edges between two runtimes go on one stream: an edge's timeout drops the
/// delivery at the receiver too, and a stream whose connection breaks fails the deliveries
/// under way as transient, as a broken call does, and the next delivery opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_fails_its_deliveries_as_transient_and_opens_again() {
    use support::{Relay, Sink, Stuck, key, node_in};
    use weir_runtime::Runtime;
    use weir_sdk::Module;

    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right =
        Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>().component::<Stuck>()]);
    let kept = Arc::new(Kept::default());
    right.export_spans(Arc::clone(&kept) as Arc<dyn Spans>);
    // One attempt: a retry would only go to the stuck node again.
    let nodes = [
        node_in("right", "far", "sink", json!({}), json!([])),
        node_in("right", "stuck", "stuck", json!({}), json!([])),
        node_in("left", "near", "relay", json!({}), once_within("far", "5s")),
        node_in("left", "impatient", "relay", json!({}), once_within("stuck", "100ms")),
        node_in("left", "patient", "relay", json!({}), once_within("stuck", "1h")),
    ];
    build_across(&left, &right, &nodes).await;
    let stop = CancellationToken::new();
    let endpoint = support::serve_on_loopback(right.clone(), None, &stop).await;
    let Forwarder { address: through, cuts, .. } = forwarder(endpoint).await;
    left.serve("right", weir_runtime::replicas::Replicas::single(&through));
    left.route(key("far"), "right", "sink");
    left.route(key("stuck"), "right", "stuck");

    left.send(&key("near"), "in", json!({})).await.expect("a delivery");
    let late = left.send(&key("impatient"), "in", json!({})).await.expect_err("past its timeout");
    assert_eq!(late.kind(), ErrorKind::Cancelled, "{late}");
    support::eventually(|| kept.dropped("stuck") == 1).await;

    let mut events = right.inspect();
    let under_way = tokio::spawn({
        let left = left.clone();
        async move { left.send(&key("patient"), "in", json!({})).await }
    });
    while events.recv().await.expect("an event").node.node != "stuck" {}
    cuts.lock().expect("not poisoned").cancel();
    *cuts.lock().expect("not poisoned") = CancellationToken::new();
    let broken = tokio::time::timeout(support::PATIENCE, under_way)
        .await
        .expect("a broken stream does not hang its deliveries")
        .expect("no panic")
        .expect_err("the connection broke under it");
    assert_eq!(broken.kind(), ErrorKind::Transient, "{broken}");
    assert!(broken.message().starts_with(&format!("module {through}: ")), "{broken}");
    // The receiver dropped what nobody waits for any more.
    support::eventually(|| kept.dropped("stuck") == 2).await;
    let answer = left.send(&key("near"), "in", json!({ "path": [] })).await.expect("a new stream");
    assert_eq!(answer["got"], json!({ "path": [""] }));
    stop.cancel();
}

/// Computes for 20 ms before it answers, without yielding, as a node with a heavy mapping or
/// script would; counts how many of its deliveries run at once.
struct Busy;

static BUSY_NOW: AtomicUsize = AtomicUsize::new(0);
static BUSY_MOST: AtomicUsize = AtomicUsize::new(0);

impl Component for Busy {
    const NAME: &'static str = "busy";
    type Settings = support::RelaySettings;
    fn describe() -> Description {
        Description { label: "Busy", ..Description::default() }
    }
    fn ports(_: &support::RelaySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }
    fn build(_: support::RelaySettings) -> Result<Self, NodeError> {
        Ok(Self)
    }
    async fn handle(&self, _: &Context, _: &str, _: Value) -> Result<Value, NodeError> {
        let now = BUSY_NOW.fetch_add(1, Ordering::SeqCst) + 1;
        BUSY_MOST.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        BUSY_NOW.fetch_sub(1, Ordering::SeqCst);
        Ok(Value::Null)
    }
}

/// A receiver makes a stream's delivery's first poll on the stream's own task only while such
/// polls are quick: once a node computed for 20 ms in one, the deliveries behind it run on
/// tasks of their own, side by side, rather than one after another on the stream's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_slow_first_poll_a_streams_deliveries_run_side_by_side() {
    use support::{Relay, key, node_in};
    use weir_runtime::Runtime;
    use weir_sdk::Module;

    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Busy>()]);
    let edge = json!([{ "port": "out", "to": { "node": "busy", "port": "in" } }]);
    let nodes = [
        node_in("right", "busy", "busy", json!({}), json!([])),
        node_in("left", "near", "relay", json!({}), edge),
    ];
    build_across(&left, &right, &nodes).await;
    let stop = CancellationToken::new();
    let endpoint = support::serve_on_loopback(right.clone(), None, &stop).await;
    left.serve("right", weir_runtime::replicas::Replicas::single(&endpoint));
    left.route(key("busy"), "right", "busy");

    left.send(&key("near"), "in", json!({})).await.expect("the first delivery");
    assert_eq!(BUSY_MOST.load(Ordering::SeqCst), 1);
    let near = key("near");
    let sends = (0..4).map(|_| left.send(&near, "in", json!({})));
    for answer in futures::future::join_all(sends).await {
        answer.expect("a delivery");
    }
    assert!(
        BUSY_MOST.load(Ordering::SeqCst) >= 2,
        "deliveries behind a slow one waited for each other"
    );
    stop.cancel();
}

/// Builds each of `nodes` in the runtime of its module, `right` or else `left`, and has `right`
/// (the receiving side, which checks deliveries against them) know the edges of all.
async fn build_across(
    left: &weir_runtime::Runtime,
    right: &weir_runtime::Runtime,
    nodes: &[weir_model::FlowNode],
) {
    for node in nodes {
        let runtime = if node.spec.module.as_str() == "right" { right } else { left };
        runtime.apply(node).await.expect("a node");
        right.wire(support::key(node.metadata.name.as_deref().unwrap_or_default()), node);
    }
}

/// Refuses every token, as a cluster that knows none of them would. Its module answers only
/// callers with a token; the test's sender presents none, so it is refused before this is asked.
#[derive(Debug)]
struct NobodyKnown;

#[tonic::async_trait]
impl weir_runtime::trust::Gate for NobodyKnown {
    async fn caller(&self, _: &str) -> Result<weir_runtime::trust::Caller, tonic::Status> {
        Err(tonic::Status::unauthenticated("the cluster does not know the token"))
    }
    async fn may_send(
        &self,
        _: &weir_runtime::trust::Caller,
        _: &str,
        _: &weir_runtime::NodeKey,
    ) -> Result<(), tonic::Status> {
        Err(tonic::Status::permission_denied("nobody may send"))
    }
}

/// What a stream of deliveries cannot carry fails that delivery alone, naming the module: a
/// delivery over the largest frame a module takes (invalid, naming its size; the stream goes
/// on), a peer that does not speak HTTP/2 (transient), a module that refuses the stream (its
/// refusal), an endpoint that is not an `http://` URL (invalid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_names_what_it_cannot_carry() {
    use support::{Relay, Sink, key, node_in};
    use weir_runtime::{Runtime, replicas::Replicas};
    use weir_sdk::Module;

    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>()]);
    let guarded = Runtime::new(vec![Module::new("guarded", "0.0.0").component::<Sink>()]);
    let edge = |target: &str| once_within(target, "5s");
    let nodes = [
        node_in("right", "far", "sink", json!({}), json!([])),
        node_in("left", "near", "relay", json!({}), edge("far")),
        node_in("left", "to-http1", "relay", json!({}), edge("http1")),
        node_in("left", "to-guarded", "relay", json!({}), edge("guarded")),
        node_in("left", "to-nowhere", "relay", json!({}), edge("nowhere")),
    ];
    build_across(&left, &right, &nodes).await;
    let stop = CancellationToken::new();
    let served = support::serve_on_loopback(right.clone(), None, &stop).await;
    let Forwarder { address: endpoint, connections, .. } = forwarder(served).await;
    let gate: Arc<dyn weir_runtime::trust::Gate> = Arc::new(NobodyKnown);
    let guarded_endpoint = support::serve_on_loopback(guarded, Some(gate), &stop).await;
    // Answers every connection as an HTTP/1.1 server would a request it cannot read.
    let http1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let http1_endpoint = format!("http://{}", http1.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = http1.accept().await {
            use tokio::io::AsyncWriteExt as _;
            let _ =
                socket.write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n").await;
        }
    });
    left.serve("right", Replicas::single(&endpoint));
    left.serve("http1", Replicas::single(&http1_endpoint));
    left.serve("guarded", Replicas::single(&guarded_endpoint));
    left.serve("nowhere", Replicas::single("ftp://127.0.0.1:1"));
    left.route(key("far"), "right", "sink");
    left.route(key("http1"), "http1", "sink");
    left.route(key("guarded"), "guarded", "sink");
    left.route(key("nowhere"), "nowhere", "sink");

    let answer = left.send(&key("near"), "in", json!({ "path": [] })).await.expect("the stream");
    assert_eq!(answer["got"], json!({ "path": [""] }));
    let big = json!({ "path": [], "blob": "x".repeat(5 * 1024 * 1024) });
    let err = left.send(&key("near"), "in", big).await.expect_err("over the largest frame");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(err.message().starts_with(&format!("module {endpoint}: the delivery is ")), "{err}");
    assert!(err.message().ends_with("bytes, over the 4194304 a module takes"), "{err}");
    let answer = left.send(&key("near"), "in", json!({ "path": [] })).await.expect("the stream");
    assert_eq!(answer["got"], json!({ "path": [""] }));
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the same stream before and after");

    let patiently = |node: &'static str| {
        let left = left.clone();
        async move {
            tokio::time::timeout(support::PATIENCE, left.send(&key(node), "in", json!({})))
                .await
                .expect("a failure, not a hang")
                .expect_err("undeliverable")
        }
    };
    let err = patiently("to-http1").await;
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.message().starts_with(&format!("module {http1_endpoint}: ")), "{err}");

    let err = patiently("to-guarded").await;
    assert_eq!(
        err.message(),
        format!(
            "module {guarded_endpoint}: this module answers only callers with a Kubernetes bearer token"
        ),
    );

    let err = patiently("to-nowhere").await;
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert_eq!(
        err.message(),
        r#"module endpoint "ftp://127.0.0.1:1" is not an http://HOST:PORT URL"#
    );
    stop.cancel();
}

/// A module that takes the stream and then neither reads nor answers (a module acknowledges
/// each cancellation): a cancelled delivery's frame cannot be taken back from the
/// connection, so past 256 cancellations with no answer the stream is given up (what waits on it fails as transient, naming why) rather than
/// piling frames up, and the next delivery opens another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_answers_nothing_is_given_up_after_a_links_room_of_cancellations() {
    use support::{Relay, key, node_in};
    use weir_runtime::{Runtime, replicas::Replicas};
    use weir_sdk::Module;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let streams = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let streams = Arc::clone(&streams);
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                let streams = Arc::clone(&streams);
                tokio::spawn(async move {
                    // Room for every frame the test sends, unread.
                    let handshake = h2::server::Builder::new()
                        .initial_window_size(1 << 20)
                        .initial_connection_window_size(1 << 20)
                        .data_frame_budget(usize::MAX / 2)
                        .handshake::<_, bytes::Bytes>(socket);
                    let Ok(mut connection) = handshake.await else { return };
                    let mut taken = Vec::new();
                    while let Some(Ok((request, mut respond))) = connection.accept().await {
                        streams.fetch_add(1, Ordering::SeqCst);
                        let headers = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .expect("a response");
                        let answers = respond.send_response(headers, false);
                        taken.push((request, answers));
                    }
                });
            }
        }
    });
    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let edge = |timeout: &str| once_within("far", timeout);
    left.apply(&node_in("left", "impatient", "relay", json!({}), edge("20ms")))
        .await
        .expect("a node");
    left.apply(&node_in("left", "patient", "relay", json!({}), edge("1h"))).await.expect("a node");
    left.serve("right", Replicas::single(&endpoint));
    left.route(key("far"), "right", "sink");

    let mut patient = tokio::spawn({
        let left = left.clone();
        async move { left.send(&key("patient"), "in", json!({})).await }
    });
    // Deliveries cancelled before the stream opened are taken back, not cancelled on it: a
    // few waves more than the link's room.
    let impatient = key("impatient");
    let given_up = format!(
        "module {endpoint}: no answer on the stream while more than 256 deliveries were cancelled, so the stream was given up"
    );
    let (mut waves, mut cancelled) = (0, 0);
    let patient = loop {
        assert!(waves < 6, "the stream was not given up after {waves} waves of 64 cancellations");
        let wave =
            futures::future::join_all((0..64).map(|_| left.send(&impatient, "in", json!({}))));
        for failure in wave.await {
            let err = failure.expect_err("nothing answers");
            if err.kind() == ErrorKind::Cancelled {
                cancelled += 1;
            } else {
                assert_eq!(err.message(), given_up);
            }
        }
        waves += 1;
        if let Ok(patient) = tokio::time::timeout(Duration::from_millis(50), &mut patient).await {
            break patient;
        }
    };
    assert!(cancelled > 256, "given up after {cancelled} cancellations");
    let err = patient.expect("no panic").expect_err("nothing answers");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(err.message(), given_up);
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    let _ = left.send(&impatient, "in", json!({})).await;
    support::eventually(|| streams.load(Ordering::SeqCst) == 2).await;
}

/// A peer that goes silent without closing the connection (a node lost, a network cut that
/// drops packets) fails what waits on the stream when a ping goes unanswered, in seconds and
/// naming why, not at the edge's timeout (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_found_out_by_an_unanswered_ping() {
    use support::{Relay, Sink, Stuck, key, node_in};
    use weir_runtime::{Runtime, replicas::Replicas};
    use weir_sdk::Module;

    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right =
        Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>().component::<Stuck>()]);
    let edge = |target: &str| once_within(target, "1h");
    let nodes = [
        node_in("right", "far", "sink", json!({}), json!([])),
        node_in("right", "stuck", "stuck", json!({}), json!([])),
        node_in("left", "near", "relay", json!({}), edge("far")),
        node_in("left", "patient", "relay", json!({}), edge("stuck")),
    ];
    build_across(&left, &right, &nodes).await;
    let stop = CancellationToken::new();
    let served = support::serve_on_loopback(right.clone(), None, &stop).await;
    let Forwarder { address: endpoint, silence, .. } = forwarder(served).await;
    left.serve("right", Replicas::single(&endpoint));
    left.route(key("far"), "right", "sink");
    left.route(key("stuck"), "right", "stuck");
    left.send(&key("near"), "in", json!({})).await.expect("a delivery before the silence");

    let waiting = tokio::spawn({
        let left = left.clone();
        async move { left.send(&key("patient"), "in", json!({})).await }
    });
    silence.cancel();
    let err = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("found out within a ping's interval and timeout")
        .expect("no panic")
        .expect_err("the peer went silent");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(
        err.message(),
        format!("module {endpoint}: no answer to a ping within 5s, so the connection was dropped")
    );
    stop.cancel();
}
