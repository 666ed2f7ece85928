//! What authenticating a module call costs: the cross-module hop of
//! `weir-runtime`'s `grpc_hop` bench, to a receiver that answers anyone (as `weir up` does, on
//! loopback) and, in turns in the same run, to one behind the cluster's gate
//! (`weir_engine::gate::ClusterGate`) with the sender presenting a ServiceAccount token of the
//! real test apiserver. Both receivers check that the delivery follows an edge. Run with
//! `cargo bench -p weir-engine --bench authenticated_hop`; results are recorded in
//! docs/benchmarks.md.

#[path = "../runtime/tests/support/mod.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use support::{Relay, Sink, key, node_in};
use tokio_util::sync::CancellationToken;
use weir_engine::gate::ClusterGate;
use weir_runtime::{
    Runtime,
    trust::{Bearer, Gate},
};
use weir_sdk::{Module, json};
use weir_testenv::ControlPlane;

const WARMUP: usize = 1_000;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 4_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(measure());
}

/// A receiving module serving `far` on loopback, behind `gate` when given; its endpoint.
async fn receiver(gate: Option<Arc<dyn Gate>>, stop: &CancellationToken) -> String {
    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>()]);
    let far = node_in("right", "far", "sink", json!({}), json!([]));
    right.apply(&far).await.expect("far");
    right.wire(key("far"), &far);
    right.wire(key("near"), &near());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(weir_runtime::grpc::serve(right, listener, gate, stop.clone()));
    endpoint
}

fn near() -> weir_model::FlowNode {
    let edges = json!([{ "port": "out", "to": { "node": "far", "port": "in" } }]);
    node_in("left", "near", "relay", json!({}), edges)
}

/// `count` deliveries through `left`, each timed.
async fn deliveries(left: &Runtime, count: usize) -> Vec<Duration> {
    let message = json!({ "image": "docker.io/library/nginx:1.27", "namespace": "web" });
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        left.send(&key("near"), "in", message.clone()).await.expect("delivery");
        took.push(started.elapsed());
    }
    took
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
async fn measure() {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("bench").await.expect("a namespace");
    let (_, token) = plane.admin_account(&namespace, "peer").await.expect("a peer account");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(plane.kubeconfig()).expect("the admin kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a config");
    let stop = CancellationToken::new();
    let gate: Arc<dyn Gate> = Arc::new(ClusterGate::new(config, &namespace, &["peer".to_owned()]));
    let open = receiver(None, &stop).await;
    let gated = receiver(Some(gate), &stop).await;
    let sender = |endpoint: String| {
        let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
        left.present(Bearer::Token(token.clone()));
        left.serve("right", weir_runtime::replicas::Replicas::single(&endpoint));
        left.route(key("far"), "right", "sink");
        left
    };
    let (to_open, to_gated) = (sender(open), sender(gated));
    for left in [&to_open, &to_gated] {
        left.apply(&near()).await.expect("near");
        deliveries(left, WARMUP).await;
    }
    let (mut open_took, mut gated_took) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        open_took.extend(deliveries(&to_open, PER_ROUND).await);
        gated_took.extend(deliveries(&to_gated, PER_ROUND).await);
    }
    for (what, took) in [("open", &mut open_took), ("authenticated", &mut gated_took)] {
        took.sort();
        let at = |p: f64| took[((took.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
        println!(
            "hop to a module that is {what}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} messages)",
            at(0.5),
            at(0.99),
            at(1.0),
            took.len()
        );
    }
    stop.cancel();
}
