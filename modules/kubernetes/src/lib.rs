//! The kubernetes module: the cluster as a flow sees it. `resource_watch` starts runs as
//! objects change; `resource_get`, `resource_list`,
//! `resource_apply`, `resource_patch`, `resource_delete` and `scale` work on any kind the
//! apiserver serves, custom resources included, named in their settings (see [`dynamic`]);
//! `pod_logs` reads what containers wrote. `workload_list` reads the workloads of every kind
//! with their images and pull secrets, `workload_patch` changes their images, `secret_get`
//! reads registry credentials, `tls_certificates` the facts of TLS certificates (never their keys). Each component declares the RBAC rules it needs (those on a kind
//! follow from the node's settings, so `weir rbac` gives a flow exactly them), and each node
//! acts as its flow's ServiceAccount or with a kubeconfig (see [`access`]).

pub mod access;
pub mod dynamic;
pub mod pod_logs;
pub mod resource_apply;
pub mod resource_delete;
pub mod resource_get;
pub mod resource_list;
pub mod resource_patch;
pub mod resource_watch;
pub mod scale;
pub mod secret_get;
pub mod tls_certificates;
pub mod workload_list;
pub mod workload_patch;

use weir_sdk::Module;

/// The kubernetes module, its components one per line.
pub fn module() -> Module {
    Module::new("kubernetes", env!("CARGO_PKG_VERSION"))
        .component::<workload_list::WorkloadList>()
        .component::<workload_patch::WorkloadPatch>()
        .component::<secret_get::SecretGet>()
        .component::<tls_certificates::TlsCertificates>()
        .component::<resource_get::ResourceGet>()
        .component::<resource_list::ResourceList>()
        .component::<resource_apply::ResourceApply>()
        .component::<resource_patch::ResourcePatch>()
        .component::<resource_delete::ResourceDelete>()
        .component::<scale::Scale>()
        .component::<pod_logs::PodLogs>()
        .component::<resource_watch::ResourceWatch>()
}
