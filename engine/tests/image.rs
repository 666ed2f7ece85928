//! `weir image` assembles the image the Dockerfile's runtime stage describes, without a
//! container engine: pushed to a real registry, its config agrees with the Dockerfile on user,
//! entrypoint, command, ports and environment, its files are where the Dockerfile copies them,
//! and its binary runs from the image's own files (a chroot into the unpacked layer).

use std::{collections::BTreeSet, path::Path, process::Command};

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt as _;
use serde_json::Value;
use weir_distribution::client::Registry;
use weir_testregistry::start_registry;

/// What the Dockerfile's last stage says (after its last FROM), continuation lines joined.
#[derive(Debug, Default)]
struct RuntimeStage {
    user: String,
    ports: BTreeSet<String>,
    entrypoint: Value,
    cmd: Value,
    env: Vec<String>,
    copied_to: Vec<String>,
}

fn runtime_stage() -> Result<RuntimeStage> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))?;
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> =
        joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let last_from =
        lines.iter().rposition(|l| l.starts_with("FROM ")).context("the Dockerfile has no FROM")?;
    let mut stage = RuntimeStage::default();
    for line in &lines[last_from + 1..] {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction {
            "USER" => rest.clone_into(&mut stage.user),
            "EXPOSE" => stage.ports.extend(rest.split_whitespace().map(|p| format!("{p}/tcp"))),
            "ENTRYPOINT" => stage.entrypoint = serde_json::from_str(rest)?,
            "CMD" => stage.cmd = serde_json::from_str(rest)?,
            "ENV" => stage.env.extend(rest.split_whitespace().map(str::to_owned)),
            "COPY" => stage.copied_to.push(rest.rsplit(' ').next().unwrap_or_default().to_owned()),
            _ => {}
        }
    }
    Ok(stage)
}

fn weir(args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output()?)
}

#[tokio::test]
async fn the_assembled_image_agrees_with_the_dockerfile_and_its_binary_runs() -> Result<()> {
    let stage = runtime_stage()?;
    ensure!(stage.copied_to.len() == 3, "the Dockerfile's runtime stage changed: {stage:?}");
    let registry = start_registry().await?;
    let ui = tempfile::tempdir()?;
    std::fs::create_dir(ui.path().join("assets"))?;
    std::fs::write(ui.path().join("index.html"), "<html>weir</html>")?;
    std::fs::write(ui.path().join("assets/editor.wasm"), b"\0asm")?;
    let solutions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions");
    let reference = format!("{}/weir:test", registry.host);
    let output = weir(&[
        "image",
        "--push",
        &reference,
        "--plain-http",
        "--ui",
        &ui.path().display().to_string(),
        "--solutions",
        &solutions.display().to_string(),
    ])?;
    ensure!(
        output.status.success(),
        "weir image failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let client = Registry::new(&registry.host, true)?;
    let manifest: Value = serde_json::from_slice(&client.manifest("weir", "test").await?.bytes)?;
    let config_digest = manifest["config"]["digest"].as_str().context("no config")?;
    let config: Value = serde_json::from_slice(&client.blob_bytes("weir", config_digest).await?)?;
    let settings = &config["config"];
    ensure!(settings["User"] == stage.user.as_str(), "user {} vs {}", settings["User"], stage.user);
    ensure!(settings["Entrypoint"] == stage.entrypoint, "entrypoint {}", settings["Entrypoint"]);
    ensure!(settings["Cmd"] == stage.cmd, "cmd {}", settings["Cmd"]);
    let ports: BTreeSet<String> =
        settings["ExposedPorts"].as_object().context("no ports")?.keys().cloned().collect();
    ensure!(ports == stage.ports, "ports {ports:?} vs the Dockerfile's {:?}", stage.ports);
    let env: Vec<&str> =
        settings["Env"].as_array().context("no Env")?.iter().filter_map(Value::as_str).collect();
    for pair in &stage.env {
        ensure!(env.contains(&pair.as_str()), "{pair} missing from the image's Env {env:?}");
    }

    // Unpacked with the system's tar, the files are where the Dockerfile copies them.
    let layer_digest = manifest["layers"][0]["digest"].as_str().context("no layer")?;
    let (_, mut chunks) = client.blob("weir", layer_digest).await?;
    let mut layer = Vec::new();
    while let Some(chunk) = chunks.next().await {
        layer.extend_from_slice(&chunk?);
    }
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("layer.tar"), &layer)?;
    let rootfs = root.path().join("rootfs");
    std::fs::create_dir(&rootfs)?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(root.path().join("layer.tar"))
        .arg("-C")
        .arg(&rootfs)
        .output()?;
    ensure!(untar.status.success(), "tar: {}", String::from_utf8_lossy(&untar.stderr));
    for destination in &stage.copied_to {
        ensure!(rootfs.join(&destination[1..]).exists(), "{destination} is not in the image");
    }
    ensure!(rootfs.join("usr/share/weir/ui/assets/editor.wasm").is_file(), "the editor's assets");
    for solution in std::fs::read_dir(&solutions)? {
        let solution = solution?.path();
        if solution.join("solution.toml").is_file() {
            let name = solution.file_name().context("name")?;
            let inside = rootfs.join("usr/share/weir/solutions").join(name).join("solution.toml");
            ensure!(inside.is_file(), "{} is not in the image", inside.display());
        }
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))?;
    let uid = stage.user.split(':').next().unwrap_or_default();
    ensure!(passwd.contains(&format!(":{uid}:")), "user {uid} is not in /etc/passwd: {passwd}");

    // The binary runs with nothing but the image's files: its loader and libraries are there.
    let run =
        Command::new("chroot").arg(&rootfs).args(["/usr/local/bin/weir", "--version"]).output()?;
    ensure!(run.status.success(), "weir in the image: {}", String::from_utf8_lossy(&run.stderr));
    ensure!(String::from_utf8_lossy(&run.stdout).starts_with("weir "), "version: {:?}", run.stdout);
    Ok(())
}

#[test]
fn bad_inputs_are_named() -> Result<()> {
    let empty = tempfile::tempdir()?;
    let dir = empty.path().display().to_string();
    let output =
        weir(&["image", "--push", "127.0.0.1:1/weir:x", "--ui", &dir, "--solutions", &dir])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains(&dir) && stderr.contains("index.html"),
        "{stderr}"
    );
    std::fs::write(empty.path().join("index.html"), "")?;
    let output = weir(&["image", "--push", "Not A Reference", "--ui", &dir, "--solutions", &dir])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("--push") && stderr.contains("Not A Reference"),
        "{stderr}"
    );
    Ok(())
}
