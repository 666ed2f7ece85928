//! Latency of one cross-module hop: a relay in one runtime delivers to a sink in another over
//! gRPC on loopback, one message at a time. Run with `cargo bench -p weir-runtime --bench
//! grpc_hop`; results are recorded in docs/benchmarks.md. The two sides run on runtimes of their
//! own, two workers each, as two module processes would.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Relay, Sink, key, node_in};
use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;
use weir_sdk::{Module, json};

const WARMUP: usize = 1_000;
const ROUNDS: usize = 20_000;

fn main() {
    // Each side gets a runtime of its own, as two module processes would.
    let stop = CancellationToken::new();
    let (endpoint_tx, endpoint_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn({
        let stop = stop.clone();
        move || runtime().block_on(serve_sink(endpoint_tx, stop))
    });
    let endpoint = endpoint_rx.recv().expect("the sink side starts");
    runtime().block_on(measure(endpoint));
    stop.cancel();
    let _ = server.join();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The sending node, whose edge the receiving side checks deliveries against.
fn near() -> weir_model::FlowNode {
    let edges = json!([{ "port": "out", "to": { "node": "far", "port": "in" } }]);
    node_in("left", "near", "relay", json!({}), edges)
}

async fn serve_sink(endpoint: std::sync::mpsc::Sender<String>, stop: CancellationToken) {
    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>()]);
    let far = node_in("right", "far", "sink", json!({}), json!([]));
    right.apply(&far).await.expect("far");
    right.wire(key("far"), &far);
    right.wire(key("near"), &near());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let _ = endpoint.send(format!("http://{}", listener.local_addr().expect("address")));
    weir_runtime::grpc::serve(right, listener, None, stop).await.expect("the sink side serves");
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
async fn measure(endpoint: String) {
    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    left.apply(&near()).await.expect("near");
    left.serve("right", weir_runtime::replicas::Replicas::single(&endpoint));
    left.route(key("far"), "right", "sink");

    let message = json!({ "image": "docker.io/library/nginx:1.27", "namespace": "web" });
    let mut latencies = Vec::with_capacity(ROUNDS);
    for round in 0..WARMUP + ROUNDS {
        let started = Instant::now();
        left.send(&key("near"), "in", message.clone()).await.expect("delivery");
        if round >= WARMUP {
            latencies.push(started.elapsed());
        }
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "cross-module hop over gRPC on loopback: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({ROUNDS} messages)",
        micros(percentile(0.50)),
        micros(percentile(0.99)),
        micros(percentile(1.0)),
    );
}
