//! `weir up`: the whole of Weir in one process on one store: the flow controller, every
//! built-in module, and the HTTP endpoint (health, metrics, the editor's API under `/api` and
//! the editor itself at `/`).

use anyhow::Result;
use tokio_util::sync::CancellationToken;
use weir_sdk::Module;

use super::open::Opened;
use crate::{
    cli::UpArgs,
    guard::Guard,
    hosting::Listeners,
    process::{self, Editor, Parts, Process, Users},
};

/// Runs `weir up` until interrupted (Ctrl-C or SIGTERM).
pub async fn run(opened: Opened, builtins: Vec<Module>, args: UpArgs) -> Result<()> {
    let users = match &args.token_file {
        Some(file) => Users::token_file(file)?,
        None if !args.listen.ip().is_loopback() => anyhow::bail!(
            "--listen {}: weir up on an address other machines reach acts with your kubeconfig \
             for whoever sends it requests; give --token-file FILE with a token they must send, \
             or listen on a loopback address such as 127.0.0.1",
            args.listen
        ),
        None => Users::Anyone,
    };
    // `weir up`'s modules check no caller: their port stays on this machine.
    process::ungated_grpc_on_loopback(args.grpc_listen)?;
    let (listener, address) = process::listen(args.listen).await?;
    let listeners = Listeners::bind(&builtins, args.grpc_listen, None, args.webhook_listen).await?;
    let scope = args.scope(opened.client.is_some());
    let Opened { store, place, .. } = opened;
    let modules: Vec<&str> = builtins.iter().map(Module::name).collect();
    tracing::info!(
        data = place,
        flows = scope.flows.as_deref().unwrap_or("every namespace"),
        modules = modules.join(","),
        grpc = listeners.advertise,
        webhooks = listeners.webhooks_url().unwrap_or_default(),
        token = matches!(users, Users::TokenHolder(_)),
        "weir is up on http://{address}"
    );
    let stop = CancellationToken::new();
    let files = args.ui_dir.unwrap_or_else(crate::editor_files::default_dir);
    let (guard, runs_kept) = (Guard::Local(address), usize::from(args.runs_kept));
    let webhooks = listeners.webhooks_url();
    let editor = Editor { users, guard, files, bearer: None, runs_kept, webhooks };
    let parts = Parts::up(store, scope, builtins, listeners, editor);
    process::serve(listener, Process::start(parts, &stop), stop).await
}
