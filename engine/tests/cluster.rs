//! The user-facing path on a real cluster: kubectl applies Weir manifests and prints their
//! columns, the apiserver rejects every broken manifest that `weir validate` rejects, and the
//! `weir` verbs work against the cluster with `--kubeconfig` or `--context`.

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
