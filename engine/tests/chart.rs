//! The Helm chart on a real apiserver. It lints and renders for the default and a full set of
//! values, refuses bad values by name, grants each process exactly the rules Weir declares for
//! it, and every object it renders passes a server-side dry run. Then the engine and module
//! binaries run as local processes with exactly the ServiceAccounts and RBAC the chart creates
//! (tokens from the TokenRequest API): a flow runs end to end across three modules, the
//! editor's API lets users in as RBAC says, and taking any one verb from the engine's or a
//! module's rules gives an error naming the verb and the resource.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::{self, Scope},
};
use reqwest::Method;
use serde_json::{Value, json};
use weir_model::Kind;
use weir_testenv::{ControlPlane, Process, eventually, solution::engine_address};

mod flows;
use flows::listing_flow;

/// The release name; the chart's objects are called `weir-engine`, `weir-common`, ….
const RELEASE: &str = "weir";
const MODULES: [&str; 5] = ["common", "kubernetes", "js", "distribution", "http"];
const PATIENCE: Duration = Duration::from_secs(30);

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/weir")
}

fn full_values() -> String {
    chart_dir().join("ci/full-values.yaml").display().to_string()
}

fn helm(args: &[&str]) -> Result<std::process::Output> {
    Ok(weir_testenv::helm()?.args(args).output()?)
}

/// `helm template` of the chart into `namespace` with `args` (values files, `--set`), as
/// objects.
fn render(namespace: &str, args: &[&str]) -> Result<Vec<Value>> {
    let chart = chart_dir().display().to_string();
    let mut all = vec!["template", RELEASE, &chart, "--namespace", namespace];
    all.extend(["--kube-version", "1.34.0"]);
    all.extend(args);
    let output = helm(&all)?;
    ensure!(
        output.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = <Value as serde::Deserialize>::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn of_kind<'a>(objects: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| kind(o) == wanted)
}

/// Server-side applies `objects` (into `namespace` when they name none), for real or as a dry
/// run; fails naming the first object the apiserver refuses.
async fn apply(client: &Client, namespace: &str, objects: &[Value], dry_run: bool) -> Result<()> {
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind(object));
        let what = format!("{} {}", kind(object), name(object));
        let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("{what}: the apiserver does not serve {api_version}"))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = object["metadata"]["namespace"].as_str().unwrap_or(namespace);
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let mut params = PatchParams::apply("weir-chart-test").force();
        if dry_run {
            params = params.dry_run();
        }
        api.patch(name(object), &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("the apiserver refused {what}"))?;
    }
    Ok(())
}

/// The generated rules of `component` (`engine` or a module) by place.
fn declared(component: &str) -> Result<Value> {
    let rules = rules_file()?;
    let entry = if component == "engine" { &rules["engine"] } else { &rules["modules"][component] };
    ensure!(entry.is_object(), "files/rules.yaml has no entry for {component}");
    Ok(entry.clone())
}

/// What the default flow account `weir-flow` may do, from `files/rules.yaml`.
fn flow_account() -> Result<Value> {
    let rules = rules_file()?["flowAccount"].clone();
    ensure!(rules.is_array(), "files/rules.yaml has no flowAccount");
    Ok(rules)
}

fn rules_file() -> Result<Value> {
    let text = std::fs::read_to_string(chart_dir().join("files/rules.yaml"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

/// One (namespace or "cluster", group, resource, verb) per verb a set of rules grants.
fn grants(place: &str, rules: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut all = BTreeSet::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    for rule in rules.as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    all.insert((place.to_owned(), group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    all
}

/// Everything the rendered roles grant ServiceAccount `account`, by place.
fn granted_to(objects: &[Value], account: &str) -> BTreeSet<(String, String, String, String)> {
    let mut all = BTreeSet::new();
    for binding in
        objects.iter().filter(|o| matches!(kind(o), "RoleBinding" | "ClusterRoleBinding"))
    {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account);
        if !bound {
            continue;
        }
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let place = match kind(binding) {
            "ClusterRoleBinding" => "cluster",
            _ => binding["metadata"]["namespace"].as_str().unwrap_or_default(),
        };
        let role = objects.iter().find(|o| {
            kind(o) == role_kind
                && name(o) == role_name
                && (role_kind == "ClusterRole"
                    || o["metadata"]["namespace"].as_str() == Some(place))
        });
        if let Some(role) = role {
            all.extend(grants(place, &role["rules"]));
        }
    }
    all
}

#[test]
fn the_chart_lints_clean_with_default_and_full_values() -> Result<()> {
    let (chart, full) = (chart_dir().display().to_string(), full_values());
    for args in [vec!["lint", "--strict", &chart], vec!["lint", "--strict", &chart, "-f", &full]] {
        let output = helm(&args)?;
        ensure!(
            output.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[test]
fn bad_values_are_refused_naming_the_value() -> Result<()> {
    let cases = [
        (vec!["--set", "rbac.scope=bogus"], "rbac.scope must be \"namespace\" or \"cluster\""),
        (vec!["--set", "mirror.enabled=true"], "mirror.registry is empty"),
        (
            vec!["--set", "modules.http.webhooks.ingress.enabled=true"],
            "modules.http.webhooks.ingress.enabled is true but its hosts are empty",
        ),
        // values.schema.json: a value of the wrong type, and a misspelt key, by name.
        (vec!["--set", "engine.replicas=many"], "/engine/replicas"),
        (vec!["--set", "engin.replicas=2"], "engin"),
        (vec!["--set", "mirror.enabled=perhaps"], "/mirror/enabled"),
    ];
    for (args, expected) in cases {
        let err = render("weir", &args).err().map(|e| format!("{e:#}")).unwrap_or_default();
        ensure!(err.contains(expected), "{args:?} should fail with {expected:?}, got: {err}");
    }
    Ok(())
}

/// `--set` reads `image.tag=2` and `mirror.password=123456` as numbers, which the schema takes
/// as the text they are meant as: they render as that text, not as Go's `%!s(int64=2)`.
#[test]
fn values_set_as_numbers_render_as_the_text_written() -> Result<()> {
    let mirror = "mirror.enabled=true,mirror.registry=registry.local:5000";
    let login = "mirror.username=7,mirror.password=123456";
    let objects = render("weir", &["--set", "image.tag=2", "--set", mirror, "--set", login])?;
    let images: BTreeSet<&str> = of_kind(&objects, "Deployment")
        .filter_map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .collect();
    ensure!(!images.is_empty() && images.iter().all(|i| i.ends_with(":2")), "{images:?}");
    let secret = of_kind(&objects, "Secret")
        .find(|s| s["type"] == "kubernetes.io/dockerconfigjson")
        .context("the mirror's login Secret")?;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret.clone())?;
    let config = &secret.data.context("its data")?[".dockerconfigjson"].0;
    let config: Value = serde_json::from_slice(config)?;
    let auth = &config["auths"]["registry.local:5000"];
    ensure!(
        auth == &json!({ "username": "7", "password": "123456", "auth": "NzoxMjM0NTY=" }),
        "{auth}"
    );
    Ok(())
}

/// Each process gets exactly what Weir declares for it, in the places the scope says, and
/// every container runs locked down.
#[test]
fn each_process_is_granted_exactly_its_declared_rules() -> Result<()> {
    for (values, scope) in [(None, "namespace"), (Some(full_values()), "cluster")] {
        let args: Vec<&str> = values.as_deref().map(|v| vec!["-f", v]).unwrap_or_default();
        let objects = render("weir", &args)?;
        for component in std::iter::once("engine").chain(MODULES) {
            let rules = declared(component)?;
            let wide = if scope == "cluster" { "cluster" } else { "weir" };
            let mut expected = grants("weir", &rules["home"]);
            expected.extend(grants(wide, &rules["flows"]));
            let account = format!("{RELEASE}-{component}");
            let granted = granted_to(&objects, &account);
            ensure!(
                granted == expected,
                "{scope} scope: {account} is granted\n{granted:#?}\nbut declares\n{expected:#?}"
            );
        }
        // Nodes act as their flow's account: the default one holds the components' rules.
        let wide = if scope == "cluster" { "cluster" } else { "weir" };
        let expected = grants(wide, &flow_account()?);
        let granted = granted_to(&objects, "weir-flow");
        ensure!(granted == expected, "{scope} scope: weir-flow is granted\n{granted:#?}");
        ensure!(
            of_kind(&objects, "ServiceAccount").any(|a| name(a) == "weir-flow"),
            "{scope} scope: no weir-flow ServiceAccount"
        );
        for deployment in of_kind(&objects, "Deployment") {
            let pod = &deployment["spec"]["template"]["spec"];
            ensure!(pod["securityContext"]["runAsNonRoot"] == true, "{}", name(deployment));
            for container in pod["containers"].as_array().into_iter().flatten() {
                let context = &container["securityContext"];
                ensure!(
                    context["readOnlyRootFilesystem"] == true
                        && context["allowPrivilegeEscalation"] == false
                        && context["capabilities"]["drop"] == json!(["ALL"]),
                    "{}: {context}",
                    name(deployment)
                );
            }
        }
        ensure!(of_kind(&objects, "Deployment").count() == 6, "engine and five modules");
        // Webhooks have a Service of their own, to the http module's webhook port only, open
        // to all (they check their callers themselves).
        let webhooks = of_kind(&objects, "Service")
            .find(|s| name(s) == format!("{RELEASE}-webhooks"))
            .context("the webhooks' Service")?;
        ensure!(
            webhooks["spec"]["selector"]["app.kubernetes.io/component"] == "module-http"
                && webhooks["spec"]["ports"].as_array().map(Vec::len) == Some(1)
                && webhooks["spec"]["ports"][0]["targetPort"] == "webhooks",
            "{webhooks}"
        );
        let serving: Vec<&str> = of_kind(&objects, "Deployment")
            .filter(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "webhooks" && p["containerPort"] == 7423)
            })
            .map(name)
            .collect();
        ensure!(serving == [format!("{RELEASE}-http")], "{serving:?}");
        // A module's gRPC port runs nodes for whoever reaches it: only the release's pods may.
        let policy = of_kind(&objects, "NetworkPolicy").next().context("a NetworkPolicy")?;
        let grpc = policy["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|rule| rule["ports"][0]["port"] == "grpc")
            .context("a rule for the gRPC port")?;
        let open = policy["spec"]["ingress"].as_array().into_iter().flatten().any(|rule| {
            rule["from"].is_null()
                && rule["ports"].as_array().into_iter().flatten().any(|p| p["port"] == "webhooks")
        });
        ensure!(open, "the webhook port is open to all: {policy}");
        let release = json!({ "podSelector": { "matchLabels": {
            "app.kubernetes.io/name": "weir", "app.kubernetes.io/instance": RELEASE } } });
        let sources = grpc["from"].as_array().context("gRPC sources")?;
        ensure!(sources.first() == Some(&release), "{grpc}");
        ensure!(sources.len() == if values.is_some() { 2 } else { 1 }, "{grpc}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_object_passes_a_server_side_dry_run() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("chart-dry").await?;
    // The full values grant the modules' components a namespace of their own too.
    let team: Value = json!({ "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": "team-a" } });
    apply(&client, &namespace, &[team], false).await?;
    let defaults = render(&namespace, &[])?;
    ensure!(defaults.len() > 10, "{} objects", defaults.len());
    apply(&client, &namespace, &defaults, true).await.context("default values")?;
    let full = render(&namespace, &["-f", &full_values()])?;
    // No Prometheus operator here, so its ServiceMonitor and PrometheusRule kinds are unknown
    // to the apiserver: those objects are checked by shape instead.
    let (operated, rest): (Vec<Value>, Vec<Value>) =
        full.into_iter().partition(|o| ["ServiceMonitor", "PrometheusRule"].contains(&kind(o)));
    let monitors: Vec<&Value> = of_kind(&operated, "ServiceMonitor").collect();
    ensure!(monitors.len() == 1, "one ServiceMonitor: {monitors:?}");
    ensure!(monitors[0]["spec"]["endpoints"][0]["port"] == "http", "{}", monitors[0]);
    ensure!(monitors[0]["spec"]["endpoints"][0]["honorLabels"] == true, "{}", monitors[0]);
    let rules: Vec<&Value> = of_kind(&operated, "PrometheusRule").collect();
    let alerts: Vec<&str> = rules
        .iter()
        .flat_map(|r| r["spec"]["groups"][0]["rules"].as_array().into_iter().flatten())
        .filter_map(|rule| rule["alert"].as_str())
        .collect();
    ensure!(alerts == ["WeirFlowFailing", "WeirModuleDown"], "{rules:?}");
    ensure!(
        rules[0]["spec"]["groups"][0]["rules"][0]["expr"]
            .as_str()
            .is_some_and(|e| e.ends_with(">= 5")),
        "{rules:?}"
    );
    let dashboard = of_kind(&rest, "ConfigMap")
        .find_map(|c| c["data"]["weir.json"].as_str())
        .context("the full values render the dashboard's ConfigMap")?;
    let dashboard: Value = serde_json::from_str(dashboard)?;
    ensure!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10), "{dashboard}");
    for wanted in ["Ingress", "Secret", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget"]
    {
        ensure!(of_kind(&rest, wanted).next().is_some(), "the full values render a {wanted}");
    }
    apply(&client, &namespace, &rest, true).await.context("full values")?;
    Ok(())
}

/// A Role's name, and how to change its rules.
type RoleEdit<'a> = (&'a str, &'a dyn Fn(&mut Value));

/// Applies the chart's ServiceAccounts and RBAC into `namespace` for real, with `edit` changing
/// the rules of the Role called `role` first.
async fn install_identities(
    client: &Client,
    namespace: &str,
    edit: Option<RoleEdit<'_>>,
) -> Result<Vec<Value>> {
    let mut objects = render(namespace, &[])?;
    objects.retain(|o| {
        matches!(
            kind(o),
            "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
        )
    });
    if let Some((role, change)) = edit {
        let target = objects
            .iter_mut()
            .find(|o| kind(o) == "Role" && name(o) == role)
            .with_context(|| format!("the chart renders no Role {role}"))?;
        change(&mut target["rules"]);
    }
    apply(client, namespace, &objects, false).await?;
    Ok(objects)
}

fn weir(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("WEIR_LOG", "info")
        // A kubernetes node's client reads $KUBECONFIG, as a pod's reads its ServiceAccount.
        .env("KUBECONFIG", kubeconfig);
    command
}

/// Starts `component` (`engine` or a module) as its ServiceAccount from the chart.
async fn start(plane: &ControlPlane, namespace: &str, component: &str) -> Result<Process> {
    let (kubeconfig, _) =
        plane.service_account(namespace, &format!("{RELEASE}-{component}")).await?;
    let identity = format!("{component}-0");
    let common = ["--namespace", namespace, "--listen", "127.0.0.1:0", "--identity", &identity];
    let mut command = if component == "engine" {
        weir(&kubeconfig, &[&["engine"][..], &common[..]].concat())
    } else {
        let peers = peers();
        let grpc =
            ["--grpc-listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0", "--peers", &peers];
        weir(&kubeconfig, &[&["module", component][..], &common[..], &grpc[..]].concat())
    };
    plane.spawn(&format!("{namespace}-{component}"), &mut command)
}

/// The ServiceAccounts of the release's processes, as the chart gives them in `WEIR_PEERS`.
fn peers() -> String {
    std::iter::once("engine")
        .chain(MODULES)
        .map(|c| format!("{RELEASE}-{c}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A kubeconfig for `sender`, a ServiceAccount bound to the chart's `weir-edit`: `weir send`
/// in a cluster signs in with a token and needs the right to update the node.
async fn sender(
    plane: &ControlPlane,
    client: &Client,
    namespace: &str,
) -> Result<(PathBuf, String)> {
    let objects = [
        json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": "sender", "namespace": namespace } }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "sender", "namespace": namespace },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": format!("{RELEASE}-edit") },
            "subjects": [{ "kind": "ServiceAccount", "name": "sender", "namespace": namespace }] }),
    ];
    apply(client, namespace, &objects, false).await?;
    plane.service_account(namespace, "sender").await
}

/// Applies manifests with the admin's kubectl, as a user would.
fn kubectl_apply(plane: &ControlPlane, namespace: &str, yaml: &str) -> Result<()> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{namespace}.yaml"));
    std::fs::write(&file, yaml)?;
    let output = plane.kubectl().args(["apply", "-n", namespace, "-f"]).arg(&file).output()?;
    ensure!(output.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

async fn get(client: &Client, namespace: &str, kind: Kind, name: &str) -> Result<Value> {
    let resource = match kind {
        Kind::Flow => kube::api::ApiResource::erase::<weir_model::Flow>(&()),
        Kind::FlowNode => kube::api::ApiResource::erase::<weir_model::FlowNode>(&()),
        Kind::Module => kube::api::ApiResource::erase::<weir_model::Module>(&()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    Ok(api.get(name).await?.data)
}

/// The HTTP address a module process logged.
fn module_address(process: &Process) -> Option<String> {
    let log = process.log();
    Some(log.split(", HTTP on http://").nth(1)?.split_whitespace().next()?.to_owned())
}

/// The value of the first series on `/metrics` at `address` whose line starts with `series`.
async fn scraped(address: &str, series: &str) -> Result<f64> {
    let metrics = reqwest::get(format!("http://{address}/metrics")).await?.text().await?;
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .with_context(|| format!("no {series} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_identities_run_a_flow_and_the_editor_acts_as_each_user() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("chart-run").await?;
    install_identities(&client, &namespace, None).await?;
    let web = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": namespace },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } } } });
    apply(&client, &namespace, &[web], false).await?;
    let mut processes = vec![start(plane, &namespace, "engine").await?];
    for module in MODULES {
        processes.push(start(plane, &namespace, module).await?);
    }
    kubectl_apply(plane, &namespace, &listing_flow(&namespace))?;

    // The engine checked the flow against the four catalogues (a flow checked before its
    // nodes arrived is ready with none), and the nodes ran as their flow's account: the
    // Deployment list reached the debug node through the script.
    eventually("the census flow being ready with its four nodes", PATIENCE, || async {
        let flow = get(&client, &namespace, Kind::Flow, "census").await?;
        let ready = flow["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        Ok((ready && flow["status"]["nodes"] == 4).then_some(flow))
    })
    .await
    .with_context(|| processes.iter().map(Process::log).collect::<Vec<_>>().join("\n"))?;
    let kept = eventually("the names reaching the debug node", PATIENCE, || async {
        let log = get(&client, &namespace, Kind::FlowNode, "log").await?;
        let kept = log["status"]["state"].to_string();
        Ok(kept.contains("\"names\":[\"web\"]").then_some(kept))
    })
    .await
    .with_context(|| processes.iter().map(Process::log).collect::<Vec<_>>().join("\n"))?;
    ensure!(!kept.contains("forbidden"), "{kept}");
    // Conditions as Kubernetes tools expect them (KEP-1623): `kubectl wait` takes them, and
    // each says when it last changed and of which generation it speaks.
    for (kind, name) in [("flows.weir.dev", "census"), ("flownodes.weir.dev", "names")] {
        let waited = plane
            .kubectl()
            .args(["wait", "--for=condition=Ready", "--timeout=30s", "-n", &namespace])
            .arg(format!("{kind}/{name}"))
            .output()?;
        ensure!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
    }
    for (kind, name) in [(Kind::Flow, "census"), (Kind::FlowNode, "names")] {
        let object = get(&client, &namespace, kind, name).await?;
        let ready = &object["status"]["conditions"][0];
        ensure!(
            ready["lastTransitionTime"].is_string()
                && ready["observedGeneration"].is_i64()
                && ready["observedGeneration"] == object["status"]["observedGeneration"]
                && ready["reason"].is_string(),
            "{kind} {name}: {ready}"
        );
    }
    for module in MODULES {
        let published = get(&client, &namespace, Kind::Module, module).await?;
        ensure!(
            published["status"]["replicas"][0]["endpoint"].is_string(),
            "{module}: {published}"
        );
    }
    for process in &processes {
        ensure!(!process.log().contains("forbidden"), "{}", process.log());
    }

    // What an operator scrapes: the engine counts its reconciles and its client's requests
    // as controller-runtime and client-go name them, and the module that listed the
    // Deployments timed the node's deliveries.
    let address = engine_address(&processes[0]).context("the engine logged no address")?;
    let reconciled = "controller_runtime_reconcile_total{controller=\"flow\",result=\"success\"}";
    ensure!(scraped(&address, reconciled).await? >= 1.0);
    let timed = "controller_runtime_reconcile_time_seconds_count{controller=\"flow\"}";
    ensure!(scraped(&address, timed).await? >= 1.0);
    ensure!(
        scraped(&address, "rest_client_requests_total{code=\"200\",method=\"GET\",").await? >= 1.0
    );
    ensure!(
        scraped(&address, "rest_client_request_duration_seconds_count{verb=\"GET\",").await? >= 1.0
    );
    let kubernetes =
        module_address(&processes[2]).context("the kubernetes module logged no address")?;
    let listed = format!(
        "weir_node_delivery_seconds_count{{namespace=\"{namespace}\",flow=\"census\",node=\"list\"}}"
    );
    ensure!(scraped(&kubernetes, &listed).await? >= 1.0);
    ensure!(scraped(&kubernetes, "rest_client_requests_total{code=\"200\",").await? >= 1.0);

    editor_acts_as_each_user(plane, &client, &namespace, &address).await?;
    modules_answer_only_the_release_along_real_edges(plane, &client, &namespace).await?;
    flows_act_as_their_accounts_and_no_more(plane, &client, &namespace).await
}

/// A flow's nodes act as its ServiceAccount: one naming an account that does not exist gets
/// nothing done and says so, and one reaching a namespace its account has no grants in is
/// denied, naming the verb, the resource, the namespace and the account.
async fn flows_act_as_their_accounts_and_no_more(
    plane: &ControlPlane,
    client: &Client,
    namespace: &str,
) -> Result<()> {
    let abroad = plane.namespace("abroad").await?;
    let flows = format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {{name: stranger}}
spec: {{serviceAccountName: nobody}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: stranger-list}}
spec: {{flow: stranger, module: kubernetes, component: workload_list, settings: {{namespace: {namespace}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {{name: traveller}}
spec: {{}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: abroad-list}}
spec: {{flow: traveller, module: kubernetes, component: workload_list, settings: {{namespace: {abroad}}}}}
"#
    );
    kubectl_apply(plane, namespace, &flows)?;
    let sender = sender(plane, client, namespace).await?.0;
    let cases = [
        (
            "stranger-list:in",
            format!("acts as ServiceAccount {namespace}/nobody, which does not exist"),
        ),
        (
            "abroad-list:in",
            format!(
                "User \"system:serviceaccount:{namespace}:weir-flow\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"{abroad}\""
            ),
        ),
    ];
    for (target, expected) in &cases {
        let sender = &sender;
        eventually(&format!("{target} refused"), PATIENCE, || {
            let output = weir(sender, &["send", "-n", namespace, target, "{}"]).output();
            async move {
                let output = output?;
                let said = String::from_utf8_lossy(&output.stderr).into_owned();
                ensure!(!output.status.success(), "{target} succeeded");
                Ok(said.contains(expected.as_str()).then_some(()))
            }
        })
        .await?;
    }
    // The node's status says why too.
    eventually("the stranger's status naming the missing account", PATIENCE, || async {
        let node = get(client, namespace, Kind::FlowNode, "stranger-list").await?;
        let message =
            node["status"]["lastError"]["message"].as_str().unwrap_or_default().to_owned();
        Ok(message.contains(&cases[0].1).then_some(()))
    })
    .await
}

/// A call to a module's gRPC port, with `token` as the bearer when given.
fn with_token<T>(message: T, token: Option<&str>) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(request)
}

/// The module gRPC ports answer only callers the cluster knows: deliveries along edges (by a
/// call or on the stream of them) and `Inspect` only from the release's own ServiceAccounts and
/// only along an edge the store holds, a message from outside any flow only from someone who
/// may update the node.
async fn modules_answer_only_the_release_along_real_edges(
    plane: &ControlPlane,
    client: &Client,
    namespace: &str,
) -> Result<()> {
    use tonic::Code;
    use weir_proto::{
        DeliverRequest, DeliverResponse, EdgeDelivery, InspectRequest,
        deliver_response::Outcome::AnswerJson,
        edge_answer::Outcome::{Refusal, Response},
        module_client::ModuleClient,
    };

    let published = get(client, namespace, Kind::Module, "kubernetes").await?;
    let endpoint = published["status"]["replicas"][0]["endpoint"]
        .as_str()
        .context("no replica listed")?
        .to_owned();
    let mut module = ModuleClient::connect(endpoint).await?;
    let mallory = json!({ "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": { "name": "mallory", "namespace": namespace } });
    let gone = json!({ "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": { "name": "gone", "namespace": namespace } });
    apply(client, namespace, &[mallory, gone], false).await?;
    let mallory = plane.service_account(namespace, "mallory").await?.1;
    let gone = plane.service_account(namespace, "gone").await?.1;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), namespace);
    accounts.delete("gone", &kube::api::DeleteParams::default()).await?;
    let peer = plane.service_account(namespace, &format!("{RELEASE}-common")).await?.1;
    let editor = sender(plane, client, namespace).await?.1;

    let along = |source: &str, port: &str| DeliverRequest {
        namespace: namespace.to_owned(),
        node: "list".to_owned(),
        port: "in".to_owned(),
        message_json: b"{}".to_vec(),
        trigger_json: b"{}".to_vec(),
        source_node: source.to_owned(),
        source_port: port.to_owned(),
        ..DeliverRequest::default()
    };
    let refusals = [
        (
            None,
            along("tick", "out"),
            Code::Unauthenticated,
            "only callers with a Kubernetes bearer token",
        ),
        (
            Some("not-a-token"),
            along("tick", "out"),
            Code::Unauthenticated,
            "the cluster does not accept this token",
        ),
        (
            Some(gone.as_str()),
            along("tick", "out"),
            Code::Unauthenticated,
            "the cluster does not accept this token",
        ),
        (
            Some(mallory.as_str()),
            along("tick", "out"),
            Code::PermissionDenied,
            "mallory is not a process of this Weir release",
        ),
        (
            Some(peer.as_str()),
            along("names", "response"),
            Code::PermissionDenied,
            "has no edge from port response to list:in",
        ),
        (
            Some(peer.as_str()),
            along("tick", "elsewhere"),
            Code::PermissionDenied,
            "has no edge from port elsewhere to list:in",
        ),
        (
            Some(mallory.as_str()),
            along("", ""),
            Code::PermissionDenied,
            "mallory may not update flownodes.weir.dev \"list\"",
        ),
    ];
    for (token, request, code, said) in refusals {
        let what = format!("{token:?} delivering from {:?}", request.source_node);
        let status =
            module.deliver(with_token(request, token)?).await.err().context(what.clone())?;
        ensure!(status.code() == code && status.message().contains(said), "{what}: {status:?}");
    }
    // The real edge from a peer, and a message from outside any flow by someone who may edit.
    for (token, request) in [(&peer, along("tick", "out")), (&editor, along("", ""))] {
        let answer = module.deliver(with_token(request, Some(token))?).await?.into_inner();
        ensure!(
            matches!(answer.outcome, Some(weir_proto::deliver_response::Outcome::AnswerJson(_))),
            "{answer:?}"
        );
    }
    // The stream of deliveries along edges: only the release's processes open one, and each
    // delivery on it must follow an edge the store holds.
    let opening = [
        (None, Code::Unauthenticated, "only callers with a Kubernetes bearer token"),
        (Some("not-a-token"), Code::Unauthenticated, "the cluster does not accept this token"),
        (
            Some(mallory.as_str()),
            Code::PermissionDenied,
            "mallory is not a process of this Weir release",
        ),
    ];
    for (token, code, said) in opening {
        let stream = with_token(futures::stream::iter(Vec::<EdgeDelivery>::new()), token)?;
        let status = module.deliver_along_edges(stream).await.err().context("a stream opened")?;
        ensure!(status.code() == code && status.message().contains(said), "{token:?}: {status:?}");
    }
    let frames = [along("names", "response"), along("tick", "out")].into_iter().zip(0..).map(
        |(request, id)| EdgeDelivery {
            id,
            request: Some(request),
            timeout_micros: 10_000_000,
            ..EdgeDelivery::default()
        },
    );
    let stream = with_token(futures::stream::iter(frames.collect::<Vec<_>>()), Some(&peer))?;
    let mut answers = module.deliver_along_edges(stream).await?.into_inner();
    let mut answered = std::collections::BTreeMap::new();
    while let Some(answer) = answers.message().await? {
        answered.insert(answer.id, answer.outcome);
    }
    ensure!(
        matches!(answered.get(&0), Some(Some(Refusal(refusal)))
            if refusal.code == i32::from(Code::PermissionDenied)
                && refusal.message.contains("has no edge from port response to list:in")),
        "a delivery along no edge on the stream: {answered:?}"
    );
    ensure!(
        matches!(
            answered.get(&1),
            Some(Some(Response(DeliverResponse { outcome: Some(AnswerJson(_)) })))
        ),
        "the real edge on the stream: {answered:?}"
    );
    // `weir send` signs in with the kubeconfig's token, and says why it cannot without one.
    let as_admin =
        weir(plane.kubeconfig(), &["send", "-n", namespace, "list:in", "{}"]).output()?;
    let said = String::from_utf8_lossy(&as_admin.stderr);
    ensure!(
        !as_admin.status.success() && said.contains("a client certificate cannot be passed on"),
        "{said}"
    );
    for (token, code) in
        [(None, Code::Unauthenticated), (Some(mallory.as_str()), Code::PermissionDenied)]
    {
        let watch = with_token(InspectRequest::default(), token)?;
        let status = module.inspect(watch).await.err().context("an inspect stream was opened")?;
        ensure!(status.code() == code, "{token:?} inspecting: {status:?}");
    }
    Ok(())
}

/// What the editor's API lets each user do: RBAC decides, through each user's own token.
async fn editor_acts_as_each_user(
    plane: &ControlPlane,
    client: &Client,
    namespace: &str,
    address: &str,
) -> Result<()> {
    let mut users = Vec::new();
    for (user, role) in [("alice", Some("edit")), ("bob", Some("view")), ("carol", None)] {
        let account = json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": user, "namespace": namespace } });
        let mut objects = vec![account];
        if let Some(role) = role {
            objects.push(json!({ "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": { "name": user, "namespace": namespace },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": format!("{RELEASE}-{role}") },
                "subjects": [{ "kind": "ServiceAccount", "name": user, "namespace": namespace }] }));
        }
        apply(client, namespace, &objects, false).await?;
        users.push(plane.service_account(namespace, user).await?.1);
    }
    let [alice, bob, carol] = [&users[0], &users[1], &users[2]];
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(weir_api::REQUEST_HEADER, "1".parse()?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let url = |path: &str| format!("http://{address}/api{path}");
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = http.request(method, url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let text = response.text().await?;
            Ok::<_, anyhow::Error>((status, text))
        }
    };

    // Nobody, and a token the cluster does not take.
    let (status, text) = call(Method::GET, "/flows", None, None).await?;
    ensure!(status == 401 && text.contains("sign in"), "{status} {text}");
    let (status, text) = call(Method::GET, "/flows", Some("not-a-token"), None).await?;
    ensure!(status == 401 && text.contains("unauthenticated"), "{status} {text}");
    // The module catalogues (with the modules' endpoints) are read with the engine's identity,
    // so only for a caller the cluster accepts; and no body is read for one it does not.
    let (status, text) = call(Method::GET, "/modules", Some("not-a-token"), None).await?;
    ensure!(status == 401 && text.contains("does not accept this token"), "{status} {text}");
    let (status, text) = call(Method::GET, "/modules", None, None).await?;
    ensure!(status == 401 && text.contains("sign in"), "{status} {text}");
    let broken = http
        .post(url("/send"))
        .bearer_auth("not-a-token")
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await?;
    ensure!(broken.status().as_u16() == 401, "{:?}", broken.text().await);
    let oversized = http
        .post(url("/send"))
        .bearer_auth(bob)
        .header("content-type", "application/json")
        .body(format!("{{\"node\": \"{}\"}}", "x".repeat(9 << 20)))
        .send()
        .await?;
    let status = oversized.status().as_u16();
    let text = oversized.text().await?;
    ensure!(status == 413 && text.contains("larger than 8 MiB"), "{status} {text}");
    // A change without the editor's header, as a page of another site would send it.
    let (status, text) = {
        let response = reqwest::Client::new()
            .put(url("/flows/census/layout"))
            .bearer_auth(alice)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await?;
        (response.status().as_u16(), response.text().await?)
    };
    ensure!(status == 403 && text.contains("X-Weir-Request"), "{status} {text}");

    // carol has no role: refused, naming who and what.
    let (status, text) = call(Method::GET, "/flows", Some(carol), None).await?;
    ensure!(
        status == 403
            && text.contains(&format!("system:serviceaccount:{namespace}:carol"))
            && text.contains(&format!("flows.weir.dev in namespace {namespace}")),
        "{status} {text}"
    );

    // bob may look, and sees the palette through the engine, but may change nothing.
    let (status, text) = call(Method::GET, "/flows", Some(bob), None).await?;
    ensure!(status == 200 && text.contains("census"), "{status} {text}");
    let (status, text) = call(Method::GET, "/modules", Some(bob), None).await?;
    ensure!(status == 200 && MODULES.iter().all(|m| text.contains(m)), "{status} {text}");
    // The engine watches each module's Inspect stream, so the debug panel works in a cluster
    // too: the script's input and output, as its module saw them.
    let messages = eventually("the census flow's messages", PATIENCE, || async {
        let (status, text) = call(Method::GET, "/flows/census/messages", Some(bob), None).await?;
        ensure!(status == 200, "{status} {text}");
        let seen: Value = serde_json::from_str(&text)?;
        let at = |node: &str, what: &str| {
            seen.as_array().into_iter().flatten().any(|m| m["node"] == node && m["what"] == what)
        };
        Ok((at("names", "received") && at("names", "emitted") && at("log", "received"))
            .then_some(text))
    })
    .await?;
    ensure!(messages.contains("\"names\":[\"web\"]"), "{messages}");
    let (status, text) = call(Method::GET, "/flows/census/messages", Some(carol), None).await?;
    ensure!(status == 403, "{status} {text}");
    let layout = json!({ "layout": { "tick": { "left": 10, "top": 20 } } });
    let (status, text) =
        call(Method::PUT, "/flows/census/layout", Some(bob), Some(layout.clone())).await?;
    ensure!(status == 403 && text.contains("may not update flows.weir.dev"), "{status} {text}");
    let message = json!({ "node": "names", "port": "in",
        "message": { "workloads": [{ "kind": "Deployment", "name": "from-bob" }] } });
    let (status, text) = call(Method::POST, "/send", Some(bob), Some(message)).await?;
    ensure!(status == 403 && text.contains("may not update flownodes"), "{status} {text}");

    // alice may change the flow and send to its nodes.
    let (status, text) =
        call(Method::PUT, "/flows/census/layout", Some(alice), Some(layout)).await?;
    ensure!(status == 200, "{status} {text}");
    let message = json!({ "node": "names", "port": "in",
        "message": { "workloads": [{ "kind": "Deployment", "name": "from-alice" }] } });
    let (status, text) = call(Method::POST, "/send", Some(alice), Some(message)).await?;
    ensure!(status == 200, "{status} {text}");
    eventually("alice's message reaching the debug node", PATIENCE, || async {
        let log = get(client, namespace, Kind::FlowNode, "log").await?;
        Ok(log["status"]["state"].to_string().contains("from-alice").then_some(()))
    })
    .await?;

    // A session: the token goes in once and rides in an HttpOnly cookie from then on.
    let (status, text) =
        call(Method::POST, "/session", None, Some(json!({ "token": alice }))).await?;
    ensure!(
        status == 200 && text.contains(&format!("system:serviceaccount:{namespace}:alice")),
        "{status} {text}"
    );
    let signed_in = http
        .post(url("/session"))
        .header("content-type", "application/json")
        .body(json!({ "token": alice }).to_string())
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("no session cookie")?
        .to_owned();
    ensure!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let listed = http.get(url("/flows")).header("cookie", &pair).send().await?;
    ensure!(listed.status().as_u16() == 200, "{:?}", listed.text().await);
    let (status, text) =
        call(Method::POST, "/session", None, Some(json!({ "token": "x y" }))).await?;
    ensure!(status == 400 && text.contains("field token"), "{status} {text}");

    // A secret setting saved from the editor goes into a Secret named after its node, written
    // as the caller; the node keeps only a reference, so whoever reads flows reads no secret.
    let safe = r#"{"apiVersion": "weir.dev/v1alpha1", "kind": "Module",
        "metadata": {"name": "safe"},
        "spec": {"version": "0.0.0", "components": [{"name": "vault", "label": "Vault",
            "settingsSchema": {"type": "object", "properties": {
                "password": {"type": "string", "x-weir-secret": true}}},
            "ports": [{"name": "in", "direction": "in", "schema": {}}]}]}}"#;
    kubectl_apply(plane, namespace, safe)?;
    let vaulted = |password: &str| {
        json!({
            "flow": { "apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
                "metadata": { "name": "vaulted", "namespace": namespace }, "spec": {} },
            "nodes": [{ "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
                "metadata": { "name": "vault", "namespace": namespace },
                "spec": { "flow": "vaulted", "module": "safe", "component": "vault",
                    "settings": { "password": password } } }],
        })
    };
    // alice's weir role covers flows, not Secrets: refused, and nothing saved.
    let (status, text) =
        call(Method::PUT, "/flows/vaulted", Some(alice), Some(vaulted("hunter2"))).await?;
    ensure!(
        status == 403
            && text.contains(&format!(
                "cannot write Secret {namespace}/weir-node-vault for the secret settings of node vault"
            )),
        "{status} {text}"
    );
    ensure!(get(client, namespace, Kind::Flow, "vaulted").await.is_err(), "saved in part");
    // The same as a new flow (If-None-Match: *, as the editor saves one it made), which takes
    // its name first: refused alike, and the Flow it made goes again.
    let response = http
        .put(url("/flows/vaulted"))
        .bearer_auth(alice)
        .header("if-none-match", "*")
        .header("content-type", "application/json")
        .body(vaulted("hunter2").to_string())
        .send()
        .await?;
    let (status, text) = (response.status().as_u16(), response.text().await?);
    ensure!(status == 403 && text.contains("cannot write Secret"), "{status} {text}");
    ensure!(
        get(client, namespace, Kind::Flow, "vaulted").await.is_err(),
        "a new flow saved in part"
    );
    // What the built-in `edit` role gives (aggregated there by a controller this control
    // plane does not run).
    let writer = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": { "name": "secret-writer", "namespace": namespace },
        "rules": [{ "apiGroups": [""], "resources": ["secrets"],
            "verbs": ["get", "create", "patch", "update"] }] });
    let binding = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "alice-secrets", "namespace": namespace },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-writer" },
        "subjects": [{ "kind": "ServiceAccount", "name": "alice", "namespace": namespace }] });
    apply(client, namespace, &[writer, binding], false).await?;
    // The apiserver's RBAC follows the new binding a moment later.
    let text = eventually("alice saving with the right to write Secrets", PATIENCE, || async {
        let (status, text) =
            call(Method::PUT, "/flows/vaulted", Some(alice), Some(vaulted("hunter2"))).await?;
        ensure!(status == 200 || status == 403, "{status} {text}");
        Ok((status == 200).then_some(text))
    })
    .await?;
    ensure!(!text.contains("hunter2") && text.contains("<secret>"), "{text}");
    let reference = json!({ "secretKeyRef": { "name": "weir-node-vault", "key": "password" } });
    let stored = get(client, namespace, Kind::FlowNode, "vault").await?;
    ensure!(stored["spec"]["settings"]["password"] == reference, "{stored}");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    let secret = secrets.get("weir-node-vault").await?;
    let value = secret.data.as_ref().and_then(|d| d.get("password")).map(|b| b.0.clone());
    ensure!(value.as_deref() == Some(&b"hunter2"[..]), "{:?}", secret.data);
    let owner = secret.metadata.owner_references.unwrap_or_default();
    ensure!(
        owner.len() == 1 && owner[0].kind == "FlowNode" && owner[0].name == "vault",
        "{owner:?}"
    );
    // Saved again as the editor shows it, the reference stays; bob reads no secret.
    let (status, text) =
        call(Method::PUT, "/flows/vaulted", Some(alice), Some(vaulted("<secret>"))).await?;
    ensure!(status == 200, "{status} {text}");
    let stored = get(client, namespace, Kind::FlowNode, "vault").await?;
    ensure!(stored["spec"]["settings"]["password"] == reference, "{stored}");
    let (status, text) = call(Method::GET, "/flows/vaulted", Some(bob), None).await?;
    ensure!(status == 200 && !text.contains("hunter2"), "{status} {text}");

    // A file imported from the editor keeps its secret settings apart alike.
    let file = "apiVersion: weir.dev/v1alpha1\nkind: Flow\nmetadata: {name: imported}\nspec: {}\n\
        ---\napiVersion: weir.dev/v1alpha1\nkind: FlowNode\nmetadata: {name: vault-imported}\n\
        spec: {flow: imported, module: safe, component: vault, settings: {password: swordfish}}\n";
    let imported = http
        .post(url(&format!("/import?namespace={namespace}")))
        .bearer_auth(alice)
        .header("content-type", "text/yaml")
        .body(file)
        .send()
        .await?;
    let (status, text) = (imported.status().as_u16(), imported.text().await?);
    ensure!(status == 200 && text.contains("imported"), "{status} {text}");
    let stored = get(client, namespace, Kind::FlowNode, "vault-imported").await?;
    let reference =
        json!({ "secretKeyRef": { "name": "weir-node-vault-imported", "key": "password" } });
    ensure!(stored["spec"]["settings"]["password"] == reference, "{stored}");
    let secret = secrets.get("weir-node-vault-imported").await?;
    let value = secret.data.as_ref().and_then(|d| d.get("password")).map(|b| b.0.clone());
    ensure!(value.as_deref() == Some(&b"swordfish"[..]), "{:?}", secret.data);
    let owner = secret.metadata.owner_references.unwrap_or_default();
    ensure!(owner.len() == 1 && owner[0].name == "vault-imported", "{owner:?}");

    // bob's live view ends once his rights are taken away, not when the engine stops.
    let mut events =
        http.get(url(&format!("/events?namespace={namespace}"))).bearer_auth(bob).send().await?;
    ensure!(events.status().as_u16() == 200, "{}", events.status());
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), namespace);
    bindings.delete("bob", &Default::default()).await?;
    let ended = tokio::time::timeout(PATIENCE, async {
        while events.chunk().await?.is_some() {}
        anyhow::Ok(())
    })
    .await;
    ensure!(matches!(ended, Ok(Ok(()))), "the stream outlived bob's rights: {ended:?}");
    Ok(())
}

/// What a process must say when it lacks `verb` on `resource`: an error line naming both (in
/// the apiserver's words, or the store's), and the ServiceAccount.
fn names_the_denial(log: &str, account: &str, resource: &str, verb: &str) -> bool {
    let (base, phrase) = match resource.strip_suffix("/status") {
        Some(base) => (base, "update the status of".to_owned()),
        None => (resource, verb.to_owned()),
    };
    let apiserver = format!("cannot {verb} resource \"{resource}\"");
    let store = format!("may not {phrase} {base}.");
    log.lines().any(|line| {
        line.contains("forbidden")
            && line.contains(account)
            && (line.contains(&apiserver) || line.contains(&store))
    })
}

/// The nodes every process's case starts with: a flow of a ticker into a debug node.
const SEED: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {name: seed}
spec: {}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {name: tick}
spec:
  flow: seed
  module: common
  component: ticker
  settings: {interval: 1s, firstTick: immediately}
  edges: [{port: out, to: {node: log, port: in}, mapping: {}}]
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {name: log}
spec: {flow: seed, module: common, component: debug, settings: {}}
"#;

/// What the kubernetes module's nodes act on in a case of their own: a Deployment, a Secret and
/// one node of each component, each started by `weir send`.
fn kubernetes_seed(namespace: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: web}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec: {{restartPolicy: Never, containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: web}}
spec:
  template:
    spec: {{restartPolicy: Never, containers: [{{name: web, image: "nginx:1.27"}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: plain}}
stringData: {{token: abc}}
---
apiVersion: v1
kind: Pod
metadata: {{name: idle}}
spec: {{containers: [{{name: main, image: busybox}}]}}
---
apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {{name: cluster}}
spec: {{}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: list}}
spec: {{flow: cluster, module: kubernetes, component: workload_list, settings: {{namespace: {namespace}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: patch}}
spec: {{flow: cluster, module: kubernetes, component: workload_patch, settings: {{}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: secret}}
spec: {{flow: cluster, module: kubernetes, component: secret_get, settings: {{}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: logs}}
spec: {{flow: cluster, module: kubernetes, component: pod_logs, settings: {{namespace: {namespace}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: certs}}
spec: {{flow: cluster, module: kubernetes, component: tls_certificates, settings: {{namespace: {namespace}}}}}
"#
    )
}

/// The `weir send` that makes a kubernetes node use `verb` on `resource`.
fn kubernetes_trigger(namespace: &str, resource: &str, verb: &str) -> Result<(String, Value)> {
    let kind = match resource {
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "daemonsets" => "DaemonSet",
        "replicasets" => "ReplicaSet",
        "replicationcontrollers" => "ReplicationController",
        "cronjobs" => "CronJob",
        "jobs" => "Job",
        "pods" => "Pod",
        _ => "",
    };
    Ok(match (resource, verb) {
        // A workload whose pods name no pull secret has its ServiceAccount's read; any node
        // asks for its flow account's token.
        (_, "list") | ("serviceaccounts", "get") | ("serviceaccounts/token", _)
            if !kind.is_empty() || resource.starts_with("serviceaccounts") =>
        {
            ("list:in".into(), json!({}))
        }
        (_, "get") if !kind.is_empty() => {
            ("list:in".into(), json!({ "kind": kind, "namespace": namespace, "name": "web" }))
        }
        (_, "patch") if !kind.is_empty() => (
            "patch:in".into(),
            json!({ "kind": kind, "namespace": namespace, "name": "web", "images": { "web": "nginx:1.28" } }),
        ),
        ("secrets", "get") => {
            ("secret:in".into(), json!({ "namespace": namespace, "name": "plain" }))
        }
        ("pods/log", "get") => ("logs:in".into(), json!({ "name": "idle" })),
        ("secrets" | "ingresses", "list") => ("certs:in".into(), json!({})),
        _ => bail!("no kubernetes node uses {verb} {resource}"),
    })
}

/// Takes `verb` on `resource` away from `component` and runs it until it reports the denial.
async fn without_one_verb(
    plane: &ControlPlane,
    component: &str,
    resource: &str,
    verb: &str,
) -> Result<()> {
    let client = plane.client().await?;
    let namespace = plane.namespace(&format!("minus-{component}")).await?;
    // The flow account's verbs are taken from the default flow account, which the kubernetes
    // module's nodes act as.
    let (role, process_of) = match component {
        "flow" => ("weir-flow".to_owned(), "kubernetes"),
        _ => (format!("{RELEASE}-{component}"), component),
    };
    let take_away = |rules: &mut Value| {
        if let Some(list) = rules.as_array_mut() {
            for rule in list.iter_mut() {
                if rule["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == resource))
                    && let Some(verbs) = rule["verbs"].as_array_mut()
                {
                    verbs.retain(|v| v != verb);
                }
            }
            list.retain(|rule| rule["verbs"].as_array().is_some_and(|v| !v.is_empty()));
        }
    };
    // A module updates its Module resource only when one is there from an earlier start.
    let on_restart = component != "engine" && resource == "modules" && verb == "update";
    if on_restart {
        install_identities(&client, &namespace, None).await?;
    } else {
        install_identities(&client, &namespace, Some((&role, &take_away))).await?;
    }
    let components = process_of == "kubernetes";
    kubectl_apply(
        plane,
        &namespace,
        if components { kubernetes_seed(&namespace) } else { SEED.to_owned() }.as_str(),
    )?;
    if on_restart {
        let mut first = start(plane, &namespace, process_of).await?;
        eventually("the module published", PATIENCE, || async {
            Ok(get(&client, &namespace, Kind::Module, component).await.ok())
        })
        .await?;
        first.terminate(Duration::from_secs(10))?;
        install_identities(&client, &namespace, Some((&role, &take_away))).await?;
    }
    let process = start(plane, &namespace, process_of).await?;
    if component == "engine" && resource == "flownodes" && verb == "delete" {
        // Nodes are deleted with their flow: once the engine leads and has checked the flow.
        eventually("the seed flow checked", PATIENCE, || async {
            let flow = get(&client, &namespace, Kind::Flow, "seed").await?;
            Ok(flow["status"]["conditions"].is_array().then_some(()))
        })
        .await?;
        let output = plane.kubectl().args(["delete", "flow", "seed", "-n", &namespace]).output()?;
        ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let account = format!("system:serviceaccount:{namespace}:{role}");
    let what = format!("{component} without {verb} {resource} saying so");
    // What a node does shows in its answer; a module that cannot follow flows says so in its log.
    if components && resource != "flows" {
        // The node's answer names the denial, as `weir send` prints it.
        let (target, message) = kubernetes_trigger(&namespace, resource, verb)?;
        let sender = sender(plane, &client, &namespace).await?.0;
        let (sender, account) = (&sender, &account);
        return eventually(&what, PATIENCE, || {
            let output =
                weir(sender, &["send", "-n", &namespace, &target, &message.to_string()]).output();
            async move {
                let output = output?;
                let said = String::from_utf8_lossy(&output.stderr).into_owned();
                ensure!(!output.status.success(), "the send succeeded");
                ensure!(names_the_denial(&said, account, resource, verb), "{said}");
                Ok(Some(()))
            }
        })
        .await
        .with_context(|| process.log());
    }
    eventually(&what, PATIENCE, || {
        let said = names_the_denial(&process.log(), &account, resource, verb);
        async move { Ok(said.then_some(())) }
    })
    .await
    .with_context(|| process.log())
}

/// Every verb the chart grants is needed: without it the process names what it may not do, in
/// its log (the engine, the module runtime) or in a node's answer (the kubernetes nodes, acting
/// as their flow's account). The four modules' runtime rules are the same, which this checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_any_one_verb_from_a_process_gives_a_clear_error() -> Result<()> {
    let plane = ControlPlane::shared();
    let mut cases = Vec::new();
    for (component, places) in
        [("engine", &["home", "flows"][..]), ("common", &["home", "flows"][..])]
    {
        let rules = declared(component)?;
        for place in places {
            for (_, _, resource, verb) in grants(place, &rules[*place]) {
                cases.push((component, resource, verb));
            }
        }
    }
    for (_, _, resource, verb) in grants("flows", &flow_account()?) {
        cases.push(("flow", resource, verb));
    }
    // The module whose nodes act on the cluster also follows the flows' accounts and asks
    // for their tokens; the runtime's rules are the same for all four.
    let common = declared("common")?;
    let runtime = grants("flows", &common["flows"]);
    for (_, _, resource, verb) in grants("flows", &declared("kubernetes")?["flows"]) {
        if !runtime.iter().any(|(_, _, r, v)| *r == resource && *v == verb) {
            cases.push(("kubernetes", resource, verb));
        }
    }
    for module in &MODULES[1..] {
        let rules = declared(module)?;
        let flows = grants("flows", &rules["flows"]);
        ensure!(rules["home"] == common["home"] && flows.is_superset(&runtime), "{module}");
    }
    ensure!(cases.len() > 25, "{cases:?}");
    let mut failures = Vec::new();
    // A few at a time: each case is a namespace, an identity and one process.
    for batch in cases.chunks(4) {
        let runs = batch.iter().map(|(component, resource, verb)| async move {
            without_one_verb(plane, component, resource, verb)
                .await
                .map_err(|err| format!("{component} without {verb} {resource}: {err:#}"))
        });
        for outcome in futures::future::join_all(runs).await {
            if let Err(err) = outcome {
                failures.push(err);
            }
        }
    }
    if !failures.is_empty() {
        bail!("{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    }
    Ok(())
}

/// The editor's sign-in in headless Chromium against the engine as the chart runs it. Needs the
/// built editor and the browser tests' node modules, so `scripts/test` runs it after building
/// them: `cargo test --test chart -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ui/dist and ui/e2e/node_modules; scripts/test runs it after building them"]
async fn the_editor_signs_in_to_a_cluster_engine_in_a_browser() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("chart-browser").await?;
    install_identities(&client, &namespace, None).await?;
    let objects = [
        json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": "alice", "namespace": namespace } }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "alice", "namespace": namespace },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": format!("{RELEASE}-edit") },
            "subjects": [{ "kind": "ServiceAccount", "name": "alice", "namespace": namespace }] }),
    ];
    apply(&client, &namespace, &objects, false).await?;
    kubectl_apply(plane, &namespace, SEED)?;
    // A second namespace where alice may edit too, for the editor's namespace picker.
    let other = plane.namespace("chart-browser-other").await?;
    let binding = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "alice", "namespace": other },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": format!("{RELEASE}-edit") },
        "subjects": [{ "kind": "ServiceAccount", "name": "alice", "namespace": namespace }] });
    apply(&client, &other, &[binding], false).await?;
    kubectl_apply(plane, &other, &SEED.replace("seed", "elsewhere"))?;
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let (kubeconfig, _) = plane.service_account(&namespace, &format!("{RELEASE}-engine")).await?;
    let dist = ui.join("dist").display().to_string();
    let args = ["engine", "--namespace", &namespace, "--listen", "127.0.0.1:0", "--ui-dir", &dist];
    let engine = plane.spawn(&format!("{namespace}-engine"), &mut weir(&kubeconfig, &args))?;
    let address = eventually("the engine serving", PATIENCE, || {
        let address = engine_address(&engine);
        async move { Ok(address) }
    })
    .await?;
    let token = plane.service_account(&namespace, "alice").await?.1;
    let output = Command::new("node")
        .arg("sign-in.cluster.mjs")
        .current_dir(ui.join("e2e"))
        .env("WEIR_URL", format!("http://{address}"))
        .env("WEIR_TOKEN", &token)
        .env("WEIR_USER", format!("system:serviceaccount:{namespace}:alice"))
        .env("WEIR_HOME", &namespace)
        .env("WEIR_OTHER_NAMESPACE", &other)
        .output()
        .context("cannot run node")?;
    ensure!(
        output.status.success(),
        "the browser's sign-in failed:\n{}{}\nengine:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        engine.log()
    );
    Ok(())
}

/// What acting with each caller's own token costs: `GET /api/flows` through the engine, with a
/// caller's client kept and with a caller new to the engine, side by side with the two lists
/// that route makes (flows, then nodes) asked of the apiserver directly with the same token
/// (what `kubectl get flows,flownodes` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture editor_api_cost, record the numbers in docs/benchmarks.md"]
// Printing the numbers is what a measurement is for.
#[allow(clippy::print_stdout)]
async fn editor_api_cost_of_acting_with_each_callers_token() -> Result<()> {
    const ROUNDS: usize = 300;
    const NEW_CALLERS: usize = 30;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("chart-bench").await?;
    install_identities(&client, &namespace, None).await?;
    let mut objects = Vec::new();
    for index in 0..NEW_CALLERS {
        let user = format!("user-{index}");
        objects.push(json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": user, "namespace": namespace } }));
        objects.push(json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": user, "namespace": namespace },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": format!("{RELEASE}-view") },
            "subjects": [{ "kind": "ServiceAccount", "name": user, "namespace": namespace }] }));
    }
    apply(&client, &namespace, &objects, false).await?;
    kubectl_apply(plane, &namespace, &listing_flow(&namespace))?;
    let engine = start(plane, &namespace, "engine").await?;
    let address = eventually("the engine serving", PATIENCE, || {
        let address = engine_address(&engine);
        async move { Ok(address) }
    })
    .await?;
    let idle = resident(&engine)?;
    let mut tokens = Vec::new();
    for index in 0..NEW_CALLERS {
        tokens.push(plane.service_account(&namespace, &format!("user-{index}")).await?.1);
    }
    let http = reqwest::Client::new();
    let through_engine = format!("http://{address}/api/flows?namespace={namespace}");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(plane.ca_file())?)?;
    let direct = reqwest::Client::builder().add_root_certificate(ca).build()?;
    let base = format!("{}/apis/weir.dev/v1alpha1/namespaces/{namespace}", plane.server());
    let to_apiserver = [format!("{base}/flows"), format!("{base}/flownodes")];
    let timed = |client: &reqwest::Client, urls: &[String], token: &str| {
        let requests: Vec<_> = urls.iter().map(|url| client.get(url).bearer_auth(token)).collect();
        async move {
            let started = std::time::Instant::now();
            for request in requests {
                let response = request.send().await?;
                let status = response.status();
                response.bytes().await?;
                ensure!(status.is_success(), "{status}");
            }
            Ok::<_, anyhow::Error>(started.elapsed())
        }
    };
    let through_engine = [through_engine];
    let percentiles = |mut samples: Vec<Duration>| {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        format!("p50 {:.2?}, p95 {:.2?}, max {:.2?}", at(0.5), at(0.95), at(1.0))
    };
    // Both sides warm: the engine's client for this caller, and a connection to the apiserver.
    timed(&http, &through_engine, &tokens[0]).await?;
    timed(&direct, &to_apiserver, &tokens[0]).await?;
    let (mut engine_kept, mut apiserver) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        engine_kept.push(timed(&http, &through_engine, &tokens[0]).await?);
        apiserver.push(timed(&direct, &to_apiserver, &tokens[0]).await?);
    }
    let mut engine_new = Vec::new();
    for token in &tokens[1..] {
        engine_new.push(timed(&http, &through_engine, token).await?);
    }
    let rss = resident(&engine)?;
    println!(
        "GET /api/flows through the engine, caller's client kept ({ROUNDS}): {}",
        percentiles(engine_kept)
    );
    println!("its two lists from the apiserver directly ({ROUNDS}): {}", percentiles(apiserver));
    println!(
        "GET /api/flows by a caller new to the engine ({}): {}",
        NEW_CALLERS - 1,
        percentiles(engine_new)
    );
    println!("engine before any caller: {idle}; after {NEW_CALLERS} callers: {rss}");
    Ok(())
}

/// A process's resident and peak memory, as /proc says.
fn resident(process: &Process) -> Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/{}/status", process.id()))?
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", "))
}

/// `weir rbac FLOW` derives the account a flow acts as and the rules its nodes need, where they
/// act: a Role where a node's namespace is set, a ClusterRole where its namespace comes with
/// its messages; a node working on the kind its settings name gets its rule on that kind. Applying them is done as the person running it, so the apiserver refuses to
/// let someone grant what they do not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_rbac_derives_a_flows_rules_and_applies_them_as_the_caller() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("rbac").await?;
    let flow = format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {{name: census}}
spec: {{serviceAccountName: census-runner}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: list}}
spec: {{flow: census, module: kubernetes, component: workload_list, settings: {{namespace: {namespace}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: secret}}
spec: {{flow: census, module: kubernetes, component: secret_get, settings: {{}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: tick}}
spec: {{flow: census, module: common, component: ticker, settings: {{interval: 1h}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: scaler}}
spec: {{flow: census, module: kubernetes, component: scale, settings: {{apiVersion: apps/v1, kind: Deployment, namespace: {namespace}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: watch}}
spec: {{flow: census, module: kubernetes, component: resource_watch, settings: {{apiVersion: v1, kind: ConfigMap}}}}
"#
    );
    kubectl_apply(plane, &namespace, &flow)?;
    let admin = plane.kubeconfig();
    let printed = weir(admin, &["rbac", "census", "-n", &namespace]).output()?;
    ensure!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_slice(&printed.stdout)
        .map(<Value as serde::Deserialize>::deserialize)
        .collect::<Result<_, _>>()?;
    let summary: Vec<(String, String, Value)> = documents
        .iter()
        .map(|d| (kind(d).to_owned(), name(d).to_owned(), d["rules"].clone()))
        .collect();
    let cluster_role = format!("{namespace}-weir-flow-census");
    let expected = [
        ("ServiceAccount".to_owned(), "census-runner".to_owned(), Value::Null),
        (
            "ClusterRole".to_owned(),
            cluster_role.clone(),
            json!([
                { "apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"] },
                { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] },
            ]),
        ),
        ("ClusterRoleBinding".to_owned(), cluster_role, Value::Null),
        (
            "Role".to_owned(),
            "weir-flow-census".to_owned(),
            json!([
                { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] },
                { "apiGroups": [""], "resources": ["replicationcontrollers"], "verbs": ["get", "list"] },
                { "apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"] },
                { "apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list"] },
                { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"] },
                { "apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"] },
                { "apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"] },
                { "apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list"] },
                { "apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"] },
                { "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"] },
            ]),
        ),
        ("RoleBinding".to_owned(), "weir-flow-census".to_owned(), Value::Null),
    ];
    ensure!(summary == expected, "{summary:#?}");

    // Someone who may write RBAC objects here but holds none of the rules is refused.
    let grantor = format!("{namespace}-grantor");
    let role = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": { "name": grantor },
        "rules": [{ "apiGroups": ["", "rbac.authorization.k8s.io"],
            "resources": ["serviceaccounts", "roles", "rolebindings", "clusterroles", "clusterrolebindings"],
            "verbs": ["get", "create", "patch"] },
            { "apiGroups": ["weir.dev"], "resources": ["flows", "flownodes", "modules"],
              "verbs": ["get", "list"] }] });
    let binding = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": { "name": grantor },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": grantor },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": grantor }] });
    apply(&client, &namespace, &[role, binding], false).await?;
    let grantor = plane.identity(&grantor, &[])?;
    let refused = weir(&grantor, &["rbac", "census", "-n", &namespace, "--apply"]).output()?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success()
            && said.contains("attempting to grant RBAC permissions not currently held"),
        "{said}"
    );
    // The admin holds them all.
    let applied = weir(admin, &["rbac", "census", "-n", &namespace, "--apply"]).output()?;
    ensure!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &namespace);
    let role = serde_json::to_value(roles.get("weir-flow-census").await?)?;
    ensure!(role["rules"] == expected[3].2, "{role}");

    // Installing a solution in a cluster makes its flow's account the same way.
    let args =
        ["solution", "install", "image-mirror-revert", "--set", "mirror=registry.local:5000"];
    let installed = weir(admin, &[&args[..], &["--namespace", &namespace]].concat()).output()?;
    let said = String::from_utf8_lossy(&installed.stdout);
    ensure!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    ensure!(said.contains("ServiceAccount image-mirror-revert applied"), "{said}");
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &namespace);
    accounts.get("image-mirror-revert").await?;
    let cluster_roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client);
    let role = cluster_roles.get(&format!("{namespace}-weir-flow-image-mirror-revert")).await?;
    let rules = serde_json::to_value(role.rules)?;
    ensure!(rules.to_string().contains("patch"), "{rules}");
    Ok(())
}

/// A module that cannot publish its catalogue does not pretend: it tries again, saying why, and
/// its readiness probe answers 503 until it hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_cannot_publish_is_not_ready_and_keeps_trying() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("unready").await?;
    let no_create = |rules: &mut Value| {
        for rule in rules.as_array_mut().into_iter().flatten() {
            if rule["resources"] == json!(["modules"])
                && let Some(verbs) = rule["verbs"].as_array_mut()
            {
                verbs.retain(|v| v != "create");
            }
        }
    };
    let role = format!("{RELEASE}-common");
    install_identities(&client, &namespace, Some((&role, &no_create))).await?;
    let process = start(plane, &namespace, "common").await?;
    let address = eventually("the module's HTTP address", PATIENCE, || async {
        Ok(module_address(&process))
    })
    .await?;
    let http = reqwest::Client::new();
    eventually("two tries at publishing", PATIENCE, || async {
        Ok((process.log().matches("cannot publish the module catalogues; trying again").count()
            >= 2)
            .then_some(()))
    })
    .await
    .with_context(|| process.log())?;
    let answer = http.get(format!("http://{address}/readyz")).send().await?;
    let status = answer.status().as_u16();
    let said = answer.text().await?;
    ensure!(status == 503 && said.contains("not hosting yet"), "{status} {said}");
    Ok(())
}
