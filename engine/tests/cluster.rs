//! The user-facing path on a real cluster: kubectl applies Weir manifests and prints their
//! columns, the apiserver rejects every broken manifest that `weir validate` rejects, the
//! `weir` verbs work against the cluster with `--kubeconfig` or `--context`, and secret
//! settings given by reference are read as the flow's ServiceAccount.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

use anyhow::{Result, ensure};
use weir_testenv::ControlPlane;

mod support;

const HELLO: &str = "tests/manifests/valid/hello.yaml";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Result<Output> {
    Ok(command.current_dir(manifest_dir()).output()?)
}

fn succeeded(output: Output, what: &str) -> Result<String> {
    ensure!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

fn weir(plane: &ControlPlane, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.arg("--kubeconfig").arg(plane.kubeconfig()).args(args).env_remove("WEIR_LOG");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_flows_and_shows_their_columns() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("kubectl").await?;
    let applied = succeeded(
        run(plane.kubectl().args(["apply", "-n", &namespace, "-f", HELLO]))?,
        "kubectl apply",
    )?;
    ensure!(
        applied.contains("flow.weir.dev/hello created")
            && applied.contains("flownode.weir.dev/tick created"),
        "{applied}"
    );
    let table = succeeded(
        run(plane.kubectl().args(["get", "flows,flownodes", "-n", &namespace]))?,
        "kubectl get",
    )?;
    let headers: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("NAME"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(headers.len() == 2, "{table}");
    ensure!(headers[0] == ["NAME", "READY", "NODES", "SUSPENDED", "AGE"], "{table}");
    ensure!(
        headers[1] == ["NAME", "FLOW", "MODULE", "COMPONENT", "READY", "ERRORS", "AGE"],
        "{table}"
    );
    ensure!(table.contains("flownode.weir.dev/tick") && table.contains("ticker"), "{table}");
    let everything = succeeded(
        run(plane.kubectl().args(["get", "weir", "-n", &namespace, "-o", "name"]))?,
        "kubectl get weir",
    )?;
    ensure!(everything.lines().count() == 3, "category weir lists {everything}");
    Ok(())
}

/// Every manifest `weir validate` rejects, the apiserver rejects too, naming the same field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_rejects_the_broken_manifests() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("broken").await?;
    for (file, expected) in support::broken_manifests()? {
        let output = run(plane
            .kubectl()
            .args(["apply", "--dry-run=server", "-n", &namespace, "-f"])
            .arg(&file))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success(),
            "{} was accepted: {}",
            file.display(),
            String::from_utf8_lossy(&output.stdout)
        );
        // The apiserver names fields to the depth of its rule, such as spec.edges for a CEL rule
        // on the list.
        let field: String = expected
            .split(':')
            .next()
            .unwrap_or_default()
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        let field = field.split('[').next().unwrap_or_default();
        if field.starts_with("spec") {
            ensure!(
                stderr.contains(field),
                "{}: apiserver did not name {field}: {stderr}",
                file.display()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_verbs_work_against_the_cluster() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("weir-cli").await?;
    let applied =
        succeeded(run(&mut weir(plane, &["apply", "-n", &namespace, "-f", HELLO]))?, "weir apply")?;
    ensure!(applied.lines().all(|l| l.ends_with(" created")), "{applied}");
    let again = succeeded(
        run(&mut weir(plane, &["apply", "-n", &namespace, "-f", HELLO]))?,
        "weir apply again",
    )?;
    ensure!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    let exported =
        succeeded(run(&mut weir(plane, &["export", "-n", &namespace, "hello"]))?, "weir export")?;
    ensure!(
        exported == fs::read_to_string(manifest_dir().join(HELLO))?,
        "export differs:\n{exported}"
    );
    let nodes = succeeded(
        run(&mut weir(plane, &["get", "fn", "-n", &namespace, "-o", "name"]))?,
        "weir get",
    )?;
    ensure!(nodes == "flownode.weir.dev/greet\nflownode.weir.dev/tick\n", "{nodes}");

    // The same through $KUBECONFIG and --context.
    let mut by_context = Command::new(env!("CARGO_BIN_EXE_weir"));
    by_context.env("KUBECONFIG", plane.kubeconfig()).args([
        "--context",
        "weir-test",
        "get",
        "flow",
        "hello",
        "-n",
        &namespace,
        "-o",
        "name",
    ]);
    ensure!(
        succeeded(run(&mut by_context)?, "weir --context")? == "flow.weir.dev/hello\n",
        "context"
    );

    let deleted = succeeded(
        run(&mut weir(plane, &["delete", "flow", "hello", "-n", &namespace]))?,
        "weir delete",
    )?;
    ensure!(deleted.lines().count() == 3, "{deleted}");
    let output = run(&mut weir(plane, &["get", "flow", "hello", "-n", &namespace]))?;
    ensure!(!output.status.success(), "flow survived");
    ensure!(
        String::from_utf8_lossy(&output.stderr).trim()
            == format!("error: Flow {namespace}/hello not found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `weir send` carries the user's token to the module's endpoint, so it takes the endpoint
/// from the node's namespace's `Module`, else from the one namespace where the module serves:
/// where two others publish it, it does not guess (whoever may write a `Module` in some
/// namespace could draw the token there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_send_goes_to_the_one_namespace_serving_the_module_and_refuses_to_guess() -> Result<()>
{
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let flows = plane.namespace("send-flows").await?;
    succeeded(run(&mut weir(plane, &["apply", "-n", &flows, "-f", HELLO]))?, "weir apply")?;
    let resource = ApiResource::erase::<weir_model::Module>(&());
    let common = || -> Result<DynamicObject> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "Module", "metadata": { "name": "common" },
            "spec": { "version": "0.0.0", "components": [{ "name": "debug", "label": "Debug",
                "ports": [{ "name": "in", "direction": "in", "schema": {} }] }] },
        }))?)
    };
    let mut published = Vec::new();
    for port in [1, 2] {
        let namespace = plane.namespace("send-modules").await?;
        let modules: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &resource);
        modules.create(&PostParams::default(), &common()?).await?;
        let status = serde_json::json!({ "status": { "replicas": [{ "name": "common-0",
            "endpoint": format!("http://127.0.0.1:{port}"),
            "heartbeat": k8s_openapi::jiff::Timestamp::now().to_string() }] } });
        modules.patch_status("common", &PatchParams::default(), &Patch::Merge(&status)).await?;
        published.push((modules, namespace));
    }
    // A token's user, as modules in a cluster take only those.
    let (kubeconfig, _) = plane.admin_account(&flows, "sender").await?;
    let send = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.arg("--kubeconfig").arg(&kubeconfig).env_remove("WEIR_LOG");
        run(command.args(["send", "-n", &flows, "greet:in", "{}"]))
    };
    let output = send()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // In the store's order: by name.
    let mut serving = [published[0].1.as_str(), published[1].1.as_str()];
    serving.sort_unstable();
    let [first, second] = serving;
    ensure!(
        !output.status.success()
            && stderr.contains(&format!(
                "module common serves in namespaces {first}, {second}, none of them the node's"
            )),
        "{stderr}"
    );
    published[1].0.delete("common", &Default::default()).await?;
    let output = send()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success()
            && stderr.contains("module common of node greet does not answer at http://127.0.0.1:1"),
        "{stderr}"
    );
    // The node's own namespace publishes the module: that one, serving or not.
    let own: Api<DynamicObject> = Api::namespaced_with(client.clone(), &flows, &resource);
    own.create(&PostParams::default(), &common()?).await?;
    let output = send()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.ends_with("error: module common lists no replica that serves now\n"),
        "{stderr}"
    );
    Ok(())
}

/// `weir up` against a cluster refuses a namespace whose flows an installed engine's modules
/// already run from a namespace of their own, as a cluster-wide install's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_up_refuses_a_namespace_an_installed_engine_runs() -> Result<()> {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let installed = plane.namespace("installed").await?;
    let mine = plane.namespace("mine").await?;
    let modules: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &installed,
        &ApiResource::erase::<weir_model::Module>(&()),
    );
    let module: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Module", "metadata": { "name": "js" },
        "spec": { "version": "0.0.0", "components": [] },
    }))?;
    modules.create(&PostParams::default(), &module).await?;
    let status = serde_json::json!({ "status": { "replicas": [{ "name": "js-0",
        "endpoint": "http://10.0.0.7:7421", "runs": "*",
        "heartbeat": k8s_openapi::jiff::Timestamp::now().to_string() }] } });
    modules.patch_status("js", &PatchParams::default(), &Patch::Merge(&status)).await?;
    let mut up = weir(plane, &["up", "-n", &mine, "--listen", "127.0.0.1:0"]);
    up.args(["--grpc-listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0"]);
    let (succeeded, stderr) = weir_testenv::exits_within(
        &mut up,
        std::time::Duration::from_secs(30),
        "weir up served a namespace an installed engine runs",
    )
    .await?;
    ensure!(
        !succeeded
            && stderr.contains(&format!(
                "namespace {mine}: module js of namespace {installed} already runs every \
                 namespace's flows (replica js-0 at http://10.0.0.7:7421"
            )),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_clear_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )?;
    let output = run(Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "flows"]))?;
    ensure!(!output.status.success(), "succeeded against nothing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.starts_with("error: the store is unavailable"), "{stderr}");
    let output = run(Command::new(env!("CARGO_BIN_EXE_weir")).args([
        "--kubeconfig",
        "/no/such/kubeconfig",
        "get",
        "flows",
    ]))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("cannot reach the Kubernetes cluster"),
        "{stderr}"
    );
    Ok(())
}

/// Settings with one secret: what a node is built with shows in what it answers.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default)]
struct VaultSettings {
    /// The secret.
    #[schemars(extend("x-weir-secret" = true))]
    password: String,
    /// Not a secret.
    label: String,
}

/// Answers with the password it was built with, so the test sees what the runtime read.
#[derive(Debug)]
struct Vault(String);

impl weir_sdk::Component for Vault {
    const NAME: &'static str = "vault";
    type Settings = VaultSettings;
    fn describe() -> weir_sdk::Description {
        weir_sdk::Description { label: "Vault", ..weir_sdk::Description::default() }
    }
    fn ports(_: &VaultSettings) -> Vec<weir_sdk::Port> {
        vec![weir_sdk::Port::input::<serde_json::Value>("in")]
    }
    fn build(settings: VaultSettings) -> Result<Self, weir_sdk::NodeError> {
        Ok(Self(settings.password))
    }
    async fn handle(
        &self,
        _: &weir_sdk::Context,
        _: &str,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, weir_sdk::NodeError> {
        Ok(serde_json::json!({ "password": self.0 }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_settings_are_read_by_reference_as_the_flows_account() -> Result<()> {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;
    use weir_runtime::{NodeKey, Runtime};

    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("secret-refs").await?;
    let secret = |value: &str| json!({ "metadata": { "name": "creds" }, "stringData": { "password": value } });
    weir_testenv::create::<Secret>(&client, &namespace, secret("first")).await?;
    weir_testenv::create::<Secret>(
        &client,
        &namespace,
        json!({ "metadata": { "name": "elsewhere" }, "stringData": { "password": "no" } }),
    )
    .await?;
    let flow: weir_model::Flow = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Flow",
        "metadata": { "name": "vaulted", "namespace": namespace },
        "spec": { "serviceAccountName": "vault-reader" },
    }))?;
    let node = |name: &str, settings: serde_json::Value| {
        serde_json::from_value::<weir_model::FlowNode>(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
            "metadata": { "name": name, "namespace": namespace, "generation": 1 },
            "spec": { "flow": "vaulted", "module": "safe", "component": "vault", "settings": settings },
        }))
    };
    let reference = |name: &str, key: &str| json!({ "secretKeyRef": { "name": name, "key": key } });
    let good = node("good", json!({ "password": reference("creds", "password") }))?;
    let absent = node("absent", json!({ "password": reference("gone", "password") }))?;
    let keyless = node("keyless", json!({ "password": reference("creds", "nope") }))?;
    let denied = node("denied", json!({ "password": reference("elsewhere", "password") }))?;
    let misplaced = node("misplaced", json!({ "label": reference("creds", "password") }))?;

    // The flow's account gets exactly the Secrets its nodes name, as `weir rbac` derives them.
    let vault = weir_sdk::Module::new("safe", "0.0.0-test").component::<Vault>().catalogue()?;
    let rules =
        weir_engine::rbac::FlowRules::derive(&flow, &[good.clone(), absent.clone()], |_, _| {
            vault.components.first().cloned()
        })?;
    let manifests = json!({ "apiVersion": "v1", "kind": "List", "items": rules.manifests() });
    let mut kubectl = plane
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        kubectl.stdin.as_mut().ok_or_else(|| anyhow::anyhow!("no stdin"))?,
        manifests.to_string().as_bytes(),
    )?;
    succeeded(kubectl.wait_with_output()?, "kubectl apply of the flow's rules")?;

    let module = weir_sdk::Module::new("safe", "0.0.0-test").component::<Vault>();
    let runtime = Runtime::new(vec![module]);
    runtime.act_as(Arc::new(weir_engine::accounts::FlowAccounts::new(client.clone())));
    let kubeconfig = kube::config::Kubeconfig::read_from(plane.kubeconfig())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    runtime.read_secrets_with(Arc::new(weir_engine::secrets::KubeSecrets::new(Some(config))));
    runtime.follow_flow(&flow);

    let key = |name: &str| NodeKey { namespace: namespace.clone(), name: name.to_owned() };
    runtime.apply(&good).await?;
    let answer = runtime.send(&key("good"), "in", json!({})).await?;
    ensure!(answer == json!({ "password": "first" }), "{answer}");

    // A changed Secret builds the node again; an unchanged one leaves it be.
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &namespace);
    secrets
        .patch(
            "creds",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(secret("second")),
        )
        .await?;
    ensure!(runtime.refresh(&good).await?, "the changed Secret was not noticed");
    let answer = runtime.send(&key("good"), "in", json!({})).await?;
    ensure!(answer == json!({ "password": "second" }), "{answer}");
    ensure!(!runtime.refresh(&good).await?, "built again though nothing changed");

    let account = format!("ServiceAccount {namespace}/vault-reader");
    let cases = [
        (&absent, format!("spec.settings.password: Secret {namespace}/gone does not exist")),
        (
            &keyless,
            format!(
                "spec.settings.password: Secret {namespace}/creds has no key nope (it has password)"
            ),
        ),
        (
            &denied,
            format!(
                "spec.settings.password: {account} may not get Secret {namespace}/elsewhere: grant it"
            ),
        ),
        (
            &misplaced,
            "spec.settings.label: secretKeyRef is taken only in a field marked secret".to_owned(),
        ),
    ];
    for (node, expected) in cases {
        let error = runtime.apply(node).await.err().map(|e| e.to_string()).unwrap_or_default();
        ensure!(error.starts_with(&expected), "{error}\nexpected: {expected}");
        ensure!(!error.contains("first") && !error.contains("second"), "{error}");
    }
    Ok(())
}
