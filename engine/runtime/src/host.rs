//! Keeps a runtime in step with the store: publishes the hosted modules' catalogues as
//! `Module` resources, builds and stops nodes as their FlowNodes come, change and go, and
//! writes each node's status at most once per [`STATUS_INTERVAL`]. Nodes whose settings refer
//! to Secrets are built again when those Secrets change (looked at every
//! [`SECRET_REFRESH`]), or once they can be read when they could not: those are tried again
//! sooner, from [`UNREADABLE_RETRY`] doubling up to the refresh, since the usual cause is an
//! account whose rules are applied just after its flow (`kubectl apply` then `weir rbac`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weir_model::{
    Condition, ConditionStatus, Flow, FlowNode, FlowNodeStatus, Kind, flow_node::LastError,
};
use weir_store::{DynamicObject, Store, StoreError, WatchEvent};

use crate::{
    key::NodeKey,
    replicas::{self, HEARTBEAT},
    runtime::Runtime,
};

/// How often a replica looks whether it hosts its nodes yet, to list itself as soon as it does.
const HOSTING_POLL: Duration = Duration::from_millis(100);

/// How often node status is written, at most.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How often the Secrets that nodes' settings refer to are read again, by default.
pub const SECRET_REFRESH: Duration = Duration::from_secs(60);

/// How soon a node that could not read its Secrets tries again, at first.
pub const UNREADABLE_RETRY: Duration = Duration::from_secs(1);

/// The shortest refresh of the Secrets: shorter would read them in a busy loop.
pub const MIN_SECRET_REFRESH: Duration = Duration::from_secs(1);

/// When the Secrets are looked at next: the whole refresh when it is due, else the nodes that
/// could not read theirs, on a delay that doubles while they keep failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SecretSchedule {
    /// Until the whole refresh.
    until_refresh: Duration,
    /// The delay of the next retry of unreadable nodes.
    retry: Duration,
}

impl SecretSchedule {
    fn new(refresh: Duration) -> Self {
        Self { until_refresh: refresh, retry: UNREADABLE_RETRY.min(refresh) }
    }

    /// How long to sleep, and whether the look after it is the whole refresh.
    fn next(&self, unreadable: bool) -> (Duration, bool) {
        if unreadable && self.retry < self.until_refresh {
            (self.retry, false)
        } else {
            (self.until_refresh, true)
        }
    }

    /// The schedule after sleeping `slept` for a look that was the whole refresh or not.
    fn after(self, slept: Duration, whole: bool, refresh: Duration) -> Self {
        if whole {
            Self::new(refresh)
        } else {
            Self {
                until_refresh: self.until_refresh.saturating_sub(slept),
                retry: (self.retry * 2).min(refresh),
            }
        }
    }

    /// The schedule after a node failed `slept` into a wait: retries start over from the
    /// first, the whole refresh keeps its time.
    fn interrupted(self, slept: Duration, refresh: Duration) -> Self {
        Self {
            until_refresh: self.until_refresh.saturating_sub(slept),
            retry: UNREADABLE_RETRY.min(refresh),
        }
    }
}

/// How long the host waits before publishing the catalogues again after the store refused
/// them; doubled after each refusal in a row, up to [`PUBLISH_RETRY_MAX`], with jitter.
const PUBLISH_RETRY: Duration = Duration::from_secs(1);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs a runtime against a store until cancelled.
#[derive(Debug, Clone)]
pub struct Host {
    runtime: Runtime,
    store: Arc<dyn Store>,
    namespace: String,
    watched: Option<String>,
    endpoint: Option<String>,
    /// This replica's name, as it lists itself among the module's replicas.
    replica: String,
    secret_refresh: Duration,
    nodes: Arc<Mutex<HashMap<NodeKey, Tracked>>>,
    /// Cancelled when this replica takes itself out of the modules' replicas.
    leaving: CancellationToken,
    /// Held while this replica writes its entry, so that leaving waits for a write under way.
    listing: Arc<tokio::sync::Mutex<()>>,
    /// Told when a node that refers to Secrets did not build, so the retries start at once
    /// rather than after a wait chosen when all was well.
    unreadable: Arc<tokio::sync::Notify>,
}

/// What the host knows of a node it tried to build.
#[derive(Debug, Clone)]
struct Tracked {
    generation: Option<i64>,
    built: Result<(), String>,
    written: Option<FlowNodeStatus>,
    /// The node, when its settings refer to Secrets, to build it again when they change.
    refers: Option<Arc<FlowNode>>,
}

impl Host {
    /// A host for `runtime`'s nodes in `store`; the `Module` resources go to `namespace`, where
    /// the other modules' are read too. It runs the nodes of every namespace unless
    /// [`Host::watching`] says otherwise.
    pub fn new(runtime: Runtime, store: Arc<dyn Store>, namespace: &str) -> Self {
        Self {
            runtime,
            store,
            namespace: namespace.to_owned(),
            watched: None,
            endpoint: None,
            replica: format!("replica-{}", std::process::id()),
            secret_refresh: SECRET_REFRESH,
            nodes: Arc::default(),
            leaving: CancellationToken::new(),
            listing: Arc::default(),
            unreadable: Arc::default(),
        }
    }

    /// Lists this replica, called `replica` (its pod's name), with `endpoint` (its gRPC
    /// address, such as `http://10.0.0.7:7421`) among the hosted modules' replicas once its
    /// nodes are built, so other modules deliver to it (see [`crate::replicas`]).
    #[must_use]
    pub fn with_endpoint(mut self, replica: &str, endpoint: String) -> Self {
        self.replica = replica.to_owned();
        self.endpoint = Some(endpoint);
        self
    }

    /// Reads the Secrets nodes' settings refer to again every `every` (instead of
    /// [`SECRET_REFRESH`]), at least every [`MIN_SECRET_REFRESH`].
    #[must_use]
    pub fn refreshing_secrets_every(mut self, every: Duration) -> Self {
        self.secret_refresh = every.max(MIN_SECRET_REFRESH);
        self
    }

    /// Runs only the nodes of `namespace` (all namespaces for `None`), as a module whose
    /// permissions cover one namespace must.
    #[must_use]
    pub fn watching(mut self, namespace: Option<String>) -> Self {
        self.watched = namespace;
        self
    }

    /// Publishes the catalogues (again after a pause, longer each time, until the store
    /// takes them), then follows the FlowNodes until `stop` is cancelled; stops every node
    /// before returning. The runtime says it is hosting ([`Runtime::hosting`]) once the
    /// catalogues are published and the first full list of nodes is applied.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), StoreError> {
        let mut failures: u32 = 0;
        while let Err(err) = self.publish_modules().await {
            failures += 1;
            let wait =
                PUBLISH_RETRY.saturating_mul(1 << (failures - 1).min(5)).min(PUBLISH_RETRY_MAX);
            tracing::warn!(error = %err, ?wait, "cannot publish the module catalogues; trying again");
            tokio::select! {
                () = tokio::time::sleep(wait.mul_f64(0.5 + fastrand::f64() / 2.0)) => {}
                () = stop.cancelled() => return Ok(()),
            }
        }
        let endpoints = tokio::spawn({
            let host = self.clone();
            let stop = stop.clone();
            async move { host.follow_modules(stop).await }
        });
        let flows = tokio::spawn({
            let host = self.clone();
            let stop = stop.clone();
            async move { host.follow_flows(stop).await }
        });
        let status = tokio::spawn({
            let host = self.clone();
            let stop = stop.clone();
            async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(STATUS_INTERVAL) => host.write_status().await,
                        () = stop.cancelled() => break,
                    }
                }
            }
        });
        let listing = tokio::spawn({
            let host = self.clone();
            let stop = stop.clone();
            async move { host.list_until(stop).await }
        });
        let secrets = tokio::spawn({
            let host = self.clone();
            let stop = stop.clone();
            async move {
                let mut schedule = SecretSchedule::new(host.secret_refresh);
                loop {
                    let (wait, whole) = schedule.next(host.has_unreadable_secrets());
                    let started = tokio::time::Instant::now();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {
                            host.refresh_secrets(whole).await;
                            schedule = schedule.after(wait, whole, host.secret_refresh);
                        }
                        () = host.unreadable.notified() => {
                            schedule = schedule.interrupted(started.elapsed(), host.secret_refresh);
                        }
                        () = stop.cancelled() => break,
                    }
                }
            }
        });
        let mut events = weir_store::follow(
            Arc::clone(&self.store),
            Kind::FlowNode,
            self.watched.clone(),
            stop.clone(),
        );
        while let Some(event) = events.next().await {
            let synced = matches!(event, WatchEvent::Synced(_));
            self.follow(event).await;
            if synced {
                self.runtime.set_hosting(true);
            }
        }
        self.runtime.set_hosting(false);
        let _ = status.await;
        let _ = listing.await;
        let _ = secrets.await;
        let _ = endpoints.await;
        let _ = flows.await;
        // The last counters and kept state are flushed while the nodes still run: written
        // after they stop, the status would say they have no ports and keep nothing.
        self.write_status().await;
        self.runtime.shutdown().await;
        Ok(())
    }

    async fn follow(&self, event: WatchEvent) {
        match event {
            WatchEvent::Synced(objects) => {
                let present: Vec<NodeKey> = objects.iter().filter_map(key_of).collect();
                let gone: Vec<NodeKey> = self
                    .nodes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys()
                    .filter(|k| !present.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.forget(&key).await;
                }
                for object in &objects {
                    self.apply(object).await;
                }
            }
            WatchEvent::Applied(object) => self.apply(&object).await,
            WatchEvent::Deleted(object) => {
                if let Some(key) = key_of(&object) {
                    self.forget(&key).await;
                }
            }
        }
    }

    /// Builds a node whose spec is new to this host; leaves status-only changes alone.
    async fn apply(&self, object: &DynamicObject) {
        let Some(key) = key_of(object) else { return };
        let node: FlowNode = match serde_json::to_value(object).and_then(serde_json::from_value) {
            Ok(node) => node,
            Err(err) => {
                tracing::warn!(node = %key, error = %err, "skipping a FlowNode that does not parse");
                return;
            }
        };
        self.runtime.wire(key.clone(), &node);
        if !self.runtime.hosts(node.spec.module.as_str()) {
            self.runtime.route(key, node.spec.module.as_str(), node.spec.component.as_str());
            return;
        }
        let generation = node.metadata.generation;
        let known = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map(|t| t.generation);
        if known == Some(generation) {
            return;
        }
        let built = self.runtime.apply(&node).await.map_err(|err| err.to_string());
        match &built {
            Ok(()) => tracing::info!(node = %key, ?generation, "node built"),
            Err(err) => tracing::warn!(node = %key, error = %err, "node did not build"),
        }
        let refers =
            weir_model::secret_ref::holds_reference(&Value::Object(node.spec.settings.clone()))
                .then(|| Arc::new(node));
        let unreadable = refers.is_some() && built.is_err();
        {
            let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            let written = nodes.get(&key).and_then(|t| t.written.clone());
            nodes.insert(key, Tracked { generation, built, written, refers });
        }
        // Only once the node is tracked: woken before, the retries would find no node that
        // failed and wait for the whole refresh (a minute) instead.
        if unreadable {
            self.unreadable.notify_one();
        }
    }

    /// Whether a node that refers to Secrets did not build.
    fn has_unreadable_secrets(&self) -> bool {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.values().any(|t| t.refers.is_some() && t.built.is_err())
    }

    /// Builds again the nodes whose Secrets changed, or could not be read before: every node
    /// that refers to Secrets when `whole`, else only those that did not build.
    async fn refresh_secrets(&self, whole: bool) {
        let referring: Vec<(NodeKey, Arc<FlowNode>)> = {
            let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            nodes
                .iter()
                .filter(|(_, t)| whole || t.built.is_err())
                .filter_map(|(key, t)| Some((key.clone(), Arc::clone(t.refers.as_ref()?))))
                .collect()
        };
        for (key, node) in referring {
            let refreshed = self.runtime.refresh(&node).await;
            let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            // The node changed or went meanwhile: the watch built what is current.
            let Some(tracked) = nodes
                .get_mut(&key)
                .filter(|t| t.refers.as_ref().is_some_and(|r| Arc::ptr_eq(r, &node)))
            else {
                continue;
            };
            match refreshed {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(node = %key, "node built again: a Secret it refers to changed");
                    tracked.built = Ok(());
                }
                // A running node keeps running; one that did not build says why now.
                Err(err) if tracked.built.is_err() => tracked.built = Err(err.to_string()),
                Err(err) => {
                    tracing::warn!(node = %key, error = %err, "cannot read a Secret the node refers to");
                }
            }
        }
    }

    async fn forget(&self, key: &NodeKey) {
        self.runtime.unwire(key);
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        if self.runtime.unroute(key) {
            return;
        }
        self.runtime.remove(key).await;
        tracing::info!(node = %key, "node stopped");
    }

    /// Follows the flows of the watched namespaces, so a suspended flow's triggers stop and
    /// nodes act as the account their flow names.
    async fn follow_flows(&self, stop: CancellationToken) {
        let mut events =
            weir_store::follow(Arc::clone(&self.store), Kind::Flow, self.watched.clone(), stop);
        while let Some(event) = events.next().await {
            match event {
                WatchEvent::Synced(objects) => {
                    let flows: Vec<Flow> = objects.iter().filter_map(flow_of).collect();
                    let present: std::collections::HashSet<(&str, &str)> = flows
                        .iter()
                        .filter_map(|f| {
                            Some((f.metadata.namespace.as_deref()?, f.metadata.name.as_deref()?))
                        })
                        .collect();
                    for (namespace, name) in self.runtime.followed_flows() {
                        if !present.contains(&(namespace.as_str(), name.as_str())) {
                            self.runtime.forget_flow(&namespace, &name);
                        }
                    }
                    for flow in &flows {
                        self.runtime.follow_flow(flow);
                    }
                }
                WatchEvent::Applied(object) => {
                    if let Some(flow) = flow_of(&object) {
                        self.runtime.follow_flow(&flow);
                    }
                }
                WatchEvent::Deleted(object) => {
                    if let Some(key) = key_of(&object) {
                        self.runtime.forget_flow(&key.namespace, &key.name);
                    }
                }
            }
        }
    }

    /// Follows the Module resources, so deliveries to nodes of other modules go to where those
    /// modules serve.
    async fn follow_modules(&self, stop: CancellationToken) {
        let mut events = weir_store::follow(
            Arc::clone(&self.store),
            Kind::Module,
            Some(self.namespace.clone()),
            stop,
        );
        while let Some(event) = events.next().await {
            self.runtime.follow_modules(&event);
        }
    }

    /// Writes the status of every node whose status changed since it was last written. Only
    /// the leading replica writes, so replicas do not overwrite each other's counters.
    async fn write_status(&self) {
        if !self.runtime.leads() {
            return;
        }
        let pending: Vec<(NodeKey, FlowNodeStatus)> = {
            let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            nodes
                .iter()
                .map(|(key, tracked)| (key.clone(), self.status_of(key, tracked)))
                .filter(|(key, status)| {
                    nodes.get(key).and_then(|t| t.written.as_ref()) != Some(status)
                })
                .collect()
        };
        for (key, status) in pending {
            match self.write_one(&key, &status).await {
                Ok(()) => {
                    if let Some(tracked) =
                        self.nodes.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&key)
                    {
                        tracked.written = Some(status);
                    }
                }
                // Someone wrote in between; the next round writes again.
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                Err(err) => tracing::warn!(node = %key, error = %err, "cannot write node status"),
            }
        }
    }

    fn status_of(&self, key: &NodeKey, tracked: &Tracked) -> FlowNodeStatus {
        let (status, reason, message) = match &tracked.built {
            Ok(()) => (ConditionStatus::True, "Built", String::new()),
            Err(err) => (ConditionStatus::False, "BuildFailed", err.clone()),
        };
        let previous =
            tracked.written.as_ref().map(|w| w.conditions.as_slice()).unwrap_or_default();
        let ready = Condition {
            type_: "Ready".to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            last_transition_time: None,
            observed_generation: tracked.generation,
        }
        .since(previous, &now());
        let problem = self.runtime.degraded(key);
        let degraded = Condition {
            type_: "Degraded".to_owned(),
            status: if problem.is_some() { ConditionStatus::True } else { ConditionStatus::False },
            reason: if problem.is_some() { "NodeReported" } else { "AsExpected" }.to_owned(),
            message: problem.unwrap_or_default(),
            last_transition_time: None,
            observed_generation: tracked.generation,
        }
        .since(previous, &now());
        FlowNodeStatus {
            observed_generation: tracked.generation,
            conditions: vec![ready, degraded],
            ports: self.runtime.ports(key).unwrap_or_default(),
            counters: self.runtime.counters(key),
            last_error: self.runtime.last_error(key).map(|(kind, message, at)| LastError {
                kind: kind.as_str().to_owned(),
                message,
                time: Timestamp::try_from(at)
                    .map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t).to_string())
                    .unwrap_or_default(),
            }),
            state: self.runtime.state(key).filter(|state| !state.is_null()),
        }
    }

    async fn write_one(&self, key: &NodeKey, status: &FlowNodeStatus) -> Result<(), StoreError> {
        let mut object = self.store.get(Kind::FlowNode, &key.namespace, &key.name).await?;
        let status = serde_json::to_value(status).unwrap_or(Value::Null);
        if let Some(fields) = object.data.as_object_mut() {
            fields.insert("status".to_owned(), status);
        }
        self.store.update_status(object).await.map(drop)
    }

    /// Creates or updates a `Module` resource for each hosted module.
    async fn publish_modules(&self) -> Result<(), StoreError> {
        for module in self.runtime.modules() {
            let catalogue = module.catalogue().map_err(|err| StoreError::Invalid {
                object: format!("Module {}", module.name()),
                reason: weir_model::FieldError {
                    path: "spec".to_owned(),
                    message: err.to_string(),
                },
            })?;
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": weir_model::API_VERSION,
                "kind": "Module",
                "metadata": { "name": module.name(), "namespace": self.namespace },
                "spec": catalogue,
            }))
            .map_err(|err| StoreError::Invalid {
                object: format!("Module {}", module.name()),
                reason: weir_model::FieldError { path: String::new(), message: err.to_string() },
            })?;
            // The status (the replicas serving) is the replicas' own, written apart.
            match self.store.get(Kind::Module, &self.namespace, module.name()).await {
                Ok(current) => {
                    let mut update = object;
                    update.metadata.resource_version = current.metadata.resource_version;
                    self.store.update(update).await?;
                }
                Err(StoreError::NotFound(_)) => {
                    self.store.create(object).await?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Lists this replica among its modules' replicas once it hosts their nodes, renews the
    /// entry every [`HEARTBEAT`] and whenever it starts or stops leading, until `stop` or until
    /// it leaves ([`Host::leave`]).
    async fn list_until(&self, stop: CancellationToken) {
        let Some(endpoint) = self.endpoint.clone() else { return };
        let mut leader = self.runtime.leadership();
        while !self.runtime.hosting() {
            tokio::select! {
                () = tokio::time::sleep(HOSTING_POLL) => {}
                () = stop.cancelled() => return,
                () = self.leaving.cancelled() => return,
            }
        }
        // A lone process leads for good: its leadership never changes.
        let mut follows_leadership = true;
        loop {
            {
                let _listing = self.listing.lock().await;
                if self.leaving.is_cancelled() {
                    return;
                }
                let runs = self.watched.as_deref();
                let me = replicas::entry(&self.replica, &endpoint, self.runtime.leads(), runs);
                for module in self.runtime.modules() {
                    let listed = replicas::list(
                        &*self.store,
                        &self.namespace,
                        module.name(),
                        &self.replica,
                        Some(&me),
                    );
                    if let Err(err) = listed.await {
                        tracing::warn!(module = module.name(), error = %err, "cannot list this replica among the module's replicas");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                changed = leader.changed(), if follows_leadership => follows_leadership = changed.is_ok(),
                () = stop.cancelled() => return,
                () = self.leaving.cancelled() => return,
            }
        }
    }

    /// Takes this replica out of its modules' replicas, so that senders turn to the others
    /// before it stops taking calls; it lists itself no more.
    pub async fn leave(&self) {
        self.leaving.cancel();
        let _listing = self.listing.lock().await;
        if self.endpoint.is_none() {
            return;
        }
        for module in self.runtime.modules() {
            let left =
                replicas::list(&*self.store, &self.namespace, module.name(), &self.replica, None);
            if let Err(err) = left.await {
                tracing::warn!(module = module.name(), error = %err, "cannot take this replica out of the module's replicas");
            }
        }
    }
}

/// The time now as conditions write it (RFC 3339, whole seconds).
fn now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

/// A stored flow, with its namespace filled in; `None` (and a warning) when it does not parse.
fn flow_of(object: &DynamicObject) -> Option<Flow> {
    let mut flow: Flow = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(flow) => flow,
        Err(err) => {
            tracing::warn!(flow = %weir_store::describe(object), error = %err, "skipping a Flow that does not parse");
            return None;
        }
    };
    let key = key_of(object)?;
    flow.metadata.namespace = Some(key.namespace);
    Some(flow)
}

fn key_of(object: &DynamicObject) -> Option<NodeKey> {
    Some(NodeKey {
        namespace: object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| weir_store::DEFAULT_NAMESPACE.to_owned()),
        name: object.metadata.name.clone()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_secrets_are_tried_again_sooner_and_the_refresh_stays_on_time() {
        let refresh = Duration::from_secs(60);
        let mut schedule = SecretSchedule::new(refresh);
        assert_eq!(schedule.next(false), (refresh, true), "nothing to retry: the refresh");
        let mut waits = Vec::new();
        loop {
            let (wait, whole) = schedule.next(true);
            waits.push(wait.as_secs());
            schedule = schedule.after(wait, whole, refresh);
            if whole {
                break;
            }
        }
        // 1 + 2 + 4 + 8 + 16 = 31 s of retries, then the whole refresh 29 s later, on time.
        assert_eq!(waits, [1, 2, 4, 8, 16, 29]);
        assert_eq!(schedule, SecretSchedule::new(refresh), "the refresh starts over");
        // A node failing 10 s into a wait starts the retries over; the refresh keeps its time.
        let waiting = SecretSchedule::new(refresh).interrupted(Duration::from_secs(10), refresh);
        assert_eq!(waiting.next(true), (UNREADABLE_RETRY, false));
        assert_eq!(waiting.next(false), (Duration::from_secs(50), true));
        // A short refresh leaves nothing between.
        let short = SecretSchedule::new(Duration::from_millis(500));
        assert_eq!(short.next(true), (Duration::from_millis(500), true));
    }
}
