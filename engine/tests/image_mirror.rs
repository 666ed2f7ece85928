//! The image-mirror solution end to end, in the cluster shape: the four module processes
//! (`weir module common|kubernetes|js|distribution`) against a real kube-apiserver, the
//! kubernetes nodes with only the RBAC rules the solution's README grants, two real registries
//! on loopback (a "remote" one behind a token service playing Docker Hub, with private
//! repositories, and the mirror, with a password), and the solutions installed with
//! `kubectl apply -f`. Ticks are fired with `weir send`, so every step is deterministic.
//!
//! Two tests run on the test's single-node cluster, one after the other: pods of every kind
//! start from the mirror with the source registry stopped and the node's images forgotten (and
//! from the source again after the revert); and the mirror's faults with pods on the node (a
//! black hole, a mirror the node cannot reach, a kubelet restart during a tick).
//!
//! The last test measures a tick over 500 Deployments sharing 50 images that are mirrored
//! already; it is ignored by default (`cargo test -p weir-engine --test image_mirror --
//! --ignored --nocapture`), and its numbers are recorded in docs/benchmarks.md.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use axum::response::IntoResponse as _;
use bytes::Bytes;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, PodSpec, Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams},
};
use serde_json::{Value, json};
use weir_distribution::{auth::Credentials, client::Registry};
use weir_testenv::{
    Cluster, ControlPlane, busybox_image, eventually,
    solution::{Apiserver, Weir, http_address, node_status, solutions_dir, succeeded, wait_ready},
};
use weir_testregistry::{
    LocalRegistry, login_secret, push_image, push_index, random_bytes, start_registry,
    start_registry_with_password, start_registry_with_tokens, start_token_service,
};

/// How long something that should happen soon may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long one tick may take, copies included.
const TICK_TIMEOUT: &str = "5m";
/// The modules the solutions use, each in a process of its own.
const MODULES: [&str; 4] = ["common", "kubernetes", "js", "distribution"];
/// Where the mirror records a container's original reference.
const ANNOTATION: &str = "original.mirror.weir.dev/";

fn tester() -> Option<Credentials> {
    Some(Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() })
}

/// Taken by each test on the node for its whole length: one stops the kubelet for a while,
/// which must not fall in another's timings.
static ON_THE_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The ServiceAccount the module processes and `weir send` sign in as: modules in a cluster
/// answer only bearer tokens, and deliveries along edges only from their peers.
const ACCOUNT: &str = "weir";

/// A Deployment named `name` with these containers (`(name, image)`) and more pod `spec`.
fn deployment(name: &str, replicas: i32, containers: &[(&str, &str)], mut pod: Value) -> Value {
    let containers: Vec<Value> =
        containers.iter().map(|(name, image)| json!({ "name": name, "image": image })).collect();
    pod["containers"] = json!(containers);
    json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod },
        }
    })
}

/// Fires one tick of the mirror and gives back its answer: the summary of the images' split.
fn tick(weir: &Weir, namespace: &str) -> Result<Value> {
    weir.send(namespace, "mirror-tick:control", &json!({ "action": "tick" }), TICK_TIMEOUT)
}

/// Installs the image mirror in `flows` as a user would, for the workloads of `namespaces`,
/// copying from `remote` to `mirror` over plain HTTP, with `more` settings; ticks come only from
/// `weir send` (the first would come after a day). Waits until its nodes are ready.
async fn install_mirror(
    weir: &Weir,
    apiserver: &impl Apiserver,
    flows: &str,
    (mirror, remote, namespaces): (&str, &str, &str),
    more: &[(&str, String)],
) -> Result<()> {
    let mut sets = vec![
        ("mirror", mirror.to_owned()),
        ("mirrorPlainHttp", "true".to_owned()),
        ("plainHttpSources", remote.to_owned()),
        ("namespaces", namespaces.to_owned()),
        ("interval", "24h".to_owned()),
        ("firstTick", "afterInterval".to_owned()),
    ];
    sets.extend(more.iter().cloned());
    weir.install(apiserver, flows, &solutions_dir().join("image-mirror"), &sets)?;
    let client = weir_testenv::client_for(apiserver.kubeconfig()).await?;
    wait_ready(&client, flows, "image-mirror", PATIENCE).await
}

/// Undoes the mirror as its README says: the flow suspended (ticks and watches), the companion
/// revert installed for the workloads of `namespaces` and run once; gives back its answer.
async fn revert(
    weir: &Weir,
    apiserver: &impl Apiserver,
    flows: &str,
    mirror: &str,
    namespaces: &str,
) -> Result<Value> {
    let suspend = r#"{"spec":{"suspend":true}}"#;
    succeeded(
        apiserver.kubectl().args([
            "patch",
            "flow",
            "image-mirror",
            "-n",
            flows,
            "--type",
            "merge",
            "-p",
            suspend,
        ]),
        "kubectl patch flow",
    )?;
    weir.install(
        apiserver,
        flows,
        &solutions_dir().join("image-mirror-revert"),
        &[("mirror", mirror.to_owned()), ("namespaces", namespaces.to_owned())],
    )?;
    let client = weir_testenv::client_for(apiserver.kubeconfig()).await?;
    wait_ready(&client, flows, "image-mirror-revert", PATIENCE).await?;
    weir.send(flows, "mirror-revert-start:in", &json!({}), TICK_TIMEOUT)
}

/// The registries and images of the test: what each reference is, and its digest.
struct Registries {
    /// Behind a token service, which serves until the test's runtime ends.
    remote: Option<LocalRegistry>,
    mirror: LocalRegistry,
    /// Digests by repository and tag (or digest) on the remote.
    digests: BTreeMap<&'static str, String>,
    /// The children of the indexes, by repository.
    children: BTreeMap<&'static str, Vec<String>>,
}

impl Registries {
    fn remote_host(&self) -> Result<&str> {
        Ok(&self.remote.as_ref().context("the remote is stopped")?.host)
    }

    /// The mirror's client, signed in.
    fn mirror_client(&self) -> Result<Registry> {
        Ok(Registry::new(&self.mirror.host, true)?.with_credentials(tester()))
    }

    /// The repository in the mirror that a remote repository is copied to.
    fn mirrored(&self, repository: &str) -> Result<String> {
        Ok(format!("mirror/{}/{repository}", self.remote_host()?.replace(':', "_")))
    }
}

/// Starts the registries and pushes the remote's images: a multi-platform index in Docker media
/// types, one in OCI media types (private), a single OCI image, a single Docker image (private,
/// used by digest), one only a scaled-to-zero Deployment uses, and one already in the mirror.
async fn registries() -> Result<Registries> {
    let tokens = start_token_service().await?;
    let remote = start_registry_with_tokens(&tokens).await?;
    let mirror = start_registry_with_password().await?;
    let source = Registry::new(&remote.host, true)?.with_credentials(tester());
    let mut digests = BTreeMap::new();
    let mut children = BTreeMap::new();
    let shared = random_bytes(200_000);
    for (repository, tag, docker) in
        [("library/nginx", "1.27", true), ("private/api", "1.0", false)]
    {
        let amd = push_image(
            &source,
            repository,
            &[shared.clone(), random_bytes(50_000)],
            docker,
            "amd64",
        )
        .await?;
        let arm = push_image(&source, repository, &[random_bytes(50_000)], docker, "arm64").await?;
        let index =
            push_index(&source, repository, tag, &[(&amd, "amd64"), (&arm, "arm64")], docker)
                .await?;
        digests.insert(repository, index.digest);
        children.insert(repository, vec![amd.digest, arm.digest]);
    }
    for (repository, tag, docker) in [
        ("acme/logger", Some("2"), false),
        ("private/migrate", None, true),
        ("acme/idle", Some("1"), false),
    ] {
        let image = push_image(
            &source,
            repository,
            &[shared.clone(), random_bytes(30_000)],
            docker,
            "amd64",
        )
        .await?;
        if let Some(tag) = tag {
            source.put_manifest(repository, tag, &image).await?;
        }
        digests.insert(repository, image.digest);
    }
    let mirror_client = Registry::new(&mirror.host, true)?.with_credentials(tester());
    let cached =
        push_image(&mirror_client, "cached/app", &[Bytes::from_static(b"cached")], false, "amd64")
            .await?;
    mirror_client.put_manifest("cached/app", "1", &cached).await?;
    Ok(Registries { remote: Some(remote), mirror, digests, children })
}

/// The workload kinds the test makes, with where each keeps its pod spec.
const KINDS: [(&str, &str, &str); 3] = [
    ("apps/v1", "Deployment", "/spec/template/spec"),
    ("apps/v1", "StatefulSet", "/spec/template/spec"),
    ("batch/v1", "CronJob", "/spec/jobTemplate/spec/template/spec"),
];

fn kind_api(client: &Client, namespace: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Workloads by name: images by container, annotations, resourceVersion.
type Workloads = BTreeMap<String, (BTreeMap<String, String>, BTreeMap<String, String>, String)>;

/// Every workload of the test's kinds in `namespace` by name: its images by container, its
/// annotations and its resourceVersion.
async fn workloads(client: &Client, namespace: &str) -> Result<Workloads> {
    let mut found = BTreeMap::new();
    for (api_version, kind, pod_path) in KINDS {
        let api = kind_api(client, namespace, api_version, kind);
        for object in api.list(&ListParams::default()).await?.items {
            let pod: PodSpec =
                serde_json::from_value(object.data.pointer(pod_path).cloned().unwrap_or_default())?;
            let images = pod
                .containers
                .into_iter()
                .chain(pod.init_containers.unwrap_or_default())
                .map(|c| (c.name, c.image.unwrap_or_default()))
                .collect();
            let annotations = object.metadata.annotations.unwrap_or_default();
            let version = object.metadata.resource_version.unwrap_or_default();
            found.insert(object.metadata.name.unwrap_or_default(), (images, annotations, version));
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_mirror_copies_patches_reports_rechecks_rides_out_an_outage_and_reverts()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("mirror").await?;
    let (shop, ops) = (plane.namespace("shop").await?, plane.namespace("ops").await?);

    // The folders as they are pass the apiserver's checks.
    succeeded(
        plane
            .kubectl()
            .args(["apply", "--dry-run=server", "-n", &flows, "-f"])
            .arg(solutions_dir().join("image-mirror"))
            .arg("-f")
            .arg(solutions_dir().join("image-mirror-revert")),
        "kubectl apply --dry-run=server",
    )?;

    let mut registries = registries().await?;
    let remote = registries.remote_host()?.to_owned();
    let mirror = registries.mirror.host.clone();
    let migrate_digest = registries.digests["private/migrate"].clone();
    let originals = BTreeMap::from([
        ("web", format!("{remote}/library/nginx:1.27")),
        ("log", format!("{remote}/acme/logger:2")),
        ("api", format!("{remote}/private/api:1.0")),
        ("migrate", format!("{remote}/private/migrate@{migrate_digest}")),
        ("worker", format!("{remote}/private/api:1.0")),
    ]);
    weir_testenv::create::<Secret>(&client, &shop, login_secret("remote-login", &remote)).await?;
    weir_testenv::create::<Secret>(&client, &flows, login_secret("mirror-login", &mirror)).await?;
    weir_testenv::create::<ServiceAccount>(
        &client,
        &shop,
        json!({ "metadata": { "name": "builder" }, "imagePullSecrets": [{ "name": "remote-login" }] }),
    )
    .await?;
    let deployments = [
        (
            &shop,
            deployment(
                "web",
                2,
                &[("web", &originals["web"]), ("log", &originals["log"])],
                json!({}),
            ),
        ),
        (
            &shop,
            deployment(
                "api",
                1,
                &[("api", &originals["api"])],
                json!({
                    "imagePullSecrets": [{ "name": "remote-login" }],
                    "initContainers": [{ "name": "migrate", "image": originals["migrate"] }],
                }),
            ),
        ),
        (
            &shop,
            deployment(
                "worker",
                1,
                &[("worker", &originals["worker"])],
                json!({ "serviceAccountName": "builder" }),
            ),
        ),
        (&shop, deployment("cached", 1, &[("app", &format!("{mirror}/cached/app:1"))], json!({}))),
        (&shop, deployment("idle", 0, &[("idle", &format!("{remote}/acme/idle:1"))], json!({}))),
        (
            &shop,
            deployment("broken", 1, &[("broken", &format!("{remote}/acme/missing:1"))], json!({})),
        ),
        (&ops, deployment("edge", 1, &[("edge", &originals["web"])], json!({}))),
    ];
    for (namespace, object) in deployments {
        weir_testenv::create::<Deployment>(&client, namespace, object).await?;
    }
    // The other kinds: a StatefulSet sharing web's image, a CronJob with the logger, an owned
    // ReplicaSet (its Deployment covers it) and a Pod no controller owns (reported).
    let template = |name: &str, image: &str, restart: &str| {
        json!({ "metadata": { "labels": { "app": name } },
                "spec": { "restartPolicy": restart, "containers": [{ "name": name, "image": image }] } })
    };
    for (api_version, kind, object) in [
        (
            "apps/v1",
            "StatefulSet",
            json!({ "metadata": { "name": "db" }, "spec": { "replicas": 1, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": template("db", &originals["web"], "Always") } }),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({ "metadata": { "name": "nightly" }, "spec": { "schedule": "0 3 * * *", "jobTemplate": { "spec": { "template": template("nightly", &originals["log"], "Never") } } } }),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({ "metadata": { "name": "web-7f", "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "0e6a0a6c-0000-4000-8000-000000000001", "controller": true }] }, "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } }, "template": template("web", &originals["web"], "Always") } }),
        ),
        (
            "v1",
            "Pod",
            json!({ "metadata": { "name": "loose" }, "spec": { "containers": [{ "name": "loose", "image": originals["web"] }] } }),
        ),
    ] {
        let mut object = object;
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        kind_api(&client, &shop, api_version, kind)
            .create(&PostParams::default(), &serde_json::from_value(object)?)
            .await?;
    }
    let before_shop = workloads(&client, &shop).await?;

    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    let _engine = weir.start_engine(plane, &flows)?;
    install_mirror(
        &weir,
        plane,
        &flows,
        (&mirror, &remote, &format!("{shop},{ops}")),
        &[("mirrorSecret", format!("{flows}/mirror-login"))],
    )
    .await?;

    // The first tick: five images planned (idle is scaled to zero, cached served already),
    // four copied, the missing one reported.
    let mirror_before = registries.mirror.requests_by_method();
    let first = tick(&weir, &flows)?;
    let uploads = writes_between(&mirror_before, &registries.mirror.requests_by_method());
    ensure!(
        uploads > 0,
        "the first tick wrote to the mirror: {:?}",
        registries.mirror.requests_by_method()
    );
    // The answer names every workload patched, failed and skipped.
    ensure!(first["images"] == 5, "{first:#}");
    ensure!(
        first["patched"]
            == json!([
                format!("CronJob {shop}/nightly"),
                format!("Deployment {ops}/edge"),
                format!("Deployment {shop}/api"),
                format!("Deployment {shop}/web"),
                format!("Deployment {shop}/worker"),
                format!("StatefulSet {shop}/db"),
            ]),
        "{first:#}"
    );
    let failed = first["failed"].as_array().context("failed")?;
    ensure!(
        failed.len() == 1
            && failed[0]["image"] == format!("{remote}/acme/missing:1")
            && failed[0]["workloads"] == json!([format!("Deployment {shop}/broken")])
            && failed[0]["error"].as_str().is_some_and(|m| m.contains("acme/missing")),
        "{first:#}"
    );
    let skipped: Vec<String> = first["skipped"]
        .as_array()
        .context("skipped")?
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["workload"].as_str().unwrap_or("?"),
                s["reason"].as_str().unwrap_or("?")
            )
        })
        .collect();
    ensure!(
        skipped.len() == 2
            && skipped[0] == format!("Deployment {shop}/cached served by the mirror already")
            && skipped[1].starts_with(&format!(
                "Pod {shop}/loose a Pod that no controller owns cannot change its images"
            )),
        "{skipped:#?}"
    );

    // Every reachable image is in the mirror under the digest it has on the remote, indexes
    // with every platform.
    let mirror_client = registries.mirror_client()?;
    for (repository, reference) in [
        ("library/nginx", "1.27".to_owned()),
        ("private/api", "1.0".to_owned()),
        ("acme/logger", "2".to_owned()),
        ("private/migrate", migrate_digest.replace(':', "-")),
    ] {
        let target = registries.mirrored(repository)?;
        let digest = mirror_client.manifest_digest(&target, &reference).await?;
        ensure!(
            digest.as_ref() == Some(&registries.digests[repository]),
            "{target}:{reference} is {digest:?}"
        );
        for child in registries.children.get(repository).into_iter().flatten() {
            ensure!(
                mirror_client.manifest_digest(&target, child).await?.is_some(),
                "{target}@{child} missing"
            );
        }
    }
    ensure!(
        mirror_client.manifest_digest(&registries.mirrored("acme/idle")?, "1").await?.is_none(),
        "the scaled-to-zero Deployment's image is not copied"
    );

    // The right Deployments point at the copies, pinned by digest, with their originals noted;
    // the others are untouched.
    let pinned = |repository: &str, reference: &str| -> Result<String> {
        Ok(format!(
            "{mirror}/{}:{reference}@{}",
            registries.mirrored(repository)?,
            registries.digests[repository]
        ))
    };
    let nginx = pinned("library/nginx", "1.27")?;
    let expected_shop = BTreeMap::from([
        (
            "web",
            vec![
                ("web", nginx.clone(), &originals["web"]),
                ("log", pinned("acme/logger", "2")?, &originals["log"]),
            ],
        ),
        (
            "api",
            vec![
                ("api", pinned("private/api", "1.0")?, &originals["api"]),
                (
                    "migrate",
                    pinned("private/migrate", &migrate_digest.replace(':', "-"))?,
                    &originals["migrate"],
                ),
            ],
        ),
        ("worker", vec![("worker", pinned("private/api", "1.0")?, &originals["worker"])]),
    ]);
    let after_first = workloads(&client, &shop).await?;
    let expected_shop = {
        let mut all = expected_shop;
        all.insert("db", vec![("db", nginx.clone(), &originals["web"])]);
        all.insert("nightly", vec![("nightly", pinned("acme/logger", "2")?, &originals["log"])]);
        all
    };
    for (name, containers) in &expected_shop {
        let (images, annotations, _) = &after_first[*name];
        for (container, image, original) in containers {
            ensure!(images[*container] == *image, "{name}/{container} is {}", images[*container]);
            ensure!(
                annotations.get(&format!("{ANNOTATION}{container}")) == Some(original),
                "{name}: {annotations:?}"
            );
        }
    }
    for name in ["cached", "idle", "broken"] {
        ensure!(after_first[name] == before_shop[name], "{name} changed: {:?}", after_first[name]);
    }
    let edge = &workloads(&client, &ops).await?["edge"];
    ensure!(edge.0["edge"] == nginx, "ops/edge: {:?}", edge.0);

    // A Deployment applied now is mirrored within seconds by the watch, without a tick.
    let applied = Instant::now();
    weir_testenv::create::<Deployment>(
        &client,
        &shop,
        deployment("fresh", 1, &[("fresh", &originals["web"])], json!({})),
    )
    .await?;
    weir_testenv::eventually("the new Deployment patched by the watch", PATIENCE, || async {
        let found = workloads(&client, &shop).await?;
        Ok((found["fresh"].0["fresh"] == nginx).then_some(()))
    })
    .await?;
    eprintln!("a new Deployment was patched {:?} after it was applied", applied.elapsed());
    let after_first = workloads(&client, &shop).await?;

    // The failure shows in the debug node, the copy node's status and the metrics, and no
    // status holds a password.
    let failures =
        weir_testenv::eventually("the failure in the debug node's status", PATIENCE, || async {
            let status = node_status(&client, &flows, "mirror-failures").await?;
            Ok((status["state"]["count"].as_u64() >= Some(1)).then_some(status))
        })
        .await?;
    // A run the watches start may meet the same image again, under load; every failure is it.
    for seen in failures["state"]["messages"].as_array().context("messages")? {
        let seen = &seen["message"];
        ensure!(
            seen["image"] == format!("{remote}/acme/missing:1")
                && seen["workloads"] == json!([format!("Deployment {shop}/broken")]),
            "{seen}"
        );
    }
    // The plan node says what it cannot mirror, in its Degraded condition, which the flow's
    // repeats where a controller runs.
    let degraded = weir_testenv::eventually("the plan node degraded", PATIENCE, || async {
        let status = node_status(&client, &flows, "mirror-plan").await?;
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        Ok(conditions.into_iter().find(|c| c["type"] == "Degraded" && c["status"] == "True"))
    })
    .await?;
    let expected = format!("1 of 5 images cannot be mirrored: {remote}/acme/missing:1 (");
    ensure!(
        degraded["reason"] == "NodeReported"
            && degraded["message"].as_str().is_some_and(|m| m.starts_with(&expected)),
        "{degraded}"
    );
    let flows_api: Api<weir_model::Flow> = Api::namespaced(client.clone(), &flows);
    let flow_degraded = weir_testenv::eventually("the flow degraded", PATIENCE, || async {
        let flow = flows_api.get("image-mirror").await?;
        let conditions = flow.status.map(|s| s.conditions).unwrap_or_default();
        Ok(conditions
            .into_iter()
            .find(|c| c.type_ == "Degraded" && c.status == weir_model::ConditionStatus::True))
    })
    .await?;
    ensure!(
        flow_degraded.reason == "NodesDegraded"
            && flow_degraded.message.starts_with(&format!("node mirror-plan: {expected}")),
        "{flow_degraded:?}"
    );
    let copy =
        weir_testenv::eventually("the copy node's error in its status", PATIENCE, || async {
            let status = node_status(&client, &flows, "mirror-copy").await?;
            Ok((status["counters"]["errors"].as_u64() >= Some(1)).then_some(status))
        })
        .await?;
    ensure!(
        copy["lastError"]["message"].as_str().is_some_and(|m| m.contains("acme/missing")),
        "{copy}"
    );
    let distribution = modules
        .iter()
        .find(|p| p.log().contains("module distribution serves"))
        .context("distribution")?;
    let metrics_address =
        http_address(distribution).context("the distribution module's HTTP address")?;
    let metrics = reqwest::get(format!("http://{metrics_address}/metrics")).await?.text().await?;
    let errors = format!(
        "weir_node_errors_total{{namespace=\"{flows}\",flow=\"image-mirror\",node=\"mirror-copy\"}} "
    );
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix(&errors))
        .and_then(|count| count.parse::<u64>().ok());
    ensure!(counted >= Some(1), "{metrics}");
    // What the last tick covered, by state: the flow's own gauges.
    for (family, labels, value) in [
        ("weir_mirror_images", "state=\"mirrored\"", 4),
        ("weir_mirror_images", "state=\"failed\"", 1),
        ("weir_mirror_workloads", "kind=\"Deployment\",state=\"covered\"", 5),
        ("weir_mirror_workloads", "kind=\"Deployment\",state=\"failed\"", 1),
        ("weir_mirror_workloads", "kind=\"StatefulSet\",state=\"covered\"", 1),
        ("weir_mirror_workloads", "kind=\"CronJob\",state=\"covered\"", 1),
        ("weir_mirror_workloads", "kind=\"Pod\",state=\"skipped\"", 1),
    ] {
        let line = format!(
            "{family}{{namespace=\"{flows}\",flow=\"image-mirror\",node=\"mirror-plan\",{labels}}} {value}"
        );
        ensure!(metrics.contains(&line), "no {line} in {metrics}");
    }
    let statuses = succeeded(
        plane.kubectl().args(["get", "flownodes", "-n", &flows, "-o", "json"]),
        "kubectl get",
    )?;
    ensure!(!statuses.contains("s3cret"), "a password in a node's status");

    // The second tick finds nothing new: existence checks only, no upload, no patch, and each
    // Secret read once (the mirror's login serves five images).
    quiet(&registries.mirror).await;
    let api_before = weir_testenv::apiserver_requests(&client).await?;
    let mirror_before = registries.mirror.requests_by_method();
    let remote_before = registries.remote.as_ref().context("remote")?.requests().len();
    let second = tick(&weir, &flows)?;
    ensure!(
        second["images"] == 5
            && second["patched"] == json!([])
            && second["failed"].as_array().map(Vec::len) == Some(1),
        "nothing to patch: {second:#}"
    );
    let api = delta(&api_before, &weir_testenv::apiserver_requests(&client).await?);
    ensure!(api.get("GET secrets") == Some(&2), "mirror-login and remote-login once: {api:?}");
    let writes = writes_between(&mirror_before, &registries.mirror.requests_by_method());
    ensure!(
        writes == 0,
        "the mirror was written to: {mirror_before:?} → {:?}",
        registries.mirror.requests_by_method()
    );
    ensure!(workloads(&client, &shop).await? == after_first, "a Deployment changed");
    // On the remote: existence checks, and the missing image's manifest asked for once more.
    let remote_requests = registries.remote.as_ref().context("remote")?.requests();
    let reads: Vec<String> = remote_requests[remote_before..]
        .iter()
        .filter(|(method, uri)| method != "HEAD" && !uri.contains("/acme/missing/"))
        .map(|(method, uri)| format!("{method} {uri}"))
        .collect();
    ensure!(reads.is_empty(), "the remote saw more than existence checks: {reads:?}");

    // With the remote registry stopped, the run reports the outage and changes nothing.
    registries.remote = None;
    let mirror_before = registries.mirror.requests_by_method();
    let outage = tick(&weir, &flows)?;
    ensure!(
        outage["patched"] == json!([]) && outage["failed"].as_array().map(Vec::len) == Some(5),
        "{outage:#}"
    );
    for failure in outage["failed"].as_array().context("failed")? {
        ensure!(failure["kind"] == "transient", "{failure}");
    }
    ensure!(writes_between(&mirror_before, &registries.mirror.requests_by_method()) == 0);
    ensure!(workloads(&client, &shop).await? == after_first, "a Deployment changed in the outage");

    // With the mirror down, a tick stops before it lists anything, says so, and the check
    // node's Degraded condition says since when.
    registries.mirror.stop();
    // Node status is written at most once a second: let the outage tick's counts land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = node_status(&client, &flows, "mirror-list").await?;
    let output = weir
        .command(&[
            "send",
            "-n",
            &flows,
            "--timeout",
            TICK_TIMEOUT,
            "mirror-tick:control",
            r#"{"action":"tick"}"#,
        ])
        .output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success()
            && said.contains(&format!("registry {mirror} has not answered for "))
            && said.contains("nothing that relies on it runs"),
        "{said}"
    );
    let down = weir_testenv::eventually("the check node degraded", PATIENCE, || async {
        let status = node_status(&client, &flows, "mirror-check").await?;
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        Ok(conditions.into_iter().find(|c| c["type"] == "Degraded" && c["status"] == "True"))
    })
    .await?;
    ensure!(
        down["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("registry {mirror} has not answered"))),
        "{down}"
    );
    let after = node_status(&client, &flows, "mirror-list").await?;
    ensure!(
        after["counters"]["messagesIn"] == before["counters"]["messagesIn"],
        "nothing was listed: {before} {after}"
    );

    // The revert: the mirror suspended (ticks and watches), the companion flow puts every
    // original back.
    let reverted = revert(&weir, plane, &flows, &mirror, &format!("{shop},{ops}")).await?;
    ensure!(reverted["total"] == 7 && reverted["succeeded"] == 7, "{reverted:#}");
    let mut named: Vec<String> = reverted["answers"]
        .as_array()
        .context("answers")?
        .iter()
        .map(|a| {
            format!("{} {}", a["kind"].as_str().unwrap_or("?"), a["name"].as_str().unwrap_or("?"))
        })
        .collect();
    named.sort();
    ensure!(
        named
            == [
                "CronJob nightly",
                "Deployment api",
                "Deployment edge",
                "Deployment fresh",
                "Deployment web",
                "Deployment worker",
                "StatefulSet db"
            ],
        "the revert names each workload it patched: {reverted:#}"
    );
    let after_revert = workloads(&client, &shop).await?;
    for (name, (images, annotations, _)) in &after_revert {
        let fresh = BTreeMap::from([("fresh".to_owned(), originals["web"].clone())]);
        let before_images = before_shop.get(name).map_or(&fresh, |before| &before.0);
        ensure!(images == before_images, "{name}: {images:?}, was {before_images:?}");
        ensure!(!annotations.keys().any(|k| k.starts_with(ANNOTATION)), "{name}: {annotations:?}");
    }
    let edge = &workloads(&client, &ops).await?["edge"];
    ensure!(edge.0["edge"] == originals["web"] && edge.1.is_empty(), "ops/edge: {edge:?}");
    Ok(())
}

/// Waits until `registry` has answered nothing for 3 s: the runs the watches started (after a
/// tick's patches) are done.
async fn quiet(registry: &LocalRegistry) {
    let mut quiet = (registry.requests_by_method(), Instant::now());
    while quiet.1.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = registry.requests_by_method();
        if now != quiet.0 {
            quiet = (now, Instant::now());
        }
    }
}

/// How many writing requests (`PUT`, `POST`, `PATCH`, `DELETE`) a registry answered between two
/// counts.
fn writes_between(before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>) -> usize {
    ["PUT", "POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| after.get(*m).copied().unwrap_or(0) - before.get(*m).copied().unwrap_or(0))
        .sum()
}

fn delta<K: Ord + Clone>(before: &BTreeMap<K, u64>, after: &BTreeMap<K, u64>) -> BTreeMap<K, u64> {
    after
        .iter()
        .filter_map(|(key, now)| {
            let grown = now - before.get(key).copied().unwrap_or(0);
            (grown > 0).then(|| (key.clone(), grown))
        })
        .collect()
}

/// A tick over 500 Deployments in five namespaces sharing 50 images, every one of them mirrored
/// and patched already: how long it takes and what it asks of the apiserver and the registries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture, record the numbers in docs/benchmarks.md"]
// Printing the numbers is what a measurement is for.
#[allow(clippy::print_stdout)]
async fn a_tick_over_500_deployments_sharing_50_images_already_mirrored() -> Result<()> {
    const DEPLOYMENTS: usize = 500;
    const IMAGES: usize = 50;
    const NAMESPACES: usize = 5;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("bench").await?;
    let mut apps = Vec::new();
    for _ in 0..NAMESPACES {
        apps.push(plane.namespace("fleet").await?);
    }
    let tokens = start_token_service().await?;
    let remote = start_registry_with_tokens(&tokens).await?;
    let mirror = start_registry_with_password().await?;
    let source = Registry::new(&remote.host, true)?.with_credentials(tester());
    for image in 0..IMAGES {
        let manifest = push_image(
            &source,
            &format!("fleet/app-{image}"),
            &[random_bytes(4_096)],
            false,
            "amd64",
        )
        .await?;
        source.put_manifest(&format!("fleet/app-{image}"), "1", &manifest).await?;
    }
    weir_testenv::create::<Secret>(&client, &flows, login_secret("mirror-login", &mirror.host))
        .await?;
    for index in 0..DEPLOYMENTS {
        let image = format!("{}/fleet/app-{}:1", remote.host, index % IMAGES);
        let object = deployment(&format!("app-{index}"), 2, &[("app", &image)], json!({}));
        weir_testenv::create::<Deployment>(&client, &apps[index % NAMESPACES], object).await?;
    }
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    install_mirror(
        &weir,
        plane,
        &flows,
        (&mirror.host, &remote.host, &apps.join(",")),
        &[("mirrorSecret", format!("{flows}/mirror-login"))],
    )
    .await?;
    let started = Instant::now();
    let first = tick(&weir, &flows)?;
    let first_took = started.elapsed();
    ensure!(
        first["images"] == IMAGES
            && first["failed"] == json!([])
            && first["patched"].as_array().map(Vec::len) == Some(DEPLOYMENTS),
        "{first:#}"
    );
    // The first tick's patches wake the watches: one run per patched Deployment, finding its
    // copy in place. The measured tick starts once they are done.
    quiet(&mirror).await;

    let (api_before, mirror_before, remote_before) = (
        weir_testenv::apiserver_requests(&client).await?,
        mirror.requests_by_method(),
        remote.requests_by_method(),
    );
    let tokens_before = tokens.issued.load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let second = tick(&weir, &flows)?;
    let took = started.elapsed();
    let api = delta(&api_before, &weir_testenv::apiserver_requests(&client).await?);
    let to_u64 = |counts: BTreeMap<String, usize>| -> BTreeMap<String, u64> {
        counts.into_iter().map(|(k, v)| (k, v as u64)).collect()
    };
    let mirror_requests = delta(&to_u64(mirror_before), &to_u64(mirror.requests_by_method()));
    let remote_requests = delta(&to_u64(remote_before), &to_u64(remote.requests_by_method()));
    let tokens_issued = tokens.issued.load(std::sync::atomic::Ordering::Relaxed) - tokens_before;
    ensure!(
        second["images"] == IMAGES
            && second["failed"] == json!([])
            && second["patched"] == json!([]),
        "{second:#}"
    );

    // What `weir send` itself costs: a control message that changes nothing.
    let started = Instant::now();
    weir.send(&flows, "mirror-tick:control", &json!({ "action": "start" }), TICK_TIMEOUT)?;
    let send_took = started.elapsed();

    println!("first tick (50 copies, 500 patches): {first_took:.2?}");
    println!("weir send of a message that does nothing: {send_took:.2?}");
    println!("second tick, everything mirrored: {took:.2?} (weir send included)");
    println!("apiserver requests during it: {api:?}");
    println!("mirror registry requests: {mirror_requests:?}");
    println!("remote registry requests: {remote_requests:?}, tokens issued: {tokens_issued}");
    ensure!(
        !api.keys().any(|k| k.ends_with("deployments.apps")
            && !k.starts_with("LIST")
            && !k.starts_with("GET")),
        "a Deployment was written: {api:?}"
    );
    ensure!(
        writes_between(
            &BTreeMap::new(),
            &mirror_requests.iter().map(|(k, v)| (k.clone(), *v as usize)).collect()
        ) == 0,
        "the mirror was written to"
    );
    Ok(())
}

/// How soon a workload applied to the cluster is mirrored and patched, with no tick: 20
/// Deployments whose image the mirror has already, then 20 whose image it has not, applied one
/// at a time, each timed from its create to the patched image the watch's run leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture, record the numbers in docs/benchmarks.md"]
// Printing the numbers is what a measurement is for.
#[allow(clippy::print_stdout)]
async fn new_workloads_are_mirrored_within_seconds_of_being_applied() -> Result<()> {
    const WORKLOADS: usize = 20;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("watched").await?;
    let apps = plane.namespace("apps").await?;
    let tokens = start_token_service().await?;
    let remote = start_registry_with_tokens(&tokens).await?;
    let mirror = start_registry_with_password().await?;
    let source = Registry::new(&remote.host, true)?.with_credentials(tester());
    for image in 0..=WORKLOADS {
        let repository = format!("fleet/app-{image}");
        let manifest =
            push_image(&source, &repository, &[random_bytes(4_096)], false, "amd64").await?;
        source.put_manifest(&repository, "1", &manifest).await?;
    }
    weir_testenv::create::<Secret>(&client, &flows, login_secret("mirror-login", &mirror.host))
        .await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    install_mirror(
        &weir,
        plane,
        &flows,
        (&mirror.host, &remote.host, &apps),
        &[("mirrorSecret", format!("{flows}/mirror-login"))],
    )
    .await?;
    // One workload first, so app-0 is in the mirror and the watches are running.
    let warm = |name: &str, image: usize| {
        deployment(name, 1, &[("app", &format!("{}/fleet/app-{image}:1", remote.host))], json!({}))
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &apps);
    let patched = |name: String| {
        let deployments = deployments.clone();
        let mirror = mirror.host.clone();
        async move {
            weir_testenv::eventually(&format!("{name} patched"), PATIENCE, || async {
                let found = deployments.get(&name).await?;
                let image = found
                    .spec
                    .and_then(|s| s.template.spec)
                    .and_then(|p| p.containers.into_iter().next())
                    .and_then(|c| c.image)
                    .unwrap_or_default();
                Ok(image.starts_with(&mirror).then_some(()))
            })
            .await
        }
    };
    // A workload created while a watch makes its first list counts as there before it (the
    // tick covers those): let the watches settle first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    weir_testenv::create::<Deployment>(&client, &apps, warm("first", 0)).await?;
    patched("first".to_owned()).await?;
    let mut rounds = Vec::new();
    for (what, image) in [("already mirrored", None), ("not mirrored yet", Some(()))] {
        let mut took = Vec::new();
        for index in 0..WORKLOADS {
            let name = format!("{}-{index}", if image.is_some() { "new" } else { "known" });
            let started = Instant::now();
            let number = if image.is_some() { index + 1 } else { 0 };
            weir_testenv::create::<Deployment>(&client, &apps, warm(&name, number)).await?;
            patched(name).await?;
            took.push(started.elapsed());
        }
        took.sort();
        rounds.push((what, took));
    }
    for (what, took) in rounds {
        println!(
            "apply to patched, image {what}: p50 {:.2?}, p90 {:.2?}, max {:.2?} over {WORKLOADS}",
            took[took.len() / 2],
            took[took.len() * 9 / 10],
            took[took.len() - 1]
        );
    }
    Ok(())
}

/// With `revertWhenMirrorDown`, a check that finds the mirror silent for longer than
/// `mirrorDownFor` points the workloads back at their originals, once, through the plan's
/// revert and the same patch; the run itself still fails, naming the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_down_longer_than_allowed_points_the_workloads_back() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("down").await?;
    let apps = plane.namespace("downapps").await?;
    let remote = start_registry().await?;
    let mut mirror = start_registry().await?;
    let source = Registry::new(&remote.host, true)?;
    let manifest = push_image(&source, "acme/app", &[random_bytes(4_096)], false, "amd64").await?;
    source.put_manifest("acme/app", "1", &manifest).await?;
    let original = format!("{}/acme/app:1", remote.host);
    weir_testenv::create::<Deployment>(
        &client,
        &apps,
        deployment("app", 1, &[("app", &original)], json!({})),
    )
    .await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    install_mirror(
        &weir,
        plane,
        &flows,
        (&mirror.host, &remote.host, &apps),
        &[("revertWhenMirrorDown", "true".to_owned()), ("mirrorDownFor", "0s".to_owned())],
    )
    .await?;
    let first = tick(&weir, &flows)?;
    ensure!(first["patched"] == json!([format!("Deployment {apps}/app")]), "{first:#}");
    let image = |found: &Workloads| found["app"].0["app"].clone();
    ensure!(image(&workloads(&client, &apps).await?).starts_with(&mirror.host), "on the mirror");

    mirror.stop();
    let output = weir
        .command(&[
            "send",
            "-n",
            &flows,
            "--timeout",
            TICK_TIMEOUT,
            "mirror-tick:control",
            r#"{"action":"tick"}"#,
        ])
        .output()?;
    ensure!(!output.status.success(), "the tick ran on a silent mirror");
    let back = weir_testenv::eventually("the workload pointed back", PATIENCE, || async {
        let found = workloads(&client, &apps).await?;
        Ok((image(&found) == original).then_some(found))
    })
    .await?;
    ensure!(
        !back["app"].1.keys().any(|k| k.starts_with(ANNOTATION)),
        "the mirror's annotations go: {:?}",
        back["app"].1
    );
    Ok(())
}

/// The promise itself, on the test's single-node cluster: workloads of every patchable kind run
/// pods pulled from "remote" registries (one private, with a pull secret; an init container; a
/// multi-platform index; one scaled to zero); the mirror copies their images and patches them;
/// the remotes are then stopped, the node forgets every image and every pod is deleted, and every
/// kind's new pod (a replacement, a Job from the CronJob) starts from the mirror, while the same
/// Deployment in a namespace the mirror leaves alone cannot pull. With the remotes back, the
/// revert points every workload at its source again and the pods start from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_every_kind_start_from_the_mirror_with_the_source_registry_stopped() -> Result<()> {
    let _node = ON_THE_NODE.lock().await;
    let cluster = Cluster::shared();
    let client = cluster.client().await?;
    let mut remote = start_registry().await?;
    // A second source wants a password: its image is private.
    let mut private = start_registry_with_password().await?;
    let mirror = start_registry().await?;
    for registry in [&remote, &private, &mirror] {
        cluster.expose_registry(&registry.host)?;
    }
    let source = Registry::new(&remote.host, true)?;
    let sleeper = busybox_image(&["/bin/sh", "-c", "sleep 3600"])?;
    sleeper.push(&source, "acme/app", "1").await?;
    busybox_image(&["/bin/sh", "-c", "echo done"])?.push(&source, "acme/task", "1").await?;
    sleeper
        .push(&Registry::new(&private.host, true)?.with_credentials(tester()), "private/app", "1")
        .await?;
    // A multi-platform index: the node runs its amd64 child; the arm64 one is copied too.
    sleeper.push(&source, "acme/multi", "amd64").await?;
    let amd64 = source.manifest("acme/multi", "amd64").await?;
    let arm64 = push_image(&source, "acme/multi", &[random_bytes(1_000)], false, "arm64").await?;
    push_index(&source, "acme/multi", "1", &[(&amd64, "amd64"), (&arm64, "arm64")], false).await?;
    let (app, task) =
        (format!("{}/acme/app:1", remote.host), format!("{}/acme/task:1", remote.host));
    let (secret_app, multi) =
        (format!("{}/private/app:1", private.host), format!("{}/acme/multi:1", remote.host));
    let flows = cluster.namespace("nodemirror").await?;
    let apps = cluster.namespace("nodeapps").await?;
    weir_testenv::create::<Secret>(&client, &apps, login_secret("private-login", &private.host))
        .await?;
    let pod = |name: &str, image: &str, restart: &str| {
        json!({ "metadata": { "labels": { "app": name } }, "spec": {
            "terminationGracePeriodSeconds": 0, "restartPolicy": restart,
            "containers": [{ "name": "main", "image": image, "imagePullPolicy": "Always" }] } })
    };
    let selector = |name: &str| json!({ "matchLabels": { "app": name } });
    // A private image with its pull secret and an init container; an index; a Deployment
    // scaled to zero (nothing to copy or patch).
    let mut guarded = pod("secret", &secret_app, "Always");
    guarded["spec"]["imagePullSecrets"] = json!([{ "name": "private-login" }]);
    guarded["spec"]["initContainers"] =
        json!([{ "name": "init", "image": task, "imagePullPolicy": "Always" }]);
    let workloads = [
        (
            "apps/v1",
            "Deployment",
            json!({ "metadata": { "name": "secret" }, "spec": { "replicas": 1, "selector": selector("secret"), "template": guarded } }),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({ "metadata": { "name": "multi" }, "spec": { "replicas": 1, "selector": selector("multi"), "template": pod("multi", &multi, "Always") } }),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({ "metadata": { "name": "idle" }, "spec": { "replicas": 0, "selector": selector("idle"), "template": pod("idle", &format!("{}/acme/idle:1", remote.host), "Always") } }),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({ "metadata": { "name": "web" }, "spec": { "replicas": 1, "selector": selector("web"), "template": pod("web", &app, "Always") } }),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({ "metadata": { "name": "db" }, "spec": { "replicas": 1, "serviceName": "db", "selector": selector("db"), "template": pod("db", &app, "Always") } }),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({ "metadata": { "name": "agent" }, "spec": { "selector": selector("agent"), "template": pod("agent", &app, "Always") } }),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({ "metadata": { "name": "plain" }, "spec": { "replicas": 1, "selector": selector("plain"), "template": pod("plain", &app, "Always") } }),
        ),
        (
            "v1",
            "ReplicationController",
            json!({ "metadata": { "name": "legacy" }, "spec": { "replicas": 1, "selector": { "app": "legacy" }, "template": pod("legacy", &app, "Always") } }),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({ "metadata": { "name": "nightly" }, "spec": { "schedule": "0 3 * * *", "jobTemplate": { "spec": { "template": pod("nightly", &task, "Never") } } } }),
        ),
    ];
    for (api_version, kind, object) in workloads.clone() {
        let mut object = object;
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        kind_api(&client, &apps, api_version, kind)
            .create(&PostParams::default(), &serde_json::from_value(object)?)
            .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &apps);
    // The pods of each app running the image `image`, ready (or, for a Job's, done).
    let running = |app: &'static str, prefix: String| {
        let pods = pods.clone();
        async move {
            eventually(&format!("{app} running from {prefix}"), PATIENCE, || async {
                let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await?;
                Ok(list.items.into_iter().find(|pod| {
                    let status = pod.status.clone().unwrap_or_default();
                    let image = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default();
                    pod.metadata.deletion_timestamp.is_none()
                        && image.starts_with(&prefix)
                        && matches!(status.phase.as_deref(), Some("Running" | "Succeeded"))
                }))
            })
            .await
        }
    };
    // The same Deployment in a namespace the mirror leaves alone: the control.
    let control = cluster.namespace("nodecontrol").await?;
    let control_pods: Api<Pod> = Api::namespaced(client.clone(), &control);
    let mut web = workloads
        .iter()
        .find(|(_, _, object)| object["metadata"]["name"] == "web")
        .context("web")?
        .2
        .clone();
    web["apiVersion"] = json!("apps/v1");
    web["kind"] = json!("Deployment");
    kind_api(&client, &control, "apps/v1", "Deployment")
        .create(&PostParams::default(), &serde_json::from_value(web)?)
        .await?;
    for name in ["web", "db", "agent", "plain", "legacy", "multi"] {
        running(name, remote.host.clone()).await?;
    }
    running("secret", private.host.clone()).await?;
    pod_where(&control_pods, "web", "the control serving from the source", serving).await?;

    let phase = Instant::now();
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &cluster.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(cluster, &flows, &MODULES, ACCOUNT)?;
    let sources = format!("{},{}", remote.host, private.host);
    install_mirror(&weir, cluster, &flows, (&mirror.host, &sources, &apps), &[]).await?;
    eprintln!("phase: the mirror installed and ready in {:.1?}", phase.elapsed());
    let phase = Instant::now();
    let first = tick(&weir, &flows)?;
    eprintln!(
        "phase: the first tick (4 images copied, 8 workloads patched) took {:.1?}",
        phase.elapsed()
    );
    let patched: Vec<&str> =
        first["patched"].as_array().context("patched")?.iter().filter_map(Value::as_str).collect();
    let expected: Vec<String> = [
        "CronJob nightly",
        "DaemonSet agent",
        "Deployment multi",
        "Deployment secret",
        "Deployment web",
        "ReplicaSet plain",
        "ReplicationController legacy",
        "StatefulSet db",
    ]
    .iter()
    .map(|workload| workload.replacen(' ', &format!(" {apps}/"), 1))
    .collect();
    ensure!(
        patched == expected,
        "every kind patched, the controlled ReplicaSets left to their Deployments, the idle one \
         left alone: {first:#}"
    );

    // The patched templates roll out: each rolled workload's new pod runs from the mirror. Only
    // then may the node forget, for a pull still under way would put back what it forgot.
    for name in ["web", "db", "agent", "secret", "multi"] {
        running(name, mirror.host.clone()).await?;
    }

    // The source goes away, the node forgets every image and every pod is deleted: each pod
    // from now on must come from the mirror, byte by byte.
    let phase = Instant::now();
    remote.stop();
    private.stop();
    let seen = mirror.requests().len();
    let mut forgotten = cluster.forget_images(&remote.host)?;
    forgotten.extend(cluster.forget_images(&private.host)?);
    forgotten.extend(cluster.forget_images(&mirror.host)?);
    ensure!(!forgotten.is_empty(), "the node had pulled the images");
    for pods in [&pods, &control_pods] {
        pods.delete_collection(&Default::default(), &ListParams::default()).await?;
    }
    // A CronJob's template change reaches its next Job: make one.
    succeeded(
        cluster.kubectl().args(["create", "job", "-n", &apps, "now", "--from=cronjob/nightly"]),
        "kubectl create job",
    )?;
    for name in ["web", "db", "agent", "plain", "legacy", "nightly", "secret", "multi"] {
        let pod = running(name, mirror.host.clone()).await?;
        let pulled = pod
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().next())
            .map(|c| c.image_id)
            .unwrap_or_default();
        ensure!(pulled.contains("@sha256:"), "{name}: pulled {pulled}");
    }
    eprintln!(
        "phase: with the source stopped and the node's images forgotten, every kind served from \
         the mirror {:.1?} after its pods were deleted",
        phase.elapsed()
    );
    // Without the mirror, the same Deployment cannot start.
    let stuck = pod_where(&control_pods, "web", "the control failing to pull", |pod| {
        waiting(pod).is_some_and(|(reason, message)| {
            matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff")
                && message.contains(&remote.host)
        })
    })
    .await?;
    eprintln!("the control waits: {:?}", waiting(&stuck));
    // containerd resolves each pull on the mirror (a HEAD, then a GET when it lacks the
    // manifest); the layers it has already by digest.
    let resolved = mirror.requests()[seen..]
        .iter()
        .filter(|(method, uri)| {
            (method == "HEAD" || method == "GET") && uri.contains("/manifests/")
        })
        .count();
    ensure!(resolved >= 8, "each new pod's image resolved on the mirror: {resolved} requests");
    // The sleeper is one image in three repositories (acme/app, private/app, acme/multi's
    // child): containerd fetches its blobs once, from whichever pulls first.
    let requests = mirror.requests();
    let fetched: Vec<&[&str]> = [&["acme/app", "private/app", "acme/multi"][..], &["acme/task"]]
        .into_iter()
        .filter(|repositories| {
            requests[seen..].iter().any(|(method, uri)| {
                method == "GET"
                    && repositories.iter().any(|r| uri.contains(&format!("/{r}/blobs/")))
            })
        })
        .collect();
    ensure!(fetched.len() == 2, "the forgotten images' blobs came from the mirror: {fetched:?}");

    // The source is back and the revert puts every original back: new pods start from the
    // source again.
    let phase = Instant::now();
    remote.restart().await?;
    private.restart().await?;
    let reverted = revert(&weir, cluster, &flows, &mirror.host, &apps).await?;
    ensure!(reverted["total"] == 8 && reverted["succeeded"] == 8, "{reverted:#}");
    for app in ["plain", "legacy"] {
        pods.delete_collection(
            &Default::default(),
            &ListParams::default().labels(&format!("app={app}")),
        )
        .await?;
    }
    succeeded(
        cluster.kubectl().args(["create", "job", "-n", &apps, "again", "--from=cronjob/nightly"]),
        "kubectl create job",
    )?;
    for name in ["web", "db", "agent", "plain", "legacy", "nightly", "multi"] {
        running(name, remote.host.clone()).await?;
    }
    running("secret", private.host.clone()).await?;
    eprintln!(
        "phase: reverted, every kind served from the source again {:.1?} after it came back",
        phase.elapsed()
    );
    Ok(())
}

/// A registry in front of another that holds the first GET of a manifest of `repository` until
/// told to let it go, so a test can act between a tick's plan and its patch.
#[derive(Clone)]
struct Holding {
    upstream: String,
    repository: &'static str,
    held: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
    holding: Arc<std::sync::atomic::AtomicBool>,
}

async fn hold_or_forward(
    axum::extract::State(holding): axum::extract::State<Holding>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let (method, headers) = (request.method().clone(), request.headers().clone());
    if method == axum::http::Method::GET
        && path.contains(&format!("/{}/manifests/", holding.repository))
        && holding.holding.swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        holding.held.notify_one();
        holding.release.notified().await;
    }
    forward(&holding.upstream, method, &path, &headers).await
}

/// A registry's request passed on to `upstream` (its accept and authorization headers along),
/// and the answer passed back.
async fn forward(
    upstream: &str,
    method: axum::http::Method,
    path: &str,
    headers: &axum::http::HeaderMap,
) -> axum::response::Response {
    let mut forward = reqwest::Client::new().request(method, format!("http://{upstream}{path}"));
    for name in [axum::http::header::ACCEPT, axum::http::header::AUTHORIZATION] {
        if let Some(value) = headers.get(&name) {
            forward = forward.header(name, value);
        }
    }
    let Ok(answer) = forward.send().await else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = axum::response::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        response = response.header(name.as_str(), value.as_bytes());
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(axum::body::Body::from(body)).unwrap_or_default()
}

/// A registry in front of another that counts pulls as Docker Hub does (a GET of a manifest)
/// and answers 429 once `limit` are spent, until the test resets the count.
#[derive(Clone)]
struct Limited {
    upstream: String,
    limit: usize,
    pulls: Arc<std::sync::atomic::AtomicUsize>,
}

async fn limit_or_forward(
    axum::extract::State(limited): axum::extract::State<Limited>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use std::sync::atomic::Ordering::SeqCst;
    let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let (method, headers) = (request.method().clone(), request.headers().clone());
    if method == axum::http::Method::GET && path.contains("/manifests/") {
        let pulls = limited.pulls.fetch_add(1, SeqCst) + 1;
        if pulls > limited.limit {
            return (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [
                    ("ratelimit-limit", format!("{};w=21600", limited.limit)),
                    ("ratelimit-remaining", "0;w=21600".to_owned()),
                ],
                "toomanyrequests: you have reached your pull rate limit",
            )
                .into_response();
        }
        let mut answer = forward(&limited.upstream, method, &path, &headers).await;
        let remaining = format!("{};w=21600", limited.limit - pulls);
        if let Ok(value) = axum::http::HeaderValue::from_str(&remaining) {
            answer.headers_mut().insert("ratelimit-remaining", value);
        }
        return answer;
    }
    forward(&limited.upstream, method, &path, &headers).await
}

/// A source at its pull limit fails no copy for good: the images it refuses are reported as
/// transient, the others proceed and are patched, and the next tick, with pulls to spend again,
/// copies the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_at_its_pull_limit_fails_no_copy_for_good() -> Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("limited").await?;
    let apps = plane.namespace("limitedapps").await?;
    let upstream = start_registry().await?;
    let mirror = start_registry().await?;
    let source = Registry::new(&upstream.host, true)?;
    let repositories = ["acme/one", "acme/two", "acme/three"];
    for repository in repositories {
        let image = push_image(&source, repository, &[random_bytes(4_096)], false, "amd64").await?;
        source.put_manifest(repository, "1", &image).await?;
    }
    let limited = Limited { upstream: upstream.host.clone(), limit: 2, pulls: Arc::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let remote = listener.local_addr()?.to_string();
    let app = axum::Router::new().fallback(limit_or_forward).with_state(limited.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for repository in repositories {
        let name = repository.trim_start_matches("acme/");
        weir_testenv::create::<Deployment>(
            &client,
            &apps,
            deployment(name, 1, &[(name, &format!("{remote}/{repository}:1"))], json!({})),
        )
        .await?;
    }
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    install_mirror(&weir, plane, &flows, (&mirror.host, &remote, &apps), &[]).await?;
    // No pulls held back (the copy node's budget): the limit itself is what this test meets.
    succeeded(
        plane.kubectl().args([
            "patch",
            "flownode",
            "mirror-copy",
            "-n",
            &flows,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"settings":{"minPullsLeft":0}}}"#,
        ]),
        "kubectl patch flownode",
    )?;
    let nodes: Api<weir_model::FlowNode> = Api::namespaced(client.clone(), &flows);
    eventually("the copy node rebuilt with its new settings", PATIENCE, || async {
        let node = nodes.get("mirror-copy").await?;
        let status = node.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == weir_model::ConditionStatus::True);
        Ok((ready && status.observed_generation == node.metadata.generation).then_some(()))
    })
    .await?;

    let first = tick(&weir, &flows)?;
    let patched = first["patched"].as_array().map_or(0, Vec::len);
    let failed = first["failed"].as_array().context("failed")?;
    ensure!(patched == 2 && failed.len() == 1, "two copied and patched, one refused: {first:#}");
    ensure!(
        failed[0]["kind"] == "transient"
            && failed[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("429") || e.contains("rate limit")),
        "{first:#}"
    );
    let refused = failed[0]["image"].as_str().context("image")?.to_owned();

    // The window resets: the next tick copies what was refused, and pulls nothing else again.
    limited.pulls.store(0, SeqCst);
    let second = tick(&weir, &flows)?;
    server.abort();
    ensure!(second["failed"] == json!([]), "{second:#}");
    let workloads = workloads(&client, &apps).await?;
    for repository in repositories {
        let name = repository.trim_start_matches("acme/");
        ensure!(workloads[name].0[name].starts_with(&mirror.host), "{name}: {:?}", workloads[name]);
    }
    ensure!(
        limited.pulls.load(SeqCst) == 1,
        "the second tick pulled only {refused}: {} pulls",
        limited.pulls.load(SeqCst)
    );
    Ok(())
}

/// A workload someone moves to another image while the tick copies its image is left alone,
/// not rolled back to the copy of the old one, and the tick's answer says so, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_moved_while_its_image_is_copied_is_left_alone_and_named() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("moved").await?;
    let apps = plane.namespace("movedapps").await?;
    let upstream = start_registry().await?;
    let mirror = start_registry().await?;
    let source = Registry::new(&upstream.host, true)?;
    for repository in ["acme/slow", "acme/next"] {
        let image = push_image(&source, repository, &[random_bytes(4_096)], false, "amd64").await?;
        source.put_manifest(repository, "1", &image).await?;
    }
    let holding = Holding {
        upstream: upstream.host.clone(),
        repository: "acme/slow",
        held: Arc::default(),
        release: Arc::default(),
        holding: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let remote = listener.local_addr()?.to_string();
    let app = axum::Router::new().fallback(hold_or_forward).with_state(holding.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let original = format!("{remote}/acme/slow:1");
    weir_testenv::create::<Deployment>(
        &client,
        &apps,
        deployment("app", 1, &[("app", &original)], json!({})),
    )
    .await?;
    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(plane, &flows, &MODULES, ACCOUNT)?;
    install_mirror(&weir, plane, &flows, (&mirror.host, &remote, &apps), &[]).await?;

    let ticking = tokio::task::spawn_blocking({
        let (weir, flows) = (weir.clone(), flows.clone());
        move || tick(&weir, &flows)
    });
    tokio::time::timeout(PATIENCE, holding.held.notified()).await?;
    // A deploy lands while the copy waits for the source.
    let moved = format!("{remote}/acme/next:1");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &apps);
    let change = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": moved }] } } } });
    deployments
        .patch("app", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(change))
        .await?;
    holding.release.notify_one();
    let answer = ticking.await??;
    server.abort();
    ensure!(answer["patched"] == json!([]), "nothing patched: {answer:#}");
    let failed = answer["failed"].as_array().context("failed")?;
    ensure!(
        failed.iter().any(|f| f["error"].as_str().is_some_and(|e| e.starts_with(&format!("Deployment {apps}/app moved since the plan and is left alone: container app holds {moved}")))),
        "{answer:#}"
    );
    let found = workloads(&client, &apps).await?;
    ensure!(found["app"].0["app"] == moved, "the deploy stands: {:?}", found["app"]);
    ensure!(!found["app"].1.keys().any(|k| k.starts_with(ANNOTATION)), "no annotation written");
    Ok(())
}

/// A TCP front for a registry that a test turns into a black hole (connections taken, never
/// answered) and back.
#[derive(Clone)]
struct Switch {
    black_hole: Arc<std::sync::atomic::AtomicBool>,
}

impl Switch {
    /// Listens on a free loopback port in front of `upstream`; gives back its `host:port`.
    async fn start(upstream: String) -> Result<(Self, String)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let host = listener.local_addr()?.to_string();
        let switch = Self { black_hole: Arc::default() };
        let black_hole = switch.black_hole.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (black_hole, upstream) = (black_hole.clone(), upstream.clone());
                tokio::spawn(async move {
                    if black_hole.load(std::sync::atomic::Ordering::SeqCst) {
                        // Held open and never read, until the test's runtime ends.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok((switch, host))
    }

    fn black_hole(&self, on: bool) {
        self.black_hole.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The first pod labelled `app=APP` (not being deleted) that `test` accepts, within
/// [`PATIENCE`].
async fn pod_where(
    pods: &Api<Pod>,
    app: &str,
    what: &str,
    test: impl Fn(&Pod) -> bool,
) -> Result<Pod> {
    eventually(&format!("{app}: {what}"), PATIENCE, || async {
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await?;
        Ok(list
            .items
            .into_iter()
            .find(|pod| pod.metadata.deletion_timestamp.is_none() && test(pod)))
    })
    .await
}

/// The image of a pod's first container.
fn image_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Whether a pod is running with its containers ready.
fn serving(pod: &Pod) -> bool {
    let status = pod.status.clone().unwrap_or_default();
    status.phase.as_deref() == Some("Running")
        && status.container_statuses.unwrap_or_default().iter().all(|c| c.ready)
}

/// Why a pod's first container waits (`ErrImagePull`, say), and what it says.
fn waiting(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?;
    let waiting = status.waiting.as_ref()?;
    Some((waiting.reason.clone().unwrap_or_default(), waiting.message.clone().unwrap_or_default()))
}

/// The mirror's faults, with pods on the node. While the mirror black-holes connections no tick
/// patches anything and the pods run on from the source. A mirror that Weir reaches but the
/// node's containerd cannot: the workload is patched (its copy verified), its new pod reports
/// the pull failure naming the mirror, and the old pod serves on until the node can reach the
/// mirror. A kubelet stopped during a tick and started after it: the tick completes, running
/// containers are not restarted, and the new pods start from the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_on_the_node_rides_out_a_black_hole_an_unreachable_mirror_and_a_kubelet_restart()
-> Result<()> {
    let _node = ON_THE_NODE.lock().await;
    let cluster = Cluster::shared();
    let client = cluster.client().await?;
    let remote = start_registry().await?;
    let mirror = start_registry().await?;
    let (switch, front) = Switch::start(mirror.host.clone()).await?;
    cluster.expose_registry(&remote.host)?;
    let source = Registry::new(&remote.host, true)?;
    busybox_image(&["/bin/sh", "-c", "sleep 3600"])?.push(&source, "acme/app", "1").await?;
    let original = format!("{}/acme/app:1", remote.host);
    let flows = cluster.namespace("faultmirror").await?;
    let apps = cluster.namespace("faultapps").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &apps);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &apps);
    let pod_spec = json!({ "terminationGracePeriodSeconds": 0,
        "containers": [{ "name": "app", "image": original, "imagePullPolicy": "Always" }] });
    for name in ["web", "late"] {
        let mut object = deployment(name, 1, &[], pod_spec.clone());
        object["spec"]["template"]["spec"] = pod_spec.clone();
        weir_testenv::create::<Deployment>(&client, &apps, object).await?;
    }
    let first_web = pod_where(&pods, "web", "serving from the source", serving).await?;
    pod_where(&pods, "late", "serving from the source", serving).await?;

    let weir =
        Weir::new(env!("CARGO_BIN_EXE_weir"), &cluster.admin_account(&flows, ACCOUNT).await?.0);
    let _modules = weir.start_modules(cluster, &flows, &MODULES, ACCOUNT)?;
    install_mirror(&weir, cluster, &flows, (&front, &remote.host, &apps), &[]).await?;
    let before = workloads(&client, &apps).await?;

    // A black hole: the tick stops at the check, names the mirror, patches nothing.
    let phase = Instant::now();
    switch.black_hole(true);
    let output = weir
        .command(&[
            "send",
            "-n",
            &flows,
            "--timeout",
            TICK_TIMEOUT,
            "mirror-tick:control",
            r#"{"action":"tick"}"#,
        ])
        .output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && said.contains(&format!("registry {front} has not answered")),
        "{said}"
    );
    let images = |found: Workloads| -> Vec<_> {
        found
            .into_iter()
            .map(|(name, (images, annotations, _))| (name, images, annotations))
            .collect()
    };
    ensure!(
        images(workloads(&client, &apps).await?) == images(before),
        "a workload changed in the black hole"
    );
    let web = pod_where(&pods, "web", "serving on", serving).await?;
    ensure!(
        web.metadata.uid == first_web.metadata.uid && image_of(&web) == original,
        "web's pod went on from the source: {:?}",
        web.metadata
    );
    eprintln!("black-holed mirror: the tick refused in {:.1?}", phase.elapsed());

    // Weir reaches the mirror, the node does not: patched onto a verified copy, the new pod
    // names the mirror it cannot pull from, the old one serves on.
    let phase = Instant::now();
    switch.black_hole(false);
    let answer = tick(&weir, &flows)?;
    ensure!(
        answer["patched"]
            == json!([format!("Deployment {apps}/late"), format!("Deployment {apps}/web")]),
        "{answer:#}"
    );
    let stuck = pod_where(&pods, "web", "failing to pull from the mirror", |pod| {
        image_of(pod).starts_with(&front)
            && waiting(pod).is_some_and(|(reason, message)| {
                matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff")
                    && message.contains(&front)
            })
    })
    .await?;
    eprintln!(
        "unreachable mirror: the new pod reported {:?} {:.1?} after the tick began",
        waiting(&stuck),
        phase.elapsed()
    );
    let web = pod_where(&pods, "web", "the old pod serving on", serving).await?;
    ensure!(
        web.metadata.uid == first_web.metadata.uid,
        "the old pod still serves: {:?}",
        web.metadata
    );
    let available = deployments.get("web").await?.status.and_then(|s| s.available_replicas);
    ensure!(available == Some(1), "web stays available: {available:?}");

    // The node reaches the mirror: the stuck pods' next try pulls from it.
    let phase = Instant::now();
    cluster.expose_registry(&front)?;
    for pod in pods.list(&ListParams::default()).await? {
        if image_of(&pod).starts_with(&front) && !serving(&pod) {
            pods.delete(pod.metadata.name.as_deref().context("name")?, &Default::default()).await?;
        }
    }
    let web = pod_where(&pods, "web", "serving from the mirror", |pod| {
        image_of(pod).starts_with(&front) && serving(pod)
    })
    .await?;
    pod_where(&pods, "late", "serving from the mirror", |pod| {
        image_of(pod).starts_with(&front) && serving(pod)
    })
    .await?;
    eprintln!("mirror reachable: both served from it {:.1?} later", phase.elapsed());

    // The kubelet stops, a Deployment is applied and a tick runs, the kubelet starts again:
    // the tick completed, the containers ran on, the new Deployment's pod starts from the
    // mirror.
    let phase = Instant::now();
    cluster.stop_kubelet()?;
    let mut third = deployment("third", 1, &[], pod_spec.clone());
    third["spec"]["template"]["spec"] = pod_spec.clone();
    weir_testenv::create::<Deployment>(&client, &apps, third).await?;
    let answer = tick(&weir, &flows)?;
    ensure!(answer["failed"] == json!([]), "{answer:#}");
    eventually("third patched onto the mirror", PATIENCE, || async {
        Ok(workloads(&client, &apps).await?["third"].0["app"].starts_with(&front).then_some(()))
    })
    .await?;
    cluster.start_kubelet()?;
    pod_where(&pods, "third", "serving from the mirror after the kubelet's restart", |pod| {
        image_of(pod).starts_with(&front) && serving(pod)
    })
    .await?;
    let web_after =
        pod_where(&pods, "web", "serving on after the kubelet's restart", serving).await?;
    let restarts = web_after
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.first().map(|c| c.restart_count));
    ensure!(
        web_after.metadata.uid == web.metadata.uid && restarts == Some(0),
        "web's pod ran on through the kubelet's restart: {restarts:?}"
    );
    eprintln!(
        "kubelet restart during a tick: the new Deployment served from the mirror {:.1?} after the kubelet stopped",
        phase.elapsed()
    );
    Ok(())
}
