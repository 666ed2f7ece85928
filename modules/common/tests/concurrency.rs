//! `array_split` with a concurrency bound keeps exactly that many items on their way at once,
//! as the inspect events of the node downstream show.

use serde_json::json;
use weir_runtime::{NodeKey, Runtime, inspect::Observed};

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
fn node(
    name: &str,
    component: &str,
    settings: serde_json::Value,
    to: Option<&str>,
) -> weir_model::FlowNode {
    let edges = to.map_or_else(
        || json!([]),
        |to| json!([{ "port": "out", "to": { "node": to, "port": "in" } }]),
    );
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "FlowNode",
        "metadata": { "name": name, "namespace": "test", "generation": 1 },
        "spec": { "flow": "f", "module": "common", "component": component, "settings": settings, "edges": edges },
    }))
    .expect("a FlowNode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_bound_is_on_its_way_and_the_bound_is_reached() {
    let runtime = Runtime::new(vec![weir_common::module()]);
    runtime
        .apply(&node("split", "array_split", json!({ "concurrency": 3 }), Some("wait")))
        .await
        .expect("split");
    runtime.apply(&node("wait", "delay", json!({ "duration": "50ms" }), None)).await.expect("wait");
    let mut events = runtime.inspect();
    let key = NodeKey { namespace: "test".to_owned(), name: "split".to_owned() };
    let items: Vec<u32> = (0..9).collect();
    let summary = runtime.send(&key, "in", json!({ "items": items })).await.expect("split");
    assert_eq!(summary["succeeded"], 9);
    let (mut on_the_way, mut most) = (0_i32, 0_i32);
    while let Ok(event) = events.try_recv() {
        if event.node.node != "wait" {
            continue;
        }
        match event.what {
            Observed::Received(_) => on_the_way += 1,
            Observed::Answered { .. } | Observed::Failed { .. } => on_the_way -= 1,
            Observed::Emitted(_) | Observed::Logged(_) => {}
        }
        most = most.max(on_the_way);
    }
    assert_eq!(most, 3);
}
