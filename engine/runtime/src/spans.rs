//! One span per delivery, for whoever exports traces (the engine's OTLP exporter): the node and
//! port that took the message, the attempt of its edge, how it ended, and where it sits in its
//! run's trace. Nothing is measured while no [`Spans`] is set, so a process without an
//! exporter pays one branch per delivery.

use std::{sync::Arc, time::SystemTime};

use weir_sdk::{ErrorKind, NodeError, NodeIdentity, TraceContext};

/// Takes the spans of finished deliveries; must not block.
pub trait Spans: std::fmt::Debug + Send + Sync + 'static {
    /// Records one delivery that has ended.
    fn record(&self, span: &DeliverySpan);
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The node answered.
    Answered,
    /// The node, or the flow downstream, failed, of this kind. Not its message: a span leaves
    /// the cluster for a collector, and a message can quote what a node was given (a script's
    /// thrown text, a server's answer).
    Failed(ErrorKind),
    /// The delivery was dropped before it ended: its edge's timeout, a cancelled run, a
    /// caller that hung up.
    Dropped,
}

impl Outcome {
    /// The word exported as the `weir.outcome` attribute.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Failed(kind) => kind.as_str(),
            Self::Dropped => "dropped",
        }
    }
}

/// A delivery that has ended.
#[derive(Debug)]
pub struct DeliverySpan {
    /// The node that took the message.
    pub node: Arc<NodeIdentity>,
    /// Its input port.
    pub port: String,
    /// The delivery's span, its parent and its trace.
    pub trace: TraceContext,
    /// Which attempt of the edge's retry policy, from 1.
    pub attempt: u32,
    /// When the node was handed the message, and when it finished.
    pub started: SystemTime,
    pub ended: SystemTime,
    pub outcome: Outcome,
}

/// A delivery under way, recorded when it ends, or, dropped before then, as dropped.
pub(crate) struct Recording {
    spans: Arc<dyn Spans>,
    span: Option<DeliverySpan>,
}

impl Recording {
    pub(crate) fn start(
        spans: Arc<dyn Spans>,
        node: &Arc<NodeIdentity>,
        port: &str,
        trace: TraceContext,
        attempt: u32,
    ) -> Self {
        let started = SystemTime::now();
        let span = DeliverySpan {
            node: Arc::clone(node),
            port: port.to_owned(),
            trace,
            attempt,
            started,
            ended: started,
            outcome: Outcome::Dropped,
        };
        Self { spans, span: Some(span) }
    }

    pub(crate) fn end<T>(mut self, result: &Result<T, NodeError>) {
        if let Some(span) = &mut self.span {
            span.outcome = match result {
                Ok(_) => Outcome::Answered,
                Err(err) => Outcome::Failed(err.kind()),
            };
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.ended = SystemTime::now();
            self.spans.record(&span);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Default)]
    struct Kept(Mutex<Vec<(String, u32, Outcome)>>);

    impl Spans for Kept {
        fn record(&self, span: &DeliverySpan) {
            let kept = (span.port.clone(), span.attempt, span.outcome.clone());
            self.0.lock().expect("not poisoned").push(kept);
        }
    }

    #[test]
    fn a_delivery_dropped_before_it_ended_is_recorded_as_dropped() {
        let kept = Arc::new(Kept::default());
        let node = Arc::new(NodeIdentity {
            namespace: "ns".to_owned(),
            flow: "f".to_owned(),
            node: "n".to_owned(),
        });
        let trace = TraceContext::default().child();
        let spans: Arc<dyn Spans> = kept.clone();
        Recording::start(Arc::clone(&spans), &node, "in", trace, 1).end(&Ok::<_, NodeError>(()));
        Recording::start(Arc::clone(&spans), &node, "in", trace, 2)
            .end(&Err::<(), _>(NodeError::transient("busy")));
        drop(Recording::start(spans, &node, "in", trace, 3));
        let kept = kept.0.lock().expect("not poisoned").clone();
        assert_eq!(
            kept,
            [
                ("in".to_owned(), 1, Outcome::Answered),
                ("in".to_owned(), 2, Outcome::Failed(ErrorKind::Transient)),
                ("in".to_owned(), 3, Outcome::Dropped),
            ]
        );
    }
}
