//! `weir engine`: the engine of a cluster, as its Deployment runs it: the flow controller
//! (on the replica holding the Lease `weir-engine`), and the editor with its API, which acts
//! for each user with their own Kubernetes token. Modules run apart (`weir module`).

use anyhow::{Context as _, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    api::access::Access,
    cli::EngineArgs,
    guard::Guard,
    hosting::Leadership,
    scope::Scope,
    server::{self, Engine, EngineParts},
};

/// Runs `weir engine` until interrupted.
pub async fn run(opened: super::Opened, args: EngineArgs) -> Result<()> {
    let (Some(client), Some(config)) = (opened.client, opened.config) else {
        anyhow::bail!(
            "weir engine runs against a cluster: run it in a pod, or give --kubeconfig or --context"
        );
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    let scope = Scope::new(&args.namespace, args.all_namespaces);
    let identity = args
        .identity
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("engine-{}", std::process::id()));
    let election = args.leader.election(&args.namespace, "weir-engine".to_owned(), identity)?;
    tracing::info!(
        store = opened.place,
        flows = scope.flows.as_deref().unwrap_or("every namespace"),
        "the engine serves http://{address}"
    );
    let stop = CancellationToken::new();
    let engine = Engine::assemble(
        EngineParts {
            store: opened.store,
            scope,
            bearer: crate::gate::bearer(&config),
            access: Access::tokens(config),
            guard: Guard::Cluster,
            editor: args.ui_dir.unwrap_or_else(crate::editor_files::default_dir),
            leadership: Leadership::Lease(client, Box::new(election)),
            modules: None,
        },
        &stop,
    );
    server::serve(listener, engine, stop).await
}
