//! `weir up`: the whole of Weir in one process on one store: the flow controller, every
//! built-in module, and the HTTP endpoint (health, metrics, the editor's API under `/api` and
//! the editor itself at `/`).

use anyhow::{Context as _, Result};
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use weir_runtime::replicas::{self, STALE};
use weir_sdk::Module;
use weir_store::Store;

use super::open::Opened;
use crate::{
    catalogue::Catalogue,
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
    if opened.client.is_some() {
        refuse_a_served_namespace(opened.store.as_ref(), &scope.home, scope.flows.as_deref())
            .await?;
    }
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

/// Refuses a namespace of a cluster whose flows modules already run, from an installed engine
/// (in that namespace, or one running every namespace's flows) or another `weir up`: each flow
/// would run twice, and replicas sharing its `Module` resources would send each other
/// deliveries, this one from a loopback address the others cannot reach. `flows` is `None` for
/// every namespace, which the user asked for knowing that.
async fn refuse_a_served_namespace(
    store: &dyn Store,
    home: &str,
    flows: Option<&str>,
) -> Result<()> {
    let modules = Catalogue::visible(store, home)
        .await
        .with_context(|| format!("cannot read the modules of namespace {home}"))?;
    let now = Timestamp::now();
    for module in &modules {
        let at = module.metadata.namespace.as_deref().unwrap_or_default();
        let clash = replicas::serving(module, now)
            .into_iter()
            .find(|replica| at == home || flows.is_some_and(|flows| replica.runs_flows_of(flows)));
        if let Some(replica) = clash {
            let runs = match replica.runs.as_deref() {
                Some(weir_model::module::EVERY_NAMESPACE) => "every namespace's flows".to_owned(),
                Some(namespace) => format!("the flows of namespace {namespace}"),
                None => format!("the flows of namespace {at}"),
            };
            anyhow::bail!(
                "namespace {home}: module {} of namespace {at} already runs {runs} (replica {} \
                 at {}, renewed {}), so weir up would run them a second time; choose another \
                 namespace with --namespace, or stop that replica (an entry not renewed for \
                 {}s is dropped)",
                module.metadata.name.as_deref().unwrap_or_default(),
                replica.name,
                replica.endpoint,
                replica.heartbeat,
                STALE.as_secs(),
            );
        }
    }
    Ok(())
}
