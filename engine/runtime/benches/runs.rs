//! Flow runs per second in one process, as `weir up` runs them: each run enters a `relay` (where
//! a trigger's emit would), goes through a `common/router` that routes on `.n % 2`, and along a
//! jq mapping to a `sink` that answers: 3 nodes, 2 hops, one mapping. Runs are started as fast
//! as they complete, with 1, 8 and 64 in flight, on a runtime of 2 workers with the stack the
//! `weir` binary gives them. Run with `cargo bench -p weir-runtime --bench runs` (beside Node-RED:
//! `bench/runs.sh`); results are recorded in docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use support::{key, node, node_in};
use weir_runtime::Runtime;
use weir_sdk::json;

const WARMUP: usize = 20_000;
const RUNS: usize = 200_000;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(weir_model::mapping::THREAD_STACK)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(measure());
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
async fn measure() {
    let rt = Runtime::new(vec![support::module(), weir_common::module()]);
    let route = |parity: &str| {
        json!({
            "port": parity,
            "to": { "node": "answer", "port": "in" },
            "mapping": { "value": "{{ .n * 2 }}", "parity": parity },
        })
    };
    let routes =
        json!({ "routes": [{ "name": "even", "condition": ".n % 2 == 0" }], "default": true });
    let nodes = [
        node(
            "entry",
            "relay",
            json!({}),
            json!([{ "port": "out", "to": { "node": "route", "port": "in" } }]),
        ),
        node_in("common", "route", "router", routes, json!([route("even"), route("default")])),
        node("answer", "sink", json!({}), json!([])),
    ];
    for flow_node in &nodes {
        rt.apply(flow_node).await.expect("node builds");
    }
    for in_flight in [1, 8, 64] {
        runs(&rt, in_flight, WARMUP).await;
        let started = Instant::now();
        let wrong = runs(&rt, in_flight, RUNS).await;
        let elapsed = started.elapsed();
        println!(
            "{in_flight} in flight: {:.0} runs/s ({RUNS} runs of 3 nodes in {elapsed:.2?}; {wrong} wrong answers)",
            RUNS as f64 / elapsed.as_secs_f64(),
        );
    }
    rt.shutdown().await;
}

/// Starts `total` runs, `in_flight` at a time, each as soon as one finished; how many answered
/// wrongly.
async fn runs(rt: &Runtime, in_flight: usize, total: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (rt, next, wrong) = (rt.clone(), Arc::clone(&next), Arc::clone(&wrong));
            tokio::spawn(async move {
                let entry = key("entry");
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    let answer = rt.send(&entry, "in", json!({ "n": n })).await.expect("a run");
                    let parity = if n % 2 == 0 { "even" } else { "default" };
                    if answer["got"]["value"] != n * 2 || answer["got"]["parity"] != parity {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task");
    }
    wrong.load(Ordering::Relaxed)
}
