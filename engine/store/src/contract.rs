//! The contract every [`Store`] implementation passes: the embedded store in this crate's tests
//! and the Kubernetes store against a real apiserver run the same cases, so the engine can rely
//! on the same behaviour from both.
//!
//! A test crate expands the cases into tests with [`contract_tests!`](crate::contract_tests),
//! giving it an `async` expression that yields a [`Fixture`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use futures::StreamExt;
use kube::core::DynamicObject;
use serde_json::{Value, json};
use weir_model::Kind;

use crate::{Selector, Store, StoreError, WatchEvent, WatchStream};

/// What a case runs against: a store and two namespaces that exist and are empty.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// A namespace for this case alone.
    pub namespace: String,
    /// A second namespace for this case alone.
    pub other_namespace: String,
    /// Whatever must live as long as the case (a temporary directory), dropped with it.
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .field("other_namespace", &self.other_namespace)
            .finish_non_exhaustive()
    }
}

/// Expands every contract case into a `#[tokio::test]`; `$fixture` is an `async` expression
/// giving a fresh [`Fixture`] for each case.
#[macro_export]
macro_rules! contract_tests {
    ($fixture:expr) => {
        $crate::contract_tests!(@cases $fixture;
            create_then_get_round_trips,
            create_sets_server_fields_and_ignores_status,
            create_of_a_taken_name_fails,
            missing_objects_are_not_found,
            invalid_objects_are_rejected_naming_the_field,
            stale_update_conflicts,
            concurrent_updates_lose_nothing,
            generation_grows_only_with_the_spec,
            update_and_update_status_touch_only_their_part,
            list_filters_by_namespace_and_selector,
            delete_frees_the_name,
            kinds_do_not_collide,
            watch_starts_synced_then_follows_changes,
            watch_follows_the_selector,
            oversized_objects_are_refused,
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> ::anyhow::Result<()> {
                let fixture = $fixture.await;
                $crate::contract::$case(&fixture).await
            }
        )*
    };
}

/// How long a case waits for an expected watch event before failing instead of hanging.
const WATCH_PATIENCE: Duration = Duration::from_secs(20);

/// A Flow manifest.
pub fn flow(namespace: &str, name: &str, labels: &[(&str, &str)]) -> DynamicObject {
    object(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Flow",
        "metadata": { "name": name, "namespace": namespace, "labels": label_map(labels) },
        "spec": { "description": "mirrors images", "layout": { "tick": { "left": 10.0, "top": 20.5 } } },
    }))
}

/// A FlowNode manifest with one edge.
pub fn node(namespace: &str, name: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "FlowNode",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "flow": "mirror",
            "module": "common",
            "component": "ticker",
            "settings": { "interval": "5m", "nested": { "list": [1, "two", null, true] } },
            "edges": [{
                "port": "out",
                "to": { "node": "list", "port": "in" },
                "mapping": { "namespace": "{{ .namespace }}", "limit": 5 },
                "retry": { "attempts": 3, "initialBackoff": "200ms" },
                "timeout": "30s",
            }],
        },
    }))
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap_or_else(|err| unreachable!("fixture objects parse: {err}"))
}

fn label_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// JSON equality where `10.0` and `10` are the same number, as they are to the apiserver, which
/// writes whole floats as integers.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn name_of(object: &DynamicObject) -> &str {
    object.metadata.name.as_deref().unwrap_or_default()
}

fn names(objects: &[DynamicObject]) -> Vec<&str> {
    objects.iter().map(name_of).collect()
}

/// What a case created, read back: the spec and labels exactly as written.
pub async fn create_then_get_round_trips(f: &Fixture) -> Result<()> {
    let written = node(&f.namespace, "tick");
    f.store.create(written.clone()).await?;
    let read = f.store.get(Kind::FlowNode, &f.namespace, "tick").await?;
    ensure!(
        same_json(&read.data["spec"], &written.data["spec"]),
        "spec changed: {:#}",
        read.data["spec"]
    );
    ensure!(read.types == written.types, "type changed: {:?}", read.types);
    let labelled = flow(&f.namespace, "mirror", &[("app", "mirror")]);
    f.store.create(labelled.clone()).await?;
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.metadata.labels == labelled.metadata.labels, "labels changed");
    ensure!(
        same_json(&read.data["spec"], &labelled.data["spec"]),
        "spec changed: {:#}",
        read.data["spec"]
    );
    Ok(())
}

/// Create fills uid, resourceVersion, generation 1 and creation time, and drops any status.
pub async fn create_sets_server_fields_and_ignores_status(f: &Fixture) -> Result<()> {
    let mut written = flow(&f.namespace, "mirror", &[]);
    written.data["status"] = json!({ "nodes": 7 });
    let created = f.store.create(written).await?;
    let meta = &created.metadata;
    ensure!(meta.uid.as_deref().is_some_and(|u| !u.is_empty()), "no uid");
    ensure!(meta.resource_version.is_some(), "no resourceVersion");
    ensure!(meta.generation == Some(1), "generation {:?}", meta.generation);
    ensure!(meta.creation_timestamp.is_some(), "no creationTimestamp");
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.metadata.resource_version == meta.resource_version, "read a different version");
    ensure!(
        read.data.get("status").is_none_or(|s| s.get("nodes").is_none()),
        "status kept on create"
    );
    Ok(())
}

/// A second create of the same name fails and leaves the first object alone.
pub async fn create_of_a_taken_name_fails(f: &Fixture) -> Result<()> {
    f.store.create(flow(&f.namespace, "mirror", &[("v", "1")])).await?;
    let err = f
        .store
        .create(flow(&f.namespace, "mirror", &[("v", "2")]))
        .await
        .err()
        .context("second create succeeded")?;
    ensure!(matches!(err, StoreError::AlreadyExists(_)), "wrong error: {err}");
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.metadata.labels.unwrap_or_default()["v"] == "1", "first object was overwritten");
    Ok(())
}

/// Reading, updating and deleting what does not exist says so.
pub async fn missing_objects_are_not_found(f: &Fixture) -> Result<()> {
    let check = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::NotFound(object)) if object.name == "ghost" => Ok(()),
        other => bail!("{what}: expected not found, got {other:?}"),
    };
    check(f.store.get(Kind::Flow, &f.namespace, "ghost").await.map(drop), "get")?;
    check(f.store.delete(Kind::Flow, &f.namespace, "ghost").await, "delete")?;
    let mut ghost = flow(&f.namespace, "ghost", &[]);
    ghost.metadata.resource_version = Some("1".to_owned());
    check(f.store.update(ghost.clone()).await.map(drop), "update")?;
    check(f.store.update_status(ghost).await.map(drop), "update_status")?;
    Ok(())
}

/// An object that breaks its kind's rules is refused with the field named, and nothing is kept.
pub async fn invalid_objects_are_rejected_naming_the_field(f: &Fixture) -> Result<()> {
    let mut bad = node(&f.namespace, "tick");
    bad.data["spec"]["edges"][0]["to"]["node"] = json!("Not_A_Node");
    let err = f.store.create(bad).await.err().context("invalid node was stored")?;
    ensure!(matches!(err, StoreError::Invalid { .. }), "wrong error: {err}");
    ensure!(err.to_string().contains("spec.edges[0].to.node"), "field not named: {err}");
    let missing = f.store.get(Kind::FlowNode, &f.namespace, "tick").await;
    ensure!(matches!(missing, Err(StoreError::NotFound(_))), "something was stored: {missing:?}");

    let created = f.store.create(node(&f.namespace, "tick")).await?;
    let mut bad = created;
    bad.data["spec"]["component"] = json!("Ticker!");
    let err = f.store.update(bad).await.err().context("invalid update was stored")?;
    ensure!(err.to_string().contains("spec.component"), "field not named: {err}");
    Ok(())
}

/// An update from a stale read is refused.
pub async fn stale_update_conflicts(f: &Fixture) -> Result<()> {
    let created = f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    let mut first = created.clone();
    first.data["spec"]["description"] = json!("first");
    let updated = f.store.update(first).await?;
    ensure!(updated.metadata.resource_version != created.metadata.resource_version, "version kept");
    let mut second = created;
    second.data["spec"]["description"] = json!("second");
    let err = f.store.update(second).await.err().context("stale update succeeded")?;
    ensure!(matches!(err, StoreError::Conflict { .. }), "wrong error: {err}");
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.data["spec"]["description"] == "first", "stale update won");
    Ok(())
}

/// Writers that retry on conflict all get their change in: no update is lost.
pub async fn concurrent_updates_lose_nothing(f: &Fixture) -> Result<()> {
    const WRITERS: usize = 8;
    f.store.create(flow(&f.namespace, "counter", &[])).await?;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&f.store);
        let namespace = f.namespace.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0usize;
            loop {
                let mut current = store.get(Kind::Flow, &namespace, "counter").await?;
                let labels = current.metadata.labels.get_or_insert_with(BTreeMap::new);
                labels.insert(format!("writer-{writer}"), "done".to_owned());
                match store.update(current).await {
                    Ok(_) => return Ok::<usize, StoreError>(conflicts),
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(other) => return Err(other),
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let read = f.store.get(Kind::Flow, &f.namespace, "counter").await?;
    let labels = read.metadata.labels.unwrap_or_default();
    ensure!(labels.len() == WRITERS, "lost updates: only {labels:?} survived");
    Ok(())
}

/// Generation starts at 1 and grows with spec changes only, not labels or status.
pub async fn generation_grows_only_with_the_spec(f: &Fixture) -> Result<()> {
    let created = f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    let mut relabelled = created;
    relabelled.metadata.labels = Some(label_map(&[("team", "infra")]));
    let relabelled = f.store.update(relabelled).await?;
    ensure!(relabelled.metadata.generation == Some(1), "labels bumped generation");
    let mut with_status = relabelled;
    with_status.data["status"] = json!({ "nodes": 3 });
    let with_status = f.store.update_status(with_status).await?;
    ensure!(with_status.metadata.generation == Some(1), "status bumped generation");
    let mut changed = with_status;
    changed.data["spec"]["description"] = json!("changed");
    let changed = f.store.update(changed).await?;
    ensure!(
        changed.metadata.generation == Some(2),
        "spec change gave {:?}",
        changed.metadata.generation
    );
    Ok(())
}

/// `update` keeps the stored status; `update_status` keeps the stored spec.
pub async fn update_and_update_status_touch_only_their_part(f: &Fixture) -> Result<()> {
    let created = f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    let mut status = created;
    status.data["status"] = json!({ "nodes": 3, "readyNodes": 2 });
    status.data["spec"]["description"] = json!("sneaked in with status");
    let status = f.store.update_status(status).await?;
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.data["status"]["nodes"] == 3, "status not written: {:#}", read.data);
    ensure!(read.data["spec"]["description"] == "mirrors images", "update_status changed the spec");

    let mut spec = status;
    spec.data["spec"]["description"] = json!("new");
    spec.data["status"] = json!({ "nodes": 99 });
    f.store.update(spec).await?;
    let read = f.store.get(Kind::Flow, &f.namespace, "mirror").await?;
    ensure!(read.data["spec"]["description"] == "new", "spec not written");
    ensure!(
        read.data["status"]["nodes"] == 3,
        "update changed the status: {:#}",
        read.data["status"]
    );
    Ok(())
}

/// Lists are scoped by namespace and label selector, sorted by name.
pub async fn list_filters_by_namespace_and_selector(f: &Fixture) -> Result<()> {
    f.store.create(flow(&f.namespace, "b-web", &[("app", "web"), ("tier", "front")])).await?;
    f.store.create(flow(&f.namespace, "a-db", &[("app", "db")])).await?;
    f.store.create(flow(&f.namespace, "c-bare", &[])).await?;
    f.store.create(flow(&f.other_namespace, "elsewhere", &[("app", "web")])).await?;
    let list = |selector: &'static str| {
        let store = Arc::clone(&f.store);
        let namespace = f.namespace.clone();
        async move {
            let selector: Selector = selector.parse()?;
            anyhow::Ok(store.list(Kind::Flow, Some(&namespace), &selector).await?)
        }
    };
    ensure!(names(&list("").await?) == ["a-db", "b-web", "c-bare"], "everything");
    ensure!(names(&list("app=web").await?) == ["b-web"], "equality");
    ensure!(names(&list("app!=web").await?) == ["a-db", "c-bare"], "inequality");
    ensure!(names(&list("app in (web,db)").await?) == ["a-db", "b-web"], "set");
    ensure!(names(&list("!app").await?) == ["c-bare"], "absence");
    ensure!(names(&list("app,tier=front").await?) == ["b-web"], "conjunction");
    let everywhere = f.store.list(Kind::Flow, None, &"app=web".parse()?).await?;
    let everywhere: Vec<&str> =
        names(&everywhere).into_iter().filter(|n| ["b-web", "elsewhere"].contains(n)).collect();
    ensure!(
        everywhere == ["b-web", "elsewhere"] || everywhere == ["elsewhere", "b-web"],
        "all namespaces: {everywhere:?}"
    );
    Ok(())
}

/// Deleting removes the object; the name can be used again and gets a new identity.
pub async fn delete_frees_the_name(f: &Fixture) -> Result<()> {
    let first = f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    f.store.delete(Kind::Flow, &f.namespace, "mirror").await?;
    let gone = f.store.get(Kind::Flow, &f.namespace, "mirror").await;
    ensure!(matches!(gone, Err(StoreError::NotFound(_))), "still there: {gone:?}");
    let second = f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    ensure!(second.metadata.uid != first.metadata.uid, "uid reused");
    ensure!(second.metadata.resource_version != first.metadata.resource_version, "version reused");
    let mut stale = first;
    stale.data["spec"]["description"] = json!("from before the delete");
    let err =
        f.store.update(stale).await.err().context("update of the deleted object succeeded")?;
    ensure!(matches!(err, StoreError::Conflict { .. }), "wrong error: {err}");
    Ok(())
}

/// Objects of different kinds may share a name.
pub async fn kinds_do_not_collide(f: &Fixture) -> Result<()> {
    f.store.create(flow(&f.namespace, "mirror", &[])).await?;
    f.store.create(node(&f.namespace, "mirror")).await?;
    f.store.delete(Kind::Flow, &f.namespace, "mirror").await?;
    f.store.get(Kind::FlowNode, &f.namespace, "mirror").await?;
    Ok(())
}

async fn next_event(events: &mut WatchStream) -> Result<WatchEvent> {
    let event = tokio::time::timeout(WATCH_PATIENCE, events.next())
        .await
        .context("no watch event arrived")?
        .context("the watch ended")??;
    Ok(event)
}

/// The next event that is not a re-sync, checking any re-sync agrees with `expected_names`.
async fn next_change(events: &mut WatchStream, expected_names: &[&str]) -> Result<WatchEvent> {
    loop {
        match next_event(events).await? {
            WatchEvent::Synced(objects) => {
                ensure!(
                    names(&objects) == expected_names,
                    "re-sync disagrees: {:?}",
                    names(&objects)
                );
            }
            change => return Ok(change),
        }
    }
}

/// A watch opens with the current objects, then reports creates, updates, status writes and
/// deletes in order.
pub async fn watch_starts_synced_then_follows_changes(f: &Fixture) -> Result<()> {
    f.store.create(flow(&f.namespace, "existing", &[])).await?;
    let mut events = f.store.watch(Kind::Flow, Some(&f.namespace), &Selector::everything());
    match next_event(&mut events).await? {
        WatchEvent::Synced(objects) => {
            ensure!(names(&objects) == ["existing"], "synced {:?}", names(&objects));
        }
        other => bail!("expected Synced first, got {other:?}"),
    }
    f.store.create(flow(&f.other_namespace, "elsewhere", &[])).await?;
    let created = f.store.create(flow(&f.namespace, "new", &[])).await?;
    match next_change(&mut events, &["existing"]).await? {
        WatchEvent::Applied(o) if name_of(&o) == "new" => {}
        other => bail!("expected Applied new, got {other:?}"),
    }
    let mut changed = created;
    changed.data["spec"]["description"] = json!("changed");
    let changed = f.store.update(changed).await?;
    match next_change(&mut events, &["existing", "new"]).await? {
        WatchEvent::Applied(o) if o.data["spec"]["description"] == "changed" => {}
        other => bail!("expected the update, got {other:?}"),
    }
    let mut status = changed;
    status.data["status"] = json!({ "nodes": 1 });
    f.store.update_status(status).await?;
    match next_change(&mut events, &["existing", "new"]).await? {
        WatchEvent::Applied(o) if o.data["status"]["nodes"] == 1 => {}
        other => bail!("expected the status write, got {other:?}"),
    }
    f.store.delete(Kind::Flow, &f.namespace, "existing").await?;
    match next_change(&mut events, &["existing", "new"]).await? {
        WatchEvent::Deleted(o) if name_of(&o) == "existing" => {}
        other => bail!("expected Deleted existing, got {other:?}"),
    }
    Ok(())
}

/// A watch with a selector reports an object that stops matching as deleted.
pub async fn watch_follows_the_selector(f: &Fixture) -> Result<()> {
    let mut events = f.store.watch(Kind::Flow, Some(&f.namespace), &"app=web".parse()?);
    match next_event(&mut events).await? {
        WatchEvent::Synced(objects) => ensure!(objects.is_empty(), "synced {:?}", names(&objects)),
        other => bail!("expected Synced first, got {other:?}"),
    }
    f.store.create(flow(&f.namespace, "db", &[("app", "db")])).await?;
    let web = f.store.create(flow(&f.namespace, "web", &[("app", "web")])).await?;
    match next_change(&mut events, &[]).await? {
        WatchEvent::Applied(o) if name_of(&o) == "web" => {}
        other => bail!("expected Applied web, got {other:?}"),
    }
    let mut relabelled = web;
    relabelled.metadata.labels = Some(label_map(&[("app", "retired")]));
    f.store.update(relabelled).await?;
    match next_change(&mut events, &["web"]).await? {
        WatchEvent::Deleted(o) if name_of(&o) == "web" => {}
        other => bail!("expected web to leave the selection, got {other:?}"),
    }
    Ok(())
}

/// An object over etcd's size limit is refused with a clear error, and nothing is stored.
pub async fn oversized_objects_are_refused(f: &Fixture) -> Result<()> {
    let mut big = node(&f.namespace, "big");
    big.data["spec"]["settings"]["blob"] = json!("x".repeat(crate::MAX_OBJECT_BYTES + 1024));
    let err = f.store.create(big).await.err().context("oversized object was stored")?;
    ensure!(matches!(err, StoreError::TooLarge { .. }), "wrong error: {err}");
    ensure!(
        err.to_string().contains("FlowNode") && err.to_string().contains("big"),
        "object not named: {err}"
    );
    let missing = f.store.get(Kind::FlowNode, &f.namespace, "big").await;
    ensure!(matches!(missing, Err(StoreError::NotFound(_))), "something was stored: {missing:?}");
    Ok(())
}
