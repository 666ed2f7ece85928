//! `resource_watch`: a trigger that starts a run for each change of the objects of the kind
//! its settings name, as the apiserver's watch tells it, within a second of the change.
//!
//! What starts a run: the event types asked for, objects matching the label and field
//! selectors, a jq filter over the event (`{type, object}`) evaluated before any run starts,
//! and a change of what the node looks at: an object whose state (its fields asked for, or all
//! of it but its resourceVersion and managed fields) is the one its last run saw starts none,
//! and with a debounce an object changing often starts one run once it has been quiet.
//!
//! Where it goes on: the last resourceVersion it handled is kept state, so a restart (or a
//! new leader) watches on from there and nothing is lost in between. A version the apiserver
//! no longer keeps (410 Gone, as after its restart or etcd's compaction) means listing again:
//! objects the node knows are compared with the list, so only what changed starts runs
//! (`modified`, `added`, and `deleted` for what is gone, then carrying only the object's
//! identity); after a restart of the node itself it knows no objects, and an object listed at
//! a resourceVersion at or before the kept one counts as seen. Deletions in such a gap are
//! the one thing a restarted node cannot tell. resourceVersions are compared as numbers, which
//! the apiserver does not promise but etcd's revisions are. A node whose first list fails (its
//! account not made yet, its rights not granted yet) counts the objects created since it
//! started as added once a list succeeds, so what came in that gap starts runs too.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    time::Duration,
};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{DynamicObject, ListParams, WatchEvent, WatchParams},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;
use weir_sdk::{
    Component, Context, Description, Expression, HumanDuration, JsonSchema, KindPermission,
    NodeError, Port, Value, json_size,
};

use crate::{
    access::{Cluster, Connection, Session},
    dynamic::{
        DEFAULT_MAX_BYTES, KindSettings, Target, check_fields, check_max_bytes, pages, project,
    },
};

/// A change of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EventType {
    /// It appeared.
    Added,
    /// It changed.
    Modified,
    /// It went away.
    Deleted,
}

/// Settings of a resource watch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceWatchSettings {
    /// Which kind.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to watch; empty for every namespace. `weir rbac` grants a Role there,
    /// else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// Only objects with these labels, such as `app=web`.
    pub label_selector: String,
    /// Only objects matching these fields, such as `status.phase=Failed`.
    pub field_selector: String,
    /// The changes that start runs.
    pub event_types: Vec<EventType>,
    /// At the first start, a run per object already there, as `added`.
    pub initial_list: bool,
    /// A jq expression over the event (`{type, object}`); only events it holds for (neither
    /// false nor null) start runs, such as `any(.object.status.containerStatuses[]?;
    /// .state.waiting.reason == "CrashLoopBackOff")`. Empty for every event.
    pub filter: String,
    /// Only these fields of each object, as paths such as `/status/phase` (namespace and name
    /// always come along); empty for whole objects. They are also what a change must change
    /// to start a run.
    pub fields: Vec<String>,
    /// An object whose state is the one its last run saw starts no run.
    pub dedupe: bool,
    /// Wait until an object has not changed for this long, then start one run with its last
    /// state, such as `2s` (at most a day); empty to start runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<HumanDuration>,
    /// The most an object may be as JSON, in bytes; a larger one comes with its identity only
    /// and `truncatedBytes`.
    pub max_bytes: u32,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourceWatchSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "Pod"),
            namespace: String::new(),
            label_selector: String::new(),
            field_selector: String::new(),
            event_types: vec![EventType::Added, EventType::Modified, EventType::Deleted],
            initial_list: false,
            filter: String::new(),
            fields: Vec::new(),
            dedupe: true,
            debounce: None,
            max_bytes: DEFAULT_MAX_BYTES,
            cluster: Cluster::default(),
        }
    }
}

/// What each run starts with.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// What happened to the object.
    #[serde(rename = "type")]
    pub event: EventType,
    /// The object (the fields asked for), as it is now or was when deleted.
    #[schemars(extend("x-weir-kubernetes-object" = true))]
    pub object: Value,
    /// When the object was over `maxBytes`: its size, and `object` holds its identity only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_bytes: Option<usize>,
}

/// What the node keeps across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    /// The last resourceVersion handled: the watch goes on from here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    resource_version: String,
}

/// The longest debounce: an object quiet for a day has long settled.
const LONGEST_DEBOUNCE: Duration = Duration::from_secs(24 * 3600);

/// How long to wait after a failed watch: kube's default backoff, 800 ms doubling to 30 s.
const FIRST_RETRY: Duration = Duration::from_millis(800);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// How long one watch request lasts before it is made again (the apiserver's limit is
/// randomised around 30 to 60 minutes; a shorter one notices a silent connection sooner).
const WATCH_SECONDS: u32 = 290;

/// A node of the resource watch component.
#[derive(Debug)]
pub struct ResourceWatch {
    settings: ResourceWatchSettings,
    target: Target,
    filter: Option<Expression>,
    connection: Connection,
}

impl Component for ResourceWatch {
    const NAME: &'static str = "resource_watch";
    type Settings = ResourceWatchSettings;

    fn describe() -> Description {
        Description {
            label: "Resource watch",
            description: "Starts a run for each change of objects of any kind, custom resources included: by selectors, event types and a jq filter, once per distinct state, optionally debounced; goes on from where it stopped across restarts.",
            tags: &["kubernetes", "watch", "trigger", "events"],
            trigger: true,
            permissions: &[],
        }
    }

    // A watch that went stale lists again.
    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["list", "watch"] }]
    }

    fn ports(_: &ResourceWatchSettings) -> Vec<Port> {
        vec![Port::output::<Event>("out")]
    }

    fn build(settings: ResourceWatchSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        check_fields("fields", &settings.fields)?;
        check_max_bytes(settings.max_bytes)?;
        if settings.event_types.is_empty() {
            return Err(NodeError::invalid("settings.eventTypes: name at least one"));
        }
        if let Some(debounce) = &settings.debounce
            && debounce.get() > LONGEST_DEBOUNCE
        {
            return Err(NodeError::invalid(format!(
                "settings.debounce: {debounce} is longer than a day (24h)"
            )));
        }
        let filter = (!settings.filter.trim().is_empty())
            .then(|| Expression::compile(&settings.filter, "settings.filter"))
            .transpose()
            .map_err(|err| NodeError::invalid(err.to_string()))?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, filter, connection })
    }

    async fn handle(&self, _: &Context, port: &str, _: Value) -> Result<Value, NodeError> {
        Err(NodeError::invalid(format!("resource_watch takes no messages (sent to {port})")))
    }

    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        let kept: Kept = cx.state()?;
        let mut watch = Watch {
            resumed_at: number(&kept.resource_version),
            version: (!kept.resource_version.is_empty()).then_some(kept.resource_version),
            ..Watch::default()
        };
        let began = Timestamp::now();
        let began = Timestamp::from_second(began.as_second()).unwrap_or(began);
        let mut wait = FIRST_RETRY;
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(cx, &mut watch) => outcome,
                () = cx.cancelled() => return Ok(()),
            };
            match outcome {
                Ok(()) => wait = FIRST_RETRY,
                Err(_) if cx.is_cancelled() => return Ok(()),
                Err(err) => {
                    if watch.version.is_none() {
                        watch.late_since.get_or_insert(began);
                    }
                    tracing::warn!(node = %cx.node(), error = %err, "the watch failed; watching again");
                    cx.report(&err);
                    watch.failing = true;
                    let jitter = wait.mul_f64(fastrand::f64() / 4.0);
                    tokio::select! {
                        () = tokio::time::sleep(wait + jitter) => {}
                        () = cx.cancelled() => return Ok(()),
                    }
                    wait = (wait * 2).min(LAST_RETRY);
                }
            }
        }
    }
}

/// An object by namespace and name.
type Key = (String, String);

/// What a watch knows between requests (and while the node lives).
#[derive(Debug, Default)]
struct Watch {
    /// Where to go on from; none until the first list.
    version: Option<String>,
    /// The kept resourceVersion the node started from, if it did: objects listed at or before
    /// it were seen by an earlier life of the node.
    resumed_at: Option<u64>,
    /// The version was found expired: list again before watching.
    expired: bool,
    /// Each object seen, with the digest of its state.
    known: HashMap<Key, u64>,
    /// Changes waiting for their object to be quiet (with a debounce).
    pending: HashMap<Key, Pending>,
    /// Counts arrivals, so the oldest pending change is known.
    arrivals: u64,
    /// The last request failed: the log says so when one succeeds again, as it said the
    /// failure.
    failing: bool,
    /// When the node started, to the second as creation times are, while its first list has
    /// not succeeded after failing: objects created since are new to it.
    late_since: Option<Timestamp>,
}

#[derive(Debug)]
struct Pending {
    event: Event,
    due: Instant,
    /// The version before this change arrived: what is safe to keep while it waits.
    before: Option<String>,
    arrival: u64,
}

impl ResourceWatch {
    /// Lists when needed, then watches until the request ends (Ok) or fails.
    async fn follow(&self, cx: &Context, watch: &mut Watch) -> Result<(), NodeError> {
        let session = self.connection.session(cx).await?;
        let namespace = &self.settings.namespace;
        let api = self.target.api(&session, namespace).await?;
        if watch.version.is_none() || watch.expired {
            self.list(cx, &session, &api, watch).await?;
        }
        let version = watch.version.clone().unwrap_or_default();
        let mut params = WatchParams::default().timeout(WATCH_SECONDS);
        if !self.settings.label_selector.is_empty() {
            params = params.labels(&self.settings.label_selector);
        }
        if !self.settings.field_selector.is_empty() {
            params = params.fields(&self.settings.field_selector);
        }
        let doing = self.target.doing("watch", "", namespace);
        let stream = match api.watch(&params, &version).await {
            Err(kube::Error::Api(status)) if status.code == 410 => {
                watch.expired = true;
                return Ok(());
            }
            other => other.map_err(|err| session.error(&doing, err))?,
        };
        if std::mem::take(&mut watch.failing) {
            tracing::info!(node = %cx.node(), "the watch is running again");
        }
        let mut stream = stream.boxed();
        loop {
            let due = watch.pending.values().map(|p| p.due).min();
            let next = tokio::select! {
                next = stream.try_next() => next,
                () = sleep_until(due) => {
                    self.fire_due(cx, watch).await?;
                    continue;
                }
            };
            let Some(event) = next.map_err(|err| session.error(&doing, err))? else {
                // The request's time is up: watch again from where it stopped.
                return Ok(());
            };
            let (kind, object) = match event {
                WatchEvent::Added(object) => (EventType::Added, object),
                WatchEvent::Modified(object) => (EventType::Modified, object),
                WatchEvent::Deleted(object) => (EventType::Deleted, object),
                WatchEvent::Bookmark(bookmark) => {
                    watch.version = Some(bookmark.metadata.resource_version);
                    self.keep(cx, watch)?;
                    continue;
                }
                WatchEvent::Error(status) if status.code == 410 => {
                    watch.expired = true;
                    return Ok(());
                }
                WatchEvent::Error(status) => {
                    return Err(session.error(&doing, kube::Error::Api(status)));
                }
            };
            let before = watch.version.clone();
            if let Some(version) = object.metadata.resource_version.clone() {
                watch.version = Some(version);
            }
            self.changed(cx, watch, kind, &object, before).await?;
            self.keep(cx, watch)?;
        }
    }

    /// Lists the objects: the first time (with `initialList`, each starts a run), or again
    /// after the version expired, when what changed meanwhile starts runs.
    async fn list(
        &self,
        cx: &Context,
        session: &Session,
        api: &Api<DynamicObject>,
        watch: &mut Watch,
    ) -> Result<(), NodeError> {
        let mut params = ListParams::default().limit(500);
        if !self.settings.label_selector.is_empty() {
            params = params.labels(&self.settings.label_selector);
        }
        if !self.settings.field_selector.is_empty() {
            params = params.fields(&self.settings.field_selector);
        }
        let doing = self.target.doing("list", "", &self.settings.namespace);
        let again = watch.expired || watch.resumed_at.is_some();
        let mut gone: HashMap<Key, u64> = std::mem::take(&mut watch.known);
        // Only the objects that start runs are held; the rest leave a digest, so a list of
        // thousands is never in memory whole.
        let mut changed = Vec::new();
        let (resumed_at, late_since) = (watch.resumed_at, watch.late_since);
        let known_now = &mut watch.known;
        let paged = pages(api, params, None, session, &doing, |object| {
            let key = key_of(&object);
            let known = gone.remove(&key);
            let seen_before = known.is_none()
                && resumed_at.is_some_and(|at| {
                    number(object.metadata.resource_version.as_deref().unwrap_or_default())
                        .is_some_and(|version| version <= at)
                });
            let created_late = late_since.is_some_and(|since| {
                object
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|created| created.0 >= since)
            });
            let digest = digest(&self.state_of(&object)?);
            // A listed state the node saw is never an event again, whatever `dedupe` says.
            let fire = match known {
                Some(seen) if seen == digest => None,
                Some(_) => Some(EventType::Modified),
                None if seen_before => None,
                None if again || self.settings.initial_list || created_late => {
                    Some(EventType::Added)
                }
                None => None,
            };
            match fire {
                Some(kind) => changed.push((kind, object, known)),
                None => {
                    known_now.insert(key, digest);
                }
            }
            Ok(())
        })
        .await?;
        for (kind, object, known) in changed {
            self.changed_with(cx, watch, kind, &object, known, None).await?;
        }
        for (namespace, name) in gone.into_keys() {
            let identity = json!({
                "apiVersion": self.target.kind().api_version(),
                "kind": self.target.kind().kind,
                "metadata": { "namespace": namespace, "name": name },
            });
            let event =
                Event { event: EventType::Deleted, object: identity, truncated_bytes: None };
            self.offer(cx, watch, (namespace, name), event, None).await?;
        }
        watch.version = Some(paged.resource_version);
        watch.expired = false;
        watch.late_since = None;
        self.keep(cx, watch)
    }

    /// The object as the node looks at it: the fields asked for, or all but what changes
    /// without a change of state.
    fn state_of(&self, object: &DynamicObject) -> Result<Value, NodeError> {
        let mut json = project(self.target.json_of(object)?, &self.settings.fields);
        if let Some(metadata) = json.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
        }
        Ok(json)
    }

    async fn changed(
        &self,
        cx: &Context,
        watch: &mut Watch,
        kind: EventType,
        object: &DynamicObject,
        before: Option<String>,
    ) -> Result<(), NodeError> {
        let known = watch.known.get(&key_of(object)).copied();
        self.changed_with(cx, watch, kind, object, known, before).await
    }

    /// One change of `object`, whose last state's digest was `known`.
    async fn changed_with(
        &self,
        cx: &Context,
        watch: &mut Watch,
        kind: EventType,
        object: &DynamicObject,
        known: Option<u64>,
        before: Option<String>,
    ) -> Result<(), NodeError> {
        let key = key_of(object);
        let state = self.state_of(object)?;
        let digest = digest(&state);
        if kind == EventType::Deleted {
            watch.known.remove(&key);
        } else {
            watch.known.insert(key.clone(), digest);
            if self.settings.dedupe && known == Some(digest) {
                return Ok(());
            }
        }
        let whole = self.target.json_of(object)?;
        let mut object = project(whole.clone(), &self.settings.fields);
        let size = json_size(&object);
        let truncated_bytes = (size > self.settings.max_bytes as usize).then(|| {
            object = identity_of(&whole);
            size
        });
        let event = Event { event: kind, object, truncated_bytes };
        self.offer(cx, watch, key, event, before).await
    }

    /// An event that passed the node's look: it starts a run now, or once its object is quiet.
    async fn offer(
        &self,
        cx: &Context,
        watch: &mut Watch,
        key: Key,
        event: Event,
        before: Option<String>,
    ) -> Result<(), NodeError> {
        if !self.settings.event_types.contains(&event.event) {
            return Ok(());
        }
        let Some(debounce) = &self.settings.debounce else {
            return self.fire(cx, event).await;
        };
        watch.arrivals += 1;
        let due = Instant::now() + debounce.get();
        let entry = watch.pending.entry(key).or_insert(Pending {
            event: event.clone(),
            due,
            before,
            arrival: watch.arrivals,
        });
        entry.event = event;
        entry.due = due;
        Ok(())
    }

    async fn fire_due(&self, cx: &Context, watch: &mut Watch) -> Result<(), NodeError> {
        let now = Instant::now();
        let quiet: Vec<Key> = watch
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let mut due: Vec<Pending> =
            quiet.iter().filter_map(|key| watch.pending.remove(key)).collect();
        due.sort_by_key(|p| p.arrival);
        for pending in due {
            self.fire(cx, pending.event).await?;
        }
        self.keep(cx, watch)
    }

    /// Starts a run with `event` when the filter holds for it, and waits for the run: a run
    /// that fails is reported, and the watch goes on.
    async fn fire(&self, cx: &Context, event: Event) -> Result<(), NodeError> {
        let message = serde_json::to_value(&event)
            .map_err(|err| NodeError::internal(format!("cannot encode an event: {err}")))?;
        if let Some(filter) = &self.filter {
            match filter.evaluate(&message, &Value::Null) {
                Ok(Value::Null | Value::Bool(false)) => return Ok(()),
                Ok(_) => {}
                Err(err) => {
                    cx.report(&NodeError::invalid(err.to_string()));
                    return Ok(());
                }
            }
        }
        let run = cx.start_run(message.clone());
        if let Err(err) = run.emit("out", message).await {
            if cx.is_cancelled() {
                return Err(NodeError::cancelled("the watch stopped"));
            }
            tracing::warn!(node = %cx.node(), error = %err, "a watch event's run failed");
            cx.report(&err);
        }
        Ok(())
    }

    /// Keeps the version to go on from: the current one, or while changes wait for their
    /// objects to be quiet, the one before the oldest of them, so a restart sees it again.
    fn keep(&self, cx: &Context, watch: &Watch) -> Result<(), NodeError> {
        let version = match watch.pending.values().min_by_key(|p| p.arrival) {
            Some(oldest) => oldest.before.clone(),
            None => watch.version.clone(),
        };
        cx.save_state(Kept { resource_version: version.unwrap_or_default() })
    }
}

fn key_of(object: &DynamicObject) -> Key {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

fn identity_of(object: &Value) -> Value {
    let metadata = &object["metadata"];
    json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": {
            "namespace": metadata["namespace"],
            "name": metadata["name"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
        },
    })
}

/// A digest of a state whatever the order of its fields: a listed object and a watched one
/// come with their fields in different orders (a list's items have no `apiVersion` and
/// `kind`, which are added after the rest).
fn digest(state: &Value) -> u64 {
    fn feed(value: &Value, hasher: &mut DefaultHasher) {
        match value {
            Value::Object(fields) => {
                let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                hasher.write_u8(b'{');
                for (name, field) in sorted {
                    name.hash(hasher);
                    feed(field, hasher);
                }
                hasher.write_u8(b'}');
            }
            Value::Array(items) => {
                hasher.write_u8(b'[');
                items.iter().for_each(|item| feed(item, hasher));
                hasher.write_u8(b']');
            }
            scalar => scalar.to_string().hash(hasher),
        }
    }
    let mut hasher = DefaultHasher::new();
    feed(state, &mut hasher);
    hasher.finish()
}

fn number(version: &str) -> Option<u64> {
    version.parse().ok()
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_state_digests_the_same_whatever_the_order_of_its_fields() {
        let listed =
            json!({ "metadata": { "name": "a", "labels": { "x": "1", "y": "2" } }, "kind": "Pod" });
        let watched =
            json!({ "kind": "Pod", "metadata": { "labels": { "y": "2", "x": "1" }, "name": "a" } });
        assert_eq!(digest(&listed), digest(&watched));
        let changed =
            json!({ "kind": "Pod", "metadata": { "labels": { "y": "3", "x": "1" }, "name": "a" } });
        assert_ne!(digest(&listed), digest(&changed));
        assert_ne!(digest(&json!(["a", "b"])), digest(&json!(["b", "a"])));
    }

    #[test]
    fn a_debounce_longer_than_a_day_is_refused_naming_the_setting() {
        let build = |debounce: &str| {
            let settings = json!({ "apiVersion": "v1", "kind": "Pod", "debounce": debounce });
            ResourceWatch::build(serde_json::from_value(settings).unwrap())
        };
        assert!(build("24h").is_ok());
        for debounce in ["25h", "4294967295h4294967295d"] {
            let err = build(debounce).unwrap_err();
            assert!(err.message().starts_with("settings.debounce: "), "{debounce}: {err}");
        }
    }
}
