//! The automation solutions end to end, in the cluster shape: the module processes they use
//! (`weir module NAME`) against a real kube-apiserver, each solution installed with `kubectl
//! apply -f` and its account given exactly the rules `weir rbac` derives, and the services they
//! talk to played by HTTP servers of the test's own on loopback. Scheduled moments are fired
//! with `weir send` to the cron node's `control` input, so every step is deterministic.
//!
//! The measurements are ignored by default (`cargo test -p weir-engine --test automations --
//! --ignored --nocapture`); their numbers are recorded in docs/benchmarks.md.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde::Deserialize as _;
use serde_json::{Value, json};
use weir_testenv::{
    ControlPlane, Process, eventually,
    solution::{Weir, succeeded, wait_ready},
};

/// How long something that should happen soon may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// The ServiceAccount the module processes and `weir send` sign in as.
const ACCOUNT: &str = "weir";

fn solutions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions")
}

/// The test's `weir`, its module processes and the namespace they run flows in.
struct Installed {
    weir: Weir,
    flows: String,
    modules: Vec<Process>,
}

impl Installed {
    /// Starts `modules` for a fresh namespace and installs `solution` there with `sets`.
    async fn new(
        plane: &ControlPlane,
        solution: &str,
        modules: &[&str],
        sets: &[(&str, String)],
    ) -> Result<Self> {
        let client = plane.client().await?;
        let flows = plane.namespace(solution).await?;
        let weir =
            Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
        let started = weir.start_modules(plane, &flows, modules, ACCOUNT)?;
        weir.install(plane, &flows, &solutions_dir().join(solution), sets)?;
        wait_ready(&client, &flows, solution, PATIENCE).await?;
        Ok(Self { weir, flows, modules: started })
    }

    /// Sends `message` to `target` (`NODE:PORT`) until a replica takes it: right after the
    /// module processes start again, the old ones may still be listed for a while.
    async fn send(&self, target: &str, message: Value) -> Result<Value> {
        eventually(&format!("weir send {target}"), PATIENCE, || async {
            Ok(Some(self.weir.send(&self.flows, target, &message, "2m")?))
        })
        .await
    }

    /// Whether installing `solution` again with `sets` is refused, and why.
    fn refused(&self, plane: &ControlPlane, solution: &str, sets: &[(&str, String)]) -> String {
        match self.weir.install(plane, &self.flows, &solutions_dir().join(solution), sets) {
            Ok(()) => String::new(),
            Err(err) => format!("{err:#}"),
        }
    }
}

/// Waits until `node` runs the spec it has now (its status observed its generation and it is
/// ready), after a change to its settings.
async fn wait_built(client: &Client, namespace: &str, node: &str) -> Result<()> {
    let nodes: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &kube::api::ApiResource::erase::<weir_model::FlowNode>(&()),
    );
    eventually(&format!("{node} running its new settings"), PATIENCE, || async {
        let object = nodes.get(node).await?;
        let generation = object.metadata.generation;
        let status = &object.data["status"];
        let ready = status["conditions"].as_array().is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && c["observedGeneration"].as_i64() == generation
            })
        });
        Ok(ready.then_some(()))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// cluster-cost-saver

/// Where the cost saver keeps a workload's count while it is down.
const KEPT_COUNT: &str = "cost-saver.weir.dev/replicas";

fn workload(name: &str, replicas: i32, labels: Value) -> Value {
    let mut labels = labels;
    labels["app"] = json!(name);
    json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "registry.local/app:1" }] },
            },
        }
    })
}

/// Every Deployment and StatefulSet of `namespace`, as `Kind/name`: its replicas, its kept
/// count and its resourceVersion.
async fn workloads(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, (i32, Option<String>, String)>> {
    let mut found = BTreeMap::new();
    let of = |kind: &str, meta: kube::api::ObjectMeta, replicas: Option<i32>| {
        let kept = meta.annotations.unwrap_or_default().remove(KEPT_COUNT);
        (
            format!("{kind}/{}", meta.name.unwrap_or_default()),
            (replicas.unwrap_or_default(), kept, meta.resource_version.unwrap_or_default()),
        )
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for d in deployments.list(&ListParams::default()).await?.items {
        let (key, value) = of("Deployment", d.metadata, d.spec.and_then(|s| s.replicas));
        found.insert(key, value);
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    for s in sets.list(&ListParams::default()).await?.items {
        let (key, value) = of("StatefulSet", s.metadata, s.spec.and_then(|s| s.replicas));
        found.insert(key, value);
    }
    Ok(found)
}

/// Replicas and kept count of each workload, without resourceVersions.
fn counts(
    found: &BTreeMap<String, (i32, Option<String>, String)>,
) -> BTreeMap<&str, (i32, Option<&str>)> {
    found.iter().map(|(k, (r, kept, _))| (k.as_str(), (*r, kept.as_deref()))).collect()
}

/// How many patches a moment's answer made: its kinds' split answers are the plans' splits.
fn patched(answer: &Value) -> Result<Vec<Value>> {
    ensure!(
        answer["total"] == 2 && answer["succeeded"] == 2,
        "both kinds went through: {answer:#}"
    );
    let mut made = Vec::new();
    for kind in answer["answers"].as_array().context("answers")? {
        ensure!(kind["failed"] == json!([]), "{answer:#}");
        made.extend(kind["answers"].as_array().context("the kind's answers")?.iter().cloned());
    }
    Ok(made)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_saver_scales_down_keeps_counts_across_a_restart_respects_hands_and_dry_runs()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let staging = plane.namespace("staging").await?;
    let prod = plane.namespace("prod").await?;
    for (name, replicas, labels) in [
        ("web", 3, json!({})),
        ("api", 2, json!({})),
        ("idle", 0, json!({})),
        ("hand", 2, json!({})),
        ("pinned", 2, json!({ "cost-saver.weir.dev/skip": "true" })),
    ] {
        weir_testenv::create::<Deployment>(&client, &staging, workload(name, replicas, labels))
            .await?;
    }
    weir_testenv::create::<StatefulSet>(&client, &staging, workload("db", 1, json!({}))).await?;
    weir_testenv::create::<Deployment>(&client, &prod, workload("web", 4, json!({}))).await?;

    let sets = |dry_run: bool| {
        vec![
            ("namespaces", staging.clone()),
            ("timeZone", "Europe/Berlin".to_owned()),
            ("dryRun", dry_run.to_string()),
        ]
    };
    let mut saver =
        Installed::new(plane, "cluster-cost-saver", &["common", "kubernetes", "js"], &sets(false))
            .await?;

    // The account may list and patch Deployments and StatefulSets, and nothing else.
    let rules = succeeded(
        &mut saver.weir.command(&["rbac", "cluster-cost-saver", "-n", &saver.flows]),
        "weir rbac",
    )?;
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&rules)
        .map(Value::deserialize)
        .collect::<Result<_, _>>()?;
    let granted: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| d["rules"].as_array().into_iter().flatten())
        .collect();
    let rule = |resource: &str| json!({ "apiGroups": ["apps"], "resources": [resource], "verbs": ["list", "patch"] });
    ensure!(granted == [&rule("deployments"), &rule("statefulsets")], "{rules}");

    // Evening: every running workload of the chosen namespace goes to zero, its count kept on
    // it; the one scaled to zero already, the one labelled to skip, and other namespaces stay.
    let evening = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&evening)?.len() == 4, "web, api, hand and db: {evening:#}");
    let down = workloads(&client, &staging).await?;
    ensure!(
        counts(&down)
            == BTreeMap::from([
                ("Deployment/api", (0, Some("2"))),
                ("Deployment/hand", (0, Some("2"))),
                ("Deployment/idle", (0, None)),
                ("Deployment/pinned", (2, None)),
                ("Deployment/web", (0, Some("3"))),
                ("StatefulSet/db", (0, Some("1"))),
            ]),
        "{down:#?}"
    );
    ensure!(counts(&workloads(&client, &prod).await?)["Deployment/web"] == (4, None));

    // A second evening finds nothing to do: a workload down keeps the count it had.
    let again = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&again)?.is_empty(), "{again:#}");
    ensure!(workloads(&client, &staging).await? == down, "nothing was written");

    // Weir restarts overnight: everything it needs is on the workloads.
    for module in &mut saver.modules {
        module.kill()?;
    }
    saver.modules =
        saver.weir.start_modules(plane, &saver.flows, &["common", "kubernetes", "js"], ACCOUNT)?;
    // Someone needs hand in the night and scales it up.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &staging);
    deployments
        .patch("hand", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "replicas": 5 } })))
        .await?;

    // Morning: each gets its count back; hand keeps the hand's count and loses the annotation.
    let morning = saver.send("saver-morning:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&morning)?.len() == 4, "{morning:#}");
    let up = workloads(&client, &staging).await?;
    ensure!(
        counts(&up)
            == BTreeMap::from([
                ("Deployment/api", (2, None)),
                ("Deployment/hand", (5, None)),
                ("Deployment/idle", (0, None)),
                ("Deployment/pinned", (2, None)),
                ("Deployment/web", (3, None)),
                ("StatefulSet/db", (1, None)),
            ]),
        "{up:#?}"
    );

    // A dry run is checked by the apiserver and changes nothing.
    saver.weir.install(
        plane,
        &saver.flows,
        &solutions_dir().join("cluster-cost-saver"),
        &sets(true),
    )?;
    for node in ["saver-patch-deployments", "saver-patch-statefulsets"] {
        wait_built(&client, &saver.flows, node).await?;
    }
    let dry = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&dry)?.len() == 4, "web, api, hand and db, checked: {dry:#}");
    ensure!(workloads(&client, &staging).await? == up, "a dry run wrote nothing");

    // Bad settings are refused at install, naming the setting.
    let refused = saver.refused(plane, "cluster-cost-saver", &[("dryRun", "perhaps".to_owned())]);
    ensure!(refused.contains("setting dryRun: \"perhaps\" is not true or false"), "{refused}");
    let refused = saver.refused(plane, "cluster-cost-saver", &[("dryRun", "true".to_owned())]);
    ensure!(refused.starts_with("setting namespaces is required"), "{refused}");
    Ok(())
}

/// How long the cost saver takes to scale 200 Deployments and 50 StatefulSets down and up
/// (each moment fired by `weir send`, which returns when the run has patched everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test automations -- --ignored --nocapture"]
async fn measure_the_cost_saver_over_250_workloads() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let staging = plane.namespace("many").await?;
    for n in 0..200 {
        weir_testenv::create::<Deployment>(
            &client,
            &staging,
            workload(&format!("d{n}"), 2, json!({})),
        )
        .await?;
    }
    for n in 0..50 {
        weir_testenv::create::<StatefulSet>(
            &client,
            &staging,
            workload(&format!("s{n}"), 1, json!({})),
        )
        .await?;
    }
    let saver = Installed::new(
        plane,
        "cluster-cost-saver",
        &["common", "kubernetes", "js"],
        &[("namespaces", staging.clone())],
    )
    .await?;
    for round in 1..=3 {
        let started = Instant::now();
        let down = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
        let down_took = started.elapsed();
        ensure!(patched(&down)?.len() == 250, "{down:#}");
        let started = Instant::now();
        let up = saver.send("saver-morning:control", json!({ "action": "fire" })).await?;
        let up_took = started.elapsed();
        ensure!(patched(&up)?.len() == 250, "{up:#}");
        println!("round {round}: 250 workloads down in {down_took:.2?}, up in {up_took:.2?}");
    }
    Ok(())
}
