//! `weir module NAME`: runs one built-in module's nodes, as a module Deployment does in a
//! cluster: the gRPC server, leader election for its triggers on the Lease
//! `weir-module-NAME` (when the store is a cluster), and the HTTP endpoint for probes and
//! metrics.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context as _, Result, bail};
use tokio_util::sync::CancellationToken;
use weir_sdk::Module;

use super::open::Opened;
use crate::{
    accounts::FlowAccounts,
    cli::ModuleArgs,
    gate::ClusterGate,
    hosting::{Hosting, Listeners},
    process::{self, Parts, Process},
    scope::Scope,
    secrets::KubeSecrets,
};

/// The port a module serves gRPC on when not told.
const GRPC_PORT: u16 = 7421;
/// The port of its HTTP endpoint (health, metrics) when not told.
const HTTP_PORT: u16 = 7422;
/// The port the http module serves webhooks on when not told.
const WEBHOOK_PORT: u16 = 7423;

/// Runs `weir module` until interrupted.
pub async fn run(opened: Opened, builtins: Vec<Module>, args: ModuleArgs) -> Result<()> {
    let names: Vec<&str> = builtins.iter().map(Module::name).collect();
    let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    let Some(module) = builtins.into_iter().find(|m| m.name() == args.name) else {
        bail!("there is no built-in module {:?} (built in: {known})", args.name);
    };
    // In a pod every port is the pod's own, reached through Services; outside a cluster each
    // stays on this machine unless told otherwise, and the gRPC port always, as nothing checks
    // its callers there (below).
    let in_cluster = opened.config.is_some();
    let bind = |given: Option<SocketAddr>, port: u16| {
        given.unwrap_or_else(|| {
            let any = if in_cluster { [0, 0, 0, 0] } else { [127, 0, 0, 1] };
            SocketAddr::from((any, port))
        })
    };
    let grpc_listen = bind(args.grpc_listen, GRPC_PORT);
    if !in_cluster {
        process::ungated_grpc_on_loopback(grpc_listen)?;
    }
    let listeners = Listeners::bind(
        std::slice::from_ref(&module),
        grpc_listen,
        args.advertise,
        bind(args.webhook_listen, WEBHOOK_PORT),
    )
    .await?;
    let (http, http_address) = process::listen(bind(args.listen, HTTP_PORT)).await?;
    // In a cluster the gRPC port answers only authenticated callers.
    let (gate, bearer) = match &opened.config {
        Some(config) => {
            let peers: Vec<String> = args.peers.iter().filter(|p| !p.is_empty()).cloned().collect();
            if peers.is_empty() {
                bail!(
                    "in a cluster a module answers only the processes of its release: name their \
                     ServiceAccounts with --peers or WEIR_PEERS (the chart does)"
                );
            }
            let bearer = crate::gate::bearer(config);
            if bearer.is_none() {
                tracing::warn!(
                    "this process signs in to the cluster without a bearer token, so other \
                     modules will refuse its deliveries"
                );
            }
            let gate: Arc<dyn weir_runtime::trust::Gate> =
                Arc::new(ClusterGate::new(config.clone(), &args.namespace, &peers));
            (Some(gate), bearer)
        }
        None => (None, None),
    };
    // In a cluster the nodes of a module that acts on the cluster act as their flows'
    // ServiceAccounts, never as the module's own.
    let acts = crate::rbac::acts(&module)?;
    let accounts = match &opened.client {
        Some(client) if acts => {
            let accounts: Arc<dyn weir_runtime::trust::Accounts> =
                Arc::new(FlowAccounts::new(client.clone()));
            Some(accounts)
        }
        _ => None,
    };
    let name = module.name().to_owned();
    let identity = process::identity(args.identity, &name);
    let lease = format!("weir-module-{name}");
    let leadership =
        process::leadership(opened.client, &args.leader, &args.namespace, lease, &identity)?;
    tracing::info!(
        module = name,
        store = opened.place,
        webhooks = listeners.webhooks_url().unwrap_or_default(),
        "module {name} serves gRPC at {}, HTTP on http://{http_address}",
        listeners.advertise,
    );
    let hosting = Hosting {
        modules: vec![module],
        listeners,
        replica: identity,
        gate,
        bearer,
        accounts,
        secrets: Arc::new(KubeSecrets::new(opened.config)),
        secret_refresh: args.secret_refresh.get(),
    };
    let parts = Parts {
        store: opened.store,
        scope: Scope::new(&args.namespace, args.all_namespaces),
        leadership,
        editor: None,
        modules: Some(hosting),
    };
    let stop = CancellationToken::new();
    process::serve(http, Process::start(parts, &stop), stop)
        .await
        .with_context(|| format!("module {name} stopped"))
}
