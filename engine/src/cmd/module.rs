//! `weir module NAME`: runs one built-in module's nodes, as a module Deployment does in a
//! cluster: the gRPC server, leader election for its triggers on a Lease (when the store is a
//! cluster), and the HTTP endpoint for probes and metrics.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use tokio_util::sync::CancellationToken;
use weir_sdk::Module;

use crate::{
    accounts::FlowAccounts,
    cli::ModuleArgs,
    gate::ClusterGate,
    hosting::{self, Hosting, Leadership},
    scope::Scope,
    secrets::KubeSecrets,
    server,
};

/// Runs `weir module` until interrupted.
pub async fn run(opened: super::Opened, builtins: Vec<Module>, args: ModuleArgs) -> Result<()> {
    let names: Vec<&str> = builtins.iter().map(Module::name).collect();
    let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    let Some(module) = builtins.into_iter().find(|m| m.name() == args.name) else {
        bail!("there is no built-in module {:?} (built in: {known})", args.name);
    };
    let listeners = hosting::Listeners::bind(
        std::slice::from_ref(&module),
        args.grpc_listen,
        args.advertise,
        args.webhook_listen,
    )
    .await?;
    let http = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let http_address = http.local_addr().context("cannot read the listening address")?;
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
    let stop = CancellationToken::new();
    let scope = Scope::new(&args.namespace, args.all_namespaces);
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
    let identity = args
        .identity
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("{}-{}", module.name(), std::process::id()));
    let leadership = match opened.client {
        Some(client) => {
            let lease = format!("weir-module-{}", module.name());
            let election = args.leader.election(&args.namespace, lease, identity.clone())?;
            Leadership::Lease(client, Box::new(election))
        }
        None => Leadership::Alone,
    };
    tracing::info!(
        module = module.name(),
        store = opened.place,
        webhooks = listeners.webhooks_url().unwrap_or_default(),
        "module {} serves gRPC at {}, HTTP on http://{http_address}",
        module.name(),
        listeners.advertise,
    );
    let hosting = Hosting {
        modules: vec![module],
        scope: scope.clone(),
        listeners,
        replica: identity,
        leadership,
        gate,
        bearer,
        accounts,
        secrets: Arc::new(KubeSecrets::new(opened.config.clone())),
        secret_refresh: args.secret_refresh.get(),
    };
    let hosted = hosting.start(Arc::clone(&opened.store), &stop);
    let failure = hosted.failure();
    let app = server::app(opened.store, Some(hosted.runtime.clone()), scope);
    let ended = {
        let failure = Arc::clone(&failure);
        async move {
            tokio::select! {
                () = server::shutdown_requested() => {}
                () = failure.happened() => {}
            }
        }
    };
    axum::serve(http, app).with_graceful_shutdown(ended).await.context("the HTTP server failed")?;
    stop.cancel();
    hosted.stopped().await;
    if let Some(reason) = failure.reason() {
        bail!("module {} stopped: {reason}", args.name);
    }
    tracing::info!("module stopped");
    Ok(())
}
