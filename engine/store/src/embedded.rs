//! The embedded store: one YAML manifest per object under a data directory, laid out as
//! `<namespace>/<plural>/<name>.yaml` so the directory reads like a Git repository of manifests.
//!
//! Writes are atomic and durable (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old or the new object, never half of one. Writers are serialised by
//! a lock file, which also covers other processes on the same directory (`weir apply` next to
//! a running `weir up`); a stale resourceVersion is a conflict, never a lost update. Watchers
//! hear of changes made in this process at once and of changes made by other processes through
//! file-system notifications.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::{DynamicObject, TypeMeta};
use notify::{RecursiveMode, Watcher};
use serde_json::Value;
use tokio::sync::broadcast;
use weir_model::{Kind, names::NameRule};

use crate::{
    ObjectRef, Selector, Store, StoreError, WatchEvent, WatchStream, describe, object_ref,
};

/// Holds the highest resourceVersion ever deleted, so a re-created object never reuses one.
const REVISION_FILE: &str = ".revision";
/// Serialises writers across processes.
const LOCK_FILE: &str = ".lock";
/// How many changes a slow watcher may fall behind before it is re-synced.
const CHANGE_BACKLOG: usize = 1024;

/// Keeps objects as manifest files under a directory.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    lock: Mutex<File>,
    changes: broadcast::Sender<Change>,
    last_revision: AtomicU64,
    temp_counter: AtomicU64,
    file_watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

#[derive(Debug, Clone)]
struct Change {
    kind: Kind,
    deleted: bool,
    object: Arc<DynamicObject>,
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store under `root`, and removes the temporary files an
    /// interrupted write may have left.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_error("create", &root))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error("open", &lock_path))?;
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        let inner = Inner {
            root,
            lock: Mutex::new(lock),
            changes,
            last_revision: AtomicU64::new(0),
            temp_counter: AtomicU64::new(0),
            file_watcher: Mutex::new(None),
        };
        inner.locked(|inner| inner.remove_leftovers())?;
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The file an object is kept in.
    pub fn path_of(&self, object: &ObjectRef) -> PathBuf {
        self.inner.path(object)
    }

    /// Runs a change under the write lock on a blocking thread, then tells the watchers.
    async fn write(
        &self,
        key: ObjectRef,
        change: impl FnOnce(&Inner) -> Result<DynamicObject, StoreError> + Send + 'static,
    ) -> Result<DynamicObject, StoreError> {
        self.blocking(move |inner| {
            let written = inner.locked(change)?;
            inner.announce(key.kind, false, &written);
            Ok(written)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject, StoreError> {
        let object = checked_ref(kind, namespace, name)?;
        self.blocking(move |inner| inner.read(&object)?.ok_or(StoreError::NotFound(object))).await
    }

    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<DynamicObject>, StoreError> {
        if let Some(namespace) = namespace {
            check_name("namespace", namespace)?;
        }
        let namespace = namespace.map(str::to_owned);
        let selector = selector.clone();
        self.blocking(move |inner| inner.list(kind, namespace.as_deref(), &selector)).await
    }

    async fn create(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let key = validated(&object)?;
        self.write(key.clone(), move |inner| {
            if inner.read(&key)?.is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            let mut created = object;
            let meta = &mut created.metadata;
            meta.namespace = Some(key.namespace.clone());
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.generation = Some(1);
            meta.creation_timestamp = Some(now());
            meta.resource_version = Some(inner.next_revision(None)?.to_string());
            meta.managed_fields = None;
            meta.deletion_timestamp = None;
            remove_status(&mut created.data);
            inner.write(&key, &created)?;
            Ok(created)
        })
        .await
    }

    async fn update(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let key = validated(&object)?;
        self.write(key.clone(), move |inner| {
            let current = inner.current_for_write(&key, &object)?;
            let mut updated = object;
            let mut data = updated.data.clone();
            remove_status(&mut data);
            let mut current_data = current.data.clone();
            let status = remove_status(&mut current_data);
            let generation = current.metadata.generation.unwrap_or(1);
            let meta = &mut updated.metadata;
            meta.namespace = Some(key.namespace.clone());
            meta.uid.clone_from(&current.metadata.uid);
            meta.creation_timestamp.clone_from(&current.metadata.creation_timestamp);
            meta.generation = Some(if data == current_data { generation } else { generation + 1 });
            meta.resource_version = Some(
                inner.next_revision(current.metadata.resource_version.as_deref())?.to_string(),
            );
            meta.managed_fields = None;
            updated.data = with_status(data, status);
            inner.write(&key, &updated)?;
            Ok(updated)
        })
        .await
    }

    async fn update_status(&self, object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let key = object_ref(&object)?;
        check_name("namespace", &key.namespace)?;
        check_name("metadata.name", &key.name)?;
        self.write(key.clone(), move |inner| {
            let current = inner.current_for_write(&key, &object)?;
            let mut status_source = object.data;
            let status = remove_status(&mut status_source);
            let mut updated = current;
            let mut data = std::mem::take(&mut updated.data);
            remove_status(&mut data);
            updated.data = with_status(data, status);
            let candidate = object_value(&updated);
            weir_model::manifest::validate(&candidate)
                .map_err(|reason| StoreError::Invalid { object: key.to_string(), reason })?;
            updated.metadata.resource_version = Some(
                inner.next_revision(updated.metadata.resource_version.as_deref())?.to_string(),
            );
            inner.write(&key, &updated)?;
            Ok(updated)
        })
        .await
    }

    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), StoreError> {
        let key = checked_ref(kind, namespace, name)?;
        self.blocking(move |inner| {
            let deleted = inner.locked(|inner| inner.remove(&key))?;
            inner.announce(key.kind, true, &deleted);
            Ok(())
        })
        .await
    }

    fn watch(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> WatchStream {
        let scope =
            Scope { kind, namespace: namespace.map(str::to_owned), selector: selector.clone() };
        if let Some(namespace) = &scope.namespace
            && let Err(err) = check_name("namespace", namespace)
        {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        if let Err(err) = self.inner.watch_files(&self.inner) {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        let state = WatchState {
            store: self.clone(),
            changes: self.inner.changes.subscribe(),
            scope,
            seen: HashMap::new(),
            synced: false,
        };
        futures::stream::unfold(state, WatchState::next).boxed()
    }
}

/// What one watch follows.
#[derive(Debug)]
struct Scope {
    kind: Kind,
    namespace: Option<String>,
    selector: Selector,
}

impl Scope {
    fn covers(&self, object: &DynamicObject) -> bool {
        self.namespace.is_none() || self.namespace == object.metadata.namespace
    }
}

/// A watch in progress: it remembers the resourceVersion of each object it reported, so the
/// same change heard twice (from this process and from the file system) is reported once.
struct WatchState {
    store: EmbeddedStore,
    changes: broadcast::Receiver<Change>,
    scope: Scope,
    seen: HashMap<(String, String), u64>,
    synced: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        if !self.synced {
            return Some((self.resync().await, self));
        }
        loop {
            match self.changes.recv().await {
                Ok(change) => {
                    if let Some(event) = self.event_for(&change) {
                        return Some((Ok(event), self));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((self.resync().await, self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    async fn resync(&mut self) -> Result<WatchEvent, StoreError> {
        // Changes that arrive while listing are still in the channel; `seen` filters those the
        // list already holds.
        let objects = self
            .store
            .list(self.scope.kind, self.scope.namespace.as_deref(), &self.scope.selector)
            .await?;
        self.synced = true;
        self.seen = objects.iter().map(|o| (key_of(o), revision_of(o))).collect();
        Ok(WatchEvent::Synced(objects))
    }

    fn event_for(&mut self, change: &Change) -> Option<WatchEvent> {
        if change.kind != self.scope.kind || !self.scope.covers(&change.object) {
            return None;
        }
        let key = key_of(&change.object);
        let revision = revision_of(&change.object);
        let known = self.seen.get(&key).copied();
        let matches = self.scope.selector.matches(change.object.metadata.labels.as_ref());
        match (change.deleted, known) {
            (true, Some(_)) => {
                self.seen.remove(&key);
                Some(WatchEvent::Deleted((*change.object).clone()))
            }
            (true, None) => None,
            (false, Some(seen)) if revision <= seen => None,
            (false, Some(_)) if !matches => {
                self.seen.remove(&key);
                Some(WatchEvent::Deleted((*change.object).clone()))
            }
            (false, _) if matches => {
                self.seen.insert(key, revision);
                Some(WatchEvent::Applied((*change.object).clone()))
            }
            (false, _) => None,
        }
    }
}

fn key_of(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

fn revision_of(object: &DynamicObject) -> u64 {
    object.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok()).unwrap_or(0)
}

impl Inner {
    fn path(&self, object: &ObjectRef) -> PathBuf {
        self.root
            .join(&object.namespace)
            .join(object.kind.plural())
            .join(format!("{}.yaml", object.name))
    }

    /// Runs `work` holding the write lock, in this process and across processes.
    fn locked<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let file = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.root.join(LOCK_FILE);
        file.lock().map_err(io_error("lock", &lock_path))?;
        let result = work(self);
        file.unlock().map_err(io_error("unlock", &lock_path))?;
        result
    }

    fn read(&self, object: &ObjectRef) -> Result<Option<DynamicObject>, StoreError> {
        read_file(&self.path(object))
    }

    fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<DynamicObject>, StoreError> {
        let namespaces = match namespace {
            Some(namespace) => vec![namespace.to_owned()],
            None => subdirectories(&self.root)?,
        };
        let mut objects = Vec::new();
        for namespace in namespaces {
            let dir = self.root.join(&namespace).join(kind.plural());
            for path in manifest_files(&dir)? {
                match read_file(&path) {
                    Ok(Some(object)) if selector.matches(object.metadata.labels.as_ref()) => {
                        objects.push(object);
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %error_chain(&err), "skipping a stored object");
                    }
                }
            }
        }
        objects.sort_by_key(key_of);
        Ok(objects)
    }

    /// The stored object an update must apply to, after checking the caller read its latest
    /// version.
    fn current_for_write(
        &self,
        key: &ObjectRef,
        given: &DynamicObject,
    ) -> Result<DynamicObject, StoreError> {
        let current = self.read(key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
        let stale = crate::read_version(key, given)?;
        let uid_differs =
            given.metadata.uid.is_some() && given.metadata.uid != current.metadata.uid;
        if uid_differs || current.metadata.resource_version.as_deref() != Some(stale.as_str()) {
            return Err(StoreError::Conflict { object: key.clone(), stale });
        }
        Ok(current)
    }

    fn remove(&self, key: &ObjectRef) -> Result<DynamicObject, StoreError> {
        let path = self.path(key);
        let existing = match read_file(&path) {
            Ok(Some(object)) => object,
            Ok(None) => return Err(StoreError::NotFound(key.clone())),
            // A corrupt file can still be deleted, so the user can replace it.
            Err(_) => tombstone(key, 0),
        };
        let revision = revision_of(&existing).max(self.next_revision(None)?);
        write_atomically(
            &self.root.join(REVISION_FILE),
            revision.to_string().as_bytes(),
            &self.temp_name(),
        )?;
        fs::remove_file(&path).map_err(io_error("remove", &path))?;
        sync_dir(path.parent().unwrap_or(&self.root))?;
        let mut deleted = existing;
        deleted.metadata.resource_version = Some(revision.to_string());
        Ok(deleted)
    }

    fn write(&self, key: &ObjectRef, object: &DynamicObject) -> Result<(), StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root);
        create_dirs(&self.root, dir)?;
        let yaml = serde_yaml_ng::to_string(object)
            .map_err(|err| StoreError::Corrupt { path: path.clone(), source: Box::new(err) })?;
        if yaml.len() > crate::MAX_OBJECT_BYTES {
            return Err(StoreError::TooLarge {
                object: key.clone(),
                size: yaml.len(),
                limit: crate::MAX_OBJECT_BYTES,
            });
        }
        write_atomically(&path, yaml.as_bytes(), &self.temp_name())
    }

    /// A resourceVersion newer than any this store has handed out: microseconds since the
    /// epoch, pushed past the last one seen here, the current one and the deletion mark.
    fn next_revision(&self, current: Option<&str>) -> Result<u64, StoreError> {
        let marker = self.root.join(REVISION_FILE);
        let deleted = match fs::read_to_string(&marker) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(err) if err.kind() == io::ErrorKind::NotFound => 0,
            Err(err) => return Err(io_error("read", &marker)(err)),
        };
        let clock =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let floor = current.and_then(|rv| rv.parse().ok()).unwrap_or(0).max(deleted);
        let mut next = 0;
        self.last_revision
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                next = clock.max(last + 1).max(floor + 1);
                Some(next)
            })
            .unwrap_or_else(|_| unreachable!("the update closure always returns Some"));
        Ok(next)
    }

    fn temp_name(&self) -> String {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}.tmp", std::process::id())
    }

    fn remove_leftovers(&self) -> Result<(), StoreError> {
        for namespace in subdirectories(&self.root)? {
            for kind in Kind::ALL {
                let dir = self.root.join(&namespace).join(kind.plural());
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if is_temp_file(&path) {
                        tracing::info!(path = %path.display(), "removing an interrupted write");
                        fs::remove_file(&path).map_err(io_error("remove", &path))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn announce(&self, kind: Kind, deleted: bool, object: &DynamicObject) {
        // Nobody listening is fine: watchers that start later begin with a full list.
        let _ = self.changes.send(Change { kind, deleted, object: Arc::new(object.clone()) });
    }

    /// Starts following the directory for changes made by other processes, once.
    fn watch_files(&self, this: &Arc<Self>) -> Result<(), StoreError> {
        let mut slot = self.file_watcher.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let weak: Weak<Self> = Arc::downgrade(this);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let (Some(inner), Ok(event)) = (weak.upgrade(), event) else { return };
                // Reading a changed file raises access events of its own; following those would
                // loop forever.
                if event.kind.is_access() || event.kind.is_other() {
                    return;
                }
                for path in &event.paths {
                    if path.is_dir() {
                        rescan_soon(Weak::clone(&weak), path.clone());
                    } else {
                        inner.file_changed(path);
                    }
                }
            })
            .map_err(|err| notify_error(&self.root, err))?;
        watcher
            .watch(&self.root, RecursiveMode::Recursive)
            .map_err(|err| notify_error(&self.root, err))?;
        *slot = Some(watcher);
        Ok(())
    }

    /// Announces every object file under a directory that just appeared (a namespace holds
    /// kind directories, which hold files: two levels at most).
    fn directory_appeared(&self, dir: &Path, depth: usize) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() && depth < 1 {
                self.directory_appeared(&path, depth + 1);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                self.file_changed(&path);
            }
        }
    }

    /// Turns a file-system notification into a change for the watchers.
    fn file_changed(&self, path: &Path) {
        let Some(key) = self.ref_for_path(path) else { return };
        match read_file(path) {
            Ok(Some(object)) => self.announce(key.kind, false, &object),
            Ok(None) => {
                let revision = self.next_revision(None).unwrap_or(u64::MAX);
                self.announce(key.kind, true, &tombstone(&key, revision));
            }
            Err(err) => tracing::warn!(error = %error_chain(&err), "ignoring an unreadable change"),
        }
    }

    fn ref_for_path(&self, path: &Path) -> Option<ObjectRef> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = relative.iter().filter_map(|p| p.to_str()).collect();
        let [namespace, plural, file] = parts.as_slice() else { return None };
        let name = file.strip_suffix(".yaml")?;
        let kind = Kind::ALL.into_iter().find(|k| k.plural() == *plural)?;
        (NameRule::DnsLabel.accepts(namespace) && NameRule::DnsLabel.accepts(name))
            .then(|| ObjectRef::new(kind, namespace, name))
    }
}

/// Reads a directory that just appeared, twice over the next half second. Files written into
/// it before notify adds its watch raise no events, and notify adds that watch only after the
/// handler has seen the directory appear; a file announced twice is reported once (watchers
/// drop resourceVersions they have seen).
fn rescan_soon(inner: Weak<Inner>, dir: PathBuf) {
    std::thread::spawn(move || {
        for wait in [Duration::from_millis(50), Duration::from_millis(450)] {
            std::thread::sleep(wait);
            let Some(inner) = inner.upgrade() else { return };
            inner.directory_appeared(&dir, 0);
        }
    });
}

fn tombstone(key: &ObjectRef, revision: u64) -> DynamicObject {
    let mut object = DynamicObject {
        types: Some(TypeMeta {
            api_version: weir_model::API_VERSION.to_owned(),
            kind: key.kind.name().to_owned(),
        }),
        metadata: Default::default(),
        data: Value::Object(Default::default()),
    };
    object.metadata.name = Some(key.name.clone());
    object.metadata.namespace = Some(key.namespace.clone());
    object.metadata.resource_version = Some(revision.to_string());
    object
}

/// Checks an object against the rules of its kind, as the apiserver does with the CRD schema.
fn validated(object: &DynamicObject) -> Result<ObjectRef, StoreError> {
    let key = object_ref(object)?;
    check_name("namespace", &key.namespace)?;
    weir_model::manifest::validate(&object_value(object))
        .map_err(|reason| StoreError::Invalid { object: describe(object), reason })?;
    Ok(key)
}

fn object_value(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        let meta = fields.get_mut("metadata").and_then(Value::as_object_mut);
        // Server-set fields are not the author's; validation reads only what they wrote.
        if let Some(meta) = meta {
            meta.retain(|key, _| key != "managedFields");
        }
    }
    value
}

fn checked_ref(kind: Kind, namespace: &str, name: &str) -> Result<ObjectRef, StoreError> {
    check_name("namespace", namespace)?;
    check_name("metadata.name", name)?;
    Ok(ObjectRef::new(kind, namespace, name))
}

/// Names become paths, so anything but a DNS label (`..`, `/`) is refused before it gets there.
fn check_name(field: &str, value: &str) -> Result<(), StoreError> {
    if NameRule::DnsLabel.accepts(value) {
        return Ok(());
    }
    Err(StoreError::Invalid {
        object: format!("{field} {value:?}"),
        reason: weir_model::FieldError {
            path: field.to_owned(),
            message: format!("use {}", NameRule::DnsLabel.describe()),
        },
    })
}

fn remove_status(data: &mut Value) -> Option<Value> {
    data.as_object_mut().and_then(|fields| fields.shift_remove("status"))
}

fn with_status(mut data: Value, status: Option<Value>) -> Value {
    if let (Some(fields), Some(status)) = (data.as_object_mut(), status) {
        fields.insert("status".to_owned(), status);
    }
    data
}

/// Now, to the second: the precision Kubernetes stores timestamps with.
fn now() -> Time {
    let seconds = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
}

fn read_file(path: &Path) -> Result<Option<DynamicObject>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::InvalidData => {
            return Err(StoreError::Corrupt { path: path.to_owned(), source: Box::new(err) });
        }
        Err(err) => return Err(io_error("read", path)(err)),
    };
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        path: path.to_owned(),
        source,
    };
    // The files are anyone's to edit: aliases count against the manifests' budget.
    let value =
        weir_model::manifest::parse_document(&text).map_err(|err| corrupt(Box::new(err)))?;
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|err| corrupt(Box::new(err)))?;
    Ok(Some(object))
}

fn write_atomically(path: &Path, bytes: &[u8], temp_suffix: &str) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
    let temp = dir.join(format!(".{file_name}.{temp_suffix}"));
    let written = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error("write", path)(err));
    }
    if let Err(err) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(io_error("replace", path)(err));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync", dir))
}

/// Creates `dir` and the directories above it up to `root`, syncing each parent so a new
/// directory survives a crash along with the file written into it.
fn create_dirs(root: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && parent != root
    {
        create_dirs(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(dir.parent().unwrap_or(root)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(io_error("create", dir)(err)),
    }
}

fn subdirectories(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("read", dir)(err)),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| NameRule::DnsLabel.accepts(name))
        .collect();
    names.sort();
    Ok(names)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("read", dir)(err)),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !name.starts_with('.') && name.ends_with(".yaml")
        })
        .collect();
    paths.sort();
    Ok(paths)
}

fn is_temp_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.starts_with('.') && name.ends_with(".tmp")
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { action, path, source }
}

fn notify_error(root: &Path, err: notify::Error) -> StoreError {
    StoreError::Io { action: "watch", path: root.to_owned(), source: io::Error::other(err) }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
