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
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{ConfigMap, Secret},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde::Deserialize as _;
use serde_json::{Value, json};
use weir_testenv::{
    ControlPlane, Process, eventually,
    solution::{ACCOUNT, Installed, PATIENCE, Receiver, granted_rules, solutions_dir, succeeded},
};

/// The test's `weir`.
const WEIR: &str = env!("CARGO_BIN_EXE_weir");

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
fn patched(answer: &Value, namespaces: usize) -> Result<Vec<Value>> {
    ensure!(
        answer["total"] == 2 && answer["succeeded"] == 2,
        "both kinds went through: {answer:#}"
    );
    let mut made = Vec::new();
    for kind in answer["answers"].as_array().context("answers")? {
        ensure!(kind["total"] == namespaces && kind["failed"] == json!([]), "{answer:#}");
        for namespace in kind["answers"].as_array().context("the kind's answers")? {
            ensure!(namespace["failed"] == json!([]), "{answer:#}");
            let patches = namespace["answers"].as_array().context("the namespace's answers")?;
            made.extend(patches.iter().cloned());
        }
    }
    Ok(made)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_saver_scales_down_keeps_counts_across_a_restart_respects_hands_and_dry_runs()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let staging = plane.namespace("staging").await?;
    let preview = plane.namespace("preview").await?;
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
    weir_testenv::create::<Deployment>(&client, &preview, workload("web", 1, json!({}))).await?;
    weir_testenv::create::<Deployment>(&client, &prod, workload("web", 4, json!({}))).await?;

    // Two namespaces chosen, each listed on its own; prod is not.
    let sets = |dry_run: bool| {
        vec![
            ("namespaces", format!("{staging},{preview}")),
            ("timeZone", "Europe/Berlin".to_owned()),
            ("dryRun", dry_run.to_string()),
        ]
    };
    let mut saver = Installed::new(
        plane,
        WEIR,
        "cluster-cost-saver",
        &["common", "kubernetes", "js"],
        &sets(false),
    )
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

    // Evening: every running workload of the chosen namespaces goes to zero, its count kept on
    // it; the one scaled to zero already, the one labelled to skip, and other namespaces stay.
    let evening = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&evening, 2)?.len() == 5, "web, api, hand, db and preview's web: {evening:#}");
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
    ensure!(counts(&workloads(&client, &preview).await?)["Deployment/web"] == (0, Some("1")));
    ensure!(counts(&workloads(&client, &prod).await?)["Deployment/web"] == (4, None));

    // A second evening finds nothing to do: a workload down keeps the count it had.
    let again = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
    ensure!(patched(&again, 2)?.is_empty(), "{again:#}");
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
    ensure!(patched(&morning, 2)?.len() == 5, "{morning:#}");
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
    ensure!(counts(&workloads(&client, &preview).await?)["Deployment/web"] == (1, None));

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
    ensure!(patched(&dry, 2)?.len() == 5, "web, api, hand, db and preview's web: {dry:#}");
    ensure!(workloads(&client, &staging).await? == up, "a dry run wrote nothing");

    // Bad settings are refused at install, naming the setting.
    let refused = saver.refused(plane, "cluster-cost-saver", &[("dryRun", "perhaps".to_owned())]);
    ensure!(refused.contains("setting dryRun: \"perhaps\" is not true or false"), "{refused}");
    let refused = saver.refused(plane, "cluster-cost-saver", &[("dryRun", "true".to_owned())]);
    ensure!(refused.starts_with("setting namespaces is required"), "{refused}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// configmap-sync

/// A service of the test's own on loopback answering every request with `status` and `body`.
async fn playing(status: u16, body: Value) -> Result<Receiver> {
    let service = Receiver::start("/config.json").await?;
    service.answer(status, body);
    Ok(service)
}

/// The ConfigMap `name` of `namespace`: its data and resourceVersion.
async fn config_map(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(BTreeMap<String, String>, String)> {
    let found = Api::<ConfigMap>::namespaced(client.clone(), namespace).get(name).await?;
    Ok((found.data.unwrap_or_default(), found.metadata.resource_version.unwrap_or_default()))
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_sync_applies_changes_only_removes_dropped_keys_and_rides_out_a_source_outage()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let apps = plane.namespace("apps").await?;
    let source =
        playing(200, json!({ "greeting": "hello", "replicas": 3, "features": { "dark": true } }))
            .await?;
    let sync = Installed::new(
        plane,
        WEIR,
        "configmap-sync",
        &["common", "http", "js", "kubernetes"],
        &[
            ("url", source.url.clone()),
            ("namespace", apps.clone()),
            ("configMap", "app-config".to_owned()),
            ("interval", "24h".to_owned()),
        ],
    )
    .await?;
    let tick = || sync.send("sync-tick:control", json!({ "action": "tick" }));

    // The account may write ConfigMaps in the one namespace, and nothing else.
    let rules = succeeded(
        &mut sync.weir.command(&["rbac", "configmap-sync", "-n", &sync.flows]),
        "weir rbac",
    )?;
    let granted = granted_rules(&rules)?;
    ensure!(
        granted
            == [(
                format!("Role {apps}"),
                json!({ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch", "create"] })
            )],
        "{rules}"
    );

    // A tick creates it, each field a key. (The ticker's own first tick, as the node starts,
    // may come before the http module serves, and fail saying so.)
    let first = eventually("the first sync", PATIENCE, || async {
        sync.weir.send(&sync.flows, "sync-tick:control", &json!({ "action": "tick" }), "1m")?;
        Ok(Some(config_map(&client, &apps, "app-config").await?))
    })
    .await?;
    ensure!(
        first.0
            == data(&[("features", "{\"dark\":true}"), ("greeting", "hello"), ("replicas", "3")]),
        "{first:?}"
    );

    // Nothing changed at the source: the apply writes nothing.
    let polled = source.requests();
    tick().await?;
    ensure!(source.requests() > polled, "the source was asked again");
    ensure!(config_map(&client, &apps, "app-config").await? == first, "no write");

    // A key added by hand is not the sync's and stays; a key the source drops goes.
    Api::<ConfigMap>::namespaced(client.clone(), &apps)
        .patch(
            "app-config",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "note": "by hand" } })),
        )
        .await?;
    source.answer(200, json!({ "greeting": "bye", "replicas": 3 }));
    tick().await?;
    let changed = config_map(&client, &apps, "app-config").await?;
    ensure!(
        changed.0 == data(&[("greeting", "bye"), ("note", "by hand"), ("replicas", "3")]),
        "{changed:?}"
    );

    // The source goes down: the tick fails saying so, and the ConfigMap stays as it was.
    source.answer(503, json!({ "error": "maintenance" }));
    let down = sync.weir.send(&sync.flows, "sync-tick:control", &json!({ "action": "tick" }), "1m");
    let why = format!("{:#}", down.expect_err("a source that is down fails the tick"));
    ensure!(why.contains("answered 503"), "{why}");
    ensure!(config_map(&client, &apps, "app-config").await? == changed, "kept as it was");

    // A document that is not an object, or has a key a ConfigMap cannot hold, changes nothing.
    for (body, expected) in [
        (json!(["a", "b"]), "is not a JSON object but an array"),
        (json!({ "bad key": "x" }), "\"bad key\" cannot be a ConfigMap key"),
    ] {
        source.answer(200, body);
        let refused =
            sync.weir.send(&sync.flows, "sync-tick:control", &json!({ "action": "tick" }), "1m");
        let why = format!("{:#}", refused.expect_err("refused"));
        ensure!(why.contains(expected), "{why}");
    }
    ensure!(config_map(&client, &apps, "app-config").await? == changed, "kept as it was");

    // Back up: the next tick carries on.
    source.answer(200, json!({ "greeting": "back" }));
    tick().await?;
    ensure!(
        config_map(&client, &apps, "app-config").await?.0
            == data(&[("greeting", "back"), ("note", "by hand")])
    );

    // A synced key edited by hand is put back: the source wins.
    Api::<ConfigMap>::namespaced(client.clone(), &apps)
        .patch(
            "app-config",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "greeting": "edited" } })),
        )
        .await?;
    tick().await?;
    ensure!(
        config_map(&client, &apps, "app-config").await?.0
            == data(&[("greeting", "back"), ("note", "by hand")])
    );

    let refused = sync.refused(plane, "configmap-sync", &[("interval", "soon".to_owned())]);
    ensure!(refused.contains("setting interval: \"soon\" is not a duration"), "{refused}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// webhook-relay

const RELAY_SECRET: &str = "relay-signing-secret";

/// A GitHub-like sender: POSTs `body` to the relay with GitHub's headers (delivery id
/// `delivery`), signed with `secret`, and gives back the status and body it got.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    (body, delivery): (&Value, &str),
    secret: &str,
) -> Result<(u16, Value)> {
    let bytes = serde_json::to_vec(body)?;
    let signature = weir_http::signature::sign_hex(
        weir_http::signature::Algorithm::Sha256,
        secret.as_bytes(),
        &bytes,
    );
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(bytes)
        .send()
        .await?;
    let status = answer.status().as_u16();
    let text = answer.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The relay's URL: the http module's webhooks listener, and the node's route.
fn relay_url(installed: &Installed) -> Result<String> {
    let http = installed.modules.last().context("the http module")?;
    let base = weir_testenv::solution::webhooks_url(http).context("the webhooks URL")?;
    Ok(format!("{base}{}/webhook-relay/relay-hook", installed.flows))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_relay_checks_signatures_reshapes_forwards_and_answers_with_the_services_status()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let service = playing(202, json!({ "accepted": true })).await?;
    let mut relay = Installed::prepare(plane, WEIR, "webhook-relay").await?;
    weir_testenv::create::<Secret>(
        &client,
        &relay.flows,
        json!({ "metadata": { "name": "github-hook" }, "stringData": { "secret": RELAY_SECRET } }),
    )
    .await?;
    relay
        .start(
            plane,
            "webhook-relay",
            &["http"],
            &[("target", service.url.clone()), ("secretName", "github-hook".to_owned())],
        )
        .await?;

    // The account may read the one Secret, and nothing else.
    let rules = succeeded(
        &mut relay.weir.command(&["rbac", "webhook-relay", "-n", &relay.flows]),
        "weir rbac",
    )?;
    ensure!(
        granted_rules(&rules)?
            == [(
                format!("Role {}", relay.flows),
                json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["github-hook"], "verbs": ["get"] })
            )],
        "{rules}"
    );

    let url = relay_url(&relay)?;
    let http = reqwest::Client::new();
    let push = json!({ "ref": "refs/heads/main", "repository": { "full_name": "acme/shop" } });

    // Signed: forwarded reshaped, and the sender gets the service's status and body.
    let (status, body) = deliver(&http, &url, (&push, "d-1"), RELAY_SECRET).await?;
    ensure!((status, &body) == (202, &json!({ "accepted": true })), "{status} {body}");
    ensure!(
        service.received() == [json!({ "event": "push", "delivery": "d-1", "payload": push })],
        "{:?}",
        service.received()
    );
    // GitHub's redelivery of an accepted delivery is answered, not forwarded again.
    let (status, body) = deliver(&http, &url, (&push, "d-1"), RELAY_SECRET).await?;
    ensure!(status == 200 && body["duplicate"] == true, "{status} {body}");
    ensure!(service.received().len() == 1, "a redelivery is not forwarded");

    // The service's refusal reaches the sender as it is.
    service.answer(503, json!({ "error": "maintenance" }));
    let (status, body) = deliver(&http, &url, (&push, "d-2"), RELAY_SECRET).await?;
    ensure!((status, &body) == (503, &json!({ "error": "maintenance" })), "{status} {body}");
    ensure!(service.received().len() == 2, "once: a status is an answer, not a failure to retry");

    // A wrong signature is refused, and nothing is forwarded.
    let (status, _) = deliver(&http, &url, (&push, "d-3"), "not-the-secret").await?;
    ensure!(status == 401, "{status}");
    let unsigned = http.post(&url).body(push.to_string()).send().await?.status().as_u16();
    ensure!(unsigned == 401, "{unsigned}");
    ensure!(service.received().len() == 2, "nothing more was forwarded");

    // A service that cannot be reached: the sender gets 503 and the run's correlation id.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    relay.weir.install(
        plane,
        &relay.flows,
        &solutions_dir().join("webhook-relay"),
        &[("target", format!("http://{closed}/events")), ("secretName", "github-hook".to_owned())],
    )?;
    wait_built(&client, &relay.flows, "relay-forward").await?;
    let (status, body) = deliver(&http, &url, (&push, "d-4"), RELAY_SECRET).await?;
    ensure!(status == 503 && body["id"].is_string(), "{status} {body}");

    let refused = relay.refused(plane, "webhook-relay", &[("signature", "md5".to_owned())]);
    ensure!(
        refused.contains("setting signature: \"md5\" is not one of github, slack, hmac, bearer"),
        "{refused}"
    );
    Ok(())
}

/// What the relay adds to a call of the service: 200 sequential deliveries through the relay
/// and 200 straight to the service, each the same signed body, after 20 of each to warm up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test automations -- --ignored --nocapture"]
async fn measure_the_webhook_relays_added_latency() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let service = playing(200, json!({ "ok": true })).await?;
    let mut relay = Installed::prepare(plane, WEIR, "webhook-relay").await?;
    weir_testenv::create::<Secret>(
        &client,
        &relay.flows,
        json!({ "metadata": { "name": "webhook-relay" }, "stringData": { "secret": RELAY_SECRET } }),
    )
    .await?;
    relay.start(plane, "webhook-relay", &["http"], &[("target", service.url.clone())]).await?;
    let url = relay_url(&relay)?;
    let http = reqwest::Client::new();
    let push = json!({ "ref": "refs/heads/main", "repository": { "full_name": "acme/shop" }, "commits": [{ "id": "abc", "message": "fix" }] });
    let timed = |times: &mut Vec<Duration>, started: Instant| times.push(started.elapsed());
    let (mut relayed, mut direct) = (Vec::new(), Vec::new());
    for round in 0..220 {
        let started = Instant::now();
        let delivery = format!("d-{round}");
        let (status, _) = deliver(&http, &url, (&push, &delivery), RELAY_SECRET).await?;
        ensure!(status == 200, "{status}");
        if round >= 20 {
            timed(&mut relayed, started);
        }
        let started = Instant::now();
        let (status, _) = deliver(&http, &service.url, (&push, &delivery), RELAY_SECRET).await?;
        ensure!(status == 200, "{status}");
        if round >= 20 {
            timed(&mut direct, started);
        }
    }
    relayed.sort();
    direct.sort();
    let at = |times: &[Duration], q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "webhook-relay, 200 deliveries: relayed p50 {:.2?} p99 {:.2?}; direct p50 {:.2?} p99 {:.2?}",
        at(&relayed, 0.5),
        at(&relayed, 0.99),
        at(&direct, 0.5),
        at(&direct, 0.99)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// status-page

/// The status page's URL on the http module's webhooks listener.
fn page_url(installed: &Installed, http: &Process) -> Result<String> {
    let base = weir_testenv::solution::webhooks_url(http).context("the webhooks URL")?;
    Ok(format!("{base}{}/status-page/status-page", installed.flows))
}

/// Fires one probe round and gives back the round's split summary.
async fn probe_round(installed: &Installed) -> Result<Value> {
    installed.send("status-tick:control", json!({ "action": "tick" })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_probes_keeps_history_across_a_restart_and_serves_html_and_json()
-> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let up = playing(200, json!({ "ok": true })).await?;
    let down = playing(503, json!({ "error": "maintenance" })).await?;
    let slow = playing(200, json!({ "ok": true })).await?;
    slow.answer_after(200, json!({ "ok": true }), Duration::from_millis(1500));
    let refused = format!(
        "http://{}/health",
        tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?
    );
    let endpoints = [up.url.clone(), down.url.clone(), slow.url.clone(), refused.clone()];
    const MODULES: [&str; 3] = ["common", "js", "http"];
    let mut status = Installed::prepare(plane, WEIR, "status-page").await?;
    status
        .start(
            plane,
            "status-page",
            &MODULES,
            &[
                ("endpoints", endpoints.join(",")),
                ("interval", "24h".to_owned()),
                ("timeout", "3s".to_owned()),
                ("title", "Shop <status>".to_owned()),
            ],
        )
        .await?;
    let rules = succeeded(
        &mut status.weir.command(&["rbac", "status-page", "-n", &status.flows]),
        "weir rbac",
    )?;
    ensure!(granted_rules(&rules)?.is_empty(), "it needs no rules: {rules}");

    // Two rounds (the ticker's own first one, as the node started, may have come before the
    // http module served, and failed saying so).
    for _ in 0..2 {
        let round = probe_round(&status).await?;
        ensure!(round["total"] == 4 && round["succeeded"] == 4, "{round:#}");
    }
    let http = status.modules.last().context("the http module")?;
    let url = page_url(&status, http)?;
    let web = reqwest::Client::new();
    let json_page = || async {
        let answer = web.get(format!("{url}?format=json")).send().await?;
        ensure!(answer.status() == 200, "{}", answer.status());
        Ok::<Value, anyhow::Error>(serde_json::from_str(&answer.text().await?)?)
    };
    let page = json_page().await?;
    let by_url: BTreeMap<&str, &Value> = page["endpoints"]
        .as_array()
        .context("endpoints")?
        .iter()
        .map(|e| (e["url"].as_str().unwrap_or_default(), e))
        .collect();
    let state = |url: &str| by_url[url]["state"].as_str().unwrap_or_default().to_owned();
    ensure!(
        [state(&up.url), state(&down.url), state(&slow.url), state(&refused)]
            == ["up", "down", "slow", "down"],
        "{page:#}"
    );
    let rounds = by_url[up.url.as_str()]["history"].as_array().context("history")?.len();
    ensure!(rounds >= 2, "{page:#}");
    ensure!(by_url[down.url.as_str()]["last"]["status"] == 503, "{page:#}");
    ensure!(
        by_url[slow.url.as_str()]["last"]["ms"].as_u64().is_some_and(|ms| ms >= 1500),
        "{page:#}"
    );
    ensure!(
        by_url[refused.as_str()]["last"]["error"].as_str().is_some_and(|e| e.contains(&refused)),
        "{page:#}"
    );
    ensure!(
        by_url[up.url.as_str()]["uptime"] == 100.0 && by_url[down.url.as_str()]["uptime"] == 0.0
    );

    // The history is the node's kept state: once saved, a restart of the common module,
    // which keeps it, loses none of it.
    eventually("the history saved in the node's status", PATIENCE, || async {
        let saved =
            weir_testenv::solution::node_status(&client, &status.flows, "status-history").await?;
        let kept = saved["state"]["series"][&up.url].as_array().map_or(0, Vec::len);
        Ok((kept == rounds).then_some(()))
    })
    .await?;
    status.modules[0].kill()?;
    status.modules[0] = status
        .weir
        .start_modules(plane, &status.flows, &["common"], ACCOUNT)?
        .pop()
        .context("the common module")?;
    let again = eventually("the page served again", PATIENCE, || async {
        let answer = web.get(format!("{url}?format=json")).send().await?;
        if answer.status() != 200 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str::<Value>(&answer.text().await?)?))
    })
    .await?;
    // The restarted ticker's own first tick may have added a round already.
    let histories = |page: &Value| -> Vec<Vec<Value>> {
        page["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["history"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let before = histories(&page);
    let after = histories(&again);
    ensure!(
        before.len() == 4
            && before.iter().zip(&after).all(|(b, a)| a.len() >= b.len() && a[..b.len()] == b[..]),
        "the history from before the restart is all there: {again:#}"
    );
    probe_round(&status).await?;
    let page = json_page().await?;
    let kept = page["endpoints"][0]["history"].as_array().context("history")?.len();
    ensure!(kept > after[0].len(), "the round after the restart adds to it: {page:#}");

    // The page for people: HTML, every endpoint, the title escaped.
    let html = web.get(&url).send().await?;
    ensure!(html.status() == 200);
    ensure!(
        html.headers()["content-type"].to_str()?.starts_with("text/html"),
        "{:?}",
        html.headers()
    );
    let html = html.text().await?;
    ensure!(
        html.contains("<title>Shop &lt;status&gt;</title>") && html.contains("Some systems down"),
        "{html}"
    );
    for endpoint in &endpoints {
        ensure!(html.contains(&format!("<td>{endpoint}</td>")), "{endpoint} in {html}");
    }
    let wrong = web.get(format!("{url}?format=xml")).send().await?.status();
    ensure!(wrong == 400, "{wrong}");
    let posted = web.post(&url).send().await?.status();
    ensure!(posted == 405, "{posted}");

    let refused = status.refused(plane, "status-page", &[("keep", "many".to_owned())]);
    ensure!(refused.contains("setting keep: \"many\" is not a whole number"), "{refused}");
    Ok(())
}

/// How long one probe round of 50 endpoints takes (all answering at once, on loopback), from
/// `weir send` to the round recorded: 10 rounds after 2 to warm up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test automations -- --ignored --nocapture"]
async fn measure_a_status_page_round_of_50_endpoints() -> Result<()> {
    let plane = ControlPlane::shared();
    let service = playing(200, json!({ "ok": true })).await?;
    let endpoints: Vec<String> = (0..50).map(|n| format!("{}?n={n}", service.url)).collect();
    let mut status = Installed::prepare(plane, WEIR, "status-page").await?;
    status
        .start(
            plane,
            "status-page",
            &["common", "js", "http"],
            &[("endpoints", endpoints.join(",")), ("interval", "24h".to_owned())],
        )
        .await?;
    let mut took = Vec::new();
    for round in 0..12 {
        let started = Instant::now();
        let answer = probe_round(&status).await?;
        ensure!(answer["succeeded"] == 50, "{answer:#}");
        if round >= 2 {
            took.push(started.elapsed());
        }
    }
    took.sort();
    println!(
        "status-page, 50 endpoints, 10 rounds: min {:.0?}, p50 {:.0?}, max {:.0?}",
        took[0], took[5], took[9]
    );
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
        WEIR,
        "cluster-cost-saver",
        &["common", "kubernetes", "js"],
        &[("namespaces", staging.clone())],
    )
    .await?;
    for round in 1..=3 {
        let started = Instant::now();
        let down = saver.send("saver-evening:control", json!({ "action": "fire" })).await?;
        let down_took = started.elapsed();
        ensure!(patched(&down, 1)?.len() == 250, "{down:#}");
        let started = Instant::now();
        let up = saver.send("saver-morning:control", json!({ "action": "fire" })).await?;
        let up_took = started.elapsed();
        ensure!(patched(&up, 1)?.len() == 250, "{up:#}");
        println!("round {round}: 250 workloads down in {down_took:.2?}, up in {up_took:.2?}");
    }
    Ok(())
}

/// Seconds from a change at the source to the ConfigMap, polling every second: 20 changes,
/// each waited for by reading the ConfigMap every 10 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test automations -- --ignored --nocapture"]
async fn measure_configmap_sync_from_a_source_change_to_the_config_map() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let apps = plane.namespace("apps").await?;
    let source = playing(200, json!({ "round": "0" })).await?;
    let _sync = Installed::new(
        plane,
        WEIR,
        "configmap-sync",
        &["common", "http", "js", "kubernetes"],
        &[
            ("url", source.url.clone()),
            ("namespace", apps.clone()),
            ("configMap", "app-config".to_owned()),
            ("interval", "1s".to_owned()),
        ],
    )
    .await?;
    let mut took = Vec::new();
    for round in 1..=20 {
        let expected = round.to_string();
        let changed = Instant::now();
        source.answer(200, json!({ "round": expected }));
        loop {
            let data = config_map(&client, &apps, "app-config").await.map(|(d, _)| d).ok();
            if data.is_some_and(|d| d.get("round") == Some(&expected)) {
                break;
            }
            ensure!(changed.elapsed() < PATIENCE, "round {round} never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        took.push(changed.elapsed());
        // Changes land at random points of the interval.
        tokio::time::sleep(Duration::from_millis(137 * (round % 7))).await;
    }
    took.sort();
    println!(
        "configmap-sync, interval 1s, 20 changes: min {:.0?}, p50 {:.0?}, p95 {:.0?}, max {:.0?}",
        took[0], took[9], took[18], took[19]
    );
    Ok(())
}
