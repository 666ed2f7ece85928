//! `weir engine`: the engine of a cluster, as its Deployment runs it: the flow controller
//! (on the replica holding the Lease `weir-engine`), and the editor with its API, which acts
//! for each user with their own Kubernetes token. Modules run apart (`weir module`).

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::open::Opened;
use crate::{
    cli::EngineArgs,
    guard::Guard,
    process::{self, Editor, Parts, Process, Users},
    scope::Scope,
};

/// Runs `weir engine` until interrupted.
pub async fn run(opened: Opened, args: EngineArgs) -> Result<()> {
    let (Some(client), Some(config)) = (opened.client, opened.config) else {
        anyhow::bail!(
            "weir engine runs against a cluster: run it in a pod, or give --kubeconfig or --context"
        );
    };
    if let Some(url) = &args.webhooks_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        anyhow::bail!("--webhooks-url {url:?}: give an http:// or https:// URL");
    }
    let (listener, address) = process::listen(args.listen).await?;
    let scope = Scope::new(&args.namespace, args.all_namespaces);
    let identity = process::identity(args.identity, "engine");
    let lease = "weir-engine".to_owned();
    let leadership =
        process::leadership(Some(client), &args.leader, &args.namespace, lease, &identity)?;
    tracing::info!(
        store = opened.place,
        flows = scope.flows.as_deref().unwrap_or("every namespace"),
        "the engine serves http://{address}"
    );
    let editor = Editor {
        bearer: crate::gate::bearer(&config),
        users: Users::Cluster(Box::new(config)),
        guard: Guard::Cluster,
        files: args.ui_dir.unwrap_or_else(crate::editor_files::default_dir),
        runs_kept: usize::from(args.runs_kept),
        webhooks: args.webhooks_url.map(|url| format!("{}/", url.trim_end_matches('/'))),
    };
    let parts =
        Parts { store: opened.store, scope, leadership, editor: Some(editor), modules: None };
    let stop = CancellationToken::new();
    process::serve(listener, Process::start(parts, &stop), stop).await
}
