//! The Weir module SDK: the only crate a node author imports.
//!
//! A component is a small typed thing: a settings type (serde + JSON Schema + `Default`, whose
//! doc comments become the editor's help), ports computed from the settings, a `build` that
//! checks them, and an async `handle` whose [`Context::emit`] returns what the downstream
//! chain returned. Triggers add a `run` loop. Failures are typed ([`NodeError`]) so the runtime
//! retries only what is transient. A [`Module`] lists its components one per line, and
//! `testing` (the `testing` feature, for dev-dependencies) builds nodes from settings JSON for
//! tests.

pub mod component;
pub mod context;
pub mod error;
pub mod gauge;
pub mod module;
pub mod port;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod trigger;

pub use component::{Component, Description, KindPermission, Node, Permission};
pub use context::{AccountToken, Context, Emitter, NodeIdentity, NodeParts, Run};
pub use error::{ErrorKind, NodeError};
pub use gauge::{Family, Gauge, Series};
pub use module::Module;
pub use port::{ERROR_PORT, Failure, Port, read_message};
pub use schemars::JsonSchema;
pub use serde_json::{Value, json};
pub use state::{NodeState, json_size};
pub use trace::TraceContext;
pub use trigger::Trigger;
pub use weir_model::{
    Direction, HumanDuration,
    api_kind::{ApiKind, KindError},
    mapping::{Expression, MappingError},
    names::PortName,
    redact::{REDACTED, redact, redact_by_name},
    selector::{InvalidSelector, Selector},
};
