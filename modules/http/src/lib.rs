//! The http module: flows that talk to the world. `request` sends HTTP requests.

pub mod address;
pub mod body;
pub mod request;

use weir_sdk::Module;

/// The http module, its components one per line.
pub fn module() -> Module {
    Module::new("http", env!("CARGO_PKG_VERSION")).component::<request::Request>()
}
