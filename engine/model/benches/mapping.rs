//! A mapping over a Pod, as a resource watch hands one on: the common shapes evaluated on the
//! message itself, beside the same values asked of jaq (written as `… as $v | $v`, outside
//! those shapes), which first converts the whole Pod into its own values. Run with
//! `cargo bench -p weir-model --bench mapping`; results are recorded in docs/benchmarks.md.

use std::time::Instant;

use serde_json::{Value, json};
use weir_model::mapping::Mapping;

const WARMUP: u32 = 2_000;
const ROUNDS: u32 = 50_000;

/// On a thread with the stack the `weir` binary gives its workers, where jq evaluates in place
/// (elsewhere each evaluation would first make itself a stack).
fn main() {
    std::thread::Builder::new()
        .stack_size(weir_model::mapping::THREAD_STACK)
        .spawn(measure)
        .expect("a thread")
        .join()
        .expect("the benchmark ran");
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn measure() {
    let pod = pod();
    println!("a Pod of {} bytes of JSON", pod.to_string().len());
    let direct = json!({
        "name": "{{ .metadata.name }}",
        "namespace": "{{ .metadata.namespace }}",
        "restarts": "{{ .status.containerStatuses[0].restartCount + 0 }}",
        "failed": "{{ .status.phase == \"Failed\" }}",
    });
    let through_jaq = json!({
        "name": "{{ .metadata.name as $v | $v }}",
        "namespace": "{{ .metadata.namespace as $v | $v }}",
        "restarts": "{{ .status.containerStatuses[0].restartCount as $v | $v + 0 }}",
        "failed": "{{ .status.phase as $v | $v == \"Failed\" }}",
    });
    let mut answers = Vec::new();
    for (label, document) in [("common shapes", direct), ("through jaq", through_jaq)] {
        let mapping = Mapping::compile(&document).expect("the mapping compiles");
        for _ in 0..WARMUP {
            mapping.evaluate(&pod, &Value::Null).expect("it evaluates");
        }
        let started = Instant::now();
        let mut answer = Value::Null;
        for _ in 0..ROUNDS {
            answer = mapping.evaluate(&pod, &Value::Null).expect("it evaluates");
        }
        let each = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
        println!("{label}: {each:.2} µs a mapping ({ROUNDS} rounds; {answer})");
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "both ways give the same value");
}

/// A Pod as the apiserver returns it (`bench/pod.json`): managed fields, a container with its
/// environment and mounts, conditions and a container's status.
fn pod() -> Value {
    serde_json::from_str(include_str!("../../../bench/pod.json")).expect("a Pod")
}
