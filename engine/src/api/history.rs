//! The last runs of each flow, kept in memory while the API runs (never in the store): the
//! messages seen at the nodes, grouped by the run's trace id, for `GET /api/flows/{flow}/runs`,
//! `GET /api/runs/{run}` and replay (`weir runs`, `weir replay`). Memory stays bounded: the
//! last `per_flow` runs of each flow, [`PER_RUN`] messages of each run (each as small as the
//! inspect stream makes it), and [`MAX_BYTES`] in all, past which the runs that started first
//! are forgotten first.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use k8s_openapi::jiff::Timestamp;
use weir_api::{RunOutcome, RunSummary};
use weir_runtime::inspect::{Event, Observed};

/// How many messages are kept of one run; a run's later messages are counted, not kept.
pub const PER_RUN: usize = 200;
/// How many bytes of messages are kept in all.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// The kept runs.
#[derive(Debug)]
pub struct History {
    per_flow: usize,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Per flow (namespace and name), the runs in the order they started.
    flows: HashMap<(String, String), VecDeque<Run>>,
    /// Bytes of messages kept in all.
    bytes: usize,
}

#[derive(Debug)]
struct Run {
    id: String,
    flow: String,
    started: SystemTime,
    latest: SystemTime,
    /// The node and port of the run's first delivery, whose ending is the run's outcome.
    entry: Option<(String, String)>,
    outcome: RunOutcome,
    nodes: Vec<String>,
    failures: usize,
    /// Each as its `message` event JSON.
    messages: Vec<Arc<str>>,
    dropped: usize,
    bytes: usize,
}

impl History {
    /// Keeps the last `per_flow` runs of each flow; none at 0.
    pub fn new(per_flow: usize) -> Self {
        Self { per_flow, kept: Mutex::default() }
    }

    /// How many runs of each flow are kept.
    pub fn per_flow(&self) -> usize {
        self.per_flow
    }

    /// Keeps one event of a run, `shown` as the editor's `message` JSON.
    pub fn record(&self, event: &Event, shown: Arc<str>) {
        let node = &event.node;
        if self.per_flow == 0 || node.flow.is_empty() {
            return;
        }
        let id = event.trace.trace_hex().to_string();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = &mut *kept;
        let runs = kept.flows.entry((node.namespace.clone(), node.flow.clone())).or_default();
        let index = match runs.iter().rposition(|run| run.id == id) {
            Some(index) => index,
            None => {
                runs.push_back(Run::new(id, node.flow.clone(), event.at));
                if runs.len() > self.per_flow {
                    kept.bytes -= runs.pop_front().map_or(0, |run| run.bytes);
                }
                runs.len() - 1
            }
        };
        let run = &mut runs[index];
        kept.bytes += run.add(event, shown);
        let current = run.id.clone();
        while kept.bytes > MAX_BYTES {
            let Some(freed) = kept.forget_first_started(&current) else { break };
            kept.bytes -= freed;
        }
    }

    /// The kept runs of a flow, newest first.
    pub fn runs(&self, namespace: &str, flow: &str) -> Vec<RunSummary> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(runs) = kept.flows.get(&(namespace.to_owned(), flow.to_owned())) else {
            return Vec::new();
        };
        runs.iter().rev().map(Run::summary).collect()
    }

    /// A kept run of `namespace` and its messages, oldest first.
    pub fn run(&self, namespace: &str, id: &str) -> Option<(RunSummary, Vec<Arc<str>>)> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.find(namespace, id).map(|run| (run.summary(), run.messages.clone()))
    }

    /// Forgets a deleted flow's runs.
    pub fn forget(&self, namespace: &str, flow: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runs) = kept.flows.remove(&(namespace.to_owned(), flow.to_owned())) {
            kept.bytes -= runs.iter().map(|run| run.bytes).sum::<usize>();
        }
    }
}

impl Kept {
    fn find(&self, namespace: &str, id: &str) -> Option<&Run> {
        self.flows
            .iter()
            .filter(|((space, _), _)| space == namespace)
            .find_map(|(_, runs)| runs.iter().find(|run| run.id == id))
    }

    /// Forgets the run that started first, but `current`; the bytes it held.
    fn forget_first_started(&mut self, current: &str) -> Option<usize> {
        let key = self
            .flows
            .iter()
            .filter_map(|(key, runs)| {
                runs.iter().find(|run| run.id != current).map(|run| (key, run.started))
            })
            .min_by_key(|(_, started)| *started)
            .map(|(key, _)| key.clone())?;
        let runs = self.flows.get_mut(&key)?;
        let index = runs.iter().position(|run| run.id != current)?;
        let freed = runs.remove(index).map_or(0, |run| run.bytes);
        if runs.is_empty() {
            self.flows.remove(&key);
        }
        Some(freed)
    }
}

impl Run {
    fn new(id: String, flow: String, at: SystemTime) -> Self {
        Self {
            id,
            flow,
            started: at,
            latest: at,
            entry: None,
            outcome: RunOutcome::Running,
            nodes: Vec::new(),
            failures: 0,
            messages: Vec::new(),
            dropped: 0,
            bytes: 0,
        }
    }

    /// Takes in one event; the bytes it now holds more.
    fn add(&mut self, event: &Event, shown: Arc<str>) -> usize {
        let (node, port) = (&event.node.node, &event.port);
        self.latest = self.latest.max(event.at);
        let at_entry = self.entry.as_ref().is_some_and(|(n, p)| n == node && p == port);
        match &event.what {
            Observed::Received(_) if self.entry.is_none() => {
                self.entry = Some((node.clone(), port.clone()));
            }
            Observed::Answered { .. } if at_entry => self.outcome = RunOutcome::Succeeded,
            Observed::Failed { .. } => {
                self.failures += 1;
                if at_entry {
                    self.outcome = RunOutcome::Failed;
                }
            }
            _ => {}
        }
        if self.messages.len() >= PER_RUN {
            self.dropped += 1;
            return 0;
        }
        if !self.nodes.contains(node) {
            self.nodes.push(node.clone());
        }
        let size = shown.len();
        self.messages.push(shown);
        self.bytes += size;
        size
    }

    fn summary(&self) -> RunSummary {
        let time =
            |at: SystemTime| Timestamp::try_from(at).map(|t| t.to_string()).unwrap_or_default();
        RunSummary {
            run: self.id.clone(),
            flow: self.flow.clone(),
            started: time(self.started),
            latest: time(self.latest),
            outcome: self.outcome,
            nodes: self.nodes.clone(),
            failures: self.failures,
            messages: self.messages.len(),
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use weir_sdk::{ErrorKind, NodeIdentity, TraceContext};

    use super::*;

    fn event(flow: &str, node: &str, run: u128, what: Observed) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(run).unwrap_or(0)),
            node: Arc::new(NodeIdentity {
                namespace: "default".to_owned(),
                flow: flow.to_owned(),
                node: node.to_owned(),
            }),
            port: "in".to_owned(),
            trace: TraceContext { trace_id: run, span_id: 1, parent_id: 0 },
            what,
        }
    }

    fn id(run: u128) -> String {
        TraceContext { trace_id: run, span_id: 1, parent_id: 0 }.trace_hex().to_string()
    }

    const ELAPSED: Duration = Duration::from_millis(1);

    #[test]
    fn a_run_is_its_messages_by_trace_and_ends_as_its_first_delivery() {
        let history = History::new(20);
        let seen = |event: Event| history.record(&event, "{}".into());
        seen(event("f", "a", 1, Observed::Received(json!(1))));
        seen(event("f", "b", 1, Observed::Received(json!(2))));
        seen(event(
            "f",
            "b",
            1,
            Observed::Failed {
                kind: ErrorKind::Transient,
                message: "busy".to_owned(),
                elapsed: ELAPSED,
            },
        ));
        seen(event("f", "b", 1, Observed::Answered { elapsed: ELAPSED }));
        let runs = history.runs("default", "f");
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!((run.run.as_str(), run.outcome), (id(1).as_str(), RunOutcome::Running));
        assert_eq!(
            (run.nodes.clone(), run.failures, run.messages),
            (vec!["a".into(), "b".into()], 1, 4)
        );
        seen(event("f", "a", 1, Observed::Answered { elapsed: ELAPSED }));
        assert_eq!(history.runs("default", "f")[0].outcome, RunOutcome::Succeeded);
        seen(event("f", "a", 2, Observed::Received(json!(1))));
        seen(event(
            "f",
            "a",
            2,
            Observed::Failed {
                kind: ErrorKind::Invalid,
                message: "no".to_owned(),
                elapsed: ELAPSED,
            },
        ));
        let runs = history.runs("default", "f");
        assert_eq!((runs[0].run.clone(), runs[0].outcome), (id(2), RunOutcome::Failed));
        assert!(history.run("default", &id(1)).is_some());
        assert!(history.run("other", &id(1)).is_none(), "another namespace's run");
        history.forget("default", "f");
        assert!(history.runs("default", "f").is_empty());
        assert_eq!(history.kept.lock().unwrap_or_else(PoisonError::into_inner).bytes, 0);
    }

    #[test]
    fn runs_messages_and_bytes_stay_bounded() {
        let history = History::new(3);
        for run in 1..=5 {
            history.record(&event("f", "a", run, Observed::Received(json!(run))), "{}".into());
        }
        let kept: Vec<String> = history.runs("default", "f").into_iter().map(|r| r.run).collect();
        assert_eq!(kept, [id(5), id(4), id(3)], "the last three, newest first");

        for _ in 0..PER_RUN + 7 {
            history.record(&event("f", "a", 5, Observed::Logged("x".to_owned())), "{}".into());
        }
        let (summary, messages) = history.run("default", &id(5)).unwrap();
        assert_eq!((messages.len(), summary.dropped), (PER_RUN, 8));

        let big: Arc<str> = "x".repeat(MAX_BYTES / 3).into();
        let history = History::new(1000);
        for run in 1..=4 {
            history.record(
                &event(&format!("f{run}"), "a", run, Observed::Logged(String::new())),
                big.clone(),
            );
        }
        assert!(history.run("default", &id(1)).is_none(), "the first started goes first");
        assert!((2..=4).all(|run| history.run("default", &id(run)).is_some()));
        assert!(history.kept.lock().unwrap_or_else(PoisonError::into_inner).bytes <= MAX_BYTES);

        let off = History::new(0);
        off.record(&event("f", "a", 1, Observed::Received(json!(1))), "{}".into());
        assert!(off.runs("default", "f").is_empty());
    }
}
