//! What a js_eval node costs per message: the image mirror's former plan script
//! (`bench/js/mirror-plan.js`) over 1,000 Deployments, and a trivial transform. Run
//! with `cargo bench -p weir-js --bench js`; `bench/js/node-vm.js` runs the same script in
//! Node's `vm` (what a Node-RED function node uses) on the same input, both of which this bench
//! writes to the temporary directory.

use std::time::{Duration, Instant};

use weir_js::js_eval::JsEval;
use weir_sdk::{Value, json, testing::Harness};

/// Deployments as the image mirror once listed them: five images in turn, a sidecar that is mirrored
/// already in every third, an init container in every fourth, a pull secret in every fifth.
fn deployments(count: usize) -> Value {
    let images = [
        "nginx:1.27",
        "redis:7",
        "bitnami/postgresql:16",
        "ghcr.io/acme/api:2.3.1",
        "quay.io/prometheus/node-exporter:v1.8.2",
    ];
    let list: Vec<Value> = (0..count)
        .map(|i| {
            let sidecar = if i % 3 == 0 { "registry.local:5000/envoyproxy/envoy:v1.31" } else { "envoyproxy/envoy:v1.31" };
            let init = if i % 4 == 0 { json!([{ "name": "migrate", "image": format!("ghcr.io/acme/migrate:{}", i % 7) }]) } else { json!([]) };
            let secrets = if i % 5 == 0 { json!(["hub"]) } else { json!([]) };
            json!({
                "namespace": format!("team-{}", i % 20),
                "name": format!("app-{i}"),
                "containers": [{ "name": "main", "image": images[i % images.len()] }, { "name": "sidecar", "image": sidecar }],
                "initContainers": init,
                "pullSecrets": secrets,
            })
        })
        .collect();
    json!({
        "deployments": list,
        "settings": {
            "mirror": "registry.local:5000", "prefix": "mirror", "mirrorSecret": "weir/mirror-login",
            "mirrorPlainHttp": false, "plainHttpSources": [], "platforms": [], "namespaces": [],
            "excludeNamespaces": ["kube-system"],
        },
    })
}

/// The plan script.
fn plan_script() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/js/mirror-plan.js"))
        .expect("bench/js/mirror-plan.js")
}

async fn measure(node: &Harness, input: &Value, warmup: usize, rounds: usize) -> Vec<Duration> {
    for _ in 0..warmup {
        node.send("in", input.clone()).await.expect("a warm-up call");
    }
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        node.send("in", input.clone()).await.expect("a call");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn report(what: &str, latencies: &[Duration]) {
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
    let total: Duration = latencies.iter().sum();
    println!(
        "{what}: p50 {:.1} µs, p99 {:.1} µs, {:.0} messages/s ({} messages)",
        at(0.5),
        at(0.99),
        latencies.len() as f64 / total.as_secs_f64(),
        latencies.len()
    );
}

#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = plan_script();
    let input = deployments(1000);
    let written = std::env::temp_dir().join("weir-js-plan-input.json");
    std::fs::write(&written, serde_json::to_vec(&input).expect("json")).expect("write the input");
    let script = std::env::temp_dir().join("weir-js-plan.mjs");
    std::fs::write(&script, &plan).expect("write the script");
    println!("input and script written to {} and {}", written.display(), script.display());

    let node =
        Harness::build::<JsEval>(&json!({ "script": plan, "timeout": "10s", "memoryMib": 256 }))
            .expect("the plan builds");
    node.send("in", input.clone()).await.expect("a plan");
    let output = node.emitted().pop().expect("an emit").message;
    println!("plan: {} images to mirror", output["items"].as_array().map_or(0, Vec::len));
    report("plan over 1,000 Deployments", &measure(&node, &input, 20, 200).await);

    let trivial =
        Harness::build::<JsEval>(&json!({ "script": "export default (x) => ({ n: x.n + 1 });" }))
            .expect("builds");
    report("trivial transform", &measure(&trivial, &json!({ "n": 1 }), 1_000, 20_000).await);
}
