//! The image mirror's revert script, run as the flow runs it (a `js_eval` node built from the
//! solution's manifest): it undoes what the mirror did, workload by workload, and leaves alone
//! what the mirror does not patch. The plan itself is the distribution module's `mirror_plan`,
//! tested there.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use weir_js::js_eval::JsEval;
use weir_sdk::testing::Harness;
use weir_solutions::Solution;

const MIRROR: &str = "mirror.local:5000";
const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The js_eval node of `node` in solution `solution`, built from its manifest settings.
fn script_node(solution: &str, node: &str) -> Result<Harness> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(solution);
    let documents = Solution::load(&dir)?.documents()?;
    let settings = documents
        .iter()
        .find(|d| d.pointer("/metadata/name") == Some(&json!(node)))
        .and_then(|d| d.pointer("/spec/settings"))
        .with_context(|| format!("{solution} has no node {node}"))?;
    let harness = Harness::build::<JsEval>(settings)?;
    harness.answer_with(|_, output| Ok(output.clone()));
    Ok(harness)
}

fn workload(kind: &str, namespace: &str, name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> =
        containers.iter().map(|(name, image)| json!({ "name": name, "image": image })).collect();
    json!({
        "kind": kind, "namespace": namespace, "name": name, "labels": {}, "annotations": {}, "replicas": 1,
        "containers": containers, "initContainers": [], "pullSecrets": [], "serviceAccount": "default",
    })
}

#[tokio::test]
async fn a_revert_puts_back_what_the_mirror_recorded_and_removes_its_annotations() -> Result<()> {
    let node = script_node("image-mirror-revert", "mirror-revert-plan")?;
    let pinned = format!("{MIRROR}/mirror/docker.io/library/nginx:1.27@{SHA}");
    let mut web =
        workload("Deployment", "shop", "web", &[("web", &pinned), ("edited", "nginx:1.28")]);
    web["initContainers"] = json!([{ "name": "migrate", "image": format!("{MIRROR}/mirror/ghcr.io/acme/migrate:3@{SHA}") }]);
    web["annotations"] = json!({
        "original.mirror.weir.dev/web": "nginx:1.27",
        "original.mirror.weir.dev/edited": "nginx:1.27",
        "original.mirror.weir.dev/migrate": "ghcr.io/acme/migrate:3",
        "original.mirror.weir.dev/gone": "redis:7",
        "team": "shop",
    });
    let untouched = workload("Deployment", "shop", "api", &[("api", "nginx:1.27")]);
    let mut db = workload("StatefulSet", "shop", "db", &[("db", &pinned)]);
    db["annotations"] = json!({ "original.mirror.weir.dev/db": "nginx:1.27" });
    // What a controller owns follows its controller, and a Pod was never patched.
    let mut owned = db.clone();
    owned["kind"] = json!("ReplicaSet");
    owned["controller"] = json!("Deployment/web");
    let mut pod = db.clone();
    pod["kind"] = json!("Pod");
    let output = node
        .send("in", json!({ "workloads": [web, untouched, db, owned, pod], "settings": { "mirror": "Mirror.local:5000", "namespaces": [] } }))
        .await?;
    ensure!(
        output
            == json!({ "items": [{
                "kind": "Deployment", "namespace": "shop", "name": "web",
                "images": { "web": "nginx:1.27", "migrate": "ghcr.io/acme/migrate:3" },
                "expected": { "web": pinned, "migrate": format!("{MIRROR}/mirror/ghcr.io/acme/migrate:3@{SHA}") },
                "annotations": {
                    "original.mirror.weir.dev/web": null,
                    "original.mirror.weir.dev/edited": null,
                    "original.mirror.weir.dev/migrate": null,
                    "original.mirror.weir.dev/gone": null,
                },
            }, {
                "kind": "StatefulSet", "namespace": "shop", "name": "db",
                "images": { "db": "nginx:1.27" },
                "expected": { "db": pinned },
                "annotations": { "original.mirror.weir.dev/db": null },
            }] }),
        "{output}"
    );
    Ok(())
}
