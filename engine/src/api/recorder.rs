//! The last messages seen at each node, kept in memory while the API runs (never in the store).
//! Memory stays bounded: [`PER_NODE`] events per node, events as small as the runtime's inspect
//! stream makes them, and past [`MAX_BYTES`] in all the nodes heard from least recently are
//! forgotten.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

/// How many events are kept per node.
pub const PER_NODE: usize = 50;
/// How many bytes of events are kept in all.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// The kept events, each as its `message` event JSON.
#[derive(Debug, Default)]
pub struct Recorder {
    kept: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    /// Per node (namespace and name).
    nodes: HashMap<(String, String), Ring>,
    /// Bytes kept in all.
    bytes: usize,
    /// Counts every event recorded, to tell which node was heard from least recently.
    clock: u64,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Arc<str>>,
    bytes: usize,
    /// The clock when the node's latest event was recorded.
    last: u64,
}

impl Recorder {
    /// Keeps one event of a node.
    pub fn record(&self, namespace: &str, node: &str, event: Arc<str>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.clock += 1;
        let (clock, size) = (kept.clock, event.len());
        let key = (namespace.to_owned(), node.to_owned());
        let ring = kept.nodes.entry(key.clone()).or_default();
        ring.events.push_back(event);
        ring.bytes += size;
        ring.last = clock;
        let mut freed = 0;
        while ring.events.len() > PER_NODE {
            freed += ring.events.pop_front().map_or(0, |e| e.len());
        }
        ring.bytes -= freed;
        kept.bytes = kept.bytes + size - freed;
        while kept.bytes > MAX_BYTES {
            let stalest = kept
                .nodes
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, ring)| ring.last)
                .map(|(k, _)| k.clone());
            let Some(stalest) = stalest else { break };
            let forgotten = kept.nodes.remove(&stalest).map_or(0, |ring| ring.bytes);
            kept.bytes -= forgotten;
        }
    }

    /// The latest `limit` events of a node, oldest first.
    pub fn latest(&self, namespace: &str, node: &str, limit: usize) -> Vec<Arc<str>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ring) = kept.nodes.get(&(namespace.to_owned(), node.to_owned())) else {
            return Vec::new();
        };
        ring.events.iter().skip(ring.events.len().saturating_sub(limit)).cloned().collect()
    }

    /// Forgets a deleted node's events.
    pub fn forget(&self, namespace: &str, node: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ring) = kept.nodes.remove(&(namespace.to_owned(), node.to_owned())) {
            kept.bytes -= ring.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(size: usize) -> Arc<str> {
        "x".repeat(size).into()
    }

    #[test]
    fn each_node_keeps_its_latest_events() {
        let recorder = Recorder::default();
        for index in 0..PER_NODE + 5 {
            recorder.record("default", "tick", index.to_string().into());
        }
        let latest = recorder.latest("default", "tick", 3);
        assert_eq!(latest.iter().map(|e| &**e).collect::<Vec<_>>(), ["52", "53", "54"]);
        assert_eq!(recorder.latest("default", "tick", 1000).len(), PER_NODE);
        assert!(recorder.latest("default", "other", 10).is_empty());
        recorder.forget("default", "tick");
        assert!(recorder.latest("default", "tick", 10).is_empty());
        assert_eq!(recorder.kept.lock().unwrap_or_else(PoisonError::into_inner).bytes, 0);
    }

    #[test]
    fn past_the_budget_the_least_recent_nodes_are_forgotten() {
        let recorder = Recorder::default();
        let size = MAX_BYTES / 4;
        for node in ["a", "b", "c", "d", "e"] {
            recorder.record("default", node, event(size));
        }
        assert!(recorder.latest("default", "a", 1).is_empty(), "the stalest node stays");
        for node in ["b", "c", "d", "e"] {
            assert_eq!(recorder.latest("default", node, 1).len(), 1, "{node} is gone");
        }
        assert!(recorder.kept.lock().unwrap_or_else(PoisonError::into_inner).bytes <= MAX_BYTES);
    }
}
