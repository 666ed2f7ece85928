//! Hosting modules in this process: a runtime with their components, the gRPC server other
//! modules deliver to, the webhook listener, and the [`Host`] that keeps the runtime in step
//! with the store. `weir up` hosts every built-in module; `weir module NAME` hosts one
//! (`crate::process` puts either together).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use weir_runtime::{
    Host, Runtime,
    trust::{Accounts, Bearer, Gate, SecretValues},
};
use weir_sdk::Module;
use weir_store::{Store, lease::Election};

use crate::scope::Scope;

/// How a hosting process takes part in leader election.
pub enum Leadership {
    /// The only replica: it leads for good (the embedded store, `weir up`).
    Alone,
    /// One of several replicas competing for a Lease in the cluster.
    Lease(kube::Client, Box<Election>),
}

/// Whether this replica leads, as it changes.
#[derive(Debug, Clone)]
pub struct Leading {
    /// True while it leads.
    pub leads: watch::Receiver<bool>,
    /// Whether other replicas compete, so that they hear of this one leaving a moment late.
    pub replicated: bool,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Alone => f.write_str("Alone"),
            Self::Lease(_, election) => f.debug_tuple("Lease").field(election).finish(),
        }
    }
}

/// What to host and where to serve it.
#[derive(Debug)]
pub struct Hosting {
    /// The modules whose nodes this process runs.
    pub modules: Vec<Module>,
    /// Where the process is reached.
    pub listeners: Listeners,
    /// This replica's name among its modules' replicas (its pod's name).
    pub replica: String,
    /// Who the gRPC server answers: everyone who reaches it when `None` (`weir up`).
    pub gate: Option<Arc<dyn Gate>>,
    /// What this process presents when it calls other modules, in a cluster.
    pub bearer: Option<Bearer>,
    /// Whom the nodes act as, in a cluster: their flows' ServiceAccounts.
    pub accounts: Option<Arc<dyn Accounts>>,
    /// Where the Secrets that secret settings refer to are read.
    pub secrets: Arc<dyn SecretValues>,
    /// How often they are read again, so that nodes follow a changed Secret.
    pub secret_refresh: std::time::Duration,
}

/// Where a hosting process is reached.
#[derive(Debug)]
pub struct Listeners {
    /// Where the gRPC server listens.
    pub grpc: TcpListener,
    /// The URL other modules reach the gRPC server at, published in the `Module` resources.
    pub advertise: String,
    /// Where the module with a listener of its own (the http module's webhooks) serves, when
    /// one is hosted.
    pub webhooks: Option<TcpListener>,
}

impl Listeners {
    /// Binds the listeners of `modules`: gRPC on `grpc` (see [`grpc_listener`]), and
    /// `webhooks` when a module among them has a listener of its own.
    pub async fn bind(
        modules: &[Module],
        grpc: std::net::SocketAddr,
        advertise: Option<String>,
        webhooks: std::net::SocketAddr,
    ) -> Result<Self> {
        let (grpc, advertise) = grpc_listener(grpc, advertise).await?;
        let serving: Vec<&str> =
            modules.iter().filter(|m| m.serve().is_some()).map(Module::name).collect();
        let webhooks = match serving.as_slice() {
            [] => None,
            [_] => Some(TcpListener::bind(webhooks).await.with_context(|| {
                format!("cannot listen for webhooks on {webhooks} (--webhook-listen)")
            })?),
            several => anyhow::bail!(
                "modules {} each want the webhook listener; host them apart",
                several.join(" and ")
            ),
        };
        Ok(Self { grpc, advertise, webhooks })
    }

    /// Where webhooks are served, such as `http://127.0.0.1:7423/hooks/`, when a module
    /// serves them.
    pub fn webhooks_url(&self) -> Option<String> {
        let address = self.webhooks.as_ref()?.local_addr().ok()?;
        Some(format!("http://{address}/hooks/"))
    }
}

/// Modules being hosted; [`Hosted::stopped`] waits for them after `stop` is cancelled.
#[derive(Debug)]
pub struct Hosted {
    /// The runtime, for the HTTP endpoints.
    pub runtime: Runtime,
    tasks: Vec<JoinHandle<()>>,
    failure: Arc<Failure>,
}

impl Leadership {
    /// Starts taking part until `stop` is cancelled: whether this replica leads, and the
    /// election's task when there is one.
    pub fn start(self, stop: &CancellationToken) -> (Leading, Option<JoinHandle<()>>) {
        match self {
            // With the sender gone the value stays: leading for good.
            Self::Alone => (Leading { leads: watch::channel(true).1, replicated: false }, None),
            Self::Lease(client, election) => {
                let (leader, leads) = watch::channel(false);
                let task = tokio::spawn(election.run(client, leader, stop.clone()));
                (Leading { leads, replicated: true }, Some(task))
            }
        }
    }
}

impl Hosting {
    /// Starts serving the nodes of `scope` (publishing the `Module` resources in its home)
    /// until `stop` is cancelled, the triggers running while `leading` says so, then stops in
    /// the order that loses no delivery: this replica leaves its modules' replicas (senders
    /// turn to the others), the gRPC server stops taking calls and drains those under way
    /// (bounded), and only then do the nodes stop ([`Hosted::stopped`]; the lease goes after).
    pub fn start(
        self,
        store: Arc<dyn Store>,
        scope: Scope,
        leading: Leading,
        stop: &CancellationToken,
    ) -> Hosted {
        let mut tasks = Vec::new();
        // Ends the gRPC server once this replica has left; ends the nodes once it drained.
        let (closing, serving) = (CancellationToken::new(), CancellationToken::new());
        // Other replicas' senders hear that this one left a moment after it did.
        let Leading { leads, replicated } = leading;
        let serve = self.modules.iter().find_map(Module::serve);
        let runtime = Runtime::with_leadership(self.modules, leads);
        if let Some(bearer) = self.bearer {
            runtime.present(bearer);
        }
        // Before any node is built, so no node ever acts with the module's own identity.
        if let Some(accounts) = self.accounts {
            runtime.act_as(accounts);
        }
        runtime.read_secrets_with(self.secrets);
        let failure = Arc::new(Failure::default());
        let Listeners { grpc, advertise, webhooks } = self.listeners;
        // The webhook listener stops taking requests with the gRPC server, once this replica
        // has left, and the nodes stop after both drained.
        let webhooks = match (serve, webhooks) {
            (Some(serve), Some(listener)) => {
                let (closing, failure) = (closing.clone(), Arc::clone(&failure));
                Some(tokio::spawn(async move {
                    match serve(listener, closing.clone()).await {
                        Err(err) => failure.fail(format!("the webhook listener failed: {err}")),
                        Ok(()) if !closing.is_cancelled() => {
                            failure.fail("the webhook listener stopped");
                        }
                        Ok(()) => {}
                    }
                }))
            }
            _ => None,
        };
        let grpc = tokio::spawn({
            let (runtime, gate, closing) = (runtime.clone(), self.gate, closing.clone());
            let failure = Arc::clone(&failure);
            async move {
                let served = weir_runtime::grpc::serve(runtime, grpc, gate, closing.clone());
                match served.await {
                    Err(err) => failure.fail(format!("the gRPC server failed: {err}")),
                    Ok(()) if !closing.is_cancelled() => failure.fail("the gRPC server stopped"),
                    Ok(()) => {}
                }
            }
        });
        let host = Host::new(runtime.clone(), store, &scope.home)
            .watching(scope.flows)
            .with_endpoint(&self.replica, advertise)
            .refreshing_secrets_every(self.secret_refresh);
        tasks.push(tokio::spawn({
            let (host, serving, failure) = (host.clone(), serving.clone(), Arc::clone(&failure));
            async move {
                match host.run(serving.clone()).await {
                    Err(err) => failure.fail(format!("cannot host the modules: {err}")),
                    Ok(()) if !serving.is_cancelled() => failure.fail("hosting the modules ended"),
                    Ok(()) => {}
                }
            }
        }));
        tasks.push(tokio::spawn({
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                if tokio::time::timeout(LEAVE_TIMEOUT, host.leave()).await.is_err() {
                    tracing::warn!(
                        "could not leave the modules' replicas in time; stopping anyway"
                    );
                }
                if replicated {
                    tokio::time::sleep(LEAVE_GRACE).await;
                }
                closing.cancel();
                let _ = grpc.await;
                if let Some(webhooks) = webhooks {
                    let _ = webhooks.await;
                }
                serving.cancel();
            }
        }));
        Hosted { runtime, tasks, failure }
    }
}

/// How long a replica that left goes on taking calls, so that senders who had not heard yet
/// reach it rather than a closing connection.
const LEAVE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long leaving the modules' replicas may take when stopping (the store may be gone).
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why hosting stopped before it was asked to: a process whose modules no longer run must not
/// go on looking alive, so it exits with this.
#[derive(Debug, Default)]
pub struct Failure {
    reason: std::sync::OnceLock<String>,
    happened: CancellationToken,
}

impl Failure {
    fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!("{reason}");
        let _ = self.reason.set(reason);
        self.happened.cancel();
    }

    /// Completes once hosting failed.
    pub async fn happened(&self) {
        self.happened.cancelled().await;
    }

    /// Why hosting failed, if it did.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

impl Hosted {
    /// Why hosting failed, once it does.
    pub fn failure(&self) -> Arc<Failure> {
        Arc::clone(&self.failure)
    }

    /// Waits for every part to finish (they do once `stop` is cancelled): the nodes stopped.
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the gRPC listener and tells the URL others reach it at: `advertise` when given, else
/// `POD_IP` (set from the Downward API in a cluster), else the bound address.
pub async fn grpc_listener(
    listen: std::net::SocketAddr,
    advertise: Option<String>,
) -> Result<(TcpListener, String)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {listen}"))?;
    let bound = listener.local_addr().context("cannot read the gRPC listening address")?;
    let advertise = match advertise {
        Some(url) => url,
        None => match std::env::var("POD_IP").ok().filter(|ip| !ip.is_empty()) {
            Some(ip) if ip.contains(':') => format!("http://[{ip}]:{}", bound.port()),
            Some(ip) => format!("http://{ip}:{}", bound.port()),
            None if bound.ip().is_unspecified() => format!("http://127.0.0.1:{}", bound.port()),
            None => format!("http://{bound}"),
        },
    };
    Ok((listener, advertise))
}
