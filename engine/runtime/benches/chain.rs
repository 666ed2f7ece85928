//! Per-hop cost of the in-process runtime: one message through a chain of 13 nodes (12 hops),
//! with pass-through edges, with a small jq mapping on every edge, and with pass-through edges
//! while each delivery's span is recorded (handed to a sink that keeps nothing: the runtime's
//! share of tracing, without the exporter's). Run with
//! `cargo bench -p weir-runtime --bench chain`; results are recorded in docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{sync::Arc, time::Instant};

use support::{key, node, runtime};
use weir_runtime::spans::{DeliverySpan, Spans};
use weir_sdk::{Value, json};

const NODES: usize = 13;
const WARMUP: u32 = 2_000;
const ROUNDS: u32 = 50_000;

/// On a thread with the stack the `weir` binary gives its workers, so that mappings evaluate in
/// place there as they do in Weir (on a smaller stack each evaluation would first make itself
/// a stack of its own, which is not what a hop costs).
fn main() {
    std::thread::Builder::new()
        .stack_size(weir_model::mapping::THREAD_STACK)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(measure());
        })
        .expect("a thread")
        .join()
        .expect("the benchmark ran");
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
async fn measure() {
    for (label, mapping, traced) in [
        ("pass-through edges", None, false),
        (
            "jq mapping on every edge",
            Some(json!({ "value": "{{ .value + 1 }}", "name": "{{ .name }}" })),
            false,
        ),
        ("pass-through edges, spans recorded", None, true),
    ] {
        let rt = runtime();
        if traced {
            rt.export_spans(Arc::new(Sink));
        }
        for i in 0..NODES {
            let name = format!("n{i}");
            let edges = if i + 1 < NODES {
                let mut edge =
                    json!({ "port": "out", "to": { "node": format!("n{}", i + 1), "port": "in" } });
                if let Some(mapping) = &mapping {
                    edge["mapping"] = mapping.clone();
                }
                json!([edge])
            } else {
                json!([])
            };
            let component = if i + 1 < NODES { "relay" } else { "sink" };
            rt.apply(&node(&name, component, json!({}), edges)).await.expect("node builds");
        }
        let first = key("n0");
        let message = json!({ "value": 1, "name": "web" });
        for _ in 0..WARMUP {
            rt.send(&first, "in", message.clone()).await.expect("delivery");
        }
        let started = Instant::now();
        let mut last = Value::Null;
        for _ in 0..ROUNDS {
            last = rt.send(&first, "in", message.clone()).await.expect("delivery");
        }
        let elapsed = started.elapsed();
        let hops = (NODES - 1) as f64 * f64::from(ROUNDS);
        println!(
            "{label}: {:.3} µs per hop ({ROUNDS} messages through {NODES} nodes in {elapsed:.2?}; last answer {})",
            elapsed.as_secs_f64() * 1e6 / hops,
            last["got"]
        );
        rt.shutdown().await;
    }
}

/// Takes spans and keeps nothing, so the runtime's own cost of recording them is measured.
#[derive(Debug)]
struct Sink;

impl Spans for Sink {
    fn record(&self, span: &DeliverySpan) {
        std::hint::black_box(span);
    }
}
