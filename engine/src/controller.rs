//! The flow controller: keeps each Flow's status (node counts, and `Ready` and `Degraded`
//! conditions that name the node and edge at fault) in step with its nodes and the installed
//! module catalogues; gives each node an owner reference to its flow (so Kubernetes' garbage
//! collector deletes a flow's nodes with it, engine running or not); and deletes a flow's
//! nodes when the flow is deleted, and at start those whose owning flow is gone (the embedded
//! store has no garbage collector).
//!
//! It works from what its watches bring, never from lists: each change marks the flows it
//! touches (a node's flow, the flow itself; every flow for a catalogue, since any flow may use
//! it), and only those are checked again, so the status a host writes every second re-checks
//! one flow, not all of them.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use weir_model::{
    Condition, ConditionStatus, Flow, FlowNode, FlowStatus, Kind, Module, check::check_flow,
};
use weir_store::{DynamicObject, Selector, Store, StoreError, WatchEvent};

use crate::scope::Scope;

/// How long changes settle before the flows are checked again, so a `kubectl apply` of a
/// whole directory is checked once.
const SETTLE: Duration = Duration::from_millis(200);

/// A resource by namespace and name.
type Key = (String, String);

/// Flows to check, each flow's nodes, the catalogues to check them against, and the nodes'
/// ownership to mend.
type Checking = (Vec<DynamicObject>, BTreeMap<Key, Vec<FlowNode>>, Vec<Module>, Ownership);

/// What the watches brought, and which flows need checking.
#[derive(Default)]
struct Seen {
    flows: BTreeMap<Key, DynamicObject>,
    nodes: BTreeMap<Key, FlowNode>,
    /// The nodes as stored, for writing their metadata back unchanged but for the owner.
    stored_nodes: BTreeMap<Key, DynamicObject>,
    modules: BTreeMap<Key, Module>,
    /// Flows to check again.
    dirty: BTreeSet<Key>,
    /// Every flow is to be checked again (a catalogue changed, a watch listed again).
    all_dirty: bool,
    /// Whether the flows and the nodes have each been listed once: until both have, no node
    /// can be told an orphan.
    flows_listed: bool,
    nodes_listed: bool,
}

impl Seen {
    /// Takes in one watch event of `kind`.
    fn take(&mut self, kind: Kind, event: WatchEvent) {
        match (kind, event) {
            (Kind::Flow, WatchEvent::Synced(flows)) => {
                self.flows = flows.into_iter().filter_map(|f| Some((key_of(&f)?, f))).collect();
                self.all_dirty = true;
                self.flows_listed = true;
            }
            (Kind::Flow, WatchEvent::Applied(flow)) => {
                if let Some(key) = key_of(&flow) {
                    self.dirty.insert(key.clone());
                    self.flows.insert(key, flow);
                }
            }
            (Kind::Flow, WatchEvent::Deleted(flow)) => {
                if let Some(key) = key_of(&flow) {
                    self.flows.remove(&key);
                }
            }
            (Kind::FlowNode, WatchEvent::Synced(nodes)) => {
                self.stored_nodes =
                    nodes.iter().filter_map(|n| Some((key_of(n)?, n.clone()))).collect();
                self.nodes = typed::<FlowNode>(nodes)
                    .into_iter()
                    .filter_map(|n| Some((node_key(&n)?, n)))
                    .collect();
                self.all_dirty = true;
                self.nodes_listed = true;
            }
            (Kind::FlowNode, WatchEvent::Applied(node)) => {
                if let Some(key) = key_of(&node) {
                    self.stored_nodes.insert(key, node.clone());
                }
                let Some(node) = typed::<FlowNode>(vec![node]).pop() else { return };
                let Some(key) = node_key(&node) else { return };
                self.dirty.insert(flow_of(&node));
                // A node moved to another flow leaves the old one changed too.
                if let Some(before) = self.nodes.insert(key, node) {
                    self.dirty.insert(flow_of(&before));
                }
            }
            (Kind::FlowNode, WatchEvent::Deleted(node)) => {
                let Some(key) = key_of(&node) else { return };
                self.stored_nodes.remove(&key);
                if let Some(before) = self.nodes.remove(&key) {
                    self.dirty.insert(flow_of(&before));
                }
            }
            (Kind::Module, event) => {
                match event {
                    WatchEvent::Synced(modules) => {
                        self.modules = typed::<Module>(modules)
                            .into_iter()
                            .filter_map(|m| Some((module_key(&m)?, m)))
                            .collect();
                    }
                    WatchEvent::Applied(module) => {
                        if let Some(module) = typed::<Module>(vec![module]).pop()
                            && let Some(key) = module_key(&module)
                        {
                            self.modules.insert(key, module);
                        }
                    }
                    WatchEvent::Deleted(module) => {
                        if let Some(key) = key_of(&module) {
                            self.modules.remove(&key);
                        }
                    }
                }
                self.all_dirty = true;
            }
        }
    }

    /// The flows to check now, each with its nodes, and the catalogues; nothing is dirty
    /// after.
    fn take_dirty(&mut self) -> Checking {
        let dirty = std::mem::take(&mut self.dirty);
        let all = std::mem::take(&mut self.all_dirty);
        let ownership = if self.flows_listed && self.nodes_listed {
            self.ownership(all, |flow| all || dirty.contains(flow))
        } else {
            Ownership::default()
        };
        let flows: Vec<DynamicObject> = self
            .flows
            .iter()
            .filter(|(key, _)| all || dirty.contains(*key))
            .map(|(_, flow)| flow.clone())
            .collect();
        let wanted: BTreeSet<Key> = flows.iter().filter_map(key_of).collect();
        let mut nodes: BTreeMap<Key, Vec<FlowNode>> = BTreeMap::new();
        for node in self.nodes.values() {
            let flow = flow_of(node);
            if wanted.contains(&flow) {
                nodes.entry(flow).or_default().push(node.clone());
            }
        }
        (flows, nodes, self.modules.values().cloned().collect(), ownership)
    }

    /// The nodes of the flows `wanted` says that their flow does not own yet, and, after a
    /// full listing (`listed`: at start, or when a watch listed again), the nodes whose owning
    /// flow is gone: a flow deleted while no controller ran (a deletion seen takes its nodes at
    /// once). A node not yet owned is never one, as `kubectl apply -f dir/` may create nodes
    /// before their flow.
    fn ownership(&self, listed: bool, wanted: impl Fn(&Key) -> bool) -> Ownership {
        let mut found = Ownership::default();
        let present: BTreeSet<&str> = if listed {
            self.flows.values().filter_map(|flow| flow.metadata.uid.as_deref()).collect()
        } else {
            BTreeSet::new()
        };
        for (key, node) in &self.nodes {
            let owners = node.metadata.owner_references.as_deref().unwrap_or_default();
            let flow_owners: Vec<_> = owners.iter().filter(|o| o.kind == "Flow").collect();
            let flow_key = flow_of(node);
            let flow_uid = self.flows.get(&flow_key).and_then(|flow| flow.metadata.uid.clone());
            match flow_uid {
                Some(uid) if wanted(&flow_key) && !flow_owners.iter().any(|o| o.uid == uid) => {
                    if let Some(stored) = self.stored_nodes.get(key) {
                        found.unowned.push((stored.clone(), flow_key.1.clone(), uid));
                    }
                }
                None if listed
                    && !flow_owners.is_empty()
                    && flow_owners.iter().all(|o| !present.contains(o.uid.as_str())) =>
                {
                    found.orphans.push(key.clone());
                }
                _ => {}
            }
        }
        found
    }
}

/// Nodes to give an owner reference to their flow (the node, its flow's name and uid), and
/// nodes whose owning flow is gone.
#[derive(Debug, Default)]
struct Ownership {
    unowned: Vec<(DynamicObject, String, String)>,
    orphans: Vec<Key>,
}

fn key_of(object: &DynamicObject) -> Option<Key> {
    Some((object.metadata.namespace.clone().unwrap_or_default(), object.metadata.name.clone()?))
}

fn node_key(node: &FlowNode) -> Option<Key> {
    Some((node.metadata.namespace.clone().unwrap_or_default(), node.metadata.name.clone()?))
}

fn module_key(module: &Module) -> Option<Key> {
    Some((module.metadata.namespace.clone().unwrap_or_default(), module.metadata.name.clone()?))
}

/// The flow a node belongs to.
fn flow_of(node: &FlowNode) -> Key {
    (node.metadata.namespace.clone().unwrap_or_default(), node.spec.flow.to_string())
}

/// Runs the controller over the flows of `scope` until `stop` is cancelled, acting only while
/// `leads` says this replica leads (a `weir up` leads for good).
pub async fn run(
    store: Arc<dyn Store>,
    scope: Scope,
    mut leads: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    crate::metrics::controller_started();
    let changed = Arc::new(Notify::new());
    let seen = Arc::new(Mutex::new(Seen::default()));
    for kind in Kind::ALL {
        let events = weir_store::follow(Arc::clone(&store), kind, scope.of(kind), stop.clone());
        let following = Following {
            store: Arc::clone(&store),
            seen: Arc::clone(&seen),
            changed: Arc::clone(&changed),
            leads: leads.clone(),
        };
        tokio::spawn(following.follow(kind, events));
    }
    loop {
        tokio::select! {
            () = changed.notified() => {}
            // Taking the lead: what the last leader left may be stale.
            Ok(()) = leads.changed() => {
                seen.lock().unwrap_or_else(PoisonError::into_inner).all_dirty = true;
            }
            () = stop.cancelled() => return,
        }
        tokio::time::sleep(SETTLE).await;
        if !*leads.borrow() {
            continue;
        }
        let checking = seen.lock().unwrap_or_else(PoisonError::into_inner).take_dirty();
        if let Err(err) = write_statuses(&*store, checking).await {
            tracing::warn!(error = %err, "checking flows failed");
            // Tried again on the next change.
            seen.lock().unwrap_or_else(PoisonError::into_inner).all_dirty = true;
        }
    }
}

/// One kind's watch, feeding what the controller has seen.
struct Following {
    store: Arc<dyn Store>,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
    leads: watch::Receiver<bool>,
}

impl Following {
    /// Follows one kind's `events`: each change is taken in and wakes the controller, and on
    /// the leading replica a deleted flow takes its nodes along.
    async fn follow(self, kind: Kind, mut events: BoxStream<'static, WatchEvent>) {
        while let Some(event) = events.next().await {
            let leading = *self.leads.borrow();
            if let (Kind::Flow, WatchEvent::Deleted(flow), true) = (kind, &event, leading) {
                delete_nodes_of(&*self.store, flow).await;
            }
            self.seen.lock().unwrap_or_else(PoisonError::into_inner).take(kind, event);
            self.changed.notify_one();
        }
    }
}

/// Deletes the nodes of the deleted `flow` (those whose spec names it): those it owns, and
/// those no flow of its name owns yet (not yet owned, or still owned by a flow they were moved
/// from) unless a flow of that name is back already (deleted and applied again), whose nodes
/// they may be. Nodes another flow of the name owns are that flow's.
async fn delete_nodes_of(store: &dyn Store, flow: &DynamicObject) {
    let (Some(namespace), Some(name)) =
        (flow.metadata.namespace.as_deref(), flow.metadata.name.as_deref())
    else {
        return;
    };
    let nodes = match store.list(Kind::FlowNode, Some(namespace), &Selector::everything()).await {
        Ok(nodes) => nodes,
        Err(err) => {
            return tracing::warn!(error = %err, flow = name, "cannot list the nodes of a deleted flow");
        }
    };
    // Listed, as the controller may list and watch flows but not get one.
    let back = match store.list(Kind::Flow, Some(namespace), &Selector::everything()).await {
        Ok(flows) => flows.iter().any(|flow| flow.metadata.name.as_deref() == Some(name)),
        Err(err) => {
            return tracing::warn!(error = %err, flow = name, "cannot tell whether a deleted flow is back");
        }
    };
    let deleted_uid = flow.metadata.uid.as_deref();
    let of_the_deleted = |node: &DynamicObject| {
        let owners = node.metadata.owner_references.as_deref().unwrap_or_default();
        let mut named = owners.iter().filter(|o| o.kind == "Flow" && o.name == name).peekable();
        match named.peek() {
            None => !back,
            Some(_) => named.any(|o| Some(o.uid.as_str()) == deleted_uid),
        }
    };
    for node in nodes.iter().filter(|n| {
        n.data.pointer("/spec/flow").and_then(|f| f.as_str()) == Some(name) && of_the_deleted(n)
    }) {
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        match store.delete(Kind::FlowNode, namespace, node_name).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {
                tracing::info!(flow = name, node = node_name, "deleted with its flow");
            }
            Err(err) => {
                tracing::warn!(error = %err, node = node_name, "cannot delete a node of a deleted flow");
            }
        }
    }
}

/// Checks `flows` against their nodes and the catalogues, and writes the status of those whose
/// status changed.
async fn write_statuses(
    store: &dyn Store,
    (flows, nodes, modules, ownership): Checking,
) -> Result<(), StoreError> {
    // Apart from the statuses: a refused owner must not keep the flows unchecked.
    mend_ownership(store, ownership).await;
    for object in flows {
        let Some(flow) = typed::<Flow>(vec![object.clone()]).pop() else { continue };
        let Some(key) = key_of(&object) else { continue };
        let started = Instant::now();
        let members = nodes.get(&key).map(Vec::as_slice).unwrap_or_default();
        let written = write_status(store, object, &flow, status_of(&flow, members, &modules)).await;
        crate::metrics::reconciled(written.is_ok(), started.elapsed());
        written?;
    }
    Ok(())
}

/// Writes `status` as `flow`'s (stored as `object`) unless it has it already.
async fn write_status(
    store: &dyn Store,
    object: DynamicObject,
    flow: &Flow,
    status: FlowStatus,
) -> Result<(), StoreError> {
    if flow.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut update = object;
    if let Some(fields) = update.data.as_object_mut() {
        fields.insert("status".to_owned(), json!(status));
    }
    match store.update_status(update).await {
        // Changed or gone meanwhile: the watch brings it back.
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Gives each node an owner reference to its flow, so that in a cluster deleting the flow
/// deletes its nodes even while no engine runs (Kubernetes' garbage collector does), and
/// deletes the nodes whose owning flow is gone.
async fn mend_ownership(store: &dyn Store, ownership: Ownership) {
    for (object, flow, uid) in ownership.unowned {
        let mut object = object;
        let name = object.metadata.name.clone().unwrap_or_default();
        owned_by_flow(&mut object, &flow, Some(&uid));
        match store.update(object).await {
            // Changed or gone meanwhile: the watch brings it back.
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(err) => tracing::warn!(error = %err, node = name, "cannot give a node its owner"),
        }
    }
    for (namespace, name) in ownership.orphans {
        match store.delete(Kind::FlowNode, &namespace, &name).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {
                tracing::info!(node = name, "deleted: the flow that owned it is gone");
            }
            Err(err) => tracing::warn!(error = %err, node = name, "cannot delete an orphan node"),
        }
    }
}

/// Makes the Flow `flow` (of `uid`) a node's one owning flow; with no uid, it leaves the node
/// owned by no flow, for the controller to mend.
pub fn owned_by_flow(node: &mut DynamicObject, flow: &str, uid: Option<&str>) {
    let owners = node.metadata.owner_references.get_or_insert_with(Vec::new);
    owners.retain(|o| o.kind != "Flow");
    if let Some(uid) = uid {
        owners.push(OwnerReference {
            api_version: weir_model::API_VERSION.to_owned(),
            kind: "Flow".to_owned(),
            name: flow.to_owned(),
            uid: uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: None,
        });
    }
}

fn status_of(flow: &Flow, nodes: &[FlowNode], modules: &[Module]) -> FlowStatus {
    let problems = check_flow(nodes, modules);
    let ready_nodes = nodes.iter().filter(|n| is_ready(n)).count();
    let generation = flow.metadata.generation;
    let previous = flow.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let now = {
        let now = k8s_openapi::jiff::Timestamp::now();
        k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
    };
    let condition = |type_: &str, holds: bool, reason: &str, message: String| {
        Condition {
            type_: type_.to_owned(),
            status: if holds { ConditionStatus::True } else { ConditionStatus::False },
            reason: reason.to_owned(),
            message,
            last_transition_time: None,
            observed_generation: generation,
        }
        .since(previous, &now)
    };
    let problem_list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let (ready, reason, message) = match (problems.is_empty(), ready_nodes == nodes.len()) {
        (false, _) => (false, "FlowInvalid", problem_list.clone()),
        (true, false) => {
            (false, "NodesNotReady", format!("{ready_nodes} of {} nodes are ready", nodes.len()))
        }
        (true, true) => (true, "AllNodesReady", String::new()),
    };
    let (degraded, degraded_reason, degraded_message) = degraded(problem_list, nodes);
    FlowStatus {
        observed_generation: generation,
        conditions: vec![
            condition("Ready", ready, reason, message),
            condition("Degraded", degraded, degraded_reason, degraded_message),
        ],
        nodes: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        ready_nodes: u32::try_from(ready_nodes).unwrap_or(u32::MAX),
    }
}

/// The flow's `Degraded` condition: what is wrong with the flow itself (`problems`, the
/// check's findings, joined), else what its nodes say they cannot do (their own `Degraded`).
fn degraded(problems: String, nodes: &[FlowNode]) -> (bool, &'static str, String) {
    if !problems.is_empty() {
        return (true, "FlowInvalid", problems);
    }
    let reported: Vec<String> = nodes
        .iter()
        .filter_map(|node| {
            let condition = node
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Degraded" && c.status == ConditionStatus::True)?;
            Some(format!(
                "node {}: {}",
                node.metadata.name.as_deref().unwrap_or_default(),
                condition.message
            ))
        })
        .collect();
    if reported.is_empty() {
        (false, "NoProblems", String::new())
    } else {
        (true, "NodesDegraded", reported.join("; "))
    }
}

fn is_ready(node: &FlowNode) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
            && s.observed_generation == node.metadata.generation
    })
}

/// The objects that parse as `T`; others are skipped with a warning (the store validated them,
/// so this only happens across versions).
fn typed<T: serde::de::DeserializeOwned>(objects: Vec<DynamicObject>) -> Vec<T> {
    objects
        .into_iter()
        .filter_map(|object| {
            let name = weir_store::describe(&object);
            match serde_json::to_value(object).and_then(serde_json::from_value) {
                Ok(typed) => Some(typed),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping {name}");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    // Owned arguments read better with json! literals at the call sites.
    #[allow(clippy::needless_pass_by_value)]
    fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": weir_model::API_VERSION, "kind": kind,
            "metadata": { "name": name, "namespace": "ns" }, "spec": spec,
        }))
        .unwrap_or_else(|err| panic!("{err}"))
    }

    fn node(name: &str, flow: &str) -> DynamicObject {
        object("FlowNode", name, json!({ "flow": flow, "module": "common", "component": "debug" }))
    }

    fn checked(seen: &mut Seen) -> Vec<String> {
        let (flows, nodes, _, _) = seen.take_dirty();
        flows
            .iter()
            .filter_map(key_of)
            .map(|key| {
                let members = nodes.get(&key).map_or(0, Vec::len);
                format!("{} ({members} nodes)", key.1)
            })
            .collect()
    }

    /// Nodes get an owner reference to their flow; a node whose owning flow was deleted while
    /// no controller ran goes when one starts, and a node whose flow does not exist yet stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_are_owned_by_their_flow_and_orphans_go_when_the_controller_starts()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> =
            Arc::new(weir_store::embedded::EmbeddedStore::open(dir.path())?);
        let flow = store.create(object("Flow", "f", json!({}))).await?;
        let uid = flow.metadata.uid.clone().ok_or("no uid")?;
        for (name, flow) in [("a", "f"), ("b", "f"), ("early", "later")] {
            store.create(node(name, flow)).await?;
        }
        let scope = Scope { home: "ns".into(), flows: None };
        let owners = |store: Arc<dyn Store>, name: &'static str| async move {
            let node = store.get(Kind::FlowNode, "ns", name).await?;
            Ok::<_, StoreError>(node.metadata.owner_references.unwrap_or_default())
        };
        let start = || {
            let stop = CancellationToken::new();
            let task = tokio::spawn(run(
                Arc::clone(&store),
                scope.clone(),
                watch::channel(true).1,
                stop.clone(),
            ));
            (stop, task)
        };
        let (stop, task) = start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let owned = owners(Arc::clone(&store), "a").await?;
            if owned.iter().any(|o| o.kind == "Flow" && o.name == "f" && o.uid == uid) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "a was never given its owner");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        task.await?;
        assert!(owners(Arc::clone(&store), "early").await?.is_empty(), "no flow, no owner");

        // The flow is deleted while no controller runs: its nodes stay, until one starts.
        store.delete(Kind::Flow, "ns", "f").await?;
        let (stop, task) = start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.get(Kind::FlowNode, "ns", "b").await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "the orphan b was never deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(store.get(Kind::FlowNode, "ns", "a").await.is_err(), "a is an orphan too");
        store.get(Kind::FlowNode, "ns", "early").await?;
        stop.cancel();
        task.await?;
        Ok(())
    }

    /// A deleted flow takes the nodes it owned, and those of its name nobody owns yet; once a
    /// flow of the name is back (deleted and applied again before the deletion was seen), the
    /// nodes nobody owns yet may be the new one's, and stay, as do those the new one owns.
    #[tokio::test]
    async fn a_deleted_flow_takes_its_own_nodes_not_those_of_the_flow_applied_again()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = weir_store::embedded::EmbeddedStore::open(dir.path())?;
        let exists = async |name: &str| store.get(Kind::FlowNode, "ns", name).await.is_ok();
        let owned = |name: &str, flow: &DynamicObject| {
            let mut node = node(name, "f");
            owned_by_flow(&mut node, "f", flow.metadata.uid.as_deref());
            node
        };
        let old = store.create(object("Flow", "f", json!({}))).await?;
        let g = store.create(object("Flow", "g", json!({}))).await?;
        // Moved from g to f, and not owned by f yet.
        let mut moved = node("moved", "f");
        owned_by_flow(&mut moved, "g", g.metadata.uid.as_deref());
        for node in [owned("old-owned", &old), node("old-unowned", "f"), node("other", "g"), moved]
        {
            store.create(node).await?;
        }
        store.delete(Kind::Flow, "ns", "f").await?;
        delete_nodes_of(&store, &old).await;
        assert!(!exists("old-owned").await && !exists("old-unowned").await);
        assert!(!exists("moved").await, "moved to the deleted flow, still owned by the one before");
        assert!(exists("other").await, "another flow's node");

        let old = store.create(object("Flow", "f", json!({}))).await?;
        store.create(owned("old-owned", &old)).await?;
        store.delete(Kind::Flow, "ns", "f").await?;
        let new = store.create(object("Flow", "f", json!({}))).await?;
        for node in [owned("new-owned", &new), node("new-unowned", "f")] {
            store.create(node).await?;
        }
        delete_nodes_of(&store, &old).await;
        assert!(!exists("old-owned").await, "the deleted flow's own node");
        assert!(exists("new-owned").await && exists("new-unowned").await, "the new flow's");
        Ok(())
    }

    #[test]
    fn a_flow_is_degraded_by_its_problems_first_then_by_what_its_nodes_say() {
        let reporting = |name: &str, status: &str, message: &str| -> FlowNode {
            serde_json::from_value(json!({
                "apiVersion": weir_model::API_VERSION, "kind": "FlowNode",
                "metadata": { "name": name, "namespace": "ns" },
                "spec": { "flow": "f", "module": "distribution", "component": "mirror_plan" },
                "status": { "conditions": [
                    { "type": "Ready", "status": "True", "reason": "Built", "message": "" },
                    { "type": "Degraded", "status": status, "reason": "NodeReported", "message": message },
                ] },
            }))
            .unwrap_or_else(|err| panic!("{err}"))
        };
        let nodes = [
            reporting("plan", "True", "1 of 5 images cannot be mirrored: a (gone)"),
            reporting("copy", "False", ""),
            reporting("other", "True", "b"),
        ];
        assert_eq!(
            degraded(String::new(), &nodes),
            (
                true,
                "NodesDegraded",
                "node plan: 1 of 5 images cannot be mirrored: a (gone); node other: b".to_owned()
            )
        );
        assert_eq!(
            degraded("edge x: no such node".to_owned(), &nodes),
            (true, "FlowInvalid", "edge x: no such node".to_owned())
        );
        assert_eq!(degraded(String::new(), &nodes[1..2]), (false, "NoProblems", String::new()));
    }

    #[test]
    fn a_change_rechecks_only_the_flows_it_touches() {
        let mut seen = Seen::default();
        let flows = vec![object("Flow", "one", json!({})), object("Flow", "two", json!({}))];
        seen.take(Kind::Flow, WatchEvent::Synced(flows));
        seen.take(Kind::FlowNode, WatchEvent::Synced(vec![node("a", "one"), node("b", "two")]));
        assert_eq!(checked(&mut seen), ["one (1 nodes)", "two (1 nodes)"], "a full list: all");
        assert!(checked(&mut seen).is_empty(), "nothing changed since");

        // A host writing a node's status touches that node's flow only.
        let mut status_written = node("a", "one");
        status_written.data["status"] =
            json!({ "counters": { "messagesIn": 3, "messagesOut": 3, "errors": 0 } });
        seen.take(Kind::FlowNode, WatchEvent::Applied(status_written));
        assert_eq!(checked(&mut seen), ["one (1 nodes)"]);

        // A node moved to another flow changes both; a deleted one its own.
        seen.take(Kind::FlowNode, WatchEvent::Applied(node("a", "two")));
        assert_eq!(checked(&mut seen), ["one (0 nodes)", "two (2 nodes)"]);
        seen.take(Kind::FlowNode, WatchEvent::Deleted(node("b", "two")));
        assert_eq!(checked(&mut seen), ["two (1 nodes)"]);

        // A flow's own change, and a catalogue's, which any flow may use.
        seen.take(
            Kind::Flow,
            WatchEvent::Applied(object("Flow", "one", json!({ "suspend": true }))),
        );
        assert_eq!(checked(&mut seen), ["one (0 nodes)"]);
        let module = object("Module", "common", json!({ "version": "1", "components": [] }));
        seen.take(Kind::Module, WatchEvent::Applied(module));
        assert_eq!(checked(&mut seen), ["one (0 nodes)", "two (1 nodes)"]);
    }
}
