//! Where a module serves. Each replica lists itself in its `Module` resource's status
//! (`status.replicas`) once its nodes are built, renews its entry every [`HEARTBEAT`] (and when
//! it starts or stops leading), and takes it out before it stops taking calls; an entry left
//! unrenewed for [`STALE`] (a replica that died) is dropped by the next replica that writes.
//! Senders spread deliveries over the listed replicas, except that messages for a trigger's
//! node (a ticker's control port) go to the leader, which runs it.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::jiff::Timestamp;
use weir_model::{Condition, ConditionStatus, Kind, Module, ModuleStatus, module::ModuleReplica};
use weir_store::{DynamicObject, Store, StoreError, WatchEvent};

/// How often a replica renews its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// How old an entry may be before the next writer drops it: three missed heartbeats.
pub const STALE: Duration = Duration::from_secs(30);

/// How often a replica tries to write its entry when others write at the same moment.
const WRITE_ATTEMPTS: usize = 8;

/// The replicas of one module that serve, as its `Module` resource lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicas {
    /// Their endpoints, sorted.
    endpoints: Vec<String>,
    /// The leader's endpoint, when a replica says it leads.
    leader: Option<String>,
    /// The module's triggers, by component name.
    triggers: Vec<String>,
}

impl Replicas {
    /// The replicas a `Module` resource lists.
    pub fn of(module: &Module) -> Self {
        let listed = module.status.as_ref().map(|s| s.replicas.as_slice()).unwrap_or_default();
        Self::listed(module, listed.iter())
    }

    /// The replicas a `Module` resource lists that serve at `now` (see [`serving`]): for a
    /// caller outside the module's routing, to whom a stale entry's address may be another
    /// pod's by now.
    pub fn serving_at(module: &Module, now: Timestamp) -> Self {
        Self::listed(module, serving(module, now).into_iter())
    }

    fn listed<'a>(module: &Module, listed: impl Iterator<Item = &'a ModuleReplica>) -> Self {
        let listed: Vec<&ModuleReplica> = listed.collect();
        let mut endpoints: Vec<String> = listed.iter().map(|r| r.endpoint.clone()).collect();
        endpoints.sort();
        endpoints.dedup();
        // Two may say they lead while the lease changes hands: the newest word counts.
        let leader = listed
            .iter()
            .filter(|r| r.leads)
            .max_by(|a, b| a.heartbeat.cmp(&b.heartbeat))
            .map(|r| r.endpoint.clone());
        let triggers = module
            .spec
            .components
            .iter()
            .filter(|c| c.trigger)
            .map(|c| c.name.to_string())
            .collect();
        Self { endpoints, leader, triggers }
    }

    /// One replica at `endpoint`, which leads: a route given by hand rather than read from a
    /// `Module` resource (benchmarks and tests that serve a runtime themselves).
    pub fn single(endpoint: &str) -> Self {
        Self {
            endpoints: vec![endpoint.to_owned()],
            leader: Some(endpoint.to_owned()),
            triggers: Vec::new(),
        }
    }

    /// The replicas a stored `Module` lists; none when it does not parse.
    fn of_object(object: &DynamicObject) -> Self {
        serde_json::to_value(object)
            .and_then(serde_json::from_value::<Module>)
            .map(|module| Self::of(&module))
            .unwrap_or_default()
    }

    /// The endpoints of every replica that serves.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Where a message for a node of `component` goes: the leader for a trigger's node (its
    /// control messages must reach the replica that runs it), else the replica whose `turn`
    /// it is, passing over `avoid` (one that just failed) when there is another.
    pub fn pick(&self, component: &str, turn: usize, avoid: Option<&str>) -> Option<&str> {
        if self.triggers.iter().any(|t| t == component)
            && let Some(leader) = &self.leader
        {
            return Some(leader);
        }
        let others: Vec<&String> =
            self.endpoints.iter().filter(|e| Some(e.as_str()) != avoid).collect();
        let pool: Vec<&String> =
            if others.is_empty() { self.endpoints.iter().collect() } else { others };
        pool.get(turn.checked_rem(pool.len())?).map(|e| e.as_str())
    }
}

/// Keeps `serving` (each module's replicas, by module name) in step with a watch of the
/// `Module` resources: a `Synced` replaces them, a change or a deletion updates one.
pub fn follow(serving: &mut HashMap<String, Replicas>, event: &WatchEvent) {
    let named = |module: &DynamicObject| module.metadata.name.clone();
    match event {
        WatchEvent::Synced(modules) => {
            *serving =
                modules.iter().filter_map(|m| Some((named(m)?, Replicas::of_object(m)))).collect();
        }
        WatchEvent::Applied(module) => {
            if let Some(name) = named(module) {
                serving.insert(name, Replicas::of_object(module));
            }
        }
        WatchEvent::Deleted(module) => {
            if let Some(name) = named(module) {
                serving.remove(&name);
            }
        }
    }
}

/// Lists `me` among the replicas of `module` in `namespace`, in place of its previous entry,
/// or takes the replica called `name` out when `me` is `None`; drops stale entries either way.
pub async fn list(
    store: &dyn Store,
    namespace: &str,
    module: &str,
    name: &str,
    me: Option<&ModuleReplica>,
) -> Result<(), StoreError> {
    let mut last = None;
    for _ in 0..WRITE_ATTEMPTS {
        let mut object = store.get(Kind::Module, namespace, module).await?;
        let mut status: ModuleStatus = object
            .data
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default();
        let now = Timestamp::now();
        status.replicas.retain(|r| r.name != name && fresh(&r.heartbeat, now));
        status.replicas.extend(me.cloned());
        status.replicas.sort_by(|a, b| a.name.cmp(&b.name));
        describe(&mut status, object.metadata.generation, now);
        let Ok(written) = serde_json::to_value(&status) else { return Ok(()) };
        if let Some(fields) = object.data.as_object_mut() {
            fields.insert("status".to_owned(), written);
        }
        match store.update_status(object).await {
            Ok(_) => return Ok(()),
            // Another replica wrote in between: read again.
            Err(err @ StoreError::Conflict { .. }) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or(StoreError::Conflict {
        object: weir_store::ObjectRef {
            kind: Kind::Module,
            namespace: namespace.to_owned(),
            name: module.to_owned(),
        },
        stale: "(changed on every attempt)".to_owned(),
    }))
}

/// The replicas a `Module` resource lists that renewed their entry within [`STALE`] of `now`:
/// those that serve.
pub fn serving(module: &Module, now: Timestamp) -> Vec<&ModuleReplica> {
    let listed = module.status.as_ref().map(|status| status.replicas.as_slice());
    listed.unwrap_or_default().iter().filter(|replica| fresh(&replica.heartbeat, now)).collect()
}

/// The entry `name` gives of itself now, running the flows of `runs` (every namespace for
/// `None`).
pub fn entry(name: &str, endpoint: &str, leads: bool, runs: Option<&str>) -> ModuleReplica {
    ModuleReplica {
        name: name.to_owned(),
        endpoint: endpoint.to_owned(),
        leads,
        heartbeat: Timestamp::now().to_string(),
        runs: Some(runs.unwrap_or(weir_model::module::EVERY_NAMESPACE).to_owned()),
    }
}

/// Whether an entry renewed at `heartbeat` is recent enough to keep.
fn fresh(heartbeat: &str, now: Timestamp) -> bool {
    heartbeat
        .parse::<Timestamp>()
        .is_ok_and(|at| now.duration_since(at).unsigned_abs() < STALE || at > now)
}

/// Counts the replicas, names the leader and says whether the module serves.
fn describe(status: &mut ModuleStatus, generation: Option<i64>, now: Timestamp) {
    let serving = u32::try_from(status.replicas.len()).unwrap_or(u32::MAX);
    status.ready_replicas = serving;
    status.leader = status.replicas.iter().find(|r| r.leads).map(|r| r.name.clone());
    status.observed_generation = generation;
    let (state, reason, message) = match serving {
        0 => (ConditionStatus::False, "NoReplicas", "no replica serves deliveries".to_owned()),
        n => (ConditionStatus::True, "Serving", format!("{n} replicas serve deliveries")),
    };
    let changed =
        status.conditions.iter().find(|c| c.type_ == "Ready").is_none_or(|c| c.status != state);
    let since = match status.conditions.iter().find(|c| c.type_ == "Ready") {
        Some(previous) if !changed => previous.last_transition_time.clone(),
        _ => Some(now.to_string()),
    };
    status.conditions = vec![Condition {
        type_: "Ready".to_owned(),
        status: state,
        reason: reason.to_owned(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }];
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn module(replicas: &Value) -> Result<Module, serde_json::Error> {
        serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "Module",
            "metadata": { "name": "common", "namespace": "weir" },
            "spec": { "version": "1", "components": [
                { "name": "ticker", "trigger": true }, { "name": "delay" }
            ] },
            "status": { "replicas": replicas },
        }))
    }

    #[test]
    fn deliveries_spread_over_the_replicas_and_triggers_go_to_the_leader()
    -> Result<(), serde_json::Error> {
        let replicas = Replicas::of(&module(&json!([
            { "name": "b", "endpoint": "http://b", "heartbeat": "2026-12-06T10:00:00Z" },
            { "name": "a", "endpoint": "http://a", "leads": true, "heartbeat": "2026-12-06T10:00:01Z" },
        ]))?);
        assert_eq!(replicas.endpoints(), ["http://a", "http://b"]);
        let turns: Vec<_> = (0..4).filter_map(|turn| replicas.pick("delay", turn, None)).collect();
        assert_eq!(turns, ["http://a", "http://b", "http://a", "http://b"]);
        assert_eq!(replicas.pick("delay", 0, Some("http://a")), Some("http://b"));
        assert_eq!(replicas.pick("ticker", 1, Some("http://a")), Some("http://a"));
        let alone = Replicas::of(&module(&json!([
            { "name": "b", "endpoint": "http://b", "heartbeat": "2026-12-06T10:00:00Z" }
        ]))?);
        assert_eq!(alone.pick("delay", 3, Some("http://b")), Some("http://b"), "none else");
        assert_eq!(alone.pick("ticker", 0, None), Some("http://b"), "no leader said so yet");
        assert_eq!(Replicas::of(&module(&json!([]))?).pick("delay", 0, None), None);
        Ok(())
    }

    #[test]
    fn entries_go_stale_after_three_missed_heartbeats() {
        let now: Timestamp = "2026-12-06T10:01:00Z".parse().unwrap_or_else(|_| unreachable!());
        assert!(fresh("2026-12-06T10:00:40Z", now));
        assert!(!fresh("2026-12-06T10:00:20Z", now));
        assert!(fresh("2026-12-06T10:02:00Z", now), "a clock ahead of ours is not stale");
        assert!(!fresh("yesterday", now));
        let mut status = ModuleStatus {
            replicas: vec![entry("a", "http://a", true, None)],
            ..ModuleStatus::default()
        };
        describe(&mut status, Some(2), now);
        assert_eq!((status.ready_replicas, status.leader.as_deref()), (1, Some("a")));
        assert_eq!(status.conditions[0].reason, "Serving");

        let listed = module(&json!([
            { "name": "gone", "endpoint": "http://gone", "heartbeat": "2026-12-06T10:00:20Z" },
            { "name": "here", "endpoint": "http://here", "heartbeat": "2026-12-06T10:00:40Z" },
        ]))
        .unwrap_or_else(|err| panic!("{err}"));
        let names: Vec<&str> = serving(&listed, now).iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["here"]);
    }
}
