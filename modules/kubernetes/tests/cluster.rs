//! The kubernetes module against a real kube-apiserver: listing (with pagination over 2,000
//! Deployments), patching without clobbering, reading registry credentials, and each component
//! working with exactly the RBAC rules it declares and failing clearly without one of them.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, ServiceAccount},
    rbac::v1::{PolicyRule, Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use weir_kubernetes::{
    secret_get::SecretGet, tls_certificates::TlsCertificates, workload_list::WorkloadList,
    workload_patch::WorkloadPatch,
};
use weir_sdk::{Component, ErrorKind, Permission, testing::Harness};
use weir_testenv::ControlPlane;

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
fn deployment(name: &str, replicas: i32, pod: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod },
        }
    }))
    .expect("a Deployment")
}

async fn create_all(client: &Client, namespace: &str, items: Vec<Deployment>) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(items)
        .map(|d| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &d).await.map(drop) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Sends `message` to a node built from `settings` and returns what it emitted on `out`.
async fn run<C: Component>(settings: Value, message: Value) -> Result<Value, weir_sdk::NodeError> {
    let node = Harness::build::<C>(&settings)?;
    node.send("in", message).await?;
    Ok(node.emitted().pop().map(|e| e.message).unwrap_or_default())
}

fn kubeconfig(path: &Path) -> String {
    path.display().to_string()
}

/// Creates the web (pod pull secret, init container) and api (ServiceAccount pull secret)
/// Deployments, and an idle one.
async fn workloads(client: &Client, namespace: &str) -> Result<()> {
    weir_testenv::create::<ServiceAccount>(
        client,
        namespace,
        json!({ "metadata": { "name": "builder" }, "imagePullSecrets": [{ "name": "hub-from-account" }] }),
    )
    .await?;
    create_all(
        client,
        namespace,
        vec![
            deployment(
                "web",
                2,
                json!({
                    "containers": [{ "name": "main", "image": "nginx:1.27" }, { "name": "sidecar", "image": "envoyproxy/envoy:v1.31" }],
                    "initContainers": [{ "name": "migrate", "image": "ghcr.io/acme/migrate:3" }],
                    "imagePullSecrets": [{ "name": "hub-from-pod" }],
                }),
            ),
            deployment("api", 1, json!({ "serviceAccountName": "builder", "containers": [{ "name": "api", "image": "ghcr.io/acme/api:2" }] })),
            deployment("idle", 0, json!({ "containers": [{ "name": "main", "image": "redis:7" }] })),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_images_and_the_pull_secrets_pods_would_use() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("list").await?;
    workloads(&client, &namespace).await?;
    let settings = json!({ "namespace": namespace, "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let listed = run::<WorkloadList>(settings.clone(), json!({})).await?;
    let names: Vec<&str> = listed["workloads"]
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    ensure!(names == ["api", "idle", "web"], "{listed}");
    let web = &listed["workloads"][2];
    ensure!(
        web["containers"]
            == json!([{ "name": "main", "image": "nginx:1.27" }, { "name": "sidecar", "image": "envoyproxy/envoy:v1.31" }]),
        "{web}"
    );
    ensure!(
        web["initContainers"] == json!([{ "name": "migrate", "image": "ghcr.io/acme/migrate:3" }]),
        "{web}"
    );
    ensure!(web["pullSecrets"] == json!(["hub-from-pod"]) && web["replicas"] == 2, "{web}");
    let api = &listed["workloads"][0];
    ensure!(
        api["pullSecrets"] == json!(["hub-from-account"]) && api["serviceAccount"] == "builder",
        "{api}"
    );

    let mut skipping = settings;
    skipping["skipScaledToZero"] = json!(true);
    skipping["labelSelector"] = json!("app in (idle,web)");
    let listed = run::<WorkloadList>(skipping, json!({})).await?;
    ensure!(
        listed["workloads"].as_array().map(Vec::len) == Some(1)
            && listed["workloads"][0]["name"] == "web",
        "{listed}"
    );
    Ok(())
}

/// One workload of each other kind, with containers, init containers and pull secrets where
/// each kind keeps them: a StatefulSet, a DaemonSet, a CronJob (suspended), a ReplicaSet owned
/// by Deployment web, a ReplicationController, a Job and a Pod.
async fn other_kinds(client: &Client, namespace: &str) -> Result<()> {
    // Jobs' pods end; the others' restart.
    let template = |name: &str, image: &str| {
        let restart = if ["nightly", "once"].contains(&name) { "Never" } else { "Always" };
        json!({
            "metadata": { "labels": { "app": name } },
            "spec": { "containers": [{ "name": "main", "image": image }], "restartPolicy": restart },
        })
    };
    let objects = [
        (
            "apps/v1",
            "StatefulSet",
            json!({ "metadata": { "name": "db" }, "spec": { "replicas": 3, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": template("db", "postgres:16") } }),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({ "metadata": { "name": "agent" }, "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": template("agent", "quay.io/acme/agent:1") } }),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({ "metadata": { "name": "nightly" }, "spec": { "schedule": "0 3 * * *", "suspend": true, "jobTemplate": { "spec": { "template": template("nightly", "busybox:1.36") } } } }),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({ "metadata": { "name": "web-7f", "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "0e6a0a6c-0000-4000-8000-000000000001", "controller": true }] }, "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } }, "template": template("web", "nginx:1.27") } }),
        ),
        (
            "v1",
            "ReplicationController",
            json!({ "metadata": { "name": "legacy" }, "spec": { "replicas": 1, "selector": { "app": "legacy" }, "template": template("legacy", "httpd:2") } }),
        ),
        (
            "batch/v1",
            "Job",
            json!({ "metadata": { "name": "once" }, "spec": { "template": template("once", "busybox:1.36") } }),
        ),
        (
            "v1",
            "Pod",
            json!({ "metadata": { "name": "loose" }, "spec": { "containers": [{ "name": "main", "image": "alpine:3" }] } }),
        ),
    ];
    for (api_version, kind, mut object) in objects {
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &resource);
        api.create(&PostParams::default(), &serde_json::from_value(object)?).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_workload_kind_reads_one_by_name_and_patches_each_template() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("kinds").await?;
    workloads(&client, &namespace).await?;
    other_kinds(&client, &namespace).await?;
    let settings = json!({ "namespace": namespace, "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let listed = run::<WorkloadList>(settings.clone(), json!({})).await?;
    let seen: Vec<String> = listed["workloads"]
        .as_array()
        .context("a list")?
        .iter()
        .map(|w| {
            format!(
                "{}/{} {}",
                w["kind"].as_str().unwrap_or("?"),
                w["name"].as_str().unwrap_or("?"),
                w["controller"].as_str().unwrap_or("-")
            )
        })
        .collect();
    ensure!(
        seen == [
            "Deployment/api -",
            "Deployment/idle -",
            "Deployment/web -",
            "StatefulSet/db -",
            "DaemonSet/agent -",
            "ReplicaSet/web-7f Deployment/web",
            "ReplicationController/legacy -",
            "CronJob/nightly -",
            "Job/once -",
            "Pod/loose -",
        ],
        "{seen:?}"
    );
    ensure!(listed["complete"] == true, "a list is complete");
    let cronjob = listed["workloads"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["kind"] == "CronJob"))
        .context("the CronJob")?;
    ensure!(
        cronjob["containers"] == json!([{ "name": "main", "image": "busybox:1.36" }])
            && cronjob["suspended"] == true
            && cronjob["replicas"].is_null(),
        "{cronjob}"
    );

    // Idle ones (scaled to zero, suspended) left out; one read by name, as a watch asks.
    let mut skipping = settings.clone();
    skipping["skipScaledToZero"] = json!(true);
    let listed = run::<WorkloadList>(skipping.clone(), json!({})).await?;
    ensure!(
        listed["workloads"]
            .as_array()
            .is_some_and(|all| all.iter().all(|w| w["name"] != "idle" && w["name"] != "nightly")),
        "{listed}"
    );
    let one = run::<WorkloadList>(
        settings.clone(),
        json!({ "kind": "StatefulSet", "namespace": namespace, "name": "db" }),
    )
    .await?;
    ensure!(
        one["workloads"].as_array().map(Vec::len) == Some(1)
            && one["workloads"][0]["replicas"] == 3
            && one["complete"] == false,
        "{one}"
    );
    let gone = run::<WorkloadList>(
        settings.clone(),
        json!({ "kind": "StatefulSet", "namespace": namespace, "name": "gone" }),
    )
    .await?;
    ensure!(gone["workloads"] == json!([]), "{gone}");
    let err = run::<WorkloadList>(
        settings.clone(),
        json!({ "kind": "Rollout", "namespace": namespace, "name": "x" }),
    )
    .await
    .expect_err("an unknown kind");
    ensure!(
        err.message().starts_with("in.kind: \"Rollout\" is not one of Deployment, StatefulSet"),
        "{err}"
    );
    let err = run::<WorkloadList>(settings.clone(), json!({ "kind": "Pod" }))
        .await
        .expect_err("half a name");
    ensure!(
        err.message() == "in: a workload is named by kind, namespace and name together",
        "{err}"
    );

    // Each kind's pod template is where the patch goes.
    let patch = json!({ "kubeconfig": kubeconfig(plane.kubeconfig()) });
    for (kind, name, image) in [
        ("StatefulSet", "db", "mirror.local/postgres:16"),
        ("CronJob", "nightly", "mirror.local/busybox:1.36"),
        ("DaemonSet", "agent", "mirror.local/agent:1"),
    ] {
        let patched = run::<WorkloadPatch>(patch.clone(), json!({ "kind": kind, "namespace": namespace, "name": name, "images": { "main": image }, "expected": { "main": "" } })).await;
        let err = patched.expect_err("an expectation that does not hold");
        ensure!(
            err.message().starts_with(&format!("{kind} {namespace}/{name} moved since the plan")),
            "{err}"
        );
        let patched = run::<WorkloadPatch>(patch.clone(), json!({ "kind": kind, "namespace": namespace, "name": name, "images": { "main": image } })).await?;
        ensure!(patched["kind"] == kind && patched["changed"] == json!(["main"]), "{patched}");
        let one = run::<WorkloadList>(
            settings.clone(),
            json!({ "kind": kind, "namespace": namespace, "name": name }),
        )
        .await?;
        ensure!(one["workloads"][0]["containers"][0]["image"] == image, "{one}");
    }
    for kind in ["Job", "Pod"] {
        let err = run::<WorkloadPatch>(patch.clone(), json!({ "kind": kind, "namespace": namespace, "name": "once", "images": { "main": "x" } })).await.expect_err("an immutable template");
        ensure!(
            err.kind() == ErrorKind::Invalid
                && err.message().contains("cannot change once created"),
            "{err}"
        );
    }

    // A node limited to some kinds refuses the others before it asks the apiserver, and one
    // limited to a kind it can never patch does not start.
    let only =
        json!({ "kubeconfig": kubeconfig(plane.kubeconfig()), "kinds": ["Deployment", "CronJob"] });
    let err = run::<WorkloadPatch>(only.clone(), json!({ "kind": "StatefulSet", "namespace": namespace, "name": "db", "images": { "main": "x" } }))
        .await
        .expect_err("a kind the node does not patch");
    ensure!(
        err.kind() == ErrorKind::Invalid
            && err.message()
                == format!(
                    "StatefulSet {namespace}/db: this node patches only Deployment, CronJob (settings.kinds)"
                ),
        "{err}"
    );
    let patched = run::<WorkloadPatch>(only, json!({ "kind": "CronJob", "namespace": namespace, "name": "nightly", "images": { "main": "mirror.local/busybox:1.37" } })).await?;
    ensure!(patched["changed"] == json!(["main"]), "{patched}");
    let err = run::<WorkloadPatch>(json!({ "kinds": ["Job"] }), json!({}))
        .await
        .expect_err("a kind never patched");
    ensure!(err.message().contains("settings.kinds: a Job cannot be patched"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_two_thousand_deployments_a_page_at_a_time() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("many").await?;
    let many = (0..2000).map(|i| {
        deployment(
            &format!("app-{i}"),
            1,
            json!({ "containers": [{ "name": "main", "image": format!("nginx:1.{}", i % 30) }] }),
        )
    });
    create_all(&client, &namespace, many.collect()).await?;
    let settings = json!({ "namespace": namespace, "pageSize": 150, "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let listed = run::<WorkloadList>(settings, json!({})).await?;
    let deployments = listed["workloads"].as_array().context("a list")?;
    ensure!(deployments.len() == 2000, "{} deployments", deployments.len());
    let mut names: Vec<&str> = deployments.iter().filter_map(|d| d["name"].as_str()).collect();
    names.dedup();
    ensure!(names.len() == 2000, "every page once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_images_by_container_name_without_clobbering_other_changes() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("patch").await?;
    workloads(&client, &namespace).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    // Someone else changes the sidecar in the meantime.
    let theirs = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "sidecar", "env": [{ "name": "LOG", "value": "debug" }] }] } } } });
    deployments.patch("web", &PatchParams::default(), &Patch::Strategic(theirs)).await?;

    let settings = json!({ "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let change = json!({
        "namespace": namespace, "name": "web",
        "images": { "sidecar": "registry.local:5000/envoyproxy/envoy:v1.31", "migrate": "registry.local:5000/acme/migrate:3" },
        "annotations": { "weir.dev/original-sidecar": "envoyproxy/envoy:v1.31" },
    });
    let mut dry = settings.clone();
    dry["dryRun"] = json!(true);
    let patched = run::<WorkloadPatch>(dry, change.clone()).await?;
    ensure!(patched["dryRun"] == true, "{patched}");
    let unchanged = deployments.get("web").await?;
    let pod = unchanged.spec.and_then(|s| s.template.spec).context("a pod")?;
    ensure!(
        pod.containers[1].image.as_deref() == Some("envoyproxy/envoy:v1.31"),
        "a dry run changes nothing"
    );

    let patched = run::<WorkloadPatch>(settings.clone(), change).await?;
    ensure!(patched["changed"] == json!(["migrate", "sidecar"]), "{patched}");
    let web = deployments.get("web").await?;
    let annotations = web.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        annotations.get("weir.dev/original-sidecar").map(String::as_str)
            == Some("envoyproxy/envoy:v1.31"),
        "{annotations:?}"
    );
    let pod = web.spec.and_then(|s| s.template.spec).context("a pod")?;
    ensure!(pod.containers[0].image.as_deref() == Some("nginx:1.27"), "other containers untouched");
    ensure!(
        pod.containers[1].image.as_deref() == Some("registry.local:5000/envoyproxy/envoy:v1.31"),
        "{:?}",
        pod.containers[1]
    );
    ensure!(
        pod.containers[1].env.as_ref().is_some_and(|env| env.len() == 1),
        "the other change survives: {:?}",
        pod.containers[1]
    );
    let init = pod.init_containers.unwrap_or_default();
    ensure!(init[0].image.as_deref() == Some("registry.local:5000/acme/migrate:3"), "{init:?}");

    // Reverting: the image back, the annotation removed by a null.
    let revert = json!({
        "namespace": namespace, "name": "web",
        "images": { "sidecar": "envoyproxy/envoy:v1.31" },
        "annotations": { "weir.dev/original-sidecar": null },
    });
    run::<WorkloadPatch>(settings.clone(), revert).await?;
    let web = deployments.get("web").await?;
    ensure!(
        !web.metadata.annotations.unwrap_or_default().contains_key("weir.dev/original-sidecar"),
        "the annotation is gone"
    );
    let pod = web.spec.and_then(|s| s.template.spec).context("a pod")?;
    ensure!(pod.containers[1].image.as_deref() == Some("envoyproxy/envoy:v1.31"), "reverted");

    let err = run::<WorkloadPatch>(
        settings,
        json!({ "namespace": namespace, "name": "web", "images": { "nginx": "x" } }),
    )
    .await
    .expect_err("an unknown container");
    ensure!(err.kind() == ErrorKind::Invalid, "{err}");
    ensure!(
        err.message()
            == format!(
                "Deployment {namespace}/web has no container nginx (containers: main, sidecar; init containers: migrate)"
            ),
        "{err}"
    );
    Ok(())
}

/// A plan saw web's main container on nginx:1.27; a deploy moved it to nginx:1.28 before the
/// patch came. The patch leaves it alone and says so, and patches what did not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_moved_since_the_plan_is_left_alone_and_reported() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("moved").await?;
    workloads(&client, &namespace).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let planned = deployments.get("web").await?;
    let deploy = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "main", "image": "nginx:1.28" }] } } } });
    deployments.patch("web", &PatchParams::default(), &Patch::Strategic(deploy)).await?;

    let settings = json!({ "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let mirror = "registry.local:5000/mirror/docker.io/library/nginx:1.27@sha256:aa";
    let change = |expectations: Value| {
        let mut change = json!({
            "namespace": namespace, "name": "web",
            "images": { "main": mirror },
            "annotations": { "original.mirror.weir.dev/main": "nginx:1.27" },
        });
        for (field, value) in expectations.as_object().into_iter().flatten() {
            change[field] = value.clone();
        }
        change
    };
    let planned_version = planned.metadata.resource_version.clone().context("a version")?;
    let planned_generation = planned.metadata.generation.context("a generation")?;
    for (expectations, moved) in [
        (
            json!({ "expected": { "main": "nginx:1.27" } }),
            "container main holds nginx:1.28, not nginx:1.27".to_owned(),
        ),
        (
            json!({ "resourceVersion": planned_version }),
            format!(
                "its resourceVersion is {}, not {planned_version}",
                deployments.get("web").await?.metadata.resource_version.unwrap_or_default()
            ),
        ),
        (
            json!({ "generation": planned_generation }),
            format!("its generation is {}, not {planned_generation}", planned_generation + 1),
        ),
    ] {
        let err = run::<WorkloadPatch>(settings.clone(), change(expectations))
            .await
            .expect_err("the Deployment moved");
        ensure!(err.kind() == ErrorKind::Invalid, "not worth a retry: {err}");
        ensure!(
            err.message()
                == format!(
                    "Deployment {namespace}/web moved since the plan and is left alone: {moved}"
                ),
            "{err}"
        );
    }
    let web = deployments.get("web").await?;
    let pod = web.spec.and_then(|s| s.template.spec).context("a pod")?;
    ensure!(pod.containers[0].image.as_deref() == Some("nginx:1.28"), "the deploy stands");
    ensure!(
        !web.metadata.annotations.unwrap_or_default().contains_key("original.mirror.weir.dev/main"),
        "nothing of the change was written"
    );

    // What still holds what the plan saw is patched, and the deploy is kept.
    let sidecar = json!({
        "namespace": namespace, "name": "web",
        "images": { "sidecar": "registry.local:5000/envoyproxy/envoy:v1.31" },
        "expected": { "sidecar": "envoyproxy/envoy:v1.31" },
    });
    let patched = run::<WorkloadPatch>(settings.clone(), sidecar).await?;
    ensure!(patched["changed"] == json!(["sidecar"]), "{patched}");
    let pod = deployments.get("web").await?.spec.and_then(|s| s.template.spec).context("a pod")?;
    ensure!(
        (pod.containers[0].image.as_deref(), pod.containers[1].image.as_deref())
            == (Some("nginx:1.28"), Some("registry.local:5000/envoyproxy/envoy:v1.31")),
        "{pod:?}"
    );
    let err = run::<WorkloadPatch>(
        settings,
        json!({ "namespace": namespace, "name": "web", "images": {}, "expected": { "nginx": "nginx:1.27" } }),
    )
    .await
    .expect_err("an unknown container");
    ensure!(err.message().contains("has no container nginx (containers: main, sidecar"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_registry_credentials_from_a_dockerconfigjson_secret() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("secret").await?;
    let config =
        json!({ "auths": { "ghcr.io": { "username": "ci", "password": "t0ken" } } }).to_string();
    weir_testenv::create::<Secret>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "hub" }, "type": "kubernetes.io/dockerconfigjson", "stringData": { ".dockerconfigjson": config } }),
    )
    .await?;
    let settings = json!({ "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let read = run::<SecretGet>(settings.clone(), json!({ "namespace": namespace, "name": "hub" }))
        .await?;
    ensure!(
        read["registries"]
            == json!([{ "registry": "ghcr.io", "username": "ci", "password": "t0ken" }]),
        "{read}"
    );
    ensure!(
        read["type"] == "kubernetes.io/dockerconfigjson" && read["data"] == json!({}),
        "{read}"
    );
    let err = run::<SecretGet>(settings, json!({ "namespace": namespace, "name": "nope" }))
        .await
        .expect_err("missing");
    ensure!(
        err.message() == format!("cannot get secrets nope in namespace {namespace}: not found"),
        "{err}"
    );
    Ok(())
}

/// A pod's pull secrets and a registry's own Secret read in one message: logins by group, in
/// the order given, the missing and the non-registry ones left out as the kubelet does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_several_registry_secrets_at_once_by_group() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let (apps, mirror) = (plane.namespace("pulls").await?, plane.namespace("mirror").await?);
    let secret = |name: &str, kind: &str, key: &str, config: Value| json!({ "metadata": { "name": name }, "type": kind, "stringData": { key: config.to_string() } });
    let dockerconfigjson = "kubernetes.io/dockerconfigjson";
    weir_testenv::create::<Secret>(
        &client,
        &apps,
        secret(
            "hub",
            dockerconfigjson,
            ".dockerconfigjson",
            json!({ "auths": { "docker.io": { "username": "hub", "password": "h" } } }),
        ),
    )
    .await?;
    // The legacy form: registries at the top, no `auths`.
    weir_testenv::create::<Secret>(
        &client,
        &apps,
        secret(
            "old",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({ "https://ghcr.io": { "username": "gh", "password": "g" } }),
        ),
    )
    .await?;
    weir_testenv::create::<Secret>(
        &client,
        &apps,
        json!({ "metadata": { "name": "tls" }, "stringData": { "token": "t" } }),
    )
    .await?;
    weir_testenv::create::<Secret>(
        &client,
        &mirror,
        secret(
            "push",
            dockerconfigjson,
            ".dockerconfigjson",
            json!({ "auths": { "mirror.local:5000": { "username": "m", "password": "p" } } }),
        ),
    )
    .await?;
    let settings = json!({ "kubeconfig": kubeconfig(plane.kubeconfig()) });
    let wanted = json!({ "secrets": [
        { "namespace": mirror, "name": "push", "group": "target" },
        { "namespace": apps, "name": "hub", "group": "source" },
        { "namespace": apps, "name": "gone", "group": "source" },
        { "namespace": apps, "name": "tls", "group": "source" },
        { "namespace": apps, "name": "old", "group": "source" },
    ] });
    let read = run::<SecretGet>(settings.clone(), wanted).await?;
    let login = |registry: &str, user: &str, password: &str| json!({ "registry": registry, "username": user, "password": password });
    ensure!(
        read["logins"]
            == json!({
                "source": [login("docker.io", "hub", "h"), login("ghcr.io", "gh", "g")],
                "target": [login("mirror.local:5000", "m", "p")],
            }),
        "{read}"
    );
    ensure!(read["registries"].as_array().map(Vec::len) == Some(3), "{read}");
    ensure!(
        read["skipped"]
            == json!([format!("{apps}/gone: not found"), format!("{apps}/tls: of type Opaque")]),
        "{read}"
    );
    let both = json!({ "namespace": apps, "name": "hub", "secrets": [{ "namespace": apps, "name": "hub" }] });
    let err = run::<SecretGet>(settings, both).await.expect_err("both forms");
    ensure!(err.message() == "in: give a namespace and name, or secrets, not both", "{err}");
    Ok(())
}

/// A Role with `permissions` for `user` in `namespace`.
async fn grant(
    client: &Client,
    namespace: &str,
    user: &str,
    permissions: &[Permission],
) -> Result<()> {
    let rules: Vec<PolicyRule> = permissions
        .iter()
        .map(|p| PolicyRule {
            api_groups: Some(vec![p.api_group.to_owned()]),
            resources: Some(vec![p.resource.to_owned()]),
            verbs: p.verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        })
        .collect();
    weir_testenv::create::<Role>(
        client,
        namespace,
        json!({ "metadata": { "name": user }, "rules": rules }),
    )
    .await?;
    weir_testenv::create::<RoleBinding>(
        client,
        namespace,
        json!({
            "metadata": { "name": user },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_needs_exactly_the_rules_it_declares() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("rbac").await?;
    workloads(&client, &namespace).await?;
    weir_testenv::create::<Secret>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "plain" }, "stringData": { "token": "abc" } }),
    )
    .await?;
    let list_message = json!({});
    let patch_message = json!({ "namespace": namespace, "name": "api", "images": { "api": "registry.local:5000/acme/api:2" } });
    let secret_message = json!({ "namespace": namespace, "name": "plain" });
    // A patch limited to Deployments needs their rules only.
    let deployments: Vec<Permission> = WorkloadPatch::permissions_by_kind()
        .into_iter()
        .filter_map(|(kind, permission)| (kind == "Deployment").then_some(permission))
        .collect();
    let cases: [(&str, &[Permission], Value); 4] = [
        ("workload_list", WorkloadList::describe().permissions, list_message),
        ("workload_patch", &deployments, patch_message),
        ("secret_get", SecretGet::describe().permissions, secret_message),
        ("tls_certificates", TlsCertificates::describe().permissions, json!({})),
    ];
    for (component, permissions, message) in cases {
        // With exactly the declared rules, the component works.
        let user = format!("weir-{}", component.replace('_', "-"));
        grant(&client, &namespace, &user, permissions).await?;
        let settings = json!({ "namespace": namespace, "kubeconfig": kubeconfig(&plane.identity(&user, &[])?) });
        let settings = if matches!(component, "workload_list" | "tls_certificates") {
            settings
        } else if component == "workload_patch" {
            json!({ "kubeconfig": settings["kubeconfig"], "kinds": ["Deployment"] })
        } else {
            json!({ "kubeconfig": settings["kubeconfig"] })
        };
        let outcome = match component {
            "workload_list" => run::<WorkloadList>(settings.clone(), message.clone()).await,
            "workload_patch" => run::<WorkloadPatch>(settings.clone(), message.clone()).await,
            "tls_certificates" => run::<TlsCertificates>(settings.clone(), message.clone()).await,
            _ => run::<SecretGet>(settings.clone(), message.clone()).await,
        };
        ensure!(outcome.is_ok(), "{component} with its declared rules: {outcome:?}");

        // Without the last verb of its last rule, it fails naming the verb and the resource.
        let last = permissions.last().context("rules")?;
        let verb = *last.verbs.last().context("verbs")?;
        let fewer: Vec<Permission> = permissions
            .iter()
            .map(|p| {
                if p == last {
                    Permission { verbs: &last.verbs[..last.verbs.len() - 1], ..*p }
                } else {
                    *p
                }
            })
            .filter(|p| !p.verbs.is_empty())
            .collect();
        let lesser = format!("{user}-less");
        grant(&client, &namespace, &lesser, &fewer).await?;
        let mut settings = settings;
        settings["kubeconfig"] = json!(kubeconfig(&plane.identity(&lesser, &[])?));
        let err = match component {
            "workload_list" => run::<WorkloadList>(settings, message).await,
            "workload_patch" => run::<WorkloadPatch>(settings, message).await,
            "tls_certificates" => run::<TlsCertificates>(settings, message).await,
            _ => run::<SecretGet>(settings, message).await,
        }
        .expect_err("a missing permission");
        let group =
            if last.api_group.is_empty() { String::new() } else { format!(".{}", last.api_group) };
        ensure!(
            err.kind() == ErrorKind::Invalid
                && err.message().starts_with(&format!(
                    "kubernetes denied it: cannot {verb} {}{group}",
                    last.resource
                ))
                && err.message().contains(&format!("cannot {verb} resource \"{}\"", last.resource)),
            "{component} without {verb} {}: {err}",
            last.resource
        );
    }
    Ok(())
}
