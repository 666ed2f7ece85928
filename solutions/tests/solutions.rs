//! Every solution folder: `solution.toml` reads and agrees with the manifests (each setting's
//! places exist and hold its default), every manifest passes the checks the apiserver makes,
//! every edge mapping compiles, and `--set` values land where they should or are refused with
//! a clear error. The image mirror's wiring is checked too: the mappings that carry a plan item
//! past the secret read and fan a copy out to its Deployments, on the data they will see.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use weir_model::{manifest, mapping::Mapping};
use weir_solutions::{Solution, SolutionError, parse_set};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Result<Solution> {
    Ok(Solution::load(&root().join(name))?)
}

/// The mapping of the edge leaving `node` from `port`.
fn mapping(documents: &[Value], node: &str, port: &str) -> Result<Mapping> {
    let edge = documents
        .iter()
        .find(|d| d.pointer("/metadata/name") == Some(&json!(node)))
        .and_then(|d| d.pointer("/spec/edges")?.as_array()?.iter().find(|e| e["port"] == port))
        .with_context(|| format!("no edge {node}.{port}"))?;
    Mapping::compile(&edge["mapping"])
        .map_err(|errors| anyhow::anyhow!("{node}.{port}: {errors:?}"))
}

#[test]
fn every_solution_reads_and_its_manifests_pass_the_apiservers_checks() -> Result<()> {
    let solutions = Solution::all(&root())?;
    let names: Vec<&str> = solutions.iter().map(|s| s.spec.name.as_str()).collect();
    ensure!(
        names
            == [
                "chatops",
                "cluster-cost-saver",
                "configmap-sync",
                "cronjob-failure-alerts",
                "deploy-webhook",
                "image-mirror",
                "image-mirror-revert",
                "pod-failure-alerts",
                "status-page",
                "tls-expiry-watcher",
                "webhook-relay",
            ],
        "{names:?}"
    );
    for solution in &solutions {
        let documents = solution.documents()?;
        ensure!(
            documents.first().and_then(|d| d["kind"].as_str()) == Some("Flow"),
            "the flow first"
        );
        for document in &documents {
            let resource = manifest::validate(document).map_err(|err| {
                anyhow::anyhow!("{}: {} {err}", solution.spec.name, document["metadata"]["name"])
            })?;
            if let manifest::Resource::FlowNode(node) = resource {
                ensure!(
                    node.spec.flow.as_str() == solution.spec.name,
                    "{} is in another flow",
                    document["metadata"]["name"]
                );
                for (index, edge) in node.spec.edges.iter().enumerate() {
                    if let Some(document) = &edge.mapping {
                        Mapping::compile(document).map_err(|errors| {
                            anyhow::anyhow!(
                                "{} edges[{index}]: {errors:?}",
                                node.metadata.name.clone().unwrap_or_default()
                            )
                        })?;
                    }
                }
            }
        }
        ensure!(
            root().join(&solution.spec.name).join("README.md").is_file(),
            "{} has no README",
            solution.spec.name
        );
    }
    Ok(())
}

#[test]
fn settings_land_where_solution_toml_says_and_bad_ones_are_refused() -> Result<()> {
    let mirror = load("image-mirror")?;
    let sets: Vec<(String, String)> = [
        "mirror=registry.example.com:5000",
        "platforms=linux/amd64, linux/arm64",
        "skipScaledToZero=false",
        "interval=30s",
        "concurrency=2",
        "excludeNamespaces=",
    ]
    .iter()
    .map(|text| parse_set(text))
    .collect::<Result<_, _>>()?;
    let documents = mirror.render(&sets)?;
    let node = |name: &str| {
        documents.iter().find(|d| d["metadata"]["name"] == name).cloned().unwrap_or_default()
    };
    let plan_settings = &node("mirror-plan")["spec"]["settings"];
    ensure!(plan_settings["mirror"] == "registry.example.com:5000", "{plan_settings}");
    ensure!(plan_settings["platforms"] == json!(["linux/amd64", "linux/arm64"]), "{plan_settings}");
    ensure!(plan_settings["excludeNamespaces"] == json!([]), "{plan_settings}");
    ensure!(plan_settings["prefix"] == "mirror", "untouched settings keep their default");
    ensure!(node("mirror-list")["spec"]["settings"]["skipScaledToZero"] == false);
    ensure!(node("mirror-tick")["spec"]["settings"]["interval"] == "30s");
    ensure!(node("mirror-split")["spec"]["settings"]["concurrency"] == 2);

    let refused = |sets: &[&str]| -> Result<String> {
        let sets: Vec<(String, String)> =
            sets.iter().map(|t| parse_set(t)).collect::<Result<_, _>>()?;
        Ok(mirror.render(&sets).map(|_| ()).expect_err("refused").to_string())
    };
    ensure!(
        refused(&["prefix=team"])?
            == "setting mirror is required: The mirror registry, as host[:port], such as registry.local:5000.",
        "{}",
        refused(&["prefix=team"])?
    );
    ensure!(
        refused(&["mirror=m", "mirrror=x"])?
            .starts_with("solution image-mirror has no setting mirrror (settings: mirror, prefix,")
    );
    ensure!(
        refused(&["mirror=m", "dryRun=yes"])? == "setting dryRun: \"yes\" is not true or false"
    );
    ensure!(
        refused(&["mirror=m", "interval=soon"])?
            .starts_with("setting interval: \"soon\" is not a duration")
    );
    ensure!(
        refused(&["mirror=m", "concurrency=many"])?
            == "setting concurrency: \"many\" is not a whole number"
    );
    ensure!(
        refused(&["mirror=m", "firstTick=later"])?
            == "setting firstTick: \"later\" is not one of immediately, afterInterval"
    );
    ensure!(matches!(parse_set("mirror"), Err(SolutionError::BadValue { .. })));
    Ok(())
}

#[test]
fn pod_failure_alerts_settings_land_and_bad_ones_are_refused_by_name() -> Result<()> {
    let alerts = load("pod-failure-alerts")?;
    let render = |sets: &[&str]| -> Result<Vec<Value>, SolutionError> {
        let sets: Vec<(String, String)> =
            sets.iter().map(|t| parse_set(t)).collect::<Result<_, _>>()?;
        alerts.render(&sets)
    };
    let documents = render(&[
        "format=teams",
        "webhookSecret=teams-hook",
        "namespace=shop",
        "recoveredAfter=10m",
        "logLines=50",
    ])?;
    let node = |name: &str| {
        documents.iter().find(|d| d["metadata"]["name"] == name).cloned().unwrap_or_default()
    };
    ensure!(node("podalert-watch")["spec"]["edges"][0]["mapping"]["format"] == "teams");
    ensure!(node("podalert-watch")["spec"]["settings"]["namespace"] == "shop");
    ensure!(
        node("podalert-post")["spec"]["settings"]["secretUrl"]
            == json!({ "secretKeyRef": { "name": "teams-hook", "key": "url" } })
    );
    ensure!(node("podalert-once")["spec"]["settings"]["resetAfter"] == "10m");
    ensure!(node("podalert-logs")["spec"]["settings"]["tailLines"] == 50);
    let refused = |sets: &[&str]| render(sets).map(|_| ()).expect_err("refused").to_string();
    ensure!(
        refused(&["format=discord"])
            == "setting format: \"discord\" is not one of slack, teams, json",
        "{}",
        refused(&["format=discord"])
    );
    ensure!(refused(&["recoveredAfter=soon"]).starts_with("setting recoveredAfter: \"soon\""));
    ensure!(refused(&["logLines=all"]) == "setting logLines: \"all\" is not a whole number");
    ensure!(refused(&["logLines=5000"]) == "setting logLines: 5000 is above the maximum, 1000");
    Ok(())
}

#[test]
fn cronjob_failure_alerts_settings_land_and_bad_ones_are_refused_by_name() -> Result<()> {
    let alerts = load("cronjob-failure-alerts")?;
    let render = |sets: &[&str]| -> Result<Vec<Value>, SolutionError> {
        let sets: Vec<(String, String)> =
            sets.iter().map(|t| parse_set(t)).collect::<Result<_, _>>()?;
        alerts.render(&sets)
    };
    let documents = render(&["format=json", "namespace=batch"])?;
    let node = |name: &str| {
        documents.iter().find(|d| d["metadata"]["name"] == name).cloned().unwrap_or_default()
    };
    let edges = &node("cronalert-logs")["spec"]["edges"];
    ensure!(edges[0]["mapping"]["format"] == "json" && edges[1]["mapping"]["format"] == "json");
    for name in ["cronalert-jobs", "cronalert-pods", "cronalert-logs"] {
        ensure!(node(name)["spec"]["settings"]["namespace"] == "batch", "{name}");
    }
    let refused = |sets: &[&str]| render(sets).map(|_| ()).expect_err("refused").to_string();
    ensure!(
        refused(&["format=discord"])
            == "setting format: \"discord\" is not one of slack, teams, json"
    );
    ensure!(refused(&["logLines=-"]) == "setting logLines: \"-\" is not a whole number");
    ensure!(refused(&["logLines=-5"]) == "setting logLines: -5 is below the minimum, 0");
    Ok(())
}

#[test]
fn deploy_webhook_settings_land_and_bad_ones_are_refused_by_name() -> Result<()> {
    let deploy = load("deploy-webhook")?;
    let render = |sets: &[&str]| -> Result<Vec<Value>, SolutionError> {
        let sets: Vec<(String, String)> =
            sets.iter().map(|t| parse_set(t)).collect::<Result<_, _>>()?;
        deploy.render(&sets)
    };
    let documents = render(&[
        "targets=ghcr.io/acme/web=shop/web/web, ghcr.io/acme/api=shop/api/api",
        "secret=hooks",
        "timeoutSeconds=120",
    ])?;
    let node = |name: &str| {
        documents.iter().find(|d| d["metadata"]["name"] == name).cloned().unwrap_or_default()
    };
    for hook in ["deploy-github", "deploy-call"] {
        let settings = &node(hook)["spec"]["edges"][0]["mapping"]["settings"];
        ensure!(
            settings["targets"]
                == json!(["ghcr.io/acme/web=shop/web/web", "ghcr.io/acme/api=shop/api/api"])
                && settings["timeoutSeconds"] == 120,
            "{hook}: {settings}"
        );
        ensure!(
            node(hook)["spec"]["settings"]["auth"]["secret"]["secretKeyRef"]["name"] == "hooks"
        );
    }
    let refused = |sets: &[&str]| render(sets).map(|_| ()).expect_err("refused").to_string();
    // Without targets, only labelled Deployments are updated.
    let unmapped = render(&["format=json"])?;
    let github = unmapped
        .iter()
        .find(|d| d["metadata"]["name"] == "deploy-github")
        .context("deploy-github")?;
    ensure!(github["spec"]["edges"][0]["mapping"]["settings"]["targets"] == json!([]));
    ensure!(
        refused(&["targets=a=b/c/d", "timeoutSeconds=soon"])
            == "setting timeoutSeconds: \"soon\" is not a whole number"
    );
    ensure!(
        refused(&["targets=a=b/c/d", "timeoutSeconds=9"])
            == "setting timeoutSeconds: 9 is below the minimum, 10"
    );
    ensure!(
        refused(&["targets=a=b/c/d", "format=discord"])
            == "setting format: \"discord\" is not one of slack, teams, json"
    );
    Ok(())
}

#[test]
fn chatops_settings_land_and_bad_ones_are_refused_by_name() -> Result<()> {
    let chatops = load("chatops")?;
    let render = |sets: &[&str]| -> Result<Vec<Value>, SolutionError> {
        let sets: Vec<(String, String)> =
            sets.iter().map(|t| parse_set(t)).collect::<Result<_, _>>()?;
        chatops.render(&sets)
    };
    let documents = render(&[
        "allowedUsers=U024BE7LH, U0G9QF9C6",
        "namespaces=",
        "maxReplicas=4",
        "secretName=slack",
    ])?;
    let command = documents
        .iter()
        .find(|d| d["metadata"]["name"] == "chatops-command")
        .context("chatops-command")?;
    ensure!(
        command["spec"]["edges"][0]["mapping"]["settings"]
            == json!({ "allowedUsers": ["U024BE7LH", "U0G9QF9C6"], "namespaces": [], "maxReplicas": 4 }),
        "{command}"
    );
    ensure!(command["spec"]["settings"]["auth"]["secret"]["secretKeyRef"]["name"] == "slack");
    let refused = |sets: &[&str]| render(sets).map(|_| ()).expect_err("refused").to_string();
    ensure!(refused(&["namespaces=shop"]).starts_with("setting allowedUsers is required: "));
    ensure!(
        refused(&["allowedUsers=U1", "maxReplicas=many"])
            == "setting maxReplicas: \"many\" is not a whole number"
    );
    ensure!(
        refused(&["allowedUsers=U1", "maxReplicas=-1"])
            == "setting maxReplicas: -1 is below the minimum, 1"
    );
    ensure!(
        refused(&["allowedUsers=U1", "maxReplicas=1001"])
            == "setting maxReplicas: 1001 is above the maximum, 1000"
    );
    render(&["allowedUsers=U1", "maxReplicas=1000"])?;
    Ok(())
}

#[test]
fn a_solution_whose_settings_miss_the_manifests_does_not_load() -> Result<()> {
    let dir = tempdir("targets")?;
    std::fs::copy(root().join("image-mirror-revert/flow.yaml"), dir.join("flow.yaml"))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let spec = std::fs::read_to_string(root().join("image-mirror-revert/solution.toml"))?
        .replace("name = \"image-mirror-revert\"", &format!("name = \"{name}\""));
    std::fs::write(dir.join("solution.toml"), spec.replace("default = false", "default = true"))?;
    let err = Solution::load(&dir).expect_err("a default the manifests do not hold").to_string();
    ensure!(err.ends_with("setting dryRun: FlowNode mirror-revert-patch at /spec/settings/dryRun holds false, not the default true"), "{err}");
    std::fs::write(
        dir.join("solution.toml"),
        std::fs::read_to_string(dir.join("solution.toml"))?
            .replace("/spec/settings/dryRun", "/spec/settings/dryrun"),
    )?;
    let err = Solution::load(&dir).expect_err("a place the manifests do not have").to_string();
    ensure!(err.ends_with("setting dryRun: the manifests have no FlowNode mirror-revert-patch at /spec/settings/dryrun"), "{err}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn bounds_that_do_not_fit_their_setting_do_not_load() -> Result<()> {
    let dir = tempdir("bounds")?;
    std::fs::copy(root().join("chatops/flow.yaml"), dir.join("flow.yaml"))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let spec = std::fs::read_to_string(root().join("chatops/solution.toml"))?
        .replace("name = \"chatops\"", &format!("name = \"{name}\""));
    let bounds = "minimum = 1\nmaximum = 1000\n";
    ensure!(spec.contains(bounds), "chatops' maxReplicas has bounds");
    let load = |bounds_now: &str| -> Result<String> {
        std::fs::write(dir.join("solution.toml"), spec.replace(bounds, bounds_now))?;
        Ok(Solution::load(&dir).expect_err("bounds that do not fit").to_string())
    };
    let err = load("minimum = 11\n")?;
    ensure!(err.ends_with("setting maxReplicas: the default 10 is below the minimum, 11"), "{err}");
    let err = load("minimum = 5\nmaximum = 4\n")?;
    ensure!(err.ends_with("setting maxReplicas: minimum 5 is more than maximum 4"), "{err}");
    let listed = spec.replace(
        "type = \"list\"\ndefault = [\"default\"]",
        "type = \"list\"\nminimum = 1\ndefault = [\"default\"]",
    );
    std::fs::write(dir.join("solution.toml"), listed)?;
    let err = Solution::load(&dir).expect_err("bounds on a list").to_string();
    ensure!(
        err.ends_with("setting namespaces: only an integer setting has a minimum or maximum"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh directory under the target directory, named like a solution; `test` keeps the
/// tests running at once apart.
fn tempdir(test: &str) -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("solution-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A failed Job's pods are read by its name, and a check that could not read every CronJob
/// fails saying so rather than checking some.
#[test]
fn cronjob_failure_alerts_read_one_jobs_pods_and_refuse_a_partial_list() -> Result<()> {
    let documents = load("cronjob-failure-alerts")?.documents()?;
    let failed =
        json!({ "object": { "metadata": { "namespace": "batch", "name": "nightly-29012345" } } });
    let wanted = mapping(&documents, "cronalert-jobs", "out")?.evaluate(&failed, &failed)?;
    ensure!(
        wanted
            == json!({ "namespace": "batch", "labelSelector": "batch.kubernetes.io/job-name=nightly-29012345" }),
        "{wanted}"
    );
    let schedules = mapping(&documents, "cronalert-cronjobs", "out")?;
    let whole = json!({ "items": [{ "metadata": { "name": "a" } }], "continue": "" });
    ensure!(schedules.evaluate(&whole, &json!({}))? == json!({ "items": whole["items"] }));
    let cut = json!({ "items": [], "continue": "token" });
    let err = schedules.evaluate(&cut, &json!({})).expect_err("a partial list");
    ensure!(err.to_string().contains("more than 5000 CronJobs to check"), "{err}");
    Ok(())
}

/// A plan item as the copy and the patches see it: the copy request gets the logins of each
/// group, and the copy's pinned target reaches each workload with a container not on it yet.
#[test]
fn a_plan_item_reaches_the_copy_past_the_secret_read_and_the_copy_reaches_each_workload()
-> Result<()> {
    let documents = load("image-mirror")?.documents()?;
    let pinned = "mirror:5000/mirror/docker.io/library/nginx:1.27@sha256:aa";
    let item = json!({
        "source": "docker.io/library/nginx:1.27",
        "copy": { "source": "docker.io/library/nginx:1.27", "target": "mirror:5000/mirror/docker.io/library/nginx:1.27", "platforms": [] },
        "workloads": [
            { "kind": "Deployment", "namespace": "shop", "name": "web", "current": { "web": "nginx:1.27", "log": pinned },
              "annotations": { "original.mirror.weir.dev/web": "nginx:1.27", "original.mirror.weir.dev/log": "nginx:1.27" } },
            { "kind": "StatefulSet", "namespace": "shop", "name": "done", "current": { "done": pinned },
              "annotations": { "original.mirror.weir.dev/done": "nginx:1.27" } },
        ],
    });
    let trigger = json!({ "item": item, "index": 0, "total": 1 });
    let login = |registry: &str| json!({ "registry": registry, "username": "u", "password": "p" });

    let read = json!({ "registries": [login("docker.io"), login("mirror:5000")], "logins": { "source": [login("docker.io")], "target": [login("mirror:5000")] } });
    let request = mapping(&documents, "mirror-secrets", "out")?.evaluate(&read, &trigger)?;
    ensure!(
        request["source"] == item["copy"]["source"] && request["target"] == item["copy"]["target"],
        "{request}"
    );
    ensure!(
        request["sourceCredentials"] == json!({ "registries": [login("docker.io")] }),
        "{request}"
    );
    ensure!(
        request["targetCredentials"] == json!({ "registries": [login("mirror:5000")] }),
        "{request}"
    );
    let only_target = json!({ "registries": [], "logins": { "target": [login("mirror:5000")] } });
    let request = mapping(&documents, "mirror-secrets", "out")?.evaluate(&only_target, &trigger)?;
    ensure!(request["sourceCredentials"] == json!({ "registries": [] }), "{request}");

    let copied = json!({ "target": pinned, "digest": "sha256:aa", "changed": true });
    let patches = mapping(&documents, "mirror-copy", "out")?.evaluate(&copied, &trigger)?;
    ensure!(
        patches
            == json!({ "items": [{
                "kind": "Deployment", "namespace": "shop", "name": "web",
                "annotations": { "original.mirror.weir.dev/web": "nginx:1.27", "original.mirror.weir.dev/log": "nginx:1.27" },
                "images": { "web": pinned, "log": pinned },
                "expected": { "web": "nginx:1.27", "log": pinned },
            }] }),
        "only the workload not on the copy yet: {patches}"
    );
    let failure =
        json!({ "error": { "kind": "invalid", "message": "manifest unknown" }, "input": trigger });
    let shown = mapping(&documents, "mirror-split", "error")?.evaluate(&failure, &json!({}))?;
    ensure!(
        shown
            == json!({ "image": "docker.io/library/nginx:1.27", "workloads": ["Deployment shop/web", "StatefulSet shop/done"], "error": "manifest unknown" }),
        "{shown}"
    );
    Ok(())
}
