//! Latency of one cross-module hop: a relay in one runtime delivers to a sink in another over
//! gRPC on loopback, one message at a time. Run with `cargo bench -p weir-runtime --bench
//! grpc_hop`; results are recorded in docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Relay, Sink, key, node_in};
use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;
use weir_sdk::{Module, json};

const WARMUP: usize = 1_000;
const ROUNDS: usize = 20_000;

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>()]);
    right.apply(&node_in("right", "far", "sink", json!({}), json!([]))).await.expect("far");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let server = tokio::spawn(weir_runtime::grpc::serve(right.clone(), listener, stop.clone()));
    let edges = json!([{ "port": "out", "to": { "node": "far", "port": "in" } }]);
    left.apply(&node_in("left", "near", "relay", json!({}), edges)).await.expect("near");
    left.route(key("far"), endpoint);

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
    stop.cancel();
    let _ = server.await;
}
