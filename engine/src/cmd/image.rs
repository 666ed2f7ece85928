//! `weir image --push HOST/REPOSITORY:TAG`: the project's image assembled without a container
//! engine, as the Dockerfile's runtime stage describes it (the binary, the editor, the
//! solutions, user 65532, the entrypoint and ports), and pushed with our own registry client.
//! The Dockerfile stays the source of truth for real builds (on distroless); here glibc and
//! libgcc come from the host, as `ldd` names them for the binary. A test keeps the two in step.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;
use weir_distribution::{
    client::Registry,
    image::{Image, Layer},
    reference::Reference,
};

use crate::cli::ImageArgs;

/// Where the Dockerfile's runtime stage puts things, and as whom it runs.
pub const BINARY: &str = "/usr/local/bin/weir";
pub const UI_DIR: &str = "/usr/share/weir/ui";
pub const SOLUTIONS_DIR: &str = "/usr/share/weir/solutions";
pub const USER: &str = "65532:65532";
pub const PORTS: [u16; 3] = [7420, 7421, 7422];
const NONROOT: (u32, u32) = (65532, 65532);

/// Runs `weir image`.
pub async fn run(args: ImageArgs, out: &mut impl Write) -> Result<()> {
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().context("cannot find the running binary")?,
    };
    let image = assemble(&binary, &args.ui, &args.solutions)?;
    let reference: Reference = args.push.parse().context("--push")?;
    let tag = reference.tag().unwrap_or("latest");
    let registry = Registry::new(reference.api_host(), args.plain_http)?;
    let digest = image
        .push(&registry, reference.repository(), tag)
        .await
        .with_context(|| format!("cannot push {}", args.push))?;
    let size: usize = image.layers.iter().map(|layer| layer.len()).sum();
    writeln!(out, "pushed {}@{digest} ({} MB)", args.push, size / 1_000_000)?;
    Ok(())
}

/// The image of `binary`, the editor in `ui` and the solutions in `solutions` (each folder
/// with a solution.toml, as the Dockerfile copies them).
pub fn assemble(binary: &Path, ui: &Path, solutions: &Path) -> Result<Image> {
    ensure!(
        ui.join("index.html").is_file(),
        "{} has no index.html: build the editor with scripts/ui.sh",
        ui.display()
    );
    let mut layer = Layer::new();
    let mut made = std::collections::BTreeSet::new();
    for library in libraries(binary)? {
        let path = library.to_str().context("a library path that is not UTF-8")?;
        parents(&mut layer, &mut made, path)?;
        let bytes = fs::read(&library).with_context(|| format!("cannot read {path}"))?;
        layer.file(path.trim_start_matches('/'), 0o755, &bytes)?;
    }
    let certificates = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(certificates).is_file() {
        parents(&mut layer, &mut made, certificates)?;
        layer.file(&certificates[1..], 0o644, &fs::read(certificates)?)?;
    }
    parents(&mut layer, &mut made, "/etc/passwd")?;
    layer.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    layer.file("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n")?;
    layer.directory("home", 0o755, (0, 0))?;
    layer.directory("home/nonroot", 0o700, NONROOT)?;
    layer.directory("tmp", 0o1777, (0, 0))?;
    parents(&mut layer, &mut made, BINARY)?;
    let bytes = fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    layer.file(&BINARY[1..], 0o755, &bytes)?;
    tree(&mut layer, &mut made, ui, UI_DIR)?;
    let mut entries: Vec<PathBuf> = fs::read_dir(solutions)
        .with_context(|| format!("cannot read {}", solutions.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for dir in entries.iter().filter(|d| d.join("solution.toml").is_file()) {
        let name = dir.file_name().and_then(|n| n.to_str()).context("a solution folder's name")?;
        tree(&mut layer, &mut made, dir, &format!("{SOLUTIONS_DIR}/{name}"))?;
    }
    let ports: serde_json::Map<String, serde_json::Value> =
        PORTS.iter().map(|p| (format!("{p}/tcp"), json!({}))).collect();
    Ok(Image {
        settings: json!({
            "User": USER,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("WEIR_UI_DIR={UI_DIR}"),
                format!("WEIR_SOLUTIONS_DIR={SOLUTIONS_DIR}"),
            ],
            "Entrypoint": [BINARY],
            "Cmd": ["engine"],
            "ExposedPorts": ports,
        }),
        layers: vec![layer.finish()],
    })
}

/// The shared libraries `binary` loads, as `ldd` resolves them on this host.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output().context("cannot run ldd")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // A static binary needs nothing.
        if listing.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut found = Vec::new();
    for line in listing.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = line.split("=>").last().and_then(|rest| rest.split_whitespace().next());
        match path {
            Some(path) if path.starts_with('/') => found.push(PathBuf::from(path)),
            Some("not") => {
                bail!("{} needs a library this host lacks: {}", binary.display(), line.trim())
            }
            _ => {} // linux-vdso.so.1, which the kernel provides
        }
    }
    Ok(found)
}

/// Adds the directories above `path` not added yet, root-owned.
fn parents(
    layer: &mut Layer,
    made: &mut std::collections::BTreeSet<String>,
    path: &str,
) -> Result<()> {
    let mut dir = String::new();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        if made.insert(dir.clone()) {
            layer.directory(&dir, 0o755, (0, 0))?;
        }
    }
    Ok(())
}

/// Adds the files under `source` at `target`, sorted so the same tree makes the same layer.
fn tree(
    layer: &mut Layer,
    made: &mut std::collections::BTreeSet<String>,
    source: &Path,
    target: &str,
) -> Result<()> {
    parents(layer, made, &format!("{target}/."))?;
    let mut entries: Vec<PathBuf> = fs::read_dir(source)
        .with_context(|| format!("cannot read {}", source.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let name =
            entry.file_name().and_then(|n| n.to_str()).context("a file name that is not UTF-8")?;
        let inside = format!("{target}/{name}");
        if entry.is_dir() {
            tree(layer, made, &entry, &inside)?;
        } else {
            let bytes =
                fs::read(&entry).with_context(|| format!("cannot read {}", entry.display()))?;
            layer.file(&inside[1..], 0o644, &bytes)?;
        }
    }
    Ok(())
}
