//! The runtime every module process embeds. It builds a node instance for each FlowNode of the
//! modules it hosts, through one path for start and change, and routes each emit along the
//! emitting port's edges: the edge's mapping shapes the message, the target port's schema checks
//! it, and the target handles it, with the edge's timeout and retries for transient failures.
//! A run is a call tree: an emit returns what the downstream chain returned.

pub mod client;
mod edge;
mod flows;
pub mod grpc;
pub mod host;
pub mod inspect;
mod instance;
pub mod metrics;
mod peers;
pub mod replicas;
mod runtime;
pub mod scenario;
pub mod trust;
mod wiring;

pub use host::Host;
pub use runtime::{BuildError, DEFAULT_EDGE_TIMEOUT, HOP_LIMIT, NodeKey, Runtime, misfit};
pub use weir_model::Counters;
pub use wiring::Unwired;
