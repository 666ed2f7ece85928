//! The test cluster's node: a pod pulls its image from a registry of the test and runs; with the
//! registry gone, a pod of an image the node has cached still starts and one of an image it
//! never pulled cannot.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api,
    api::{LogParams, PostParams},
};
use weir_distribution::client::Registry;
use weir_testenv::{Cluster, busybox_image, eventually};
use weir_testregistry::start_registry;

/// Pulling a 2 MB image from loopback and starting it takes about a second (measured 0.9 s);
/// this leaves room for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(90);

fn pod(name: &str, image: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "main", "image": image, "imagePullPolicy": "IfNotPresent" }],
        },
    }))?)
}

/// The pod's phase and, while its container waits, why.
async fn state(pods: &Api<Pod>, name: &str) -> Result<(String, Option<String>)> {
    let status = pods.get(name).await?.status.unwrap_or_default();
    let waiting = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.state?.waiting?.reason);
    Ok((status.phase.unwrap_or_default(), waiting))
}

/// Creates pod `name` of `image` and waits until it runs; returns how long that took.
async fn running(pods: &Api<Pod>, name: &str, image: &str) -> Result<Duration> {
    let started = Instant::now();
    pods.create(&PostParams::default(), &pod(name, image)?).await?;
    eventually(&format!("pod {name} running"), PATIENCE, || async {
        let (phase, waiting) = state(pods, name).await?;
        ensure!(waiting.as_deref() != Some("ErrImagePull"), "pod {name} could not pull its image");
        Ok((phase == "Running").then_some(()))
    })
    .await?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_pulls_from_a_registry_and_its_cached_image_outlives_the_registry() -> Result<()> {
    let cluster = Cluster::shared();
    let registry = start_registry().await?;
    cluster.expose_registry(&registry.host)?;
    let image = busybox_image(&["/bin/sh", "-c", "echo started; exec sleep 3600"])?;
    let pusher = Registry::new(&registry.host, true)?;
    image.push(&pusher, "busybox", "cached").await?;
    image.push(&pusher, "busybox", "never-pulled").await?;

    let client = cluster.client().await?;
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "pulls" } }))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await?;
    cluster.wait_for_default_account("pulls").await?;
    let pods: Api<Pod> = Api::namespaced(client, "pulls");
    let cached = format!("{}/busybox:cached", registry.host);
    let never_pulled = format!("{}/busybox:never-pulled", registry.host);

    let took = running(&pods, "pulled", &cached).await?;
    eprintln!("pod pulled and running in {took:.1?}");
    let logs = eventually("the pod's log", PATIENCE, || async {
        let log = pods.logs("pulled", &LogParams::default()).await?;
        Ok(log.contains("started").then_some(log))
    })
    .await?;
    ensure!(logs.trim() == "started", "unexpected log: {logs}");
    ensure!(
        registry.requests().iter().any(|(method, uri)| method == "GET" && uri.contains("/blobs/")),
        "the node pulled no blob from the registry"
    );

    drop(registry);
    let took = running(&pods, "from-cache", &cached).await?;
    eprintln!("pod running from the node's cache, registry down, in {took:.1?}");

    pods.create(&PostParams::default(), &pod("unpullable", &never_pulled)?).await?;
    let reason = eventually("pod unpullable failing to pull", PATIENCE, || async {
        let (phase, waiting) = state(&pods, "unpullable").await?;
        ensure!(phase != "Running", "pod unpullable runs although its image is nowhere");
        Ok(waiting.filter(|r| r == "ErrImagePull" || r == "ImagePullBackOff"))
    })
    .await?;
    eprintln!("pod of a never-pulled image, registry down: {reason}");
    Ok(())
}

#[test]
fn a_registry_off_loopback_is_refused_by_name() {
    let err = Cluster::shared().expose_registry("registry.example:5000").expect_err("not loopback");
    assert!(err.to_string().contains("registry.example:5000"), "{err}");
}
