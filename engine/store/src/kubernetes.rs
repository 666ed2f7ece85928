//! The Kubernetes store: Weir's resources as custom resources behind the apiserver, so RBAC,
//! admission and the CRD schema apply to every write, and `kubectl` sees what the engine sees.
//!
//! Watches use kube-runtime's watcher, which re-lists after a dropped connection or an expired
//! resourceVersion (410 Gone); each re-list reaches the consumer as [`WatchEvent::Synced`].
//! After a failure it waits before trying again, longer after each failure in a row (kube's
//! default backoff: 800 ms doubling to 30 s, with jitter, reset once a watch works), so an
//! apiserver that is down is not called in a tight loop.
//!
//! Lists and watches read each object apart ([`Stored`]): one that does not decode (written
//! past Weir's checks, say, with settings nested deeper than a JSON reader follows) is logged
//! and skipped, and the others are read as ever; one bad object never stops every flow of its
//! kind.

use std::{borrow::Cow, path::Path};

use async_trait::async_trait;
use futures::StreamExt;
use kube::{
    Api, Client, Config,
    api::{ApiResource, DeleteParams, ListParams, PostParams},
    config::{AuthInfo, KubeConfigOptions, Kubeconfig},
    core::{DynamicObject, DynamicResourceScope, GroupVersionKind, ObjectMeta, Resource, Status},
    runtime::{WatchStreamExt as _, watcher},
};
use weir_model::{FieldError, Kind};

use crate::{
    MAX_OBJECT_BYTES, ObjectRef, Selector, Store, StoreError, WatchEvent, WatchStream, object_ref,
};

/// The client configuration for the cluster a kubeconfig names (see [`KubeStore::connect`]).
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, StoreError> {
    let options = KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
    match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(unavailable)?;
            Config::from_custom_kubeconfig(file, &options).await.map_err(unavailable)
        }
        None if context.is_some() => Config::from_kubeconfig(&options).await.map_err(unavailable),
        None => Config::infer().await.map_err(unavailable),
    }
}

/// How many objects one list request asks for; larger sets are read page by page.
const PAGE_SIZE: u32 = 500;

/// Keeps objects as custom resources in a Kubernetes cluster.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("default_namespace", &self.client.default_namespace())
            .finish()
    }
}

impl KubeStore {
    /// A store that talks through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A store for the cluster a kubeconfig names: the given file, or `$KUBECONFIG` and
    /// `~/.kube/config`, or the in-cluster service account; `context` picks another context.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, StoreError> {
        Self::with_config(config(kubeconfig, context).await?)
    }

    /// A store that talks as `config` says.
    pub fn with_config(config: Config) -> Result<Self, StoreError> {
        Ok(Self::new(Client::try_from(config).map_err(unavailable)?))
    }

    /// A store for the cluster of `base` that acts as whoever `token` (a bearer token the
    /// apiserver takes: a ServiceAccount's, an OIDC ID token) belongs to, not as `base`'s own
    /// identity: the apiserver decides who that is and what they may do.
    pub fn with_token(base: &Config, token: &str) -> Result<Self, StoreError> {
        let mut config = base.clone();
        config.auth_info = AuthInfo { token: Some(token.to_owned().into()), ..AuthInfo::default() };
        Self::with_config(config)
    }

    /// The client the store talks through.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        self.api_of(kind, namespace)
    }

    /// The API of `kind`, read as `K` (an object, or a [`Stored`] one for lists and watches).
    fn api_of<K>(&self, kind: Kind, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = ApiResource, Scope = DynamicResourceScope>,
    {
        let resource = api_resource(kind);
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }
}

fn api_resource(kind: Kind) -> ApiResource {
    let gvk = GroupVersionKind::gvk(weir_model::GROUP, weir_model::VERSION, kind.name());
    ApiResource::from_gvk_with_plural(&gvk, kind.plural())
}

#[async_trait]
impl Store for KubeStore {
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject, StoreError> {
        let target = ObjectRef::new(kind, namespace, name);
        self.api(kind, Some(namespace))
            .get(name)
            .await
            .map_err(|err| api_error(err, "get", &target, None))
    }

    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<DynamicObject>, StoreError> {
        let api = self.api_of::<Stored>(kind, namespace);
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if !selector.is_everything() {
            params = params.labels(&selector.to_string());
        }
        let scope = ObjectRef::new(kind, namespace.unwrap_or("*"), "*");
        let mut objects = Vec::new();
        loop {
            let page =
                api.list(&params).await.map_err(|err| api_error(err, "list", &scope, None))?;
            objects.extend(page.items.into_iter().filter_map(|stored| stored.readable(kind)));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        objects.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        Ok(objects)
    }

    async fn create(&self, mut object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let target = object_ref(&object)?;
        object.metadata.namespace = Some(target.namespace.clone());
        object.metadata.resource_version = None;
        object.metadata.uid = None;
        self.api(target.kind, Some(&target.namespace))
            .create(&PostParams::default(), &object)
            .await
            .map_err(|err| api_error(err, "create", &target, None))
    }

    async fn update(&self, mut object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let (target, stale) = prepare_update(&mut object)?;
        self.api(target.kind, Some(&target.namespace))
            .replace(&target.name, &PostParams::default(), &object)
            .await
            .map_err(|err| api_error(err, "update", &target, Some(&stale)))
    }

    async fn update_status(&self, mut object: DynamicObject) -> Result<DynamicObject, StoreError> {
        let (target, stale) = prepare_update(&mut object)?;
        self.api(target.kind, Some(&target.namespace))
            .replace_status(&target.name, &PostParams::default(), &object)
            .await
            .map_err(|err| api_error(err, "update the status of", &target, Some(&stale)))
    }

    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), StoreError> {
        let target = ObjectRef::new(kind, namespace, name);
        self.api(kind, Some(namespace))
            .delete(name, &DeleteParams::default())
            .await
            .map(drop)
            .map_err(|err| api_error(err, "delete", &target, None))
    }

    fn watch(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> WatchStream {
        let mut config = watcher::Config::default();
        if !selector.is_everything() {
            config = config.labels(&selector.to_string());
        }
        let scope = ObjectRef::new(kind, namespace.unwrap_or("*"), "*");
        let events =
            watcher::watcher(self.api_of::<Stored>(kind, namespace), config).default_backoff();
        let mut listing: Option<Vec<DynamicObject>> = None;
        events
            .filter_map(move |event| {
                let mapped = match event {
                    Ok(watcher::Event::Init) => {
                        listing = Some(Vec::new());
                        None
                    }
                    Ok(watcher::Event::InitApply(stored)) => {
                        let listed = listing.get_or_insert_with(Vec::new);
                        listed.extend(stored.readable(kind));
                        None
                    }
                    Ok(watcher::Event::InitDone) => {
                        Some(Ok(WatchEvent::Synced(listing.take().unwrap_or_default())))
                    }
                    Ok(watcher::Event::Apply(stored)) => {
                        stored.readable(kind).map(|object| Ok(WatchEvent::Applied(object)))
                    }
                    // Whoever ran it stops it, readable or not: its name is enough.
                    Ok(watcher::Event::Delete(stored)) => {
                        let Stored { metadata, object } = stored;
                        Some(Ok(WatchEvent::Deleted(object.unwrap_or_else(|_| DynamicObject {
                            metadata,
                            ..DynamicObject::new("", &api_resource(kind))
                        }))))
                    }
                    // The watcher retries by itself; a consumer learns it missed nothing from
                    // the Synced that follows.
                    Err(watcher::Error::InitialListFailed(kube::Error::Api(status))) => {
                        refused(&status, "list", &scope)
                    }
                    Err(watcher::Error::WatchStartFailed(kube::Error::Api(status))) => {
                        refused(&status, "watch", &scope)
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "watching {kind} resources failed; retrying");
                        None
                    }
                };
                std::future::ready(mapped)
            })
            .boxed()
    }
}

/// An object as a list or watch sent it, read on its own: one that does not decode keeps its
/// metadata (read apart, which any depth allows) and why, so it can be named and skipped.
#[derive(Debug, Clone)]
struct Stored {
    metadata: ObjectMeta,
    object: Result<DynamicObject, String>,
}

impl Stored {
    /// The object, or `None` (and a warning naming it) when it does not decode.
    fn readable(self, kind: Kind) -> Option<DynamicObject> {
        match self.object {
            Ok(object) => Some(object),
            Err(reason) => {
                let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
                let name = self.metadata.name.as_deref().unwrap_or_default();
                tracing::warn!(
                    "skipping {kind} {namespace}/{name}, which cannot be read: {reason}"
                );
                None
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Stored {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Only what names the object; the rest (managed fields too, which mirror the object's
        /// depth) is skipped, which follows any depth without recursion.
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(default)]
            metadata: Identity,
        }
        #[derive(Default, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Identity {
            name: Option<String>,
            namespace: Option<String>,
            resource_version: Option<String>,
            uid: Option<String>,
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(match serde_json::from_str::<DynamicObject>(raw.get()) {
            Ok(object) => Self { metadata: object.metadata.clone(), object: Ok(object) },
            Err(err) => Self {
                metadata: serde_json::from_str::<Named>(raw.get())
                    .map(|Named { metadata }| ObjectMeta {
                        name: metadata.name,
                        namespace: metadata.namespace,
                        resource_version: metadata.resource_version,
                        uid: metadata.uid,
                        ..ObjectMeta::default()
                    })
                    .unwrap_or_default(),
                object: Err(err.to_string()),
            },
        })
    }
}

impl Resource for Stored {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(resource: &ApiResource) -> Cow<'_, str> {
        resource.group.as_str().into()
    }

    fn version(resource: &ApiResource) -> Cow<'_, str> {
        resource.version.as_str().into()
    }

    fn kind(resource: &ApiResource) -> Cow<'_, str> {
        resource.kind.as_str().into()
    }

    fn api_version(resource: &ApiResource) -> Cow<'_, str> {
        resource.api_version.as_str().into()
    }

    fn plural(resource: &ApiResource) -> Cow<'_, str> {
        resource.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Names the object an update is for and the resourceVersion it was read at, which Kubernetes
/// requires of an update to a custom resource.
fn prepare_update(object: &mut DynamicObject) -> Result<(ObjectRef, String), StoreError> {
    let target = object_ref(object)?;
    object.metadata.namespace = Some(target.namespace.clone());
    let stale = crate::read_version(&target, object)?;
    Ok((target, stale))
}

/// The store's error for what the apiserver said; `stale` is the resourceVersion an update
/// carried, for a conflict's message.
fn api_error(
    err: kube::Error,
    verb: &'static str,
    target: &ObjectRef,
    stale: Option<&str>,
) -> StoreError {
    let kube::Error::Api(status) = err else { return unavailable(err) };
    match (status.code, status.reason.as_str()) {
        (404, _) => StoreError::NotFound(target.clone()),
        (409, "AlreadyExists") => StoreError::AlreadyExists(target.clone()),
        (409, _) => StoreError::Conflict {
            object: target.clone(),
            stale: stale.unwrap_or("given").to_owned(),
        },
        (401, _) => StoreError::Unauthenticated,
        (403, _) => forbidden(&status, verb, target),
        (413, _) => {
            StoreError::TooLarge { object: target.clone(), size: 0, limit: MAX_OBJECT_BYTES }
        }
        (_, _) if status.message.contains("request is too large") => {
            StoreError::TooLarge { object: target.clone(), size: 0, limit: MAX_OBJECT_BYTES }
        }
        (422 | 400, _) => invalid(&status, target),
        _ => unavailable(kube::Error::Api(status)),
    }
}

fn invalid(status: &Status, target: &ObjectRef) -> StoreError {
    let causes = status.details.as_ref().map(|d| d.causes.as_slice()).unwrap_or_default();
    let reason = match causes {
        [first, ..] => FieldError {
            path: first.field.clone(),
            message: causes.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join("; "),
        },
        [] => FieldError { path: String::new(), message: status.message.clone() },
    };
    StoreError::Invalid { object: target.to_string(), reason }
}

/// A watch's failure to report instead of retrying quietly: the caller's credentials were
/// refused or do not allow this. The watcher retries either way; the consumer hears why.
fn refused(
    status: &Status,
    verb: &'static str,
    scope: &ObjectRef,
) -> Option<Result<WatchEvent, StoreError>> {
    match status.code {
        401 => Some(Err(StoreError::Unauthenticated)),
        403 => Some(Err(forbidden(status, verb, scope))),
        _ => {
            tracing::warn!(error = %status.message, "watching {} failed; retrying", scope.kind);
            None
        }
    }
}

fn forbidden(status: &Status, verb: &'static str, target: &ObjectRef) -> StoreError {
    // The apiserver says: `… is forbidden: User "alice" cannot list resource …`.
    let user = status
        .message
        .split_once("User \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| "this identity".to_owned(), |(user, _)| format!("user {user:?}"));
    let plural = format!("{}.{}", target.kind.plural(), weir_model::GROUP);
    let resource = match (target.namespace.as_str(), target.name.as_str()) {
        ("*", _) => format!("{plural} in any namespace"),
        (namespace, "*") => format!("{plural} in namespace {namespace}"),
        (namespace, name) => format!("{plural} {name:?} in namespace {namespace}"),
    };
    StoreError::Forbidden { user, verb, resource }
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}
