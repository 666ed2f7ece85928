//! The http module: flows that talk to the world. `webhook` starts runs from requests to the
//! module's webhook listener and answers them (`respond` shapes the answer); `request` sends
//! HTTP requests.

pub mod address;
pub mod body;
pub mod deliveries;
pub mod hooks;
pub mod request;
pub mod respond;
pub mod signature;
pub mod webhook;

use weir_sdk::Module;

/// The http module, its components one per line, and its webhook listener.
pub fn module() -> Module {
    Module::new("http", env!("CARGO_PKG_VERSION"))
        .component::<webhook::Webhook>()
        .component::<respond::Respond>()
        .component::<request::Request>()
        .listener(hooks::serve)
        .guide(include_str!("../GUIDE.md"))
}
