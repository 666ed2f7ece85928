//! `resource_watch` across a restart of kube-apiserver, in a test binary of its own so the
//! restart disturbs no other test: a watch that loses its apiserver mid-stream misses no
//! change and repeats none, and a node whose kept version the restarted apiserver no longer
//! keeps (410 Gone) lists again and starts runs only for what changed.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use weir_kubernetes::resource_watch::ResourceWatch;
use weir_sdk::testing::Harness;
use weir_testenv::{ControlPlane, eventually};

const PATIENCE: Duration = Duration::from_secs(60);

/// Held by each test while it restarts the apiserver, so one's restart cannot fall into the
/// other's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn settings(plane: &ControlPlane, namespace: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace,
        "kubeconfig": plane.kubeconfig().display().to_string() })
}

/// How many runs each (type, name) started.
fn counted(node: &Harness) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for emitted in node.emitted() {
        let event = emitted.message;
        let key = (
            event["type"].as_str().unwrap_or_default().to_owned(),
            event["object"]["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Creates `name`, trying again while the apiserver is away; one that turns out to exist was
/// created by an attempt whose answer was lost.
async fn create_surely(api: &Api<ConfigMap>, name: &str) -> Result<()> {
    let map: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    eventually(&format!("{name} created"), PATIENCE, || async {
        match api.create(&PostParams::default(), &map).await {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Some(())),
            Err(err) => Err(err.into()),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_restart_mid_watch_loses_and_repeats_nothing() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("restart").await?;
    let api: Api<ConfigMap> = Api::namespaced(plane.client().await?, &namespace);
    let node = Harness::build::<ResourceWatch>(&settings(plane, &namespace))?;
    const OBJECTS: usize = 60;
    let body = async {
        eventually("the watch started", PATIENCE, || async {
            Ok(node.kept_state()["resourceVersion"].is_string().then_some(()))
        })
        .await?;
        let writer = async {
            for i in 0..OBJECTS {
                create_surely(&api, &format!("cm-{i:02}")).await?;
            }
            anyhow::Ok(())
        };
        let restart = async {
            eventually("a third written", PATIENCE, || async {
                Ok((counted(&node).len() >= OBJECTS / 3).then_some(()))
            })
            .await?;
            plane.restart_apiserver().await
        };
        let (written, restarted) = tokio::join!(writer, restart);
        written?;
        restarted?;
        eventually("every object seen", PATIENCE, || async {
            Ok((counted(&node).len() >= OBJECTS).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        node.cancel();
        let counts = counted(&node);
        let lost = (0..OBJECTS)
            .filter(|i| !counts.contains_key(&("added".to_owned(), format!("cm-{i:02}"))))
            .count();
        let repeated: usize = counts.values().map(|n| n - 1).sum();
        eprintln!(
            "after an apiserver restart mid-watch: {OBJECTS} created, {lost} lost, {repeated} repeated"
        );
        ensure!(lost == 0 && repeated == 0 && counts.len() == OBJECTS, "{counts:?}");
        anyhow::Ok(())
    };
    let (ran, checked) = tokio::join!(node.run(), body);
    checked?;
    ran?;
    Ok(())
}

/// A node stopped at a version, an apiserver restarted meanwhile (its watch cache now starts
/// after that version): the node lists again, and only the object changed and the one
/// created while it was away start runs; the one it saw does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_version_is_listed_again_without_starting_old_runs() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("expired").await?;
    let client = plane.client().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    for name in ["seen", "changed", "removed"] {
        create_surely(&api, name).await?;
    }
    let first = Harness::build::<ResourceWatch>(&settings(plane, &namespace))?;
    let body = async {
        eventually("the watch started", PATIENCE, || async {
            Ok(first.kept_state()["resourceVersion"].is_string().then_some(()))
        })
        .await?;
        first.cancel();
        anyhow::Ok(())
    };
    let (ran, checked) = tokio::join!(first.run(), body);
    checked?;
    ran?;
    let kept = first.kept_state();
    api.patch("changed", &PatchParams::default(), &Patch::Merge(json!({ "data": { "v": "1" } })))
        .await?;
    create_surely(&api, "new").await?;
    api.delete("removed", &DeleteParams::default()).await?;
    plane.restart_apiserver().await?;
    // The kept version is gone from what the restarted apiserver serves.
    let version = kept["resourceVersion"].as_str().unwrap_or_default().to_owned();
    let expired = match api.watch(&Default::default(), &version).await {
        Err(kube::Error::Api(status)) => status.code == 410,
        Err(_) => false,
        Ok(stream) => {
            use futures::StreamExt as _;
            let mut stream = stream.boxed();
            matches!(stream.next().await, Some(Ok(kube::api::WatchEvent::Error(status))) if status.code == 410)
        }
    };
    ensure!(expired, "version {version} did not expire with the restart");

    let second = Harness::build::<ResourceWatch>(&settings(plane, &namespace))?;
    second.keep_state(kept)?;
    let body = async {
        eventually("the changes seen", PATIENCE, || async {
            Ok((counted(&second).len() >= 2).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        second.cancel();
        anyhow::Ok(())
    };
    let (ran, checked) = tokio::join!(second.run(), body);
    checked?;
    ran?;
    let counts = counted(&second);
    // The deletion in the gap is what a restarted node cannot tell.
    let expected: BTreeMap<(String, String), usize> =
        [(("added", "changed"), 1), (("added", "new"), 1)]
            .into_iter()
            .map(|((t, n), c)| ((t.to_owned(), n.to_owned()), c))
            .collect();
    ensure!(counts == expected, "{counts:?}");
    Ok(())
}
