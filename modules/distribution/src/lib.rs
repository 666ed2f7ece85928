//! The distribution module: a thin OCI distribution client of our own, for copying images
//! between registries byte-exact, the `registry_copy` node built on it, and the image mirror's
//! `mirror_plan`, which reads references with the same parser.

pub mod auth;
pub mod client;
pub mod copy;
pub mod image;
pub mod mirror_plan;
pub mod platform;
pub mod reference;
pub mod registry_check;
pub mod registry_copy;

use weir_sdk::Module;

/// The distribution module, its components one per line.
pub fn module() -> Module {
    Module::new("distribution", env!("CARGO_PKG_VERSION"))
        .component::<mirror_plan::MirrorPlan>()
        .component::<registry_copy::RegistryCopy>()
        .component::<registry_check::RegistryCheck>()
}
