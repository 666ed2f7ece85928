//! An edge as the runtime uses it: compiled mapping, resolved retry policy and timeout.

use std::{fmt, sync::Arc, time::Duration};

use weir_model::{
    Edge as EdgeSpec,
    flow_node::{DEFAULT_ATTEMPTS, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF},
    mapping::Mapping,
};

use crate::key::NodeKey;

/// How long a delivery may take, downstream work included, when its edge names no timeout.
pub const DEFAULT_EDGE_TIMEOUT: Duration = Duration::from_secs(600);

/// An edge whose mapping does not compile: its label and every problem, with its place in the
/// mapping.
pub(crate) struct Unmapped {
    pub(crate) label: String,
    pub(crate) problems: String,
}

/// A wire from an output port to a target node's input port, ready to deliver along.
pub(crate) struct Edge {
    /// The node the edge leaves.
    pub(crate) source: NodeKey,
    pub(crate) port: String,
    pub(crate) target: NodeKey,
    pub(crate) target_port: String,
    /// Shared, so that a slow evaluation can move to a blocking thread.
    pub(crate) mapping: Option<Arc<Mapping>>,
    pub(crate) attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) timeout: Duration,
    label: String,
}

impl Edge {
    /// Compiles an edge of node `source`; a mapping that does not compile fails the build.
    pub(crate) fn compile(source: &NodeKey, spec: &EdgeSpec) -> Result<Self, Unmapped> {
        let label = format!("{}.{} → {}.{}", source.name, spec.port, spec.to.node, spec.to.port);
        let mapping = spec
            .mapping
            .as_ref()
            .map(|document| {
                Mapping::compile(document).map(Arc::new).map_err(|errors| Unmapped {
                    label: label.clone(),
                    problems: errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                })
            })
            .transpose()?;
        let retry = spec.retry.as_ref();
        Ok(Self {
            source: source.clone(),
            port: spec.port.to_string(),
            target: NodeKey { namespace: source.namespace.clone(), name: spec.to.node.to_string() },
            target_port: spec.to.port.to_string(),
            mapping,
            attempts: retry.map_or(DEFAULT_ATTEMPTS, |r| r.attempts.max(1)),
            initial_backoff: retry
                .and_then(|r| r.initial_backoff.as_ref())
                .map_or(DEFAULT_INITIAL_BACKOFF, |d| d.get()),
            max_backoff: retry
                .and_then(|r| r.max_backoff.as_ref())
                .map_or(DEFAULT_MAX_BACKOFF, |d| d.get()),
            timeout: spec.timeout.as_ref().map_or(DEFAULT_EDGE_TIMEOUT, |d| d.get()),
            label,
        })
    }

    /// The wait before attempt `attempt + 1`: exponential from the initial backoff, capped, with
    /// jitter so that many failing deliveries do not retry in step.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponential =
            self.initial_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exponential.min(self.max_backoff);
        capped.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
