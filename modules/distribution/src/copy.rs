//! Copying an image from one registry to another, byte-exact: an index goes whole (every
//! platform's manifest first, then the index itself), each manifest after its config and
//! layers, blobs the target already has are skipped, the rest streamed straight from source to
//! target a few at a time. An image the target already has under the same digest costs two
//! requests: a HEAD on each side.
//!
//! When only some platforms are wanted, the index is cut down to their entries, each kept
//! byte for byte, and written as a new index with its own digest, which the report gives next
//! to the source's.
//!
//! The copies of one [`Copier`] share what they learn: a blob one copy is moving to a registry
//! is waited for by the others and then mounted, not pulled from the source again, so copies
//! run side by side pull each blob once.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde::Deserialize;

use crate::{
    client::{Head, Manifest, Registry, RegistryError, Reported, sha256},
    platform::{Described, Platforms},
    reference::check_digest,
};

/// How many blobs move, or manifests are confirmed, at once.
const PARALLEL_BLOBS: usize = 4;
/// How many times one blob's stream is started, in all.
const BLOB_ATTEMPTS: u32 = 3;
/// How many facts of each kind (blob locations, cut-down digests, budgets) a copier keeps
/// before it starts over, so a long-running node's memory stays bounded; forgetting costs a
/// request, never correctness.
const MEMORY_ENTRIES: usize = 100_000;

/// What the concurrent copies of one `registry_copy` node share, so that together they pull
/// and push as one careful client would. A blob is named by the target registry's host and its
/// digest: registries store blobs once, whichever repositories link them.
#[derive(Debug, Default)]
pub struct Copier {
    /// Blobs a copy is moving to a registry right now. Another copy that needs one waits on the
    /// receiver, which ends when the mover is done (or gave up).
    moving: Mutex<HashMap<(String, String), tokio::sync::watch::Receiver<()>>>,
    /// A repository of a registry known to hold a blob, for cross-repository mounts.
    known: Mutex<HashMap<(String, String), String>>,
    /// What images were cut down to, by source digest and choice of platforms, so an unchanged
    /// subset is recognised without reading the source's index (a pull).
    chosen: Mutex<HashMap<(String, String), Chosen>>,
    /// The newest pull budget each source registry reported, by host.
    budgets: Mutex<HashMap<String, Reported>>,
    /// The fewest pulls a source registry must have left for a copy to pull from it; 0 for no
    /// floor.
    min_pulls_left: u64,
}

/// A blob this copy moves: while it is held, other copies of the same blob to the same registry
/// wait; dropping it (done, failed or cancelled) lets them go on.
struct Moving<'a> {
    copier: &'a Copier,
    blob: (String, String),
    _done: tokio::sync::watch::Sender<()>,
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.copier.moving.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.blob);
    }
}

/// Whether this copy moves a blob or waits for another copy moving it.
enum Claim<'a> {
    Mine(Moving<'a>),
    Theirs(tokio::sync::watch::Receiver<()>),
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the top manifest (or index) on the target: the source's, unless an index
    /// was cut down to some platforms.
    pub digest: String,
    /// The digest of the top manifest (or index) on the source.
    pub source_digest: String,
    /// When platforms were chosen: those the target's image serves (`linux/arm64`).
    pub platforms: Option<Vec<String>>,
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
    /// Manifests the target confirmed holding, by digest, after the copy or on finding the
    /// image unchanged: the image's, and each platform's of an index.
    pub manifests_verified: usize,
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
    #[serde(default)]
    platform: Option<Described>,
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

impl Copier {
    /// A copier that stops pulling from a registry whose reported budget is under
    /// `min_pulls_left` (0: never). An unchanged image is still checked, as that costs HEADs
    /// only, which Docker Hub does not count.
    pub fn with_min_pulls_left(min_pulls_left: u64) -> Self {
        Self { min_pulls_left, ..Self::default() }
    }

    /// Copies `reference` (a tag or digest) of `source` to `target`, tagged `tag` there, with
    /// every platform.
    pub async fn copy(
        &self,
        source: Side<'_>,
        reference: &str,
        target: Side<'_>,
        tag: &str,
    ) -> Result<CopyReport, RegistryError> {
        self.copy_platforms(source, reference, target, tag, &Platforms::All).await
    }

    /// Copies `reference` (a tag or digest) of `source` to `target`, tagged `tag` there, with the
    /// `platforms` chosen. An unchanged image costs a HEAD on each side; when platforms are chosen,
    /// that holds from the second copy of the same source digest by this copier on, as the
    /// digest of the cut-down index is known only once the source index was read.
    pub async fn copy_platforms(
        &self,
        source: Side<'_>,
        reference: &str,
        target: Side<'_>,
        tag: &str,
        platforms: &Platforms,
    ) -> Result<CopyReport, RegistryError> {
        let choice = platforms.to_string();
        let source_digest = source.registry.manifest_digest(source.repository, reference).await?;
        let known = source_digest.as_ref().and_then(|digest| match platforms {
            Platforms::All => Some(Chosen { digest: digest.clone(), platforms: None }),
            Platforms::Only(_) => self.chosen(digest, &choice),
        });
        // The target's digest under `tag`, once asked, and whether the image under it lacks a
        // platform's manifest (then it is copied again, whole).
        let (mut on_target, mut incomplete) = (None, false);
        if let (Some(source_digest), Some(known)) = (&source_digest, known) {
            let found = target.registry.manifest_head(target.repository, tag).await?;
            if let Some(head) = found.as_ref().filter(|head| head.digest == known.digest) {
                match self.confirm_unchanged(target, tag, head).await {
                    Ok(verified) => {
                        return Ok(CopyReport {
                            manifests_verified: verified,
                            ..unchanged(source_digest, known)
                        });
                    }
                    Err(err @ RegistryError::Unconfirmed { .. }) => {
                        tracing::info!(error = %err, "copying the image again");
                        incomplete = true;
                    }
                    Err(err) => return Err(err),
                }
            }
            on_target = Some(found.map(|head| head.digest));
        }
        let top = self.pull(source, reference).await?;
        let selected = select(source, &top, platforms).await?;
        let chosen =
            Chosen { digest: selected.top.digest.clone(), platforms: selected.platforms.clone() };
        self.remember_chosen(&top.digest, &choice, chosen.clone());
        let on_target = match on_target {
            Some(found) => found,
            None => target.registry.manifest_digest(target.repository, tag).await?,
        };
        let image = pinned(target, tag, &selected.top.digest);
        if !incomplete && on_target.as_ref() == Some(&selected.top.digest) {
            match self.confirm_children(target, &image, &selected.children).await {
                Ok(children) => {
                    return Ok(CopyReport {
                        manifests_verified: 1 + children,
                        ..unchanged(&top.digest, chosen)
                    });
                }
                Err(err @ RegistryError::Unconfirmed { .. }) => {
                    tracing::info!(error = %err, "copying the image again");
                }
                Err(err) => return Err(err),
            }
        }
        let mut report = CopyReport {
            digest: selected.top.digest.clone(),
            source_digest: top.digest.clone(),
            platforms: selected.platforms,
            ..CopyReport::default()
        };
        for child in &selected.children {
            let manifest = self.pull(source, &child.digest).await?;
            self.copy_manifest(source, target, &manifest, &child.digest, &mut report).await?;
        }
        self.copy_manifest(source, target, &selected.top, tag, &mut report).await?;
        report.changed = report.manifests_written > 0 || report.blobs_uploaded > 0;
        // What the answer pins must be there now: the image by digest, then each platform's.
        let top_digest = target.registry.manifest_digest(target.repository, &report.digest).await?;
        if top_digest.as_ref() != Some(&report.digest) {
            return Err(RegistryError::Unconfirmed { image, missing: "manifest".to_owned() });
        }
        report.manifests_verified =
            1 + self.confirm_children(target, &image, &selected.children).await?;
        Ok(report)
    }

    /// Confirms an image the target holds under `tag` as `head` says: a single manifest is
    /// confirmed by that HEAD; an index is read from the target by digest, and each of its
    /// platforms' manifests confirmed. Returns how many manifests were confirmed.
    async fn confirm_unchanged(
        &self,
        target: Side<'_>,
        tag: &str,
        head: &Head,
    ) -> Result<usize, RegistryError> {
        let is_index =
            head.media_type.as_deref().is_some_and(|media_type| INDEX_TYPES.contains(&media_type));
        if !is_index {
            return Ok(1);
        }
        let index = target.registry.manifest(target.repository, &head.digest).await?;
        let walk = parse(target, &index)?;
        let image = pinned(target, tag, &head.digest);
        Ok(1 + self.confirm_children(target, &image, &walk.manifests).await?)
    }

    /// HEADs each of `children`, an index's entries, in the target by digest, a few at once;
    /// the error names `image` and a child missing. Returns how many were confirmed.
    async fn confirm_children(
        &self,
        target: Side<'_>,
        image: &str,
        children: &[Descriptor],
    ) -> Result<usize, RegistryError> {
        // Owned: futures borrowing `children` would not be Send for every lifetime.
        let named: Vec<(String, String)> = children
            .iter()
            .map(|child| {
                let platform = child.platform.as_ref().map(|p| format!(" ({})", p.platform()));
                (child.digest.clone(), platform.unwrap_or_default())
            })
            .collect();
        stream::iter(named)
            .map(|(digest, platform)| async move {
                let found = target.registry.manifest_digest(target.repository, &digest).await?;
                if found.as_ref() == Some(&digest) {
                    return Ok(());
                }
                Err(RegistryError::Unconfirmed {
                    image: image.to_owned(),
                    missing: format!("manifest {digest}{platform}"),
                })
            })
            .buffered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(children.len())
    }

    /// Copies one manifest's blobs, then the manifest, stored under `reference`.
    async fn copy_manifest(
        &self,
        source: Side<'_>,
        target: Side<'_>,
        manifest: &Manifest,
        reference: &str,
        report: &mut CopyReport,
    ) -> Result<(), RegistryError> {
        let walk = parse(source, manifest)?;
        let blobs: Vec<Descriptor> = walk.config.into_iter().chain(walk.layers).collect();
        let moved: Vec<Moved> = stream::iter(blobs)
            .map(|blob| async move { self.copy_blob(source, target, &blob).await })
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

    /// Moves one blob unless the target has it: linked from another repository of the target when
    /// one is known to hold it, else streamed from the source. When another copy is moving the
    /// same blob to the same registry, this one waits for it and then mounts, so the source is
    /// asked once. A stream cut off half-way is started again from the source, a few times.
    async fn copy_blob(
        &self,
        source: Side<'_>,
        target: Side<'_>,
        blob: &Descriptor,
    ) -> Result<Moved, RegistryError> {
        let (registry, repository, digest) = (target.registry, target.repository, &blob.digest);
        if registry.has_blob(repository, digest).await? {
            self.remember(registry.host(), digest, repository);
            return Ok(Moved::Skipped);
        }
        let mut mount_refused = false;
        let _moving = loop {
            if !mount_refused
                && let Some(from) = self.known_elsewhere(registry.host(), digest, repository)
            {
                match registry.mount_blob(repository, digest, &from).await {
                    Ok(true) => {
                        self.remember(registry.host(), digest, repository);
                        return Ok(Moved::Mounted);
                    }
                    Ok(false) => mount_refused = true,
                    // A login that may push here but not pull from there is refused the mount
                    // for good; the bytes can still go the long way.
                    Err(err) if !err.is_transient() => {
                        tracing::debug!(digest, from, error = %err, "the mount was refused; uploading");
                        mount_refused = true;
                    }
                    Err(err) => return Err(err),
                }
            }
            match self.claim(registry.host(), digest) {
                Claim::Mine(moving) => break moving,
                Claim::Theirs(mut done) => {
                    while done.changed().await.is_ok() {}
                    // Done or given up: the other copy may have been to this very repository.
                    if registry.has_blob(repository, digest).await? {
                        self.remember(registry.host(), digest, repository);
                        return Ok(Moved::Skipped);
                    }
                }
            }
        };
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
                Ok(bytes) => {
                    self.remember(registry.host(), digest, repository);
                    return Ok(Moved::Uploaded(bytes));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// What the image of `source_digest` was cut down to for `choice` of platforms, when this
    /// copier did that before.
    fn chosen(&self, source_digest: &str, choice: &str) -> Option<Chosen> {
        let chosen = self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        chosen.get(&(source_digest.to_owned(), choice.to_owned())).cloned()
    }

    /// Notes what the image of `source_digest` was cut down to for `choice` of platforms.
    fn remember_chosen(&self, source_digest: &str, choice: &str, outcome: Chosen) {
        let mut chosen = self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        if chosen.len() >= MEMORY_ENTRIES {
            chosen.clear();
        }
        chosen.insert((source_digest.to_owned(), choice.to_owned()), outcome);
    }

    /// A manifest of `source` by GET, which Docker Hub counts as a pull: refused up front
    /// while the registry's budget is under the floor.
    async fn pull(&self, source: Side<'_>, reference: &str) -> Result<Manifest, RegistryError> {
        self.check_budget(source.registry)?;
        source.registry.manifest(source.repository, reference).await
    }

    /// The pulls each source registry that reports a budget said it had left, by host.
    pub fn pulls_left(&self) -> Vec<(String, u64)> {
        let budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        budgets.iter().map(|(host, reported)| (host.clone(), reported.budget.remaining)).collect()
    }

    /// Notes the budget `registry` last reported, when newer than the one known, and refuses
    /// when the newest known is under the floor and its window has not passed.
    fn check_budget(&self, registry: &Registry) -> Result<(), RegistryError> {
        let host = registry.host();
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reported) = registry.rate_limit()
            && budgets.get(host).is_none_or(|known| known.at < reported.at)
        {
            if budgets.len() >= MEMORY_ENTRIES {
                budgets.clear();
            }
            budgets.insert(host.to_owned(), reported);
        }
        let Some(Reported { budget, at }) = budgets.get(host).copied() else { return Ok(()) };
        let window = std::time::Duration::from_secs(budget.window_seconds);
        let window_passed = budget.window_seconds > 0 && at.elapsed() >= window;
        if self.min_pulls_left == 0 || budget.remaining >= self.min_pulls_left || window_passed {
            return Ok(());
        }
        Err(RegistryError::OverBudget {
            registry: host.to_owned(),
            remaining: budget.remaining,
            limit: budget.limit,
            window_seconds: budget.window_seconds,
            floor: self.min_pulls_left,
        })
    }

    /// Takes the moving of `digest` to the registry at `host`, unless another copy has it.
    fn claim(&self, host: &str, digest: &str) -> Claim<'_> {
        let blob = (host.to_owned(), digest.to_owned());
        let mut moving = self.moving.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = moving.get(&blob) {
            return Claim::Theirs(done.clone());
        }
        let (sender, receiver) = tokio::sync::watch::channel(());
        moving.insert(blob.clone(), receiver);
        Claim::Mine(Moving { copier: self, blob, _done: sender })
    }

    /// Notes that the registry at `host` holds `digest` in `repository`.
    fn remember(&self, host: &str, digest: &str, repository: &str) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MEMORY_ENTRIES {
            known.clear();
        }
        known.insert((host.to_owned(), digest.to_owned()), repository.to_owned());
    }

    /// Another repository of the registry at `host` known to hold `digest`.
    fn known_elsewhere(&self, host: &str, digest: &str, repository: &str) -> Option<String> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(&(host.to_owned(), digest.to_owned()))
            .filter(|r| r.as_str() != repository)
            .cloned()
    }
}

/// The target's top manifest for a source digest and a choice of platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chosen {
    /// Its digest.
    digest: String,
    /// The platforms it serves, when some were chosen.
    platforms: Option<Vec<String>>,
}

/// The media types of indexes, whose entries are manifests of their own.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// `host/repository:tag@digest` on the target, as errors name an image.
fn pinned(target: Side<'_>, tag: &str, digest: &str) -> String {
    format!("{}/{}:{tag}@{digest}", target.registry.host(), target.repository)
}

fn unchanged(source_digest: &str, known: Chosen) -> CopyReport {
    CopyReport {
        digest: known.digest,
        source_digest: source_digest.to_owned(),
        platforms: known.platforms,
        ..CopyReport::default()
    }
}

/// What goes to the target: the top manifest as it will be stored, and the children to copy
/// before it.
struct Selected {
    top: Manifest,
    children: Vec<Descriptor>,
    platforms: Option<Vec<String>>,
}

/// Applies the choice of platforms to `top`: an index keeps the entries of the chosen
/// platforms (whole, and byte-exact, when that is every entry); a single image must be of one.
async fn select(
    source: Side<'_>,
    top: &Manifest,
    platforms: &Platforms,
) -> Result<Selected, RegistryError> {
    let walk = parse(source, top)?;
    let not_served = |found: Vec<String>| RegistryError::NoPlatform {
        doing: format!("copy {}@{} from {}", source.repository, top.digest, source.registry.host()),
        wanted: platforms.to_string(),
        found: if found.is_empty() { "none named".to_owned() } else { found.join(", ") },
    };
    if matches!(platforms, Platforms::All) {
        return Ok(Selected { top: top.clone(), children: walk.manifests, platforms: None });
    }
    if walk.manifests.is_empty() {
        // A single image: its config says which platform it is.
        let Some(config) = &walk.config else {
            return Err(not_served(Vec::new()));
        };
        let described: Described = serde_json::from_slice(
            &source.registry.blob_bytes(source.repository, &config.digest).await?,
        )
        .unwrap_or_default();
        let platform = described.platform();
        if !platforms.takes(&platform) {
            return Err(not_served(vec![platform.to_string()]));
        }
        return Ok(Selected {
            top: top.clone(),
            children: Vec::new(),
            platforms: Some(vec![platform.to_string()]),
        });
    }
    let platform_of = |entry: &Descriptor| entry.platform.as_ref().map(Described::platform);
    let found: Vec<String> =
        walk.manifests.iter().filter_map(platform_of).map(|p| p.to_string()).collect();
    let keep: Vec<bool> = walk
        .manifests
        .iter()
        .map(|entry| platform_of(entry).is_some_and(|p| platforms.takes(&p)))
        .collect();
    if !keep.contains(&true) {
        return Err(not_served(found));
    }
    let (children, served): (Vec<Descriptor>, Vec<String>) = walk
        .manifests
        .into_iter()
        .zip(&keep)
        .filter(|(_, kept)| **kept)
        .map(|(entry, _)| {
            let platform = platform_of(&entry).map(|p| p.to_string()).unwrap_or_default();
            (entry, platform)
        })
        .unzip();
    let top = if keep.iter().all(|kept| *kept) { top.clone() } else { cut_index(top, &keep)? };
    Ok(Selected { top, children, platforms: Some(served) })
}

/// The index with only the entries marked in `keep`, each entry's JSON as it was, every other
/// field of the index kept.
fn cut_index(index: &Manifest, keep: &[bool]) -> Result<Manifest, RegistryError> {
    let problem = |problem: String| RegistryError::Content {
        doing: format!("cut index {} down to some platforms", index.digest),
        problem,
    };
    let mut document: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&index.bytes).map_err(|err| problem(err.to_string()))?;
    let Some(serde_json::Value::Array(entries)) = document.remove("manifests") else {
        return Err(problem("it has no manifests list".to_owned()));
    };
    let kept: Vec<serde_json::Value> =
        entries.into_iter().zip(keep).filter(|(_, kept)| **kept).map(|(e, _)| e).collect();
    document.insert("manifests".to_owned(), serde_json::Value::Array(kept));
    let bytes =
        bytes::Bytes::from(serde_json::to_vec(&document).map_err(|err| problem(err.to_string()))?);
    Ok(Manifest { digest: sha256(&bytes), bytes, media_type: index.media_type.clone() })
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

/// The parts of `manifest` (read from `source`) the copier walks, every digest in it checked,
/// as each goes into a URL.
fn parse(source: Side<'_>, manifest: &Manifest) -> Result<Walk, RegistryError> {
    let problem = |problem: String| RegistryError::Content {
        doing: format!(
            "read manifest {}@{} from {}",
            source.repository,
            manifest.digest,
            source.registry.host()
        ),
        problem,
    };
    let walk: Walk = serde_json::from_slice(&manifest.bytes)
        .map_err(|err| problem(format!("it is not a manifest or index: {err}")))?;
    let listed = [("manifests", &walk.manifests), ("layers", &walk.layers)];
    let config = walk.config.iter().map(|config| ("config".to_owned(), config));
    let entries = listed.into_iter().flat_map(|(field, list)| {
        list.iter().enumerate().map(move |(at, entry)| (format!("{field}[{at}]"), entry))
    });
    for (field, descriptor) in config.chain(entries) {
        check_digest(&descriptor.digest).map_err(|err| problem(format!("{field}: {err}")))?;
    }
    Ok(walk)
}
