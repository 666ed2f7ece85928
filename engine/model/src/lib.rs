//! Weir's shared vocabulary: the `Flow`, `FlowNode` and `Module` resources (API group
//! `weir.dev`), the rules their names follow, and offline validation of manifests.
//!
//! This crate does no I/O, so the engine, the module SDK and the editor (compiled to wasm32) all
//! use the same types and the same checks.

pub mod api_kind;
pub mod check;
pub mod condition;
pub mod crd;
pub mod duration;
pub mod flow;
pub mod flow_node;
pub mod kind;
pub mod manifest;
pub mod mapping;
pub mod module;
pub mod names;
pub mod redact;
mod schema;
pub mod secret_ref;
pub mod selector;

pub use condition::{Condition, ConditionStatus};
pub use duration::HumanDuration;
pub use flow::{DEFAULT_ACCOUNT, Flow, FlowSpec, FlowStatus, Position};
pub use flow_node::{
    Counters, Edge, EdgeTarget, FlowNode, FlowNodeSpec, FlowNodeStatus, RetryPolicy,
};
pub use kind::{API_VERSION, GROUP, Kind, VERSION};
pub use manifest::{Document, FieldError, Resource};
pub use module::{
    ComponentDescriptor, Direction, KindRule, Module, ModuleSpec, ModuleStatus, PortDescriptor,
};
pub use names::{AccountName, ComponentName, FlowName, ModuleName, NodeName, PortName};
