//! The flow controller: keeps each Flow's status (node counts, and `Ready` and `Degraded`
//! conditions that name the node and edge at fault) in step with its nodes and the installed
//! module catalogues, and deletes a flow's nodes when the flow is deleted. Owner references do
//! that in a cluster; the embedded store has no garbage collector.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{StreamExt, stream::BoxStream};
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

/// Runs the controller over the flows of `scope` until `stop` is cancelled, acting only while
/// `leads` says this replica leads (a `weir up` leads for good).
pub async fn run(
    store: Arc<dyn Store>,
    scope: Scope,
    mut leads: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let changed = Arc::new(Notify::new());
    for kind in Kind::ALL {
        let events = weir_store::follow(Arc::clone(&store), kind, scope.of(kind), stop.clone());
        let store = Arc::clone(&store);
        tokio::spawn(follow(store, kind, events, Arc::clone(&changed), leads.clone()));
    }
    loop {
        tokio::select! {
            () = changed.notified() => {}
            // Taking the lead: what the last leader left may be stale.
            Ok(()) = leads.changed() => {}
            () = stop.cancelled() => return,
        }
        tokio::time::sleep(SETTLE).await;
        if !*leads.borrow() {
            continue;
        }
        if let Err(err) = reconcile(&*store, &scope).await {
            tracing::warn!(error = %err, "checking flows failed");
        }
    }
}

/// Follows one kind's `events`: any change wakes the controller, and on the leading replica a
/// deleted flow takes its nodes along.
async fn follow(
    store: Arc<dyn Store>,
    kind: Kind,
    mut events: BoxStream<'static, WatchEvent>,
    changed: Arc<Notify>,
    leads: watch::Receiver<bool>,
) {
    while let Some(event) = events.next().await {
        let leading = *leads.borrow();
        if let (Kind::Flow, WatchEvent::Deleted(flow), true) = (kind, &event, leading) {
            delete_nodes_of(&*store, flow).await;
        }
        changed.notify_one();
    }
}

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
    for node in
        nodes.iter().filter(|n| n.data.pointer("/spec/flow").and_then(|f| f.as_str()) == Some(name))
    {
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

/// Checks every flow of `scope` and writes the status of those whose status changed.
pub async fn reconcile(store: &dyn Store, scope: &Scope) -> Result<(), StoreError> {
    let everything = Selector::everything();
    let everything = &everything;
    let list = |kind: Kind| {
        let namespace = scope.of(kind);
        async move { store.list(kind, namespace.as_deref(), everything).await }
    };
    let flows = list(Kind::Flow).await?;
    let nodes: Vec<FlowNode> = typed(list(Kind::FlowNode).await?);
    let modules: Vec<Module> = typed(list(Kind::Module).await?);
    let mut by_flow: BTreeMap<(String, String), Vec<FlowNode>> = BTreeMap::new();
    for node in nodes {
        let key = (node.metadata.namespace.clone().unwrap_or_default(), node.spec.flow.to_string());
        by_flow.entry(key).or_default().push(node);
    }
    for object in flows {
        let Some(flow) = typed::<Flow>(vec![object.clone()]).pop() else { continue };
        let key = (
            flow.metadata.namespace.clone().unwrap_or_default(),
            flow.metadata.name.clone().unwrap_or_default(),
        );
        let members = by_flow.get(&key).map(Vec::as_slice).unwrap_or_default();
        let status = status_of(&flow, members, &modules);
        if flow.status.as_ref() == Some(&status) {
            continue;
        }
        let mut update = object;
        if let Some(fields) = update.data.as_object_mut() {
            fields.insert("status".to_owned(), json!(status));
        }
        match store.update_status(update).await {
            // Changed or gone meanwhile: the watch brings us back.
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn status_of(flow: &Flow, nodes: &[FlowNode], modules: &[Module]) -> FlowStatus {
    let problems = check_flow(nodes, modules);
    let ready_nodes = nodes.iter().filter(|n| is_ready(n)).count();
    let generation = flow.metadata.generation;
    let condition = |type_: &str, holds: bool, reason: &str, message: String| Condition {
        type_: type_.to_owned(),
        status: if holds { ConditionStatus::True } else { ConditionStatus::False },
        reason: reason.to_owned(),
        message,
        last_transition_time: None,
        observed_generation: generation,
    };
    let problem_list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let (ready, reason, message) = match (problems.is_empty(), ready_nodes == nodes.len()) {
        (false, _) => (false, "FlowInvalid", problem_list.clone()),
        (true, false) => {
            (false, "NodesNotReady", format!("{ready_nodes} of {} nodes are ready", nodes.len()))
        }
        (true, true) => (true, "AllNodesReady", String::new()),
    };
    FlowStatus {
        observed_generation: generation,
        conditions: vec![
            condition("Ready", ready, reason, message),
            condition(
                "Degraded",
                !problems.is_empty(),
                if problems.is_empty() { "NoProblems" } else { "FlowInvalid" },
                problem_list,
            ),
        ],
        nodes: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        ready_nodes: u32::try_from(ready_nodes).unwrap_or(u32::MAX),
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
