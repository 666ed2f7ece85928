//! The runtime every module process embeds. It builds a node instance for each FlowNode of the
//! modules it hosts, through one path for start and change, and routes each emit along the
//! emitting port's edges: the edge's mapping shapes the message, the target port's schema checks
//! it, and the target handles it, with the edge's timeout and retries for transient failures.
//! A run is a call tree: an emit returns what the downstream chain returned.

pub mod client;
mod delivery;
mod edge;
mod flows;
pub mod grpc;
pub mod histogram;
pub mod host;
pub mod inspect;
mod instance;
mod key;
mod link;
pub mod metrics;
mod peers;
pub mod replicas;
mod routing;
mod runtime;
pub mod scenario;
mod shared;
pub mod spans;
pub mod trust;
mod wiring;

pub use delivery::{HOP_LIMIT, misfit};
pub use edge::DEFAULT_EDGE_TIMEOUT;
pub use host::Host;
pub use key::NodeKey;
pub use runtime::{BuildError, Runtime};
pub use weir_model::Counters;
pub use wiring::Unwired;
