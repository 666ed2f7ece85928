//! Where Weir keeps its resources. One [`Store`] trait with two implementations: the embedded
//! store ([`embedded::EmbeddedStore`], manifest files under a data directory, for `weir up`) and
//! the Kubernetes store (custom resources in etcd). Both pass the same contract suite
//! ([`contract`], behind the `contract` feature), so the engine cannot tell them apart.
//!
//! Objects travel as [`DynamicObject`]s: the store keeps what the manifest said, field order
//! included, and typed views are the caller's business.

use std::{error::Error as StdError, fmt, io, path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::{StreamExt, stream::BoxStream};
pub use kube::core::DynamicObject;
use tokio_util::sync::CancellationToken;
use weir_model::{FieldError, Kind};

#[cfg(feature = "contract")]
pub mod contract;
pub mod embedded;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "kubernetes")]
pub mod lease;

pub use weir_model::selector::Selector;

/// The largest object a store keeps, in bytes: etcd's default request limit, which the
/// embedded store enforces too so a flow that works on one works on the other.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

/// The namespace used when a manifest or command names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Keeps Weir's resources, with optimistic concurrency by `metadata.resourceVersion`.
///
/// Semantics follow the Kubernetes API for custom resources with a status subresource:
/// `create` ignores `status`; `update` changes everything but `status` and needs the
/// resourceVersion that was read; `update_status` changes only `status`; `metadata.generation`
/// starts at 1 and grows only when the spec changes.
#[async_trait]
pub trait Store: fmt::Debug + Send + Sync {
    /// Reads one object.
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject, StoreError>;

    /// Lists the objects of a kind in one namespace (or all), sorted by namespace and name.
    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<DynamicObject>, StoreError>;

    /// Creates an object; fails with [`StoreError::AlreadyExists`] when the name is taken.
    async fn create(&self, object: DynamicObject) -> Result<DynamicObject, StoreError>;

    /// Replaces an object's metadata and spec; its resourceVersion must be the current one.
    async fn update(&self, object: DynamicObject) -> Result<DynamicObject, StoreError>;

    /// Replaces an object's status; its resourceVersion must be the current one.
    async fn update_status(&self, object: DynamicObject) -> Result<DynamicObject, StoreError>;

    /// Deletes an object.
    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), StoreError>;

    /// Follows the objects of a kind: first [`WatchEvent::Synced`] with everything that matches,
    /// then one event per change. When the store cannot tell what was missed (a dropped
    /// connection, a slow reader) it sends `Synced` again, so a consumer that replaces its view
    /// on `Synced` never misses a change.
    fn watch(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> WatchStream;
}

/// How long [`follow`] waits before watching again after a watch failed or ended.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Follows every object of a kind in one namespace (or all, for `None`) for as long as `stop`
/// allows: a watch that fails or ends is opened again (it starts with [`WatchEvent::Synced`], so
/// nothing is missed), and failures are logged rather than ending the stream.
pub fn follow(
    store: Arc<dyn Store>,
    kind: Kind,
    namespace: Option<String>,
    stop: CancellationToken,
) -> BoxStream<'static, WatchEvent> {
    let state = (store, None::<WatchStream>, stop);
    futures::stream::unfold(state, move |(store, mut events, stop)| {
        let namespace = namespace.clone();
        async move {
        loop {
            let stream = events.get_or_insert_with(|| {
                store.watch(kind, namespace.as_deref(), &Selector::everything())
            });
            let next = tokio::select! {
                next = stream.next() => next,
                () = stop.cancelled() => return None,
            };
            match next {
                Some(Ok(event)) => return Some((event, (store, events, stop))),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "watching {kind} resources failed; watching again");
                }
                None => {}
            }
            events = None;
            tokio::select! {
                () = tokio::time::sleep(REWATCH_DELAY) => {}
                () = stop.cancelled() => return None,
            }
        }
        }
    })
    .boxed()
}

/// What [`Store::watch`] yields.
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The full set of matching objects: replace what you had.
    Synced(Vec<DynamicObject>),
    /// An object was created or changed (or now matches the selector).
    Applied(DynamicObject),
    /// An object was deleted (or no longer matches the selector).
    Deleted(DynamicObject),
}

/// Names one object: kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// Names an object.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self { kind, namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("{0} not found")]
    NotFound(ObjectRef),
    /// The name is taken.
    #[error("{0} already exists")]
    AlreadyExists(ObjectRef),
    /// Someone else changed the object after it was read.
    #[error(
        "{object} was changed since it was read (resourceVersion {stale} is not the current one): \
         read it again and retry"
    )]
    Conflict {
        /// The object.
        object: ObjectRef,
        /// The resourceVersion the caller had.
        stale: String,
    },
    /// The object breaks a rule of its kind.
    #[error("{object} is invalid: {reason}")]
    Invalid {
        /// The object, as far as it could be told.
        object: String,
        /// The field and the rule it breaks.
        reason: FieldError,
    },
    /// A stored object cannot be read back; the others are still served.
    #[error("stored object {path} is unreadable")]
    Corrupt {
        /// The file holding it.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The file system refused a read or write (a full disk, missing permissions).
    #[error("cannot {action} {path}")]
    Io {
        /// What the store was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The caller may not do this.
    #[error("forbidden: {user} may not {verb} {resource}")]
    Forbidden {
        /// Who asked, as the apiserver knows them.
        user: String,
        /// The verb, such as `update`.
        verb: &'static str,
        /// The resource, such as `flownodes.weir.dev in namespace default`.
        resource: String,
    },
    /// The store does not know who asked: no credentials, or ones it does not take (such as an
    /// expired token).
    #[error("not signed in: the cluster does not accept these credentials")]
    Unauthenticated,
    /// The object is larger than the store keeps.
    #[error(
        "{object} is too large to store ({size} bytes; the limit is {limit}): keep large data out of manifests"
    )]
    TooLarge {
        /// The object.
        object: ObjectRef,
        /// Its size as stored, when known.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store could not be reached.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
}

/// The kind, namespace and name of an object, or a clear error naming what is missing.
pub fn object_ref(object: &DynamicObject) -> Result<ObjectRef, StoreError> {
    let invalid = |path: &str, message: &str| StoreError::Invalid {
        object: describe(object),
        reason: FieldError { path: path.to_owned(), message: message.to_owned() },
    };
    let kind = object.types.as_ref().map(|t| t.kind.as_str()).unwrap_or_default();
    let kind = Kind::from_manifest(kind).ok_or_else(|| invalid("kind", "not a Weir kind"))?;
    let name = object
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| invalid("metadata.name", "required field is missing"))?;
    let namespace = object.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    Ok(ObjectRef::new(kind, namespace, name))
}

/// The resourceVersion an update carries, which both stores require (as Kubernetes does for
/// custom resources): an update without one could overwrite a change it never saw.
pub fn read_version(target: &ObjectRef, object: &DynamicObject) -> Result<String, StoreError> {
    object.metadata.resource_version.clone().ok_or_else(|| StoreError::Invalid {
        object: target.to_string(),
        reason: FieldError {
            path: "metadata.resourceVersion".to_owned(),
            message: "required for an update: read the object first".to_owned(),
        },
    })
}

/// Names an object in messages, as far as it can be told.
pub fn describe(object: &DynamicObject) -> String {
    let kind = object.types.as_ref().map_or("object without kind", |t| t.kind.as_str());
    let namespace = object.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let name = object.metadata.name.as_deref().unwrap_or("<no name>");
    format!("{kind} {namespace}/{name}")
}
