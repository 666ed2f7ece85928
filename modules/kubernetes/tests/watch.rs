//! `resource_watch` against a real kube-apiserver: Pods, Events, Jobs, CronJobs and a custom
//! resource of the test's own, created and changed through the API (no kubelet runs here);
//! selectors, event types, a jq filter, one run per distinct state, a debounce, an initial
//! list, resuming from the kept version, an object too large for a message and a denied verb.

use std::{future::Future, time::Duration};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::{
    api::{
        batch::v1::{CronJob, Job},
        core::v1::{ConfigMap, Event, Pod},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::ApiResource,
};
use serde_json::{Value, json};
use weir_kubernetes::resource_watch::ResourceWatch;
use weir_sdk::testing::Harness;
use weir_testenv::{ControlPlane, eventually};

const PATIENCE: Duration = Duration::from_secs(20);

/// `settings` with the admin kubeconfig.
fn admin(plane: &ControlPlane, settings: Value) -> Value {
    let mut settings = settings;
    settings["kubeconfig"] = json!(plane.kubeconfig().display().to_string());
    settings
}

/// Runs `node`'s watch while `body` acts and checks; stops it after.
async fn watching<F: Future<Output = Result<()>>>(node: &Harness, body: F) -> Result<()> {
    let body = async {
        let outcome = body.await;
        node.cancel();
        outcome
    };
    let (ran, checked) = tokio::join!(node.run(), body);
    checked?;
    ran?;
    Ok(())
}

/// The events the node started runs with.
fn events(node: &Harness) -> Vec<Value> {
    node.emitted().into_iter().map(|e| e.message).collect()
}

/// Waits until the node started `count` runs, then a little longer, and says it started no
/// more.
async fn exactly(node: &Harness, count: usize) -> Result<Vec<Value>> {
    eventually(&format!("{count} runs"), PATIENCE, || async {
        Ok((events(node).len() >= count).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = events(node);
    ensure!(seen.len() == count, "{} runs, not {count}: {seen:#?}", seen.len());
    Ok(seen)
}

/// Waits until the watch holds a version: it has listed and watches.
async fn started(node: &Harness) -> Result<()> {
    eventually("the watch started", PATIENCE, || async {
        Ok(node.kept_state()["resourceVersion"].is_string().then_some(()))
    })
    .await
}

fn names(seen: &[Value]) -> Vec<(String, String)> {
    seen.iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(t, n)| ((*t).to_owned(), (*n).to_owned())).collect()
}

async fn set_pod_status(
    client: &Client,
    namespace: &str,
    reason: &str,
    restarts: i32,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let status = json!({ "status": { "phase": "Running", "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": restarts,
        "state": { "waiting": { "reason": reason } } }] } });
    pods.patch_status("crashy", &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// A pod that starts crash-looping starts one run; the same state written again (and a label
/// changed, which the node does not look at) starts none; the next restart starts the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_pod_starts_one_run_per_state() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("crash").await?;
    let settings = admin(
        plane,
        json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": namespace,
            "eventTypes": ["added", "modified"],
            "fields": ["/status/containerStatuses"],
            "filter": "any(.object.status.containerStatuses[]?; .state.waiting.reason == \"CrashLoopBackOff\")",
        }),
    );
    let node = Harness::build::<ResourceWatch>(&settings)?;
    watching(&node, async {
        started(&node).await?;
        weir_testenv::create::<Pod>(
            &client,
            &namespace,
            json!({ "metadata": { "name": "crashy" },
            "spec": { "containers": [{ "name": "main", "image": "busybox" }] } }),
        )
        .await?;
        set_pod_status(&client, &namespace, "ContainerCreating", 0).await?;
        set_pod_status(&client, &namespace, "CrashLoopBackOff", 1).await?;
        exactly(&node, 1).await?;
        set_pod_status(&client, &namespace, "CrashLoopBackOff", 1).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        pods.patch(
            "crashy",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "seen": "yes" } } })),
        )
        .await?;
        set_pod_status(&client, &namespace, "CrashLoopBackOff", 2).await?;
        let seen = exactly(&node, 2).await?;
        let restarts: Vec<&Value> = seen
            .iter()
            .map(|e| &e["object"]["status"]["containerStatuses"][0]["restartCount"])
            .collect();
        ensure!(restarts == [&json!(1), &json!(2)], "{seen:#?}");
        ensure!(
            seen[0]["object"]["metadata"] == json!({ "namespace": namespace, "name": "crashy" })
                && seen[0]["type"] == "modified",
            "{seen:#?}"
        );
        Ok(())
    })
    .await
}

/// Events by field selector, Jobs by label selector, CronJobs by event type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_jobs_and_cron_jobs_by_selector_and_event_type() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("kinds").await?;
    let watch = |settings: Value| Harness::build::<ResourceWatch>(&admin(plane, settings));
    let events_node = watch(
        json!({ "apiVersion": "v1", "kind": "Event", "namespace": namespace, "fieldSelector": "reason=BackOff" }),
    )?;
    let jobs_node = watch(
        json!({ "apiVersion": "batch/v1", "kind": "Job", "namespace": namespace, "labelSelector": "team=ops", "eventTypes": ["added"] }),
    )?;
    let crons_node = watch(
        json!({ "apiVersion": "batch/v1", "kind": "CronJob", "namespace": namespace, "eventTypes": ["deleted"] }),
    )?;
    let body = async {
        for node in [&events_node, &jobs_node, &crons_node] {
            started(node).await?;
        }
        for (name, reason) in [("backoff", "BackOff"), ("pulled", "Pulled")] {
            weir_testenv::create::<Event>(
                &client,
                &namespace,
                json!({
                "metadata": { "name": name }, "reason": reason, "message": "m", "type": "Warning",
                "involvedObject": { "kind": "Pod", "name": "p", "namespace": namespace } }),
            )
            .await?;
        }
        let job = |name: &str, team: &str| {
            json!({ "metadata": { "name": name, "labels": { "team": team } },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox" }] } } } })
        };
        weir_testenv::create::<Job>(&client, &namespace, job("nightly", "ops")).await?;
        weir_testenv::create::<Job>(&client, &namespace, job("other", "dev")).await?;
        weir_testenv::create::<CronJob>(
            &client,
            &namespace,
            json!({ "metadata": { "name": "hourly" },
            "spec": { "schedule": "0 * * * *", "jobTemplate": job("t", "ops") } }),
        )
        .await?;
        let crons: Api<CronJob> = Api::namespaced(client.clone(), &namespace);
        crons
            .patch(
                "hourly",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "suspend": true } })),
            )
            .await?;
        crons.delete("hourly", &DeleteParams::default()).await?;
        ensure!(names(&exactly(&events_node, 1).await?) == pairs(&[("added", "backoff")]));
        ensure!(names(&exactly(&jobs_node, 1).await?) == pairs(&[("added", "nightly")]));
        ensure!(names(&exactly(&crons_node, 1).await?) == pairs(&[("deleted", "hourly")]));
        for node in [&events_node, &jobs_node, &crons_node] {
            node.cancel();
        }
        anyhow::Ok(())
    };
    let (events_ran, jobs_ran, crons_ran, checked) =
        tokio::join!(events_node.run(), jobs_node.run(), crons_node.run(), body);
    checked?;
    events_ran?;
    jobs_ran?;
    crons_ran?;
    Ok(())
}

const GROUP: &str = "watch.weir.dev";

async fn gadgets(plane: &ControlPlane, namespace: &str) -> Result<Api<DynamicObject>> {
    let client = plane.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gadgets.{GROUP}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "group": GROUP, "scope": "Namespaced",
            "names": { "kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList" },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }] },
    }))?;
    crds.patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(&crd)).await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Gadget"));
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    eventually("the Gadget kind served", PATIENCE, || async {
        Ok(api.list(&Default::default()).await.ok().map(drop))
    })
    .await?;
    Ok(api)
}

/// A custom resource changed five times in a burst starts one run, with its last state, once
/// it has been quiet for the debounce; one changed again later starts another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_to_a_custom_resource_is_debounced() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("debounce").await?;
    let api = gadgets(plane, &namespace).await?;
    let settings = admin(
        plane,
        json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Gadget", "namespace": namespace,
        "labelSelector": "app=watch", "debounce": "1s" }),
    );
    let node = Harness::build::<ResourceWatch>(&settings)?;
    watching(&node, async {
        started(&node).await?;
        let gadget: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/v1"), "kind": "Gadget",
            "metadata": { "name": "g", "labels": { "app": "watch" } }, "spec": { "step": 0 },
        }))?;
        api.create(&PostParams::default(), &gadget).await?;
        for step in 1..5 {
            api.patch(
                "g",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "step": step } })),
            )
            .await?;
        }
        let seen = exactly(&node, 1).await?;
        ensure!(seen[0]["object"]["spec"]["step"] == 4, "the last state: {seen:#?}");
        api.patch("g", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "step": 5 } })))
            .await?;
        let seen = exactly(&node, 2).await?;
        ensure!(
            seen[1]["type"] == "modified" && seen[1]["object"]["spec"]["step"] == 5,
            "{seen:#?}"
        );
        Ok(())
    })
    .await
}

/// With `initialList`, the objects there at the first start each start a run; without it,
/// none do. A restarted node goes on from its kept version: what changed while it was away
/// starts runs, nothing it saw starts one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_at_first_start_if_asked_and_resumes_from_the_kept_version() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("resume").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let map = |name: &str, value: &str| -> Result<ConfigMap> {
        Ok(serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "v": value } }))?)
    };
    maps.create(&PostParams::default(), &map("before", "0")?).await?;
    let settings = |initial: bool| {
        admin(
            plane,
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "initialList": initial }),
        )
    };

    let quiet = Harness::build::<ResourceWatch>(&settings(false))?;
    watching(&quiet, async {
        started(&quiet).await?;
        exactly(&quiet, 0).await.map(drop)
    })
    .await?;

    let first = Harness::build::<ResourceWatch>(&settings(true))?;
    watching(&first, async {
        ensure!(names(&exactly(&first, 1).await?) == pairs(&[("added", "before")]));
        maps.create(&PostParams::default(), &map("during", "0")?).await?;
        exactly(&first, 2).await.map(drop)
    })
    .await?;
    let kept = first.kept_state();
    ensure!(kept["resourceVersion"].is_string(), "{kept}");

    // While no node watches: one changed, one created, one deleted.
    maps.patch("before", &PatchParams::default(), &Patch::Merge(json!({ "data": { "v": "1" } })))
        .await?;
    maps.create(&PostParams::default(), &map("after", "0")?).await?;
    maps.delete("during", &DeleteParams::default()).await?;
    let second = Harness::build::<ResourceWatch>(&settings(true))?;
    second.keep_state(kept)?;
    watching(&second, async {
        let seen = exactly(&second, 3).await?;
        ensure!(
            names(&seen)
                == pairs(&[("modified", "before"), ("added", "after"), ("deleted", "during")]),
            "{seen:#?}"
        );
        Ok(())
    })
    .await
}

/// An object over `maxBytes` comes with its identity and size only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_too_large_for_a_message_comes_as_its_identity_and_size() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("huge").await?;
    let settings = admin(
        plane,
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "maxBytes": 65536 }),
    );
    let node = Harness::build::<ResourceWatch>(&settings)?;
    watching(&node, async {
        started(&node).await?;
        weir_testenv::create::<ConfigMap>(
            &client,
            &namespace,
            json!({ "metadata": { "name": "huge" }, "data": { "blob": "x".repeat(300_000) } }),
        )
        .await?;
        let seen = exactly(&node, 1).await?;
        let event = &seen[0];
        let bytes = event["truncatedBytes"].as_u64().context("a size")?;
        ensure!(bytes > 300_000, "{bytes}");
        ensure!(
            event["object"]["metadata"]["name"] == "huge"
                && event["object"]["kind"] == "ConfigMap"
                && event["object"].get("data").is_none(),
            "{event}"
        );
        Ok(())
    })
    .await
}

/// Without `watch`, the node reports the denial naming verb, resource and namespace, and
/// keeps trying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_watch_is_reported_naming_what_was_denied() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("denied").await?;
    weir_testenv::create::<k8s_openapi::api::rbac::v1::Role>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "lister" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"] }] }),
    )
    .await?;
    weir_testenv::create::<k8s_openapi::api::rbac::v1::RoleBinding>(&client, &namespace, json!({ "metadata": { "name": "lister" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lister" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lister" }] })).await?;
    let kubeconfig = plane.identity("lister", &[])?;
    let settings = json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "kubeconfig": kubeconfig.display().to_string() });
    let node = Harness::build::<ResourceWatch>(&settings)?;
    watching(&node, async {
        let reported = eventually("the denial reported", PATIENCE, || async {
            Ok(node.reported().into_iter().next())
        })
        .await?;
        ensure!(
            reported.message().starts_with(&format!("kubernetes denied it: cannot watch configmaps in namespace {namespace} as the kubeconfig's user: "))
                && reported.message().contains("cannot watch resource \"configmaps\""),
            "{reported}"
        );
        Ok(())
    })
    .await
}

/// A node whose first list is refused (its rights not granted yet) starts runs, once it may
/// list, for the objects created since it started, and none for those that were there before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_while_the_first_list_is_refused_start_runs() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("late").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let map = |name: &str| -> Result<ConfigMap> {
        Ok(serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "v": "0" } }))?)
    };
    maps.create(&PostParams::default(), &map("before")?).await?;
    // Creation times are whole seconds: "before" is of an earlier one than the node's start.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let kubeconfig = plane.identity("latecomer", &[])?;
    let settings = json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "kubeconfig": kubeconfig.display().to_string() });
    let node = Harness::build::<ResourceWatch>(&settings)?;
    watching(&node, async {
        eventually("the list refused", PATIENCE, || async {
            Ok(node.reported().into_iter().next())
        })
        .await?;
        maps.create(&PostParams::default(), &map("meanwhile")?).await?;
        weir_testenv::create::<k8s_openapi::api::rbac::v1::Role>(
            &client,
            &namespace,
            json!({ "metadata": { "name": "watcher" },
                "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"] }] }),
        )
        .await?;
        weir_testenv::create::<k8s_openapi::api::rbac::v1::RoleBinding>(&client, &namespace, json!({ "metadata": { "name": "watcher" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "watcher" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "latecomer" }] })).await?;
        let seen = exactly(&node, 1).await?;
        ensure!(names(&seen) == pairs(&[("added", "meanwhile")]), "{seen:#?}");
        Ok(())
    })
    .await
}
