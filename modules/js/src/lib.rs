//! The js module: a user's JavaScript function on each message, sandboxed in QuickJS behind a
//! small [`engine::Engine`] trait.

pub mod engine;
pub mod js_eval;
pub mod quickjs;
mod schema;
mod script;

use weir_sdk::Module;

/// The js module, its components one per line.
pub fn module() -> Module {
    Module::new("js", env!("CARGO_PKG_VERSION")).component::<js_eval::JsEval>()
}
