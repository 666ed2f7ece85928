//! What the image mirror's plan costs per tick: `mirror_plan` over 1,000 Deployments (five
//! images in turn, a sidecar already on the mirror in every third, an init container in every
//! fourth, a pull secret in every fifth), as its node receives them, decoded, planned and
//! encoded. The same cluster shape as the former JavaScript plan's benchmark
//! (`modules/js/benches/js.rs` over `bench/js/mirror-plan.js`), so the two compare. Run with
//! `cargo bench -p weir-distribution --bench plan`; results are in docs/benchmarks.md.

use std::time::{Duration, Instant};

use weir_distribution::mirror_plan::MirrorPlan;
use weir_sdk::{Value, json, testing::Harness};

const WORKLOADS: usize = 1_000;
const ROUNDS: usize = 200;

fn workloads() -> Value {
    let images = [
        "nginx:1.27",
        "redis:7",
        "bitnami/postgresql:16",
        "ghcr.io/acme/api:2.3.1",
        "quay.io/prometheus/node-exporter:v1.8.2",
    ];
    let all: Vec<Value> = (0..WORKLOADS)
        .map(|i| {
            let sidecar = if i % 3 == 0 {
                "registry.local:5000/envoyproxy/envoy:v1.31"
            } else {
                "envoyproxy/envoy:v1.31"
            };
            let init: Vec<Value> = (i % 4 == 0)
                .then(|| json!({ "name": "migrate", "image": format!("ghcr.io/acme/migrate:{}", i % 7) }))
                .into_iter()
                .collect();
            let secrets: Vec<&str> = if i % 5 == 0 { vec!["hub"] } else { Vec::new() };
            json!({
                "kind": "Deployment",
                "namespace": format!("team-{}", i % 20),
                "name": format!("app-{i}"),
                "containers": [{ "name": "main", "image": images[i % images.len()] }, { "name": "sidecar", "image": sidecar }],
                "initContainers": init,
                "pullSecrets": secrets,
            })
        })
        .collect();
    json!({ "workloads": all, "complete": true })
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let node = Harness::build::<MirrorPlan>(&json!({
        "mirror": "registry.local:5000", "mirrorSecret": "weir/mirror-login",
    }))
    .expect("the plan builds");
    let input = workloads();
    node.send("in", input.clone()).await.expect("a plan");
    let planned = node.emitted().pop().expect("an emit").message;
    println!("plan: {} images to mirror", planned["items"].as_array().map_or(0, Vec::len));
    let mut took: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let message = input.clone();
        let started = Instant::now();
        node.send("in", message).await.expect("a plan");
        took.push(started.elapsed());
    }
    report("the node, message in and answer out", &mut took);

    // The planning alone, on workloads already decoded.
    let planner = <MirrorPlan as weir_sdk::Component>::build(
        serde_json::from_value(
            json!({ "mirror": "registry.local:5000", "mirrorSecret": "weir/mirror-login" }),
        )
        .expect("settings"),
    )
    .expect("the plan builds");
    let decoded: weir_distribution::mirror_plan::Workloads =
        serde_json::from_value(input).expect("workloads");
    let mut took: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        std::hint::black_box(planner.plan(&decoded.workloads));
        took.push(started.elapsed());
    }
    report("the plan alone", &mut took);
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn report(what: &str, took: &mut [Duration]) {
    took.sort();
    let at = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
    println!(
        "mirror_plan over {WORKLOADS} Deployments, {what}: p50 {:.2?}, p99 {:.2?} ({ROUNDS} plans)",
        at(0.5),
        at(0.99)
    );
}
