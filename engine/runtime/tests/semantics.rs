//! The runtime's execution semantics, in one process with small test components: call-tree
//! answers, fan-out, mappings with `$trigger`, schema checks on edges, retries of transient
//! failures only, deadlines, cancellation, the hop limit, rebuilds and build failures.

mod support;

use support::{DESTROYED, PATIENCE, STOPPED, eventually, key, module, node, runtime, to};
use weir_runtime::{BuildError, Runtime};
use weir_sdk::{ErrorKind, json};

#[tokio::test]
async fn an_emit_returns_the_answer_of_the_whole_chain() {
    let rt = runtime();
    rt.apply(&node("a", "relay", json!({ "tag": "a" }), to("b"))).await.unwrap();
    rt.apply(&node("b", "relay", json!({ "tag": "b" }), to("c"))).await.unwrap();
    rt.apply(&node("c", "sink", json!({}), json!([]))).await.unwrap();
    let answer = rt.send(&key("a"), "in", json!({ "path": [] })).await.unwrap();
    assert_eq!(answer["got"], json!({ "path": ["a", "b"] }));
    assert_eq!(answer["hops"], 2);
    assert_eq!(answer["trigger"], json!({ "path": [] }), "the run's first message is its trigger");
    let counters = rt.counters(&key("b")).unwrap();
    assert_eq!((counters.messages_in, counters.messages_out, counters.errors), (1, 1, 0));
}

#[tokio::test]
async fn a_port_with_two_edges_delivers_to_both_and_answers_with_the_first() {
    let rt = runtime();
    let edges = json!([
        { "port": "out", "to": { "node": "first", "port": "in" }, "mapping": { "which": "first" } },
        { "port": "out", "to": { "node": "second", "port": "in" }, "mapping": { "which": "second" } },
    ]);
    rt.apply(&node("split", "relay", json!({}), edges)).await.unwrap();
    rt.apply(&node("first", "sink", json!({}), json!([]))).await.unwrap();
    rt.apply(&node("second", "sink", json!({}), json!([]))).await.unwrap();
    let answer = rt.send(&key("split"), "in", json!({})).await.unwrap();
    assert_eq!(answer["got"], json!({ "which": "first" }));
    assert_eq!(rt.counters(&key("second")).unwrap().messages_in, 1);
}

#[tokio::test]
async fn mappings_shape_messages_and_read_the_trigger() {
    let rt = runtime();
    let edges = json!([{
        "port": "out",
        "to": { "node": "sink", "port": "in" },
        "mapping": { "name": "{{ .user.first }} {{ .user.last }}", "from": "{{ $trigger.source }}", "fixed": 1 },
    }]);
    rt.apply(&node("map", "relay", json!({}), edges)).await.unwrap();
    rt.apply(&node("sink", "sink", json!({ "typed": true }), json!([]))).await.unwrap();
    let answer = rt
        .send(
            &key("map"),
            "in",
            json!({ "user": { "first": "Ada", "last": "L" }, "source": "cli" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["got"], json!({ "name": "Ada L", "from": "cli", "fixed": 1 }));
}

/// A mapping slower than its share of an async worker finishes on a blocking thread, with the
/// same answer; a runaway one still fails naming the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mapping_finishes_off_the_async_workers_and_a_runaway_one_still_fails() {
    let rt = runtime();
    let mapped = |source: &str| json!([{ "port": "out", "to": { "node": "sink", "port": "in" }, "mapping": { "n": format!("{{{{ {source} }}}}") } }]);
    rt.apply(&node("slow", "relay", json!({}), mapped("[range(0; 150000)] | length")))
        .await
        .unwrap();
    rt.apply(&node("endless", "relay", json!({}), mapped("[repeat(1)] | length"))).await.unwrap();
    rt.apply(&node("sink", "sink", json!({}), json!([]))).await.unwrap();
    let answer = rt.send(&key("slow"), "in", json!({})).await.unwrap();
    assert_eq!(answer["got"], json!({ "n": 150_000 }));
    let err = rt.send(&key("endless"), "in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().starts_with("edge endless.out → sink.in: mapping n:"), "{err}");
}

#[tokio::test]
async fn a_message_that_does_not_fit_the_target_port_is_refused_naming_edge_and_field() {
    let rt = runtime();
    let edges = json!([{ "port": "out", "to": { "node": "typed", "port": "in" }, "mapping": { "name": "{{ .n }}" } }]);
    rt.apply(&node("src", "relay", json!({}), edges)).await.unwrap();
    rt.apply(&node("typed", "sink", json!({ "typed": true }), json!([]))).await.unwrap();
    let err = rt.send(&key("src"), "in", json!({ "n": 5 })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.message(),
        "edge src.out → typed.in: the message does not fit typed.in: field /name: a number is not of type \"string\""
    );
    assert_eq!(rt.counters(&key("typed")).unwrap().messages_in, 0, "nothing reached the target");
    let err = rt.send(&key("src"), "in", json!({ "m": 5 })).await.unwrap_err();
    assert!(err.message().ends_with("field /name: null is not of type \"string\""), "{err}");
}

#[tokio::test]
async fn only_transient_failures_are_retried_and_only_as_often_as_the_edge_allows() {
    let rt = runtime();
    let retry = |node: &str| json!([{ "port": "out", "to": { "node": node, "port": "in" }, "retry": { "attempts": 4, "initialBackoff": "1ms", "maxBackoff": "5ms" } }]);
    rt.apply(&node("to-transient", "relay", json!({}), retry("transient"))).await.unwrap();
    rt.apply(&node("transient", "flaky", json!({ "failures": 3, "kind": "transient" }), json!([])))
        .await
        .unwrap();
    let answer = rt.send(&key("to-transient"), "in", json!({})).await.unwrap();
    assert_eq!(
        answer,
        json!({ "calls": 4 }),
        "three transient failures, then success on the fourth attempt"
    );

    rt.apply(&node("to-broken", "relay", json!({}), retry("broken"))).await.unwrap();
    rt.apply(&node("broken", "flaky", json!({ "failures": 10, "kind": "transient" }), json!([])))
        .await
        .unwrap();
    let err = rt.send(&key("to-broken"), "in", json!({})).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Transient, "failure 4"),
        "gave up after four attempts"
    );

    rt.apply(&node("to-invalid", "relay", json!({}), retry("invalid"))).await.unwrap();
    rt.apply(&node("invalid", "flaky", json!({ "failures": 1, "kind": "invalid" }), json!([])))
        .await
        .unwrap();
    let err = rt.send(&key("to-invalid"), "in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        rt.counters(&key("invalid")).unwrap().messages_in,
        1,
        "an invalid failure is never retried"
    );
}

#[tokio::test]
async fn a_delivery_past_its_deadline_is_cancelled_down_the_tree() {
    let rt = runtime();
    let edges =
        json!([{ "port": "out", "to": { "node": "stuck", "port": "in" }, "timeout": "50ms" }]);
    rt.apply(&node("impatient", "relay", json!({}), edges)).await.unwrap();
    rt.apply(&node("stuck", "stuck", json!({}), json!([]))).await.unwrap();
    let err = rt.send(&key("impatient"), "in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.message(), "edge impatient.out → stuck.in: no answer within 50ms");
}

#[tokio::test]
async fn stopping_a_trigger_cancels_its_runs_in_flight() {
    let rt = runtime();
    rt.apply(&node("start", "trigger", json!({ "runs": [1], "name": "start" }), to("waits")))
        .await
        .unwrap();
    rt.apply(&node("waits", "stuck", json!({}), json!([]))).await.unwrap();
    eventually(|| rt.counters(&key("waits")).unwrap().messages_in == 1).await;
    // `waits` never answers on its own: removal returns only because stopping the trigger
    // cancelled the run it was waiting in.
    tokio::time::timeout(PATIENCE, rt.remove(&key("start")))
        .await
        .expect("the trigger did not stop");
    assert!(DESTROYED.lock().unwrap().contains(&"start".to_owned()));
}

#[tokio::test]
async fn a_loop_stops_at_the_hop_limit() {
    let rt = runtime();
    rt.apply(&node("loop", "relay", json!({}), to("loop"))).await.unwrap();
    let err = rt.send(&key("loop"), "in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.message(),
        "edge loop.out → loop.in: the run went 256 hops deep; the flow loops without end"
    );
    // The message sent in, then 256 hops.
    assert_eq!(rt.counters(&key("loop")).unwrap().messages_in, 257);
}

#[tokio::test]
async fn a_settings_change_rebuilds_the_node_through_the_same_path() {
    let rt = runtime();
    rt.apply(&node("t", "trigger", json!({ "name": "t-v1" }), json!([]))).await.unwrap();
    rt.apply(&node("r", "relay", json!({ "tag": "v1" }), to("s"))).await.unwrap();
    rt.apply(&node("s", "sink", json!({}), json!([]))).await.unwrap();
    assert_eq!(
        rt.send(&key("r"), "in", json!({ "path": [] })).await.unwrap()["got"]["path"],
        json!(["v1"])
    );
    let mut changed = node("r", "relay", json!({ "tag": "v2" }), to("s"));
    changed.metadata.generation = Some(2);
    rt.apply(&changed).await.unwrap();
    assert_eq!(rt.built_generation(&key("r")), Some(2));
    assert_eq!(
        rt.send(&key("r"), "in", json!({ "path": [] })).await.unwrap()["got"]["path"],
        json!(["v2"])
    );
    rt.apply(&node("t", "trigger", json!({ "name": "t-v2" }), json!([]))).await.unwrap();
    assert!(
        DESTROYED.lock().unwrap().contains(&"t-v1".to_owned()),
        "the old trigger was stopped and destroyed"
    );
    rt.shutdown().await;
    assert!(DESTROYED.lock().unwrap().contains(&"t-v2".to_owned()));
}

#[tokio::test]
async fn a_node_that_fails_to_build_says_why_and_keeps_nothing_running() {
    let rt = runtime();
    rt.apply(&node("r", "relay", json!({ "tag": "ok" }), json!([]))).await.unwrap();
    let err = rt.apply(&node("r", "relay", json!({ "tag": 5 }), json!([]))).await.unwrap_err();
    assert_eq!(err.to_string(), "settings.tag: invalid type: integer `5`, expected a string");
    let err = rt.send(&key("r"), "in", json!({})).await.unwrap_err();
    assert_eq!(err.message(), "node test/r is not running");

    let err = rt.apply(&node("x", "nosuch", json!({}), json!([]))).await.unwrap_err();
    assert_eq!(
        err,
        BuildError::UnknownComponent { module: "test".to_owned(), component: "nosuch".to_owned() }
    );
    let bad_mapping = json!([{ "port": "out", "to": { "node": "s", "port": "in" }, "mapping": { "a": "{{ .x | nope }}" } }]);
    let err = rt.apply(&node("m", "relay", json!({}), bad_mapping)).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.edges[0] (m.out → s.in): a: {{ .x | nope }}: undefined filter"),
        "{err}"
    );
}

#[tokio::test]
async fn triggers_start_runs_with_their_own_trigger_message() {
    let rt = runtime();
    rt.apply(&node("collect", "sink", json!({}), json!([]))).await.unwrap();
    let edges = json!([{ "port": "out", "to": { "node": "collect", "port": "in" }, "mapping": { "tick": "{{ $trigger.n }}" } }]);
    rt.apply(&node(
        "tick",
        "trigger",
        json!({ "runs": [{ "n": 1 }, { "n": 2 }], "name": "tick" }),
        edges,
    ))
    .await
    .unwrap();
    eventually(|| rt.counters(&key("collect")).unwrap().messages_in == 2).await;
    assert_eq!(rt.counters(&key("tick")).unwrap().messages_out, 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_trigger_that_panics_is_reported_and_started_again() {
    let rt = runtime();
    rt.apply(&node("landed", "sink", json!({}), json!([]))).await.unwrap();
    let settings = json!({ "runs": [{ "n": 1 }], "name": "unsteady", "panic_once": true });
    rt.apply(&node("unsteady", "trigger", settings, to("landed"))).await.unwrap();
    // The panic is the node's last error, and a second later the trigger runs after all.
    eventually(|| rt.counters(&key("landed")).is_some_and(|c| c.messages_in == 1)).await;
    let (kind, message, _) = rt.last_error(&key("unsteady")).expect("the panic reported");
    assert_eq!((kind, message.as_str()), (ErrorKind::Internal, "the trigger panicked: boom"));
    assert_eq!(rt.counters(&key("unsteady")).unwrap().errors, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_node_that_panics_fails_the_delivery_and_handles_the_next() {
    let rt = runtime();
    rt.apply(&node("shaky", "flaky", json!({ "failures": 1, "kind": "panic" }), json!([])))
        .await
        .unwrap();
    let failed = rt.send(&key("shaky"), "in", json!({})).await.expect_err("the panic");
    assert_eq!(failed.kind(), ErrorKind::Internal);
    assert_eq!(failed.message(), "node test/shaky panicked: failure 1");
    assert_eq!(rt.send(&key("shaky"), "in", json!({})).await.unwrap(), json!({ "calls": 2 }));
    rt.shutdown().await;
}

#[tokio::test]
async fn triggers_run_only_while_this_replica_leads() {
    let (lead, leader) = tokio::sync::watch::channel(false);
    let rt = Runtime::with_leadership(vec![module()], leader);
    rt.apply(&node("collect", "sink", json!({}), json!([]))).await.unwrap();
    rt.apply(&node("tick", "trigger", json!({ "runs": [1], "name": "led" }), to("collect")))
        .await
        .unwrap();
    // A follower still handles deliveries, but not the messages for a trigger's node: the
    // leader runs it, so they are refused as worth trying again (at the leader).
    rt.send(&key("collect"), "in", json!("direct")).await.unwrap();
    let refused = rt.send(&key("tick"), "in", json!({})).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Transient, "{refused}");
    assert!(refused.message().contains("only the module's leader runs"), "{refused}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(rt.counters(&key("tick")).unwrap().messages_out, 0, "a follower ran its trigger");

    lead.send_replace(true);
    eventually(|| rt.counters(&key("tick")).unwrap().messages_out == 1).await;
    lead.send_replace(false);
    eventually(|| STOPPED.lock().unwrap().contains(&"led".to_owned())).await;
    lead.send_replace(true);
    // Losing and regaining the lead stopped the trigger's loop and starts it again.
    eventually(|| rt.counters(&key("tick")).unwrap().messages_out == 2).await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_trigger_that_serves_every_replica_runs_on_a_follower_too() {
    let (_lead, leader) = tokio::sync::watch::channel(false);
    let rt = Runtime::with_leadership(vec![module()], leader);
    rt.apply(&node("collect", "sink", json!({}), json!([]))).await.unwrap();
    rt.apply(&node("hook", "serving", json!({ "runs": [1], "name": "served" }), to("collect")))
        .await
        .unwrap();
    eventually(|| rt.counters(&key("hook")).unwrap().messages_out == 1).await;
    rt.shutdown().await;
    assert!(STOPPED.lock().unwrap().contains(&"served".to_owned()), "stopped with the node");
}

#[tokio::test]
async fn a_delivery_waits_a_moment_for_a_target_that_is_still_starting() {
    let rt = runtime();
    rt.apply(&node("first", "relay", json!({ "tag": "first" }), to("late"))).await.unwrap();
    let sent = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.send(&key("first"), "in", json!({ "path": [] })).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    rt.apply(&node("late", "sink", json!({}), json!([]))).await.unwrap();
    let answer = sent.await.unwrap().unwrap();
    assert_eq!(answer["got"], json!({ "path": ["first"] }), "delivered once the target started");

    // A target that never starts fails after the wait, as something worth trying again.
    rt.apply(&node("lonely", "relay", json!({ "tag": "lonely" }), to("nobody"))).await.unwrap();
    let err = rt.send(&key("lonely"), "in", json!({ "path": [] })).await.unwrap_err();
    assert_eq!(err.kind(), weir_sdk::ErrorKind::Transient, "{err}");
    assert_eq!(err.message(), "edge lonely.out → nobody.in: node test/nobody is not running");
    rt.shutdown().await;
}

#[tokio::test]
async fn retries_are_spent_once_by_the_edge_nearest_the_failure_not_at_every_edge_above() {
    let rt = runtime();
    let retry = |node: &str| json!([{ "port": "out", "to": { "node": node, "port": "in" }, "retry": { "attempts": 3, "initialBackoff": "1ms", "maxBackoff": "2ms" } }]);
    rt.apply(&node("top", "relay", json!({}), retry("middle"))).await.unwrap();
    rt.apply(&node("middle", "relay", json!({}), retry("bottom"))).await.unwrap();
    rt.apply(&node("bottom", "flaky", json!({ "failures": 100, "kind": "transient" }), json!([])))
        .await
        .unwrap();
    let err = rt.send(&key("top"), "in", json!({ "path": [] })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "still a passing failure for the caller");
    assert_eq!(
        rt.counters(&key("bottom")).unwrap().messages_in,
        3,
        "three attempts in all, not three at each of the two edges (nine)"
    );
    assert_eq!(rt.counters(&key("middle")).unwrap().messages_in, 1, "top did not retry middle");
    rt.shutdown().await;
}
