//! What authenticating a module call costs: the cross-module hop of
//! `weir-runtime`'s `grpc_hop` bench, to a receiver that answers anyone (as `weir up` does, on
//! loopback) and, in turns in the same run, to one behind the cluster's gate
//! (`weir_engine::gate::ClusterGate`) with the sender presenting a ServiceAccount token of the
//! real test apiserver. Both receivers check that the delivery follows an edge. Run with
//! `cargo bench -p weir-engine --bench authenticated_hop`; results are recorded in
//! docs/benchmarks.md.

#[path = "../runtime/tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use support::{far_module, hops_timed, near_module, serve_on_loopback, two_workers};
use tokio_util::sync::CancellationToken;
use weir_engine::gate::ClusterGate;
use weir_runtime::trust::{Bearer, Gate};
use weir_testenv::ControlPlane;

const WARMUP: usize = 1_000;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 4_000;

fn main() {
    two_workers().block_on(measure());
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
    let open = serve_on_loopback(far_module().await, None, &stop).await;
    let gated = serve_on_loopback(far_module().await, Some(gate), &stop).await;
    let (to_open, to_gated) = (near_module(&open).await, near_module(&gated).await);
    for left in [&to_open, &to_gated] {
        left.present(Bearer::Token(token.clone()));
        hops_timed(left, WARMUP).await;
    }
    let (mut open_took, mut gated_took) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        open_took.extend(hops_timed(&to_open, PER_ROUND).await);
        gated_took.extend(hops_timed(&to_gated, PER_ROUND).await);
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
