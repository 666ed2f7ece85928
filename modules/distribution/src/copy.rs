//! Copying an image from one registry to another, byte-exact: an index goes whole (every
//! platform's manifest first, then the index itself), each manifest after its config and
//! layers, blobs the target already has are skipped, the rest streamed straight from source to
//! target a few at a time. An image the target already has under the same digest costs two
//! requests: a HEAD on each side.

use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde::Deserialize;

use crate::client::{Manifest, Registry, RegistryError};

/// How many blobs move at once.
const PARALLEL_BLOBS: usize = 4;
/// How many times one blob's stream is started, in all.
const BLOB_ATTEMPTS: u32 = 3;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the top manifest (or index), the same on both sides.
    pub digest: String,
    /// Whether anything was written to the target.
    pub changed: bool,
    /// Blobs the target had already.
    pub blobs_skipped: usize,
    /// Blobs linked from another repository of the target without moving their bytes.
    pub blobs_mounted: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Bytes uploaded.
    pub bytes_moved: u64,
    /// Manifests written (an index and its children count each).
    pub manifests_written: usize,
}

/// One side of a copy: a registry and a repository in it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The registry.
    pub registry: &'a Registry,
    /// The repository, such as `library/nginx`.
    pub repository: &'a str,
}

/// Descriptors as manifests and indexes list them.
#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: Option<u64>,
}

/// The parts of a manifest or index the copier walks.
#[derive(Debug, Deserialize)]
struct Walk {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// Copies `reference` (a tag or digest) of `source` to `target`, tagged `tag` there.
pub async fn copy(
    source: Side<'_>,
    reference: &str,
    target: Side<'_>,
    tag: &str,
) -> Result<CopyReport, RegistryError> {
    let wanted = source.registry.manifest_digest(source.repository, reference).await?;
    if let Some(wanted) = &wanted
        && target.registry.manifest_digest(target.repository, tag).await?.as_ref() == Some(wanted)
    {
        return Ok(CopyReport { digest: wanted.clone(), ..CopyReport::default() });
    }
    let top = source.registry.manifest(source.repository, reference).await?;
    let mut report = CopyReport { digest: top.digest.clone(), ..CopyReport::default() };
    let walk = parse(&top)?;
    for child in &walk.manifests {
        let manifest = source.registry.manifest(source.repository, &child.digest).await?;
        copy_manifest(source, target, &manifest, &child.digest, &mut report).await?;
    }
    copy_manifest(source, target, &top, tag, &mut report).await?;
    report.changed = report.manifests_written > 0 || report.blobs_uploaded > 0;
    Ok(report)
}

/// Copies one manifest's blobs, then the manifest, stored under `reference`.
async fn copy_manifest(
    source: Side<'_>,
    target: Side<'_>,
    manifest: &Manifest,
    reference: &str,
    report: &mut CopyReport,
) -> Result<(), RegistryError> {
    let walk = parse(manifest)?;
    let blobs: Vec<Descriptor> = walk.config.into_iter().chain(walk.layers).collect();
    let moved: Vec<Moved> = stream::iter(blobs)
        .map(|blob| async move { copy_blob(source, target, &blob).await })
        .buffer_unordered(PARALLEL_BLOBS)
        .try_collect()
        .await?;
    for outcome in moved {
        match outcome {
            Moved::Uploaded(bytes) => {
                report.blobs_uploaded += 1;
                report.bytes_moved += bytes;
            }
            Moved::Mounted => report.blobs_mounted += 1,
            Moved::Skipped => report.blobs_skipped += 1,
        }
    }
    target.registry.put_manifest(target.repository, reference, manifest).await?;
    report.manifests_written += 1;
    Ok(())
}

/// How one blob reached the target.
enum Moved {
    /// It was there.
    Skipped,
    /// It was linked from another repository of the target.
    Mounted,
    /// Its bytes were uploaded.
    Uploaded(u64),
}

/// Moves one blob unless the target has it: linked from another repository of the target when
/// one is known to hold it, else streamed from the source. A stream cut off half-way is started
/// again from the source, a few times.
async fn copy_blob(
    source: Side<'_>,
    target: Side<'_>,
    blob: &Descriptor,
) -> Result<Moved, RegistryError> {
    let (registry, repository, digest) = (target.registry, target.repository, &blob.digest);
    if registry.has_blob(repository, digest).await? {
        registry.remember(digest, repository);
        return Ok(Moved::Skipped);
    }
    if let Some(from) = registry.known_elsewhere(digest, repository)
        && registry.mount_blob(repository, digest, &from).await?
    {
        registry.remember(digest, repository);
        return Ok(Moved::Mounted);
    }
    let mut attempt = 1;
    loop {
        let moved = async {
            let (length, body) = source.registry.blob(source.repository, &blob.digest).await?;
            let length = length.or(blob.size);
            target.registry.put_blob(target.repository, &blob.digest, length, body).await?;
            Ok::<_, RegistryError>(length.unwrap_or(0))
        }
        .await;
        match moved {
            Err(err) if err.is_transient() && attempt < BLOB_ATTEMPTS => {
                tracing::debug!(digest = %blob.digest, error = %err, attempt, "copying the blob again");
                attempt += 1;
            }
            other => return other.map(Moved::Uploaded),
        }
    }
}

fn parse(manifest: &Manifest) -> Result<Walk, RegistryError> {
    serde_json::from_slice(&manifest.bytes).map_err(|err| RegistryError::Content {
        doing: format!("read manifest {}", manifest.digest),
        problem: format!("it is not a manifest or index: {err}"),
    })
}
