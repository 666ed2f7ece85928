//! What the runtime tells about its nodes: the inspect events (with secrets hidden and one
//! trace per run), each node's last error, and the state a node keeps across rebuilds.

mod support;

use std::collections::HashSet;

use support::{key, node, runtime, to};
use weir_runtime::inspect::Observed;
use weir_sdk::{ErrorKind, json};

#[tokio::test]
async fn watchers_see_every_step_of_a_run_under_one_trace_with_secrets_hidden() {
    let rt = runtime();
    rt.apply(&node("src", "relay", json!({}), to("vault"))).await.unwrap();
    rt.apply(&node("vault", "sink", json!({ "login": true }), json!([]))).await.unwrap();
    let mut events = rt.inspect();
    let login = json!({ "user": "ada", "password": "hunter2" });
    rt.send(&key("src"), "in", login).await.unwrap();

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let steps: Vec<String> = seen
        .iter()
        .map(|e| {
            let what = match &e.what {
                Observed::Received(_) => "received",
                Observed::Emitted(_) => "emitted",
                Observed::Answered { .. } => "answered",
                Observed::Failed { .. } => "failed",
                Observed::Logged(_) => "logged",
            };
            format!("{}.{} {what}", e.node.node, e.port)
        })
        .collect();
    assert_eq!(
        steps,
        [
            "src.in received",
            "src.out emitted",
            "vault.in received",
            "vault.in answered",
            "src.in answered"
        ]
    );
    let traces: HashSet<u128> = seen.iter().map(|e| e.trace.trace_id).collect();
    assert_eq!(traces.len(), 1, "one run, one trace");
    let Observed::Received(at_vault) = &seen[2].what else { unreachable!() };
    assert_eq!(at_vault, &json!({ "user": "ada", "password": "<redacted>" }));
    let text = format!("{seen:?}");
    assert_eq!(text.matches("hunter2").count(), 2, "only at ports that do not mark it secret");
}

#[tokio::test]
async fn a_misfit_secret_is_named_by_type_never_by_value() {
    let rt = runtime();
    rt.apply(&node("vault", "sink", json!({ "login": true }), json!([]))).await.unwrap();
    let err = rt
        .send(&key("vault"), "in", json!({ "user": "ada", "password": ["hunter2"] }))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.message(),
        "the message does not fit vault.in: field /password: an array is not of type \"string\""
    );
}

#[tokio::test]
async fn a_node_keeps_its_last_error() {
    let rt = runtime();
    rt.apply(&node("flaky", "flaky", json!({ "failures": 1, "kind": "invalid" }), json!([])))
        .await
        .unwrap();
    assert!(rt.last_error(&key("flaky")).is_none());
    rt.send(&key("flaky"), "in", json!({})).await.unwrap_err();
    let (kind, message, _) = rt.last_error(&key("flaky")).expect("a last error");
    assert_eq!((kind, message.as_str()), (ErrorKind::Invalid, "failure 1"));
}

#[tokio::test]
async fn kept_state_survives_a_rebuild_and_comes_back_from_the_status() {
    let rt = runtime();
    rt.apply(&node("tally", "tally", json!({}), json!([]))).await.unwrap();
    for expected in 1..=3 {
        assert_eq!(rt.send(&key("tally"), "in", json!({})).await.unwrap(), json!(expected));
    }
    let mut changed = node("tally", "tally", json!({ "step": 2 }), json!([]));
    changed.metadata.generation = Some(2);
    rt.apply(&changed).await.unwrap();
    assert_eq!(rt.send(&key("tally"), "in", json!({})).await.unwrap(), json!(4));
    assert_eq!(rt.state(&key("tally")), Some(json!({ "count": 4 })));

    // A new process reads what the old one wrote into the FlowNode's status.
    let restarted = runtime();
    changed.status = Some(weir_model::FlowNodeStatus {
        state: Some(json!({ "count": 4 })),
        ..Default::default()
    });
    restarted.apply(&changed).await.unwrap();
    assert_eq!(restarted.send(&key("tally"), "in", json!({})).await.unwrap(), json!(5));
}

#[tokio::test]
async fn a_failure_sent_as_data_carries_its_input_without_secrets() {
    let rt = runtime();
    let to_catch = json!([{ "port": "error", "to": { "node": "catch", "port": "in" } }]);
    rt.apply(&node("vault", "sink", json!({ "login": true, "refuse": true }), to_catch))
        .await
        .unwrap();
    rt.apply(&node("catch", "sink", json!({}), json!([]))).await.unwrap();
    let mut events = rt.inspect();
    let answer = rt
        .send(&key("vault"), "in", json!({ "user": "ada", "password": "hunter2" }))
        .await
        .unwrap();
    assert_eq!(
        answer["got"]["input"],
        json!({ "user": "ada", "password": "<redacted>" }),
        "the node downstream of the error port never sees the secret"
    );
    assert_eq!(answer["got"]["error"]["message"], "refused");
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let text = format!("{seen:?}");
    assert_eq!(text.matches("hunter2").count(), 0, "nor does any watcher: {text}");
    rt.shutdown().await;
}

#[tokio::test]
async fn events_waiting_for_watchers_hold_large_messages_as_their_size() {
    use weir_runtime::inspect::MAX_MESSAGE_BYTES;

    let rt = runtime();
    rt.apply(&node("src", "relay", json!({}), to("dst"))).await.unwrap();
    rt.apply(&node("dst", "sink", json!({}), json!([]))).await.unwrap();
    let mut events = rt.inspect();
    let large = json!({ "blob": "x".repeat(1 << 20) });
    rt.send(&key("src"), "in", large).await.unwrap();
    let mut messages = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Observed::Received(message) | Observed::Emitted(message) = &event.what {
            messages.push(message.clone());
        }
    }
    assert_eq!(messages.len(), 3, "src.in, src.out and dst.in");
    for message in messages {
        assert_eq!(message["truncated"], true, "{message:.200}");
        assert!(message["bytes"].as_u64().unwrap() > MAX_MESSAGE_BYTES as u64);
    }
    rt.shutdown().await;
}
