//! The kubernetes module: the cluster as a flow sees it. `deployment_list` reads Deployments
//! with their images and pull secrets, `deployment_patch` changes their images, `secret_get`
//! reads registry credentials. Each component declares the RBAC rules it needs, and each node
//! reaches its cluster through the in-cluster ServiceAccount or a kubeconfig (see [`access`]).

pub mod access;
pub mod deployment_list;
pub mod deployment_patch;
pub mod secret_get;

use weir_sdk::Module;

/// The kubernetes module, its components one per line.
pub fn module() -> Module {
    Module::new("kubernetes", env!("CARGO_PKG_VERSION"))
        .component::<deployment_list::DeploymentList>()
        .component::<deployment_patch::DeploymentPatch>()
        .component::<secret_get::SecretGet>()
}
