//! The components that work on any kind, against a real kube-apiserver: built-in kinds and a
//! custom resource of the test's own (with an irregular plural and a scale subresource),
//! pagination and projection, server-side apply and its conflicts, the three patch types and
//! their precondition, deletion's policies and preconditions, scaling, dry runs that change
//! nothing, an object too large for a message, and each component working with exactly the
//! rule `weir rbac` derives from its settings and failing, naming verb, resource, namespace
//! and account, without any one verb of it.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Pod, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::ApiResource,
};
use serde_json::{Value, json};
use weir_kubernetes::{
    pod_logs::PodLogs, resource_apply::ResourceApply, resource_delete::ResourceDelete,
    resource_get::ResourceGet, resource_list::ResourceList, resource_patch::ResourcePatch,
    scale::Scale,
};
use weir_sdk::{Component, ErrorKind, NodeError, testing::Harness};
use weir_testenv::{ControlPlane, eventually};

/// Sends `message` to a node built from `settings` and returns what it emitted on `out`.
async fn run<C: Component>(settings: &Value, message: Value) -> Result<Value, NodeError> {
    let node = Harness::build::<C>(settings)?;
    node.send("in", message).await?;
    Ok(node.emitted().pop().map(|e| e.message).unwrap_or_default())
}

/// `settings` with the admin kubeconfig.
fn admin(plane: &ControlPlane, settings: Value) -> Value {
    let mut settings = settings;
    settings["kubeconfig"] = json!(plane.kubeconfig().display().to_string());
    settings
}

const GROUP: &str = "test.weir.dev";

/// The test's own custom resources: `Widget` (with a scale subresource) and `Mouse`, whose
/// plural `mice` no rule guesses. Installed once per test binary.
async fn custom_resources(plane: &ControlPlane) -> Result<()> {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_try_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(plane.client().await?);
            for (kind, plural, scale) in [("Widget", "widgets", true), ("Mouse", "mice", false)] {
                let name = format!("{plural}.{GROUP}");
                let mut version = json!({
                    "name": "v1", "served": true, "storage": true,
                    "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                        "spec": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                    } } },
                });
                if scale {
                    version["subresources"] = json!({ "scale": {
                        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas" } });
                }
                let crd: CustomResourceDefinition = serde_json::from_value(json!({
                    "metadata": { "name": name },
                    "spec": { "group": GROUP, "scope": "Namespaced",
                        "names": { "kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List") },
                        "versions": [version] },
                }))?;
                crds.patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(&crd)).await?;
                eventually(&format!("CRD {name} established"), Duration::from_secs(30), || async {
                    let crd = crds.get(&name).await?;
                    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                    Ok(conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(()))
                })
                .await?;
            }
            anyhow::Ok(())
        })
        .await?;
    Ok(())
}

fn widgets(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

async fn config_maps(client: &Client, namespace: &str, count: usize) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let map: ConfigMap = serde_json::from_value(json!({
                    "metadata": { "name": format!("cm-{i:03}"), "labels": { "parity": if i % 2 == 0 { "even" } else { "odd" } } },
                    "data": { "index": i.to_string(), "filler": "x".repeat(200) },
                }))?;
                api.create(&PostParams::default(), &map).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_a_page_at_a_time_by_selector_keeping_only_the_fields_asked_for() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("list").await?;
    config_maps(&client, &namespace, 120).await?;
    let settings = admin(
        plane,
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace,
            "labelSelector": "parity", "pageSize": 25, "maxItems": 70, "fields": ["/data/index"] }),
    );
    let first = run::<ResourceList>(&settings, json!({})).await?;
    let items = first["items"].as_array().context("items")?;
    ensure!(items.len() == 70, "{} items", items.len());
    ensure!(
        items[0]
            == json!({ "metadata": { "namespace": namespace, "name": "cm-000" }, "data": { "index": "0" } }),
        "{}",
        items[0]
    );
    let token = first["continue"].as_str().context("a continue token")?;
    ensure!(!token.is_empty(), "the list goes on");
    let rest = run::<ResourceList>(&settings, json!({ "continue": token })).await?;
    let rest_items = rest["items"].as_array().context("items")?;
    ensure!(rest_items.len() == 50 && rest["continue"] == "", "{}", rest["continue"]);
    ensure!(rest_items[0]["metadata"]["name"] == "cm-070", "nothing skipped: {}", rest_items[0]);

    let mut odd = settings.clone();
    odd["labelSelector"] = json!("parity=odd");
    odd["fieldSelector"] = json!("metadata.name!=cm-001");
    odd["maxItems"] = json!(1000);
    let listed = run::<ResourceList>(&odd, json!({})).await?;
    ensure!(listed["items"].as_array().map(Vec::len) == Some(59), "{}", listed["items"]);
    // A message's selectors apply with the settings': `parity` and the message's narrowing.
    let mut each = settings.clone();
    each["maxItems"] = json!(1000);
    let narrowed =
        json!({ "labelSelector": "parity=odd", "fieldSelector": "metadata.name!=cm-001" });
    let listed = run::<ResourceList>(&each, narrowed).await?;
    ensure!(listed["items"].as_array().map(Vec::len) == Some(59), "{}", listed["items"]);
    let none = run::<ResourceList>(&odd, json!({ "labelSelector": "parity=even" })).await?;
    ensure!(none["items"] == json!([]), "odd and even: {}", none["items"]);
    let long = json!({ "labelSelector": format!("a in ({})", "b,".repeat(3000)) });
    let err = run::<ResourceList>(&each, long).await.expect_err("too long");
    ensure!(err.message() == "in.labelSelector: 6007 bytes, over 4096", "{err}");

    // The whole objects would not fit; only the index does.
    let mut whole = settings.clone();
    whole["fields"] = json!([]);
    whole["maxItems"] = json!(1000);
    whole["maxBytes"] = json!(8192);
    let err = run::<ResourceList>(&whole, json!({})).await.expect_err("too large");
    ensure!(err.kind() == ErrorKind::Invalid, "{err}");
    ensure!(
        err.message().starts_with(&format!(
            "the list of configmaps in namespace {namespace} is over this node's limit of 8192 bytes after "
        )),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_custom_resources_found_in_discovery() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    custom_resources(plane).await?;
    let namespace = plane.namespace("custom").await?;
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": { "name": "gear" }, "spec": { "replicas": 2, "colour": "red" },
    }))?;
    widgets(&client, &namespace).create(&PostParams::default(), &widget).await?;
    let settings = admin(
        plane,
        json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "fields": ["/spec/colour"] }),
    );
    let read =
        run::<ResourceGet>(&settings, json!({ "namespace": namespace, "name": "gear" })).await?;
    ensure!(read["spec"] == json!({ "colour": "red" }), "{read}");

    // Mouse is served as mice: the guess is refused naming the setting, the right name works.
    let mice = admin(
        plane,
        json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Mouse", "namespace": namespace }),
    );
    let err = run::<ResourceList>(&mice, json!({})).await.expect_err("a wrong plural");
    ensure!(
        err.message()
            == "settings.resource: kind Mouse is served as mice, not mouses; set resource to mice",
        "{err}"
    );
    let mut named = mice.clone();
    named["resource"] = json!("mice");
    let listed = run::<ResourceList>(&named, json!({})).await?;
    ensure!(listed["items"] == json!([]), "{listed}");

    let unknown = admin(plane, json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Gizmo" }));
    let err = run::<ResourceGet>(&unknown, json!({ "namespace": namespace, "name": "x" }))
        .await
        .expect_err("no such kind");
    ensure!(err.message() == format!("the cluster serves no kind Gizmo in {GROUP}/v1"), "{err}");
    let err =
        run::<ResourceGet>(&settings, json!({ "name": "gear" })).await.expect_err("no namespace");
    ensure!(
        err.message()
            == format!(
                "widgets.{GROUP} gear: a namespace is needed (in the settings or the message)"
            ),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_too_large_for_a_message_is_named_with_its_size() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("large").await?;
    weir_testenv::create::<ConfigMap>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "big" }, "data": { "blob": "x".repeat(200_000), "small": "s" } }),
    )
    .await?;
    let settings = admin(
        plane,
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "maxBytes": 65536 }),
    );
    let err = run::<ResourceGet>(&settings, json!({ "name": "big" })).await.expect_err("too large");
    ensure!(err.kind() == ErrorKind::Invalid, "{err}");
    ensure!(
        err.message().starts_with(&format!("configmaps big in namespace {namespace} is 200"))
            && err.message().contains("over this node's limit of 65536 (settings.maxBytes)"),
        "{err}"
    );
    let mut small = settings;
    small["fields"] = json!(["/data/small"]);
    let read = run::<ResourceGet>(&small, json!({ "name": "big" })).await?;
    ensure!(read["data"] == json!({ "small": "s" }), "{read}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_server_side_without_taking_others_fields_unless_forced() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("apply").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let settings =
        admin(plane, json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace }));
    let object = |data: Value| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "conf" }, "data": data });

    let mut dry = settings.clone();
    dry["dryRun"] = json!(true);
    let checked = run::<ResourceApply>(&dry, object(json!({ "mode": "fast" }))).await?;
    ensure!(checked["dryRun"] == true && checked["name"] == "conf", "{checked}");
    ensure!(maps.get_opt("conf").await?.is_none(), "a dry run creates nothing");

    let applied = run::<ResourceApply>(&settings, object(json!({ "mode": "fast" }))).await?;
    ensure!(
        applied["namespace"] == namespace.as_str() && applied["kind"] == "ConfigMap",
        "{applied}"
    );
    // Someone else owns a key of their own; applying ours again leaves it.
    let theirs = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "conf" }, "data": { "owner": "ops" } });
    maps.patch("conf", &PatchParams::apply("ops"), &Patch::Apply(&theirs)).await?;
    run::<ResourceApply>(&settings, object(json!({ "mode": "slow" }))).await?;
    let data = maps.get("conf").await?.data.unwrap_or_default();
    ensure!(
        data.get("mode").map(String::as_str) == Some("slow") && data.contains_key("owner"),
        "{data:?}"
    );

    // Their key is theirs: applying it fails naming the conflict, and force takes it.
    let err = run::<ResourceApply>(&settings, object(json!({ "mode": "slow", "owner": "weir" })))
        .await
        .expect_err("a conflict");
    ensure!(err.kind() == ErrorKind::Invalid, "a retry meets the same owner: {err}");
    ensure!(
        err.message()
            .starts_with(&format!("cannot apply configmaps conf in namespace {namespace}: "))
            && err.message().contains("conflict")
            && err.message().ends_with("(settings.force takes the fields over)"),
        "{err}"
    );
    let mut forced = settings.clone();
    forced["force"] = json!(true);
    run::<ResourceApply>(&forced, object(json!({ "mode": "slow", "owner": "weir" }))).await?;
    let data = maps.get("conf").await?.data.unwrap_or_default();
    ensure!(data.get("owner").map(String::as_str) == Some("weir"), "{data:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_three_ways_and_refuses_a_stale_version_as_a_conflict() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    custom_resources(plane).await?;
    let namespace = plane.namespace("patch").await?;
    config_maps(&client, &namespace, 1).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let settings = |patch_type: &str| {
        admin(
            plane,
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "patchType": patch_type }),
        )
    };
    let merged = run::<ResourcePatch>(
        &settings("merge"),
        json!({ "name": "cm-000", "patch": { "data": { "filler": null, "a": "1" } } }),
    )
    .await?;
    let json_patch = run::<ResourcePatch>(
        &settings("json"),
        json!({ "name": "cm-000", "patch": [{ "op": "add", "path": "/data/b", "value": "2" }] }),
    )
    .await?;
    ensure!(merged["resourceVersion"] != json_patch["resourceVersion"], "{merged} {json_patch}");
    run::<ResourcePatch>(
        &settings("strategic"),
        json!({ "name": "cm-000", "patch": { "metadata": { "labels": { "c": "3" } } } }),
    )
    .await?;
    let map = maps.get("cm-000").await?;
    let data = map.data.clone().unwrap_or_default();
    ensure!(
        data.get("a").map(String::as_str) == Some("1")
            && data.get("b").map(String::as_str) == Some("2")
            && !data.contains_key("filler"),
        "{data:?}"
    );
    let version = map.metadata.resource_version.clone().context("a version")?;

    // A dry run changes nothing.
    let mut dry = settings("merge");
    dry["dryRun"] = json!(true);
    let checked = run::<ResourcePatch>(
        &dry,
        json!({ "name": "cm-000", "patch": { "data": { "a": "dry" } } }),
    )
    .await?;
    ensure!(checked["dryRun"] == true, "{checked}");
    ensure!(
        maps.get("cm-000").await?.metadata.resource_version == Some(version.clone()),
        "unchanged"
    );

    // Someone changes it; a patch expecting the old version is a conflict, for each type.
    maps.patch("cm-000", &PatchParams::default(), &Patch::Merge(json!({ "data": { "d": "4" } })))
        .await?;
    for (patch_type, patch) in [
        ("merge", json!({ "data": { "a": "stale" } })),
        ("json", json!([{ "op": "replace", "path": "/data/a", "value": "stale" }])),
        ("strategic", json!({ "data": { "a": "stale" } })),
    ] {
        let err = run::<ResourcePatch>(
            &settings(patch_type),
            json!({ "name": "cm-000", "patch": patch, "resourceVersion": version }),
        )
        .await
        .expect_err("a stale version");
        ensure!(err.kind() == ErrorKind::Transient, "{patch_type}: {err}");
        ensure!(
            err.message()
                .starts_with(&format!("cannot patch configmaps cm-000 in namespace {namespace}: "))
                && err.message().ends_with("(Conflict)"),
            "{patch_type}: {err}"
        );
    }
    ensure!(
        maps.get("cm-000").await?.data.unwrap_or_default()["a"] == "1",
        "no stale patch landed"
    );

    // A strategic patch of a custom resource is refused by the apiserver, and said so.
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": { "name": "w" }, "spec": {} }))?;
    widgets(&client, &namespace).create(&PostParams::default(), &widget).await?;
    let custom = admin(
        plane,
        json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "namespace": namespace, "patchType": "strategic" }),
    );
    let err =
        run::<ResourcePatch>(&custom, json!({ "name": "w", "patch": { "spec": { "x": 1 } } }))
            .await
            .expect_err("strategic on a custom resource");
    ensure!(err.kind() == ErrorKind::Invalid, "{err}");
    ensure!(
        err.message()
            .starts_with(&format!("cannot patch widgets.{GROUP} w in namespace {namespace}: ")),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_with_a_policy_and_only_what_the_message_expects() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("delete").await?;
    config_maps(&client, &namespace, 3).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let settings =
        admin(plane, json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace }));

    let mut dry = settings.clone();
    dry["dryRun"] = json!(true);
    let checked = run::<ResourceDelete>(&dry, json!({ "name": "cm-000" })).await?;
    ensure!(checked["deleted"] == true && checked["dryRun"] == true, "{checked}");
    ensure!(maps.get_opt("cm-000").await?.is_some(), "a dry run deletes nothing");

    let err = run::<ResourceDelete>(&settings, json!({ "name": "cm-000", "uid": "not-its-uid" }))
        .await
        .expect_err("another uid");
    ensure!(
        err.kind() == ErrorKind::Transient && err.message().contains("the UID in the precondition"),
        "{err}"
    );
    let uid = maps.get("cm-000").await?.metadata.uid.context("a uid")?;
    let deleted = run::<ResourceDelete>(&settings, json!({ "name": "cm-000", "uid": uid })).await?;
    ensure!(deleted["deleted"] == true, "{deleted}");
    ensure!(maps.get_opt("cm-000").await?.is_none(), "gone");

    let err =
        run::<ResourceDelete>(&settings, json!({ "name": "cm-000" })).await.expect_err("gone");
    ensure!(
        err.message()
            == format!("cannot delete configmaps cm-000 in namespace {namespace}: not found"),
        "{err}"
    );
    let mut missing_ok = settings.clone();
    missing_ok["missingOk"] = json!(true);
    let again = run::<ResourceDelete>(&missing_ok, json!({ "name": "cm-000" })).await?;
    ensure!(again["deleted"] == false, "{again}");

    // No garbage collector runs here, so the policies show as the finalizers they leave.
    for (policy, name, finalizer) in
        [("foreground", "cm-001", "foregroundDeletion"), ("orphan", "cm-002", "orphan")]
    {
        let mut with_policy = settings.clone();
        with_policy["propagationPolicy"] = json!(policy);
        run::<ResourceDelete>(&with_policy, json!({ "name": name })).await?;
        let left = maps.get(name).await?;
        ensure!(
            left.metadata.finalizers.unwrap_or_default() == [finalizer]
                && left.metadata.deletion_timestamp.is_some(),
            "{policy}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_anything_with_a_scale_and_answers_the_count_it_had() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    custom_resources(plane).await?;
    let namespace = plane.namespace("scale").await?;
    weir_testenv::create::<Deployment>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "web" }, "spec": { "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "web", "image": "nginx" }] } } } }),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let settings = admin(
        plane,
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace }),
    );
    let mut dry = settings.clone();
    dry["dryRun"] = json!(true);
    let checked = run::<Scale>(&dry, json!({ "name": "web", "replicas": 0 })).await?;
    ensure!(
        checked["previous"] == 3 && checked["replicas"] == 0 && checked["dryRun"] == true,
        "{checked}"
    );
    let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas);
    ensure!(replicas(deployments.get("web").await?) == Some(3), "a dry run scales nothing");
    let scaled = run::<Scale>(&settings, json!({ "name": "web", "replicas": 0 })).await?;
    ensure!(
        scaled
            == json!({ "namespace": namespace, "name": "web", "previous": 3, "replicas": 0, "dryRun": false }),
        "{scaled}"
    );
    ensure!(replicas(deployments.get("web").await?) == Some(0), "scaled");

    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": { "name": "gear" }, "spec": { "replicas": 5 } }))?;
    widgets(&client, &namespace).create(&PostParams::default(), &widget).await?;
    let custom = admin(
        plane,
        json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "namespace": namespace }),
    );
    let scaled = run::<Scale>(&custom, json!({ "name": "gear", "replicas": 1 })).await?;
    ensure!(scaled["previous"] == 5 && scaled["replicas"] == 1, "{scaled}");
    let gear = widgets(&client, &namespace).get("gear").await?;
    ensure!(gear.data["spec"]["replicas"] == 1, "{:?}", gear.data);

    let unscalable =
        admin(plane, json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace }));
    let err = run::<Scale>(&unscalable, json!({ "name": "x", "replicas": 1 }))
        .await
        .expect_err("no scale");
    ensure!(err.message() == "kind ConfigMap has no scale subresource", "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_no_logs_of_a_pod_not_yet_on_a_node_and_names_a_missing_one() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("logs").await?;
    weir_testenv::create::<Pod>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "idle" }, "spec": { "containers": [{ "name": "main", "image": "busybox" }] } }),
    )
    .await?;
    let settings = admin(plane, json!({ "namespace": namespace, "tailLines": 10, "since": "5m" }));
    let logs = run::<PodLogs>(&settings, json!({ "name": "idle" })).await?;
    ensure!(
        logs == json!({ "namespace": namespace, "pod": "idle", "container": "", "text": "", "truncated": false }),
        "{logs}"
    );
    let err = run::<PodLogs>(&settings, json!({ "name": "idle", "container": "sidecar" }))
        .await
        .expect_err("no such container");
    ensure!(err.kind() == ErrorKind::Invalid && err.message().contains("sidecar"), "{err}");
    let err = run::<PodLogs>(&settings, json!({ "name": "gone" })).await.expect_err("no such pod");
    ensure!(
        err.message() == format!("cannot get pods/log gone in namespace {namespace}: not found"),
        "{err}"
    );
    Ok(())
}

/// A ServiceAccount of `namespace` holding `rules` there, and a kubeconfig signing in as it.
async fn account_with(
    plane: &ControlPlane,
    client: &Client,
    namespace: &str,
    name: &str,
    rules: &impl serde::Serialize,
) -> Result<String> {
    weir_testenv::create::<ServiceAccount>(
        client,
        namespace,
        json!({ "metadata": { "name": name } }),
    )
    .await?;
    weir_testenv::create::<Role>(
        client,
        namespace,
        json!({ "metadata": { "name": name }, "rules": rules }),
    )
    .await?;
    weir_testenv::create::<RoleBinding>(
        client,
        namespace,
        json!({ "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": namespace }] }),
    )
    .await?;
    Ok(plane.service_account(namespace, name).await?.0.display().to_string())
}

/// Each component works with exactly the rules `weir rbac` derives from its settings (the
/// catalogue's `rules_for`), and without any one verb of them fails naming the verb, the
/// resource, the namespace and the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_needs_exactly_the_rules_its_settings_declare() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    custom_resources(plane).await?;
    let module = weir_kubernetes::module();
    let widget = |name: &str| json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": { "name": name }, "spec": { "replicas": 1 } });
    // Per component: its settings, and per run a message (a fresh object where it changes one).
    type Case = (&'static str, Value, fn(&str) -> Value);
    let kind = json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget" });
    let cases: [Case; 7] = [
        ("resource_get", kind.clone(), |_| json!({ "name": "seed" })),
        ("resource_list", kind.clone(), |_| json!({})),
        (
            "resource_apply",
            kind.clone(),
            |name| json!({ "apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": { "name": name }, "spec": { "colour": "green" } }),
        ),
        (
            "resource_patch",
            kind.clone(),
            |_| json!({ "name": "seed", "patch": { "spec": { "colour": "blue" } } }),
        ),
        ("resource_delete", kind.clone(), |name| json!({ "name": name })),
        ("scale", kind.clone(), |_| json!({ "name": "seed", "replicas": 3 })),
        ("pod_logs", json!({}), |_| json!({ "name": "idle" })),
    ];
    let mut runs = 0;
    for (component, kind_settings, message) in cases {
        let descriptor = module.find(component).context(component)?.descriptor()?;
        let namespace = plane.namespace(&format!("rbac-{}", component.replace('_', "-"))).await?;
        widgets(&client, &namespace)
            .create(&PostParams::default(), &serde_json::from_value(widget("seed"))?)
            .await?;
        weir_testenv::create::<Pod>(
            &client,
            &namespace,
            json!({ "metadata": { "name": "idle" }, "spec": { "containers": [{ "name": "main", "image": "busybox" }] } }),
        )
        .await?;
        let mut settings = kind_settings;
        settings["namespace"] = json!(namespace);
        let rules = descriptor.rules_for(settings.as_object().context("settings")?)?;
        ensure!(!rules.is_empty(), "{component} declares rules");
        let build = |kubeconfig: &str| {
            let mut settings = settings.clone();
            settings["kubeconfig"] = json!(kubeconfig);
            settings
        };
        let send = |kubeconfig: String, message: Value| async move {
            let settings = build(&kubeconfig);
            match component {
                "resource_get" => run::<ResourceGet>(&settings, message).await,
                "resource_list" => run::<ResourceList>(&settings, message).await,
                "resource_apply" => run::<ResourceApply>(&settings, message).await,
                "resource_patch" => run::<ResourcePatch>(&settings, message).await,
                "resource_delete" => run::<ResourceDelete>(&settings, message).await,
                "scale" => run::<Scale>(&settings, message).await,
                _ => run::<PodLogs>(&settings, message).await,
            }
        };
        // With exactly its rules, it works (apply creates a new object, then changes it).
        let full = account_with(plane, &client, &namespace, "full", &rules).await?;
        for name in ["fresh", "seed"] {
            if component == "resource_delete" && name == "fresh" {
                continue;
            }
            let outcome = send(full.clone(), message(name)).await;
            ensure!(outcome.is_ok(), "{component} with {rules:?}: {outcome:?}");
            runs += 1;
        }
        // Without any one verb, it names what it may not do.
        for (i, rule) in rules.iter().enumerate() {
            for verb in &rule.verbs {
                let mut fewer = rules.clone();
                fewer[i].verbs.retain(|v| v != verb);
                fewer.retain(|r| !r.verbs.is_empty());
                let account = format!("without-{}-{}", rule.resources[0].replace('/', "-"), verb);
                let kubeconfig = account_with(plane, &client, &namespace, &account, &fewer).await?;
                // Apply checks create only for an object that is not there yet.
                let target =
                    if component == "resource_apply" && verb == "create" { "new" } else { "seed" };
                let err = send(kubeconfig, message(target)).await.expect_err("a missing verb");
                let (group, resource) = (&rule.api_groups[0], &rule.resources[0]);
                let said = err.message();
                ensure!(
                    err.kind() == ErrorKind::Invalid
                        && said.starts_with("kubernetes denied it: cannot ")
                        && said.contains(" as the kubeconfig's user: ")
                        && said.contains(&format!("\"system:serviceaccount:{namespace}:{account}\" cannot {verb} resource \"{resource}\""))
                        && said.contains(&format!("in API group \"{group}\" in the namespace \"{namespace}\"")),
                    "{component} without {verb} {resource}: {err}"
                );
                runs += 1;
            }
        }
    }
    ensure!(runs >= 20, "{runs} runs");
    Ok(())
}
