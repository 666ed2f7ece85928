//! The image mirror's plan and revert scripts, run as the flow runs them (a `js_eval` node built
//! from the solution's manifest), table-driven: how each way of writing an image reference is
//! read and where its copy goes, which containers are left alone and why, how Deployments
//! sharing an image become one item, and how a revert undoes what the plan did.

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

fn settings() -> Value {
    json!({
        "mirror": MIRROR, "prefix": "mirror", "mirrorSecret": "", "mirrorPlainHttp": false,
        "plainHttpSources": [], "platforms": [], "namespaces": [], "excludeNamespaces": ["kube-system"],
    })
}

fn deployment(namespace: &str, name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> =
        containers.iter().map(|(name, image)| json!({ "name": name, "image": image })).collect();
    json!({
        "namespace": namespace, "name": name, "labels": {}, "annotations": {}, "replicas": 1,
        "containers": containers, "initContainers": [], "pullSecrets": [], "serviceAccount": "default",
    })
}

async fn plan(node: &Harness, deployments: Vec<Value>, settings: Value) -> Result<Value> {
    Ok(node.send("in", json!({ "deployments": deployments, "settings": settings })).await?)
}

/// How one container's image is planned: copied from `source` to `target`, left alone, or
/// unusable.
#[derive(Debug, PartialEq)]
enum Planned {
    Copy(String, String),
    Skipped(String),
    Unusable(String),
}

async fn plan_one(node: &Harness, image: &str) -> Result<Planned> {
    let output = plan(node, vec![deployment("shop", "web", &[("web", image)])], settings()).await?;
    if let Some(item) = output["items"].as_array().and_then(|items| items.first()) {
        if let Some(problem) = item["problem"].as_str() {
            return Ok(Planned::Unusable(problem.to_owned()));
        }
        let copy = &item["copy"];
        return Ok(Planned::Copy(
            copy["source"].as_str().unwrap_or_default().to_owned(),
            copy["target"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let reasons: Vec<&String> = output["skipped"].as_object().context("skipped")?.keys().collect();
    Ok(Planned::Skipped(reasons.first().map(|r| (*r).clone()).unwrap_or_default()))
}

#[tokio::test]
async fn every_way_of_writing_a_reference_is_read_as_the_runtime_reads_it() -> Result<()> {
    let node = script_node("image-mirror", "mirror-plan")?;
    let to = |path: &str| format!("{MIRROR}/mirror/{path}");
    let copy = |source: &str, target: &str| Planned::Copy(source.to_owned(), to(target));
    let digest_tag = SHA.replace(':', "-");
    let cases: Vec<(String, Planned)> = vec![
        // Docker Hub short names.
        (
            "nginx".to_owned(),
            copy("docker.io/library/nginx:latest", "docker.io/library/nginx:latest"),
        ),
        (
            "nginx:1.27".to_owned(),
            copy("docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ),
        (
            "library/nginx:1.27".to_owned(),
            copy("docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ),
        (
            "docker.io/nginx:1.27".to_owned(),
            copy("docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ),
        (
            "index.docker.io/library/nginx:1.27".to_owned(),
            copy("docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"),
        ),
        (
            "bitnami/redis:7".to_owned(),
            copy("docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ),
        (
            "foo/bar/baz".to_owned(),
            copy("docker.io/foo/bar/baz:latest", "docker.io/foo/bar/baz:latest"),
        ),
        // Other registries keep their path as it is: no library/ outside Docker Hub.
        ("ghcr.io/ubuntu".to_owned(), copy("ghcr.io/ubuntu:latest", "ghcr.io/ubuntu:latest")),
        (
            "ghcr.io/acme/api:2.3.1".to_owned(),
            copy("ghcr.io/acme/api:2.3.1", "ghcr.io/acme/api:2.3.1"),
        ),
        (
            "Registry.Example.com/app:1".to_owned(),
            copy("registry.example.com/app:1", "registry.example.com/app:1"),
        ),
        // Digests: the digest decides, the tag is dropped, the target is tagged by the digest.
        (
            format!("ghcr.io/acme/api@{SHA}"),
            copy(&format!("ghcr.io/acme/api@{SHA}"), &format!("ghcr.io/acme/api:{digest_tag}")),
        ),
        (
            format!("ghcr.io/acme/api:2@{SHA}"),
            copy(&format!("ghcr.io/acme/api@{SHA}"), &format!("ghcr.io/acme/api:{digest_tag}")),
        ),
        (
            format!("nginx@{SHA}"),
            copy(
                &format!("docker.io/library/nginx@{SHA}"),
                &format!("docker.io/library/nginx:{digest_tag}"),
            ),
        ),
        // host:port and localhost are registries, kept in the path with `_` for `:`.
        (
            "registry.local:5000/team/app:v1".to_owned(),
            copy("registry.local:5000/team/app:v1", "registry.local_5000/team/app:v1"),
        ),
        ("localhost/app".to_owned(), copy("localhost/app:latest", "localhost/app:latest")),
        ("localhost:5000/app:1".to_owned(), copy("localhost:5000/app:1", "localhost_5000/app:1")),
        // Already served by the mirror, whatever the case of its host.
        (
            format!("{MIRROR}/library/nginx:1.27"),
            Planned::Skipped("served by the mirror".to_owned()),
        ),
        ("MIRROR.local:5000/x/y:1".to_owned(), Planned::Skipped("served by the mirror".to_owned())),
    ];
    for (image, expected) in cases {
        let got = plan_one(&node, &image).await?;
        ensure!(got == expected, "{image}: got {got:?}, expected {expected:?}");
    }
    let long = format!("ghcr.io/{}b", "a/".repeat(120));
    let unusable = [
        ("Nginx", "\"Nginx\" is not a repository path component"),
        ("nginx:1.27 ", "\"1.27 \" is not a tag"),
        ("nginx:", "\"\" is not a tag"),
        ("nginx@sha256:abc", "sha256:abc is not a digest"),
        ("a@b@c", "it has two @"),
        ("", "it is empty"),
        (
            "[::1]:5000/app",
            "its registry [::1]:5000 cannot be a repository path component in the mirror",
        ),
        (long.as_str(), "is longer than the 255 characters a repository name may have"),
    ];
    for (image, why) in unusable {
        match plan_one(&node, image).await? {
            Planned::Unusable(problem) if problem.contains(why) => {}
            other => anyhow::bail!("{image:?}: got {other:?}, expected a problem saying {why:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn deployments_sharing_an_image_make_one_item_with_every_use_and_their_pull_secrets()
-> Result<()> {
    let node = script_node("image-mirror", "mirror-plan")?;
    let mut web = deployment(
        "shop",
        "web",
        &[("web", "nginx:1.27"), ("log", "docker.io/library/nginx:1.27")],
    );
    web["initContainers"] = json!([{ "name": "migrate", "image": "ghcr.io/acme/migrate:3" }]);
    web["pullSecrets"] = json!(["hub", "ghcr"]);
    let mut admin = deployment("ops", "admin", &[("admin", "nginx:1.27")]);
    admin["pullSecrets"] = json!(["hub"]);
    let system = deployment("kube-system", "dns", &[("dns", "coredns/coredns:1.11")]);
    let mut settings = settings();
    settings["mirrorSecret"] = json!("weir/mirror-login");
    settings["plainHttpSources"] = json!(["GHCR.io"]);
    settings["platforms"] = json!(["linux/amd64"]);
    let output = plan(&node, vec![web, admin, system], settings).await?;
    ensure!(output["skipped"] == json!({ "namespace not mirrored": 1 }), "{output}");
    let items = output["items"].as_array().context("items")?;
    ensure!(items.len() == 2, "{output}");
    let nginx = &items[0];
    ensure!(
        nginx["copy"]
            == json!({
                "source": "docker.io/library/nginx:1.27",
                "target": format!("{MIRROR}/mirror/docker.io/library/nginx:1.27"),
                "sourcePlainHttp": false, "targetPlainHttp": false, "platforms": ["linux/amd64"],
            }),
        "{nginx}"
    );
    ensure!(
        nginx["deployments"]
            == json!([
                {
                    "namespace": "shop", "name": "web",
                    "current": { "web": "nginx:1.27", "log": "docker.io/library/nginx:1.27" },
                    "annotations": {
                        "original.mirror.weir.dev/web": "nginx:1.27",
                        "original.mirror.weir.dev/log": "docker.io/library/nginx:1.27",
                    },
                },
                {
                    "namespace": "ops", "name": "admin",
                    "current": { "admin": "nginx:1.27" },
                    "annotations": { "original.mirror.weir.dev/admin": "nginx:1.27" },
                },
            ]),
        "{nginx}"
    );
    ensure!(
        nginx["secrets"]
            == json!([
                { "namespace": "shop", "name": "hub", "group": "source" },
                { "namespace": "shop", "name": "ghcr", "group": "source" },
                { "namespace": "ops", "name": "hub", "group": "source" },
                { "namespace": "weir", "name": "mirror-login", "group": "target" },
            ]),
        "{nginx}"
    );
    ensure!(
        items[1]["copy"]["sourcePlainHttp"] == true,
        "plain HTTP by host, any case: {}",
        items[1]
    );
    ensure!(
        items[1]["deployments"][0]["current"] == json!({ "migrate": "ghcr.io/acme/migrate:3" })
    );
    Ok(())
}

#[tokio::test]
async fn what_the_mirror_pointed_at_its_copies_is_checked_again_and_nothing_else_there()
-> Result<()> {
    let node = script_node("image-mirror", "mirror-plan")?;
    let pinned = format!("{MIRROR}/mirror/docker.io/library/nginx:1.27@{SHA}");
    let mut ours = deployment("shop", "web", &[("web", &pinned), ("side", "nginx:1.27")]);
    ours["annotations"] = json!({ "original.mirror.weir.dev/web": "nginx:1.27" });
    // Someone pointed this one at another image in the mirror since: it is theirs now.
    let mut changed = deployment(
        "shop",
        "api",
        &[("api", &format!("{MIRROR}/mirror/docker.io/library/nginx:1.28@{SHA}"))],
    );
    changed["annotations"] = json!({ "original.mirror.weir.dev/api": "nginx:1.27" });
    let output = plan(&node, vec![ours, changed], settings()).await?;
    ensure!(output["skipped"] == json!({ "served by the mirror": 1 }), "{output}");
    let items = output["items"].as_array().context("items")?;
    ensure!(items.len() == 1, "{output}");
    ensure!(items[0]["source"] == "docker.io/library/nginx:1.27", "{output}");
    ensure!(
        items[0]["deployments"]
            == json!([{
                "namespace": "shop", "name": "web",
                "current": { "web": pinned, "side": "nginx:1.27" },
                "annotations": {
                    "original.mirror.weir.dev/web": "nginx:1.27",
                    "original.mirror.weir.dev/side": "nginx:1.27",
                },
            }]),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn namespaces_narrow_the_plan_and_bad_settings_fail_the_tick_naming_the_setting() -> Result<()>
{
    let node = script_node("image-mirror", "mirror-plan")?;
    let deployments = vec![
        deployment("shop", "web", &[("web", "nginx:1.27")]),
        deployment("ops", "admin", &[("admin", "redis:7")]),
    ];
    let mut only_shop = settings();
    only_shop["namespaces"] = json!(["shop"]);
    let output = plan(&node, deployments.clone(), only_shop).await?;
    ensure!(output["items"].as_array().map(Vec::len) == Some(1), "{output}");
    ensure!(output["items"][0]["source"] == "docker.io/library/nginx:1.27", "{output}");

    let wrong = [
        (
            "mirror",
            json!("https://mirror.local"),
            "settings.mirror: \"https://mirror.local\" is not a registry host[:port] (no scheme, no path)",
        ),
        (
            "prefix",
            json!("Mirror/x"),
            "settings.prefix: \"Mirror\" is not a repository path component",
        ),
        (
            "mirrorSecret",
            json!("mirror-login"),
            "settings.mirrorSecret: \"mirror-login\" is not namespace/name",
        ),
        (
            "plainHttpSources",
            json!(["http://x"]),
            "settings.plainHttpSources: \"http://x\" is not a registry host[:port]",
        ),
    ];
    for (field, value, message) in wrong {
        let mut bad = settings();
        bad[field] = value;
        let err = plan(&node, deployments.clone(), bad).await.expect_err(field);
        ensure!(err.to_string().contains(message), "{field}: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn a_revert_puts_back_what_the_mirror_recorded_and_removes_its_annotations() -> Result<()> {
    let node = script_node("image-mirror-revert", "mirror-revert-plan")?;
    let pinned = format!("{MIRROR}/mirror/docker.io/library/nginx:1.27@{SHA}");
    let mut web = deployment("shop", "web", &[("web", &pinned), ("edited", "nginx:1.28")]);
    web["initContainers"] = json!([{ "name": "migrate", "image": format!("{MIRROR}/mirror/ghcr.io/acme/migrate:3@{SHA}") }]);
    web["annotations"] = json!({
        "original.mirror.weir.dev/web": "nginx:1.27",
        "original.mirror.weir.dev/edited": "nginx:1.27",
        "original.mirror.weir.dev/migrate": "ghcr.io/acme/migrate:3",
        "original.mirror.weir.dev/gone": "redis:7",
        "team": "shop",
    });
    let untouched = deployment("shop", "api", &[("api", "nginx:1.27")]);
    let output = node
        .send("in", json!({ "deployments": [web, untouched], "settings": { "mirror": "Mirror.local:5000", "namespaces": [] } }))
        .await?;
    ensure!(
        output
            == json!({ "items": [{
                "namespace": "shop", "name": "web",
                "images": { "web": "nginx:1.27", "migrate": "ghcr.io/acme/migrate:3" },
                "expected": { "web": pinned, "migrate": format!("{MIRROR}/mirror/ghcr.io/acme/migrate:3@{SHA}") },
                "annotations": {
                    "original.mirror.weir.dev/web": null,
                    "original.mirror.weir.dev/edited": null,
                    "original.mirror.weir.dev/migrate": null,
                    "original.mirror.weir.dev/gone": null,
                },
            }] }),
        "{output}"
    );
    Ok(())
}
