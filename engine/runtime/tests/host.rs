//! The host keeps a runtime in step with a store: it publishes the module catalogue, builds
//! nodes as FlowNodes arrive, rebuilds them when their spec changes, reports build failures in
//! status, and stops nodes whose FlowNodes are deleted.

mod support;

use std::{sync::Arc, time::Duration};

use support::{PATIENCE, eventually, key, node, runtime, to};
use tokio_util::sync::CancellationToken;
use weir_model::Kind;
use weir_runtime::Host;
use weir_sdk::{Value, json};
use weir_store::{DynamicObject, Store, embedded::EmbeddedStore};

fn object(flow_node: &weir_model::FlowNode) -> DynamicObject {
    serde_json::from_value(serde_json::to_value(flow_node).expect("encodes"))
        .expect("a DynamicObject")
}

/// Waits until the stored status of `name` satisfies `condition`, returning it.
async fn stored_status(store: &dyn Store, name: &str, condition: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let status =
                store.get(Kind::FlowNode, "test", name).await.expect("node stored").data["status"]
                    .clone();
            if condition(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the status never got there")
}

/// Sets one setting of node `name`, reading again when the host wrote its status in between
/// (a conflict), as any controller must.
async fn change_settings(store: &dyn Store, name: &str, field: &str, value: Value) {
    loop {
        let mut node = store.get(Kind::FlowNode, "test", name).await.expect("read the node");
        node.data["spec"]["settings"][field] = value.clone();
        match store.update(node).await {
            Ok(_) => return,
            Err(weir_store::StoreError::Conflict { .. }) => {}
            Err(err) => panic!("cannot update {name}: {err}"),
        }
    }
}

/// The test module's runtime hosted on an embedded store of its own until `stop`.
struct Hosted {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    runtime: weir_runtime::Runtime,
    host: Host,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), weir_store::StoreError>>,
}

/// The test module's status once it lists `count` replicas.
async fn eventually_listed(store: &dyn Store, count: u32) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let module =
                store.get(Kind::Module, "default", "test").await.expect("module published");
            if module.data["status"]["readyReplicas"] == count {
                return module.data["status"].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the replicas listed")
}

fn hosted() -> Hosted {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let runtime = runtime();
    let host = Host::new(runtime.clone(), Arc::clone(&store), "default")
        .with_endpoint("test-0", "http://127.0.0.1:7421".to_owned());
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let (host, stop) = (host.clone(), stop.clone());
        async move { host.run(stop).await }
    });
    Hosted { _dir: dir, store, runtime, host, stop, running }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_follows_flow_nodes_in_the_store() {
    let Hosted { _dir, store, runtime, host, stop, running } = hosted();

    store
        .create(object(&node("a", "relay", json!({ "tag": "a" }), to("b"))))
        .await
        .expect("create a");
    store.create(object(&node("b", "sink", json!({}), json!([])))).await.expect("create b");
    eventually(|| runtime.counters(&key("a")).is_some() && runtime.counters(&key("b")).is_some())
        .await;
    let answer = runtime.send(&key("a"), "in", json!({ "path": [] })).await.expect("delivery");
    assert_eq!(answer["got"], json!({ "path": ["a"] }));

    let status = stored_status(&*store, "a", |s| s["counters"]["messagesIn"] == 1).await;
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["observedGeneration"], 1);
    let ports: Vec<&str> = status["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(ports, ["in", "out"]);

    change_settings(&*store, "a", "tag", json!("a2")).await;
    eventually(|| runtime.built_generation(&key("a")) == Some(2)).await;
    let answer = runtime.send(&key("a"), "in", json!({ "path": [] })).await.expect("delivery");
    assert_eq!(answer["got"], json!({ "path": ["a2"] }));

    change_settings(&*store, "b", "typed", json!("yes")).await;
    let status = stored_status(&*store, "b", |s| s["conditions"][0]["status"] == "False").await;
    assert_eq!(status["conditions"][0]["reason"], "BuildFailed");
    assert_eq!(
        status["conditions"][0]["message"],
        "settings.typed: invalid type: string \"yes\", expected a boolean"
    );
    assert!(
        runtime.counters(&key("b")).is_none(),
        "a node that failed to build keeps nothing running"
    );

    store.delete(Kind::FlowNode, "test", "a").await.expect("delete a");
    eventually(|| runtime.counters(&key("a")).is_none()).await;

    let catalogue = store.get(Kind::Module, "default", "test").await.expect("module published");
    let components: Vec<&str> = catalogue.data["spec"]["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(components, ["relay", "sink", "flaky", "stuck", "trigger", "serving", "tally"]);
    // The replica listed itself once it hosted the nodes, as the leader of a lone process;
    // leaving, it takes itself out.
    let listed = eventually_listed(&*store, 1).await;
    assert_eq!(listed["replicas"][0]["name"], "test-0");
    assert_eq!(listed["replicas"][0]["endpoint"], "http://127.0.0.1:7421");
    assert_eq!(
        (&listed["leader"], &listed["conditions"][0]["reason"]),
        (&json!("test-0"), &json!("Serving"))
    );
    host.leave().await;
    let listed = eventually_listed(&*store, 0).await;
    assert_eq!(listed["conditions"][0]["reason"], "NoReplicas");

    stop.cancel();
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("the host stopped")
        .expect("no panic")
        .expect("no error");
}

/// What a node keeps goes into its FlowNode's status and comes back in the next process, with
/// its last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_state_and_the_last_error_outlive_the_process() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    store.create(object(&node("tally", "tally", json!({}), json!([])))).await.expect("tally");
    store
        .create(object(&node(
            "flaky",
            "flaky",
            json!({ "failures": 1, "kind": "invalid" }),
            json!([]),
        )))
        .await
        .expect("flaky");
    for expected in [2, 4] {
        let runtime = runtime();
        let host = Host::new(runtime.clone(), Arc::clone(&store), "default");
        let stop = CancellationToken::new();
        let running = tokio::spawn({
            let stop = stop.clone();
            async move { host.run(stop).await }
        });
        eventually(|| runtime.counters(&key("tally")).is_some()).await;
        runtime.send(&key("tally"), "in", json!({})).await.expect("delivery");
        let answer = runtime.send(&key("tally"), "in", json!({})).await.expect("delivery");
        assert_eq!(answer, json!(expected), "counted on from what the last process kept");
        let _ = runtime.send(&key("flaky"), "in", json!({})).await;
        stored_status(&*store, "tally", |s| s["state"] == json!({ "count": expected })).await;
        stop.cancel();
        tokio::time::timeout(PATIENCE, running)
            .await
            .expect("the host stopped")
            .expect("no panic")
            .expect("no error");
    }
    let status = stored_status(&*store, "flaky", |s| !s["lastError"].is_null()).await;
    assert_eq!(status["lastError"]["kind"], "invalid");
    assert_eq!(status["lastError"]["message"], "failure 1");
    assert!(status["lastError"]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{status}");
}

/// Two hosts on one store, as two module processes would be: the right one lists itself among
/// its module's replicas, and an edge from a node of the left one reaches it over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_route_edges_to_the_module_that_runs_the_target() {
    use support::{Relay, Sink, node_in};
    use weir_runtime::Runtime;
    use weir_sdk::Module;

    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let stop = CancellationToken::new();

    let right = Runtime::new(vec![Module::new("right", "0.0.0").component::<Sink>()]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let server =
        tokio::spawn(weir_runtime::grpc::serve(right.clone(), listener, None, stop.clone()));
    let right_host =
        Host::new(right.clone(), Arc::clone(&store), "default").with_endpoint("right-0", endpoint);
    let left = Runtime::new(vec![Module::new("left", "0.0.0").component::<Relay>()]);
    let left_host = Host::new(left.clone(), Arc::clone(&store), "default");
    let hosts = [left_host, right_host].map(|host| {
        let stop = stop.clone();
        tokio::spawn(async move { host.run(stop).await })
    });

    let edges = json!([{ "port": "out", "to": { "node": "far", "port": "in" } }]);
    store
        .create(object(&node_in("left", "near", "relay", json!({ "tag": "near" }), edges)))
        .await
        .expect("near");
    store
        .create(object(&node_in("right", "far", "sink", json!({}), json!([]))))
        .await
        .expect("far");
    eventually(|| left.counters(&key("near")).is_some() && right.counters(&key("far")).is_some())
        .await;
    let answer = tokio::time::timeout(PATIENCE, async {
        loop {
            // The route appears once the left host has seen the right module's endpoint.
            match left.send(&key("near"), "in", json!({ "path": [] })).await {
                Ok(answer) => return answer,
                Err(err) if err.message().ends_with("is not running") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("{err}"),
            }
        }
    })
    .await
    .expect("the edge never reached the other module");
    assert_eq!(answer["got"], json!({ "path": ["near"] }));
    assert_eq!(right.counters(&key("far")).expect("far runs").messages_in, 1);

    stop.cancel();
    for host in hosts {
        tokio::time::timeout(PATIENCE, host)
            .await
            .expect("stopped")
            .expect("no panic")
            .expect("no error");
    }
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("stopped")
        .expect("no panic")
        .expect("served");
}

/// `spec.suspend` stops a flow's triggers and refuses new runs; resuming starts the triggers
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_flow_starts_no_run_until_it_is_resumed() {
    let Hosted { _dir, store, runtime, stop, running, .. } = hosted();
    let flow: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
        "metadata": { "name": "f", "namespace": "test" }, "spec": {},
    }))
    .expect("a Flow");
    store.create(flow).await.expect("create the flow");
    store.create(object(&node("sunk", "sink", json!({}), json!([])))).await.expect("create sunk");
    let trigger = node("pulse", "trigger", json!({ "runs": [{}], "name": "pulse" }), to("sunk"));
    store.create(object(&trigger)).await.expect("create pulse");
    let received = |count: u64| {
        let runtime = runtime.clone();
        move || runtime.counters(&key("sunk")).is_some_and(|c| c.messages_in == count)
    };
    eventually(received(1)).await;

    let suspend = |value: bool| {
        let store = Arc::clone(&store);
        async move {
            let mut flow = store.get(Kind::Flow, "test", "f").await.expect("read the flow");
            flow.data["spec"]["suspend"] = json!(value);
            store.update(flow).await.expect("suspend or resume the flow");
        }
    };
    suspend(true).await;
    eventually(|| support::STOPPED.lock().expect("stopped list").contains(&"pulse".to_owned()))
        .await;
    let refused = runtime.send(&key("sunk"), "in", json!({})).await.expect_err("a new run");
    assert_eq!(refused.kind(), weir_sdk::ErrorKind::Invalid);
    assert_eq!(
        refused.message(),
        "flow test/f is suspended: it starts no new run until spec.suspend is false"
    );
    assert!(received(1)(), "nothing ran while suspended");

    suspend(false).await;
    eventually(received(2)).await;
    runtime.send(&key("sunk"), "in", json!({})).await.expect("a run once resumed");
    stop.cancel();
    running.await.expect("no panic").expect("hosted");
}
