//! The embedded store: the shared contract, plus what only files on a disk can do to it
//! (restarts, crashes mid-write, corrupt files, a full disk, other processes).

use std::{fs, sync::Arc};

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt;
use tempfile::TempDir;
use weir_model::Kind;
use weir_store::{
    ObjectRef, Selector, Store, StoreError, WatchEvent,
    contract::{Fixture, flow, node},
    embedded::EmbeddedStore,
};

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    Fixture {
        store: Arc::new(store),
        namespace: "team-a".to_owned(),
        other_namespace: "team-b".to_owned(),
        guard: Box::new(dir),
    }
}

weir_store::contract_tests!(fixture());

#[tokio::test]
async fn objects_survive_a_restart_and_a_new_watch_sees_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let written = {
        let store = EmbeddedStore::open(dir.path())?;
        store.create(flow("default", "mirror", &[])).await?;
        store.create(node("default", "tick")).await?
    };
    let store = EmbeddedStore::open(dir.path())?;
    let read = store.get(Kind::FlowNode, "default", "tick").await?;
    ensure!(read == written, "object changed across the restart");
    let mut events = store.watch(Kind::FlowNode, None, &Selector::everything());
    match events.next().await.context("watch ended")?? {
        WatchEvent::Synced(objects) => ensure!(objects == vec![written], "synced {objects:?}"),
        other => anyhow::bail!("expected Synced, got {other:?}"),
    }
    let mut update = read;
    update.data["spec"]["settings"]["interval"] = serde_json::json!("1m");
    let updated = store.update(update).await?;
    ensure!(updated.metadata.generation == Some(2), "generation did not survive the restart");
    Ok(())
}

#[tokio::test]
async fn files_are_manifests_laid_out_by_namespace_and_kind() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    store.create(node("team-a", "tick")).await?;
    let path = dir.path().join("team-a/flownodes/tick.yaml");
    let text = fs::read_to_string(&path)?;
    ensure!(text.starts_with("apiVersion: weir.dev/v1alpha1\nkind: FlowNode\n"), "{text}");
    ensure!(text.contains("interval: 5m"), "settings not plain YAML: {text}");
    Ok(())
}

#[tokio::test]
async fn a_corrupt_file_is_named_and_the_rest_is_still_served() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    store.create(flow("default", "good", &[])).await?;
    store.create(flow("default", "broken", &[])).await?;
    let broken = store.path_of(&ObjectRef::new(Kind::Flow, "default", "broken"));
    let head = "apiVersion: weir.dev/v1alpha1\nkind: Flow\n";
    let items = vec!["0"; 4_000].join(",");
    let aliases = vec!["*x"; 4_000].join(",");
    for text in [
        format!("{head}metadata: [unclosed\n"),
        // 16 million values once expanded.
        format!("{head}metadata: {{name: broken}}\nspec: {{a: &x [{items}], b: [{aliases}]}}\n"),
        // Deeper than any list of objects could be read with.
        format!(
            "{head}metadata: {{name: broken}}\nspec: {{a: {}1{}}}\n",
            "[".repeat(300),
            "]".repeat(300)
        ),
    ] {
        fs::write(&broken, text)?;
        let err =
            store.get(Kind::Flow, "default", "broken").await.err().context("corrupt file read")?;
        ensure!(matches!(err, StoreError::Corrupt { .. }), "wrong error: {err}");
        ensure!(err.to_string().contains("default/flows/broken.yaml"), "path not named: {err}");
        let listed = store.list(Kind::Flow, Some("default"), &Selector::everything()).await?;
        let names: Vec<_> = listed.iter().filter_map(|f| f.metadata.name.as_deref()).collect();
        ensure!(names == ["good"], "{names:?}");
    }
    store.delete(Kind::Flow, "default", "broken").await?;
    ensure!(!broken.exists(), "corrupt file could not be deleted");
    Ok(())
}

#[tokio::test]
async fn an_interrupted_write_leaves_the_old_object_and_no_litter() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let created = EmbeddedStore::open(dir.path())?.create(flow("default", "mirror", &[])).await?;
    // What a crash between writing the temporary file and renaming it leaves behind.
    let litter = dir.path().join("default/flows/.mirror.yaml.4242.0.tmp");
    fs::write(&litter, "apiVersion: weir.dev/v1alpha1\nkind: Flow\nmetadata: {name: mir")?;
    let store = EmbeddedStore::open(dir.path())?;
    ensure!(!litter.exists(), "temporary file survived the restart");
    ensure!(store.get(Kind::Flow, "default", "mirror").await? == created, "object changed");
    Ok(())
}

#[tokio::test]
async fn names_cannot_escape_the_data_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    for (namespace, name) in [("..", "x"), ("default", "../../etc"), ("a/b", "x"), ("default", "")]
    {
        let err = store.get(Kind::Flow, namespace, name).await.err().context("read outside")?;
        ensure!(matches!(err, StoreError::Invalid { .. }), "{namespace}/{name}: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn two_stores_on_one_directory_conflict_instead_of_losing_updates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let one = EmbeddedStore::open(dir.path())?;
    let two = EmbeddedStore::open(dir.path())?;
    let created = one.create(flow("default", "mirror", &[])).await?;
    let mut from_two = two.get(Kind::Flow, "default", "mirror").await?;
    from_two.data["spec"]["description"] = serde_json::json!("two");
    two.update(from_two).await?;
    let mut from_one = created;
    from_one.data["spec"]["description"] = serde_json::json!("one");
    let err = one.update(from_one).await.err().context("stale write from another process won")?;
    ensure!(matches!(err, StoreError::Conflict { .. }), "wrong error: {err}");
    Ok(())
}

#[tokio::test]
async fn a_watch_hears_changes_made_by_another_process() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let watching = EmbeddedStore::open(dir.path())?;
    let writing = EmbeddedStore::open(dir.path())?;
    let mut events = watching.watch(Kind::Flow, Some("default"), &Selector::everything());
    ensure!(matches!(events.next().await.context("ended")??, WatchEvent::Synced(_)), "no sync");
    writing.create(flow("default", "mirror", &[])).await?;
    let patience = std::time::Duration::from_secs(20);
    let event = tokio::time::timeout(patience, events.next()).await?.context("ended")??;
    ensure!(
        matches!(&event, WatchEvent::Applied(o) if o.metadata.name.as_deref() == Some("mirror")),
        "{event:?}"
    );
    writing.delete(Kind::Flow, "default", "mirror").await?;
    let event = tokio::time::timeout(patience, events.next()).await?.context("ended")??;
    ensure!(
        matches!(&event, WatchEvent::Deleted(o) if o.metadata.name.as_deref() == Some("mirror")),
        "{event:?}"
    );
    Ok(())
}

/// A tmpfs too small for the next object: the write fails with the disk named, and the objects
/// already stored are intact.
#[tokio::test]
async fn a_full_disk_fails_the_write_and_keeps_what_was_stored() -> Result<()> {
    let mount = SmallDisk::mount()?;
    let store = EmbeddedStore::open(mount.path())?;
    let kept = store.create(flow("default", "kept", &[])).await?;
    let filler = mount.path().join("filler");
    let _ = fs::write(&filler, vec![0u8; 256 * 1024]);
    let mut big = flow("default", "big", &[]);
    big.data["spec"]["description"] = serde_json::json!("x".repeat(4000));
    let err = store.create(big).await.err().context("write to a full disk succeeded")?;
    let chain = format!("{:#}", anyhow::Error::from(err));
    ensure!(chain.contains("No space left on device"), "{chain}");
    ensure!(chain.contains("default/flows/big.yaml"), "file not named: {chain}");
    ensure!(store.get(Kind::Flow, "default", "kept").await? == kept, "stored object damaged");
    let litter: Vec<_> = fs::read_dir(mount.path().join("default/flows"))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(litter.len() == 1, "left behind {litter:?}");
    Ok(())
}

/// A 64 KiB tmpfs, unmounted on drop. Mounting needs root, which this project's machines and CI
/// have.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .context("run mount")?;
        ensure!(status.success(), "mounting a tmpfs failed (this test needs root): {status}");
        Ok(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}
