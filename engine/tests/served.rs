//! The chart served on a real node: `weir image` pushes the image (this build's binary) to a
//! registry the node pulls from, `helm install` installs `charts/weir`, the engine and the module
//! Deployments become Available (so their readiness probes answer), a flow across
//! three modules runs pod to pod over gRPC as the chart's identities, and goes on when the
//! middle module's pod is deleted mid-stream and replaced; through `kubectl port-forward` the
//! editor signs a user in and shows the palette.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{DynamicObject, ListParams},
};
use weir_testenv::{Cluster, eventually};
use weir_testregistry::start_registry;

mod flows;

const NAMESPACE: &str = "weir";
/// The chart's modules, each a Deployment beside the engine's.
const MODULES: [&str; 5] = ["common", "distribution", "http", "js", "kubernetes"];
/// A 115 MB debug binary pulled five times on loopback, five processes starting on two busy
/// cores.
const PATIENCE: Duration = Duration::from_secs(180);

fn succeeded(command: &mut Command, what: &str) -> Result<()> {
    let output = command.output()?;
    ensure!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_on_a_node_and_a_flow_crosses_its_module_pods() -> Result<()> {
    let cluster = Cluster::shared();
    let registry = start_registry().await?;
    cluster.expose_registry(&registry.host)?;
    let ui = tempfile::tempdir()?;
    std::fs::write(ui.path().join("index.html"), "<html>weir</html>")?;
    let solutions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions");
    let repository = format!("{}/weir", registry.host);
    let started = Instant::now();
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["image", "--plain-http", "--push", &format!("{repository}:served")])
            .arg("--ui")
            .arg(ui.path())
            .arg("--solutions")
            .arg(&solutions),
        "weir image",
    )?;
    eprintln!("image assembled and pushed in {:.1?}", started.elapsed());

    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/weir");
    let started = Instant::now();
    succeeded(
        weir_testenv::helm()?
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["install", "weir"])
            .arg(&chart)
            .args(["-n", NAMESPACE, "--create-namespace"])
            .args(["--set", &format!("image.repository={repository}")])
            .args(["--set", "image.tag=served", "--set", "image.pullPolicy=IfNotPresent"]),
        "helm install",
    )?;
    let client = cluster.client().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let describe = || {
        let output = cluster
            .kubectl()
            .args(["-n", NAMESPACE, "get", "pods,deployments", "-o", "wide"])
            .output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    eventually("the engine and the modules Available", PATIENCE, || async {
        let listed = deployments.list(&ListParams::default()).await?;
        let available = listed
            .items
            .iter()
            .filter(|d| {
                d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|conditions| {
                    conditions.iter().any(|c| c.type_ == "Available" && c.status == "True")
                })
            })
            .count();
        let deployments = MODULES.len() + 1;
        Ok((listed.items.len() == deployments && available == deployments).then_some(()))
    })
    .await
    .map_err(|err| err.context(describe()))?;
    eprintln!("helm install to all Deployments Available in {:.1?}", started.elapsed());

    let started = Instant::now();
    let manifest = ui.path().join("census.yaml");
    std::fs::write(&manifest, flows::listing_flow(NAMESPACE))?;
    succeeded(
        cluster.kubectl().args(["apply", "-n", NAMESPACE, "-f"]).arg(&manifest),
        "kubectl apply",
    )?;
    let resource = kube::api::ApiResource::erase::<weir_model::FlowNode>(&());
    let nodes: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let kept = eventually("the Deployments' names reaching the debug node", PATIENCE, || async {
        let kept = nodes.get("log").await?.data["status"]["state"].to_string();
        Ok(kept.contains("weir-engine").then_some(kept))
    })
    .await
    .map_err(|err| err.context(describe()))?;
    for module in MODULES {
        ensure!(kept.contains(&format!("weir-{module}")), "{module} missing from {kept}");
    }
    eprintln!("flow applied to names at the debug node in {:.1?}", started.elapsed());

    // The deliveries went pod to pod: each module lists its replica at its pod's address, and
    // names its leader (kubectl's LEADER column).
    let resource = kube::api::ApiResource::erase::<weir_model::Module>(&());
    let modules: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &resource);
    for module in MODULES {
        let status = modules.get(module).await?.data["status"].clone();
        let endpoint = status["replicas"][0]["endpoint"].as_str().unwrap_or_default();
        ensure!(
            endpoint.starts_with("http://10.244.0."),
            "{module} serves at {endpoint:?}: {status}"
        );
        ensure!(status["leader"].is_string(), "{module} names no leader: {status}");
    }

    // The script's pod, in the middle of the flow, deleted mid-stream: its Deployment replaces
    // it and messages cross the new pod.
    let count = || async {
        let state = nodes.get("log").await?.data["status"]["state"].clone();
        state["count"].as_u64().ok_or_else(|| anyhow::anyhow!("no count in {state}"))
    };
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(cluster.client().await?, NAMESPACE);
    let js = ListParams::default().labels("app.kubernetes.io/component=module-js");
    let old: Vec<String> =
        pods.list(&js).await?.items.into_iter().filter_map(|p| p.metadata.name).collect();
    let before = count().await?;
    let started = Instant::now();
    succeeded(
        cluster.kubectl().args([
            "delete",
            "pod",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=module-js",
            "--wait=false",
        ]),
        "kubectl delete pod",
    )?;
    eventually("the script pod replaced, the old one gone", PATIENCE, || async {
        let listed = pods.list(&js).await?.items;
        let names: Vec<&str> = listed.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        let ready = listed.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        Ok((ready && !names.iter().any(|n| old.iter().any(|o| o == n))).then_some(()))
    })
    .await
    .map_err(|err| err.context(describe()))?;
    let at_replacement = count().await?;
    ensure!(
        at_replacement >= before,
        "the debug node's count went back: {before} -> {at_replacement}"
    );
    eventually("messages crossing the replacement", PATIENCE, || async {
        Ok((count().await? > at_replacement + 2).then_some(()))
    })
    .await
    .map_err(|err| err.context(describe()))?;
    eprintln!(
        "script pod deleted to the flow going on through its replacement in {:.1?}",
        started.elapsed()
    );
    editor_through_port_forward(cluster).await
}

/// `kubectl port-forward` kills on drop.
struct Forward(std::process::Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The editor through `kubectl port-forward` to the engine's Service: it serves the editor,
/// signs in a user bound to the chart's `weir-edit` ClusterRole, and shows the palette (the
/// modules' catalogues).
async fn editor_through_port_forward(cluster: &Cluster) -> Result<()> {
    succeeded(
        cluster.kubectl().args(["-n", NAMESPACE, "create", "serviceaccount", "alice"]),
        "create alice",
    )?;
    succeeded(
        cluster.kubectl().args([
            "create",
            "clusterrolebinding",
            "alice-edits",
            "--clusterrole=weir-edit",
            &format!("--serviceaccount={NAMESPACE}:alice"),
        ]),
        "bind alice",
    )?;
    let token = cluster.kubectl().args(["-n", NAMESPACE, "create", "token", "alice"]).output()?;
    ensure!(token.status.success(), "create token: {}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _forward = Forward(
        cluster
            .kubectl()
            .args(["-n", NAMESPACE, "port-forward", "svc/weir-engine", &format!("{port}:80")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let page = eventually("the editor through the port-forward", PATIENCE, || async {
        Ok(Some(http.get(&base).send().await?.error_for_status()?.text().await?))
    })
    .await?;
    ensure!(page.contains("<html>weir</html>"), "not the editor: {page}");
    let session = http
        .post(format!("{base}/api/session"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Weir-Request", "1")
        .body(serde_json::json!({ "token": token }).to_string())
        .send()
        .await?;
    ensure!(session.status().is_success(), "sign-in: {}", session.text().await?);
    let cookie = session
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the sign-in set no cookie"))?;
    let who: serde_json::Value = serde_json::from_str(&session.text().await?)?;
    ensure!(
        who["user"] == format!("system:serviceaccount:{NAMESPACE}:alice"),
        "signed in as {who}"
    );
    let palette = http
        .get(format!("{base}/api/modules"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await?;
    let palette: serde_json::Value =
        serde_json::from_str(&palette.error_for_status()?.text().await?)?;
    let names: Vec<&str> = palette
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["metadata"]["name"].as_str())
        .collect();
    ensure!(names == MODULES, "palette: {names:?}");
    Ok(())
}
