//! The command line: every verb, flag and help text of `weir`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use weir_model::names::NameRule;
use weir_runtime::host::MIN_SECRET_REFRESH;

use crate::scope::Scope;

/// Weir: visual, Kubernetes-native workflows.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, max_term_width = 100)]
pub struct Cli {
    /// Where the embedded store keeps its manifests [default: $XDG_DATA_HOME/weir or
    /// ~/.local/share/weir]; not with --kubeconfig or --context, which choose a cluster instead
    #[arg(long, global = true, env = "WEIR_DATA_DIR", value_name = "DIR", conflicts_with_all = ["kubeconfig", "context"])]
    pub data_dir: Option<PathBuf>,

    /// Keep resources in the Kubernetes cluster this kubeconfig names instead of the embedded
    /// store; not with --data-dir
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Use this kubeconfig context (of --kubeconfig, $KUBECONFIG or ~/.kube/config)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// How much to log when `WEIR_LOG` does not say: `weir up` tells what it does, one-shot
    /// commands print only warnings.
    pub fn default_log_filter(&self) -> &'static str {
        // kube-client logs connection failures itself; a one-shot command reports them once,
        // as its error.
        if self.is_long_running() { "info" } else { "warn,kube_client=off" }
    }

    /// Whether the command serves until stopped, rather than doing one thing and exiting.
    pub fn is_long_running(&self) -> bool {
        matches!(self.command, Command::Up(_) | Command::Engine(_) | Command::Module(_))
    }
}

/// A `weir` verb.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine on the embedded store
    Up(UpArgs),
    /// Run the engine of a cluster: the flow controller and the editor with its API, acting
    /// for each user with their own Kubernetes token (the engine Deployment runs this)
    Engine(EngineArgs),
    /// Run one built-in module's nodes (a module Deployment in a cluster runs this)
    Module(ModuleArgs),
    /// Deliver a test message to a node's input port and print what the flow answered
    Send(SendArgs),
    /// Show the last runs of a flow that a running engine keeps, or one run's messages
    Runs(RunsArgs),
    /// Send the message a node received in a kept run to it again, and print what the flow
    /// answered
    Replay(ReplayArgs),
    /// Serve the Model Context Protocol on standard input and output, for an AI assistant to
    /// build, check, run and debug flows through an engine's API as you
    Mcp(McpArgs),
    /// Create or update resources from manifests
    Apply(ApplyArgs),
    /// Show resources
    Get(GetArgs),
    /// Delete resources (deleting a flow deletes its nodes)
    Delete(DeleteArgs),
    /// Print flows with their nodes as manifests that `kubectl apply` and `weir apply` take
    Export(ExportArgs),
    /// List and install ready-made flows (solutions)
    Solution(SolutionArgs),
    /// Print (or apply) the ServiceAccount and RBAC rules a flow's nodes need to act as it
    Rbac(RbacArgs),
    /// Check manifests offline against the rules the cluster enforces
    Validate(ValidateArgs),
    /// Print or write the CustomResourceDefinitions
    Crds(CrdsArgs),
    /// Print or write the node reference (Markdown) of the built-in modules
    Reference(ReferenceArgs),
    /// Write the generated parts of the Helm chart: CRDs, RBAC rules and the values README
    Chart(ChartArgs),
    /// Assemble the image (binary, editor, solutions) without a container engine, as the
    /// Dockerfile's runtime stage describes it, and push it
    Image(ImageArgs),
}

/// Where resources are kept.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// The embedded store under a data directory (the default).
    Embedded(Option<PathBuf>),
    /// A Kubernetes cluster.
    Cluster {
        /// The kubeconfig file, when not the default one.
        kubeconfig: Option<PathBuf>,
        /// The context, when not the current one.
        context: Option<String>,
    },
}

impl Cli {
    /// Which store the flags choose. `weir engine` always runs against a cluster, and so does
    /// `weir module` in a pod (where `KUBERNETES_SERVICE_HOST` is set) unless told a data
    /// directory: both then use the pod's ServiceAccount.
    pub fn store(&self) -> StoreChoice {
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty());
        let cluster_by_default = match self.command {
            Command::Engine(_) => self.data_dir.is_none(),
            Command::Module(_) => in_pod && self.data_dir.is_none(),
            _ => false,
        };
        if self.kubeconfig.is_some() || self.context.is_some() || cluster_by_default {
            StoreChoice::Cluster {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
            }
        } else {
            StoreChoice::Embedded(self.data_dir.clone())
        }
    }
}

/// How many runs of each flow the engine keeps for the editor, `weir runs` and `weir replay`
/// when not told (`--runs-kept`).
pub const RUNS_KEPT: u16 = 20;
/// The most runs of each flow the engine may be told to keep.
pub const MOST_RUNS_KEPT: i64 = 1000;

/// `weir up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address of the HTTP endpoint (health, metrics and the editor's API under /api); one
    /// other than loopback needs --token-file
    #[arg(long, default_value = "127.0.0.1:7420", env = "WEIR_LISTEN")]
    pub listen: SocketAddr,
    /// A file holding a token (at least 16 characters, such as `openssl rand -hex 32` prints)
    /// that every API request must carry as `Authorization: Bearer TOKEN` (or sign in with in
    /// the editor)
    #[arg(long, env = "WEIR_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Address the built-in modules serve gRPC on, for `weir send` and modules run apart
    /// (port 0: any free port; the Module resources say which); a loopback address, as
    /// nothing checks its callers
    #[arg(long, default_value = "127.0.0.1:0", env = "WEIR_GRPC_LISTEN")]
    pub grpc_listen: SocketAddr,
    /// Address the http module serves webhooks on (`/hooks/NAMESPACE/FLOW/NODE`); loopback
    /// unless you mean others to reach your flows
    #[arg(long, default_value = "127.0.0.1:7423", env = "WEIR_WEBHOOK_LISTEN")]
    pub webhook_listen: SocketAddr,
    /// The editor's files, as `scripts/ui.sh` builds them [default: the ui/dist of the source
    /// tree this binary was built from]
    #[arg(long, env = "WEIR_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// How many runs of each flow to keep in memory, with their messages, for the editor,
    /// `weir runs` and `weir replay` (0 keeps none)
    #[arg(long, default_value_t = RUNS_KEPT, env = "WEIR_RUNS_KEPT", value_name = "N", value_parser = clap::value_parser!(u16).range(0..=MOST_RUNS_KEPT))]
    pub runs_kept: u16,
    /// The namespace whose flows run here, where the modules publish their catalogues. On a
    /// cluster (--kubeconfig or --context) `default` unless given, so that flows an installed
    /// engine runs in other namespaces do not also run here, with your kubeconfig; on the
    /// embedded store the flows of every namespace unless given
    #[arg(short, long, value_name = "NAMESPACE", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// Run the flows of every namespace, on a cluster too (any an installed engine runs then
    /// run twice)
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

impl UpArgs {
    /// Where `weir up` works: the namespace given; else every namespace on the embedded store
    /// (`on_cluster` false) or when told, and `default` on a cluster.
    pub fn scope(&self, on_cluster: bool) -> Scope {
        match &self.namespace {
            Some(namespace) => Scope::new(namespace, false),
            None => Scope::new(weir_store::DEFAULT_NAMESPACE, self.all_namespaces || !on_cluster),
        }
    }
}

/// `--secret-refresh`: a duration of at least [`MIN_SECRET_REFRESH`].
fn secret_refresh(text: &str) -> Result<weir_model::HumanDuration, String> {
    let every: weir_model::HumanDuration = text.parse().map_err(|err| format!("{err}"))?;
    if every.get() < MIN_SECRET_REFRESH {
        return Err(format!(
            "shorter than {MIN_SECRET_REFRESH:?} would read the Secrets in a busy loop"
        ));
    }
    Ok(every)
}

/// A namespace flag's value, checked as Kubernetes checks a namespace's name.
fn namespace_name(text: &str) -> Result<String, String> {
    if NameRule::DnsLabel.accepts(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("not a namespace name: {}", NameRule::DnsLabel.describe()))
    }
}

/// `weir engine`.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// The engine's namespace: its flows (unless --all-namespaces), the modules' catalogues
    /// and its leader election Lease
    #[arg(short, long, env = "POD_NAMESPACE", default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Check and show the flows of every namespace (needs cluster-wide read access)
    #[arg(short = 'A', long, env = "WEIR_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// Address of the HTTP endpoint (health, metrics, the editor and its API under /api)
    #[arg(long, default_value = "0.0.0.0:7420", env = "WEIR_LISTEN")]
    pub listen: SocketAddr,
    /// The editor's files, as `scripts/ui.sh` builds them [default: the ui/dist of the source
    /// tree this binary was built from]
    #[arg(long, env = "WEIR_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// How many runs of each flow to keep in memory, with their messages, for the editor,
    /// `weir runs` and `weir replay` (0 keeps none)
    #[arg(long, default_value_t = RUNS_KEPT, env = "WEIR_RUNS_KEPT", value_name = "N", value_parser = clap::value_parser!(u16).range(0..=MOST_RUNS_KEPT))]
    pub runs_kept: u16,
    /// Where callers reach the http module's webhooks, such as
    /// `https://hooks.example.com/hooks/` (its Ingress or Service); the editor shows each
    /// webhook node's URL under it, and only the path without it
    #[arg(long, env = "WEIR_WEBHOOKS_URL", value_name = "URL")]
    pub webhooks_url: Option<String>,
    /// Who this replica is in leader election [default: $HOSTNAME, the pod name]
    #[arg(long, env = "HOSTNAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// How the replicas elect a leader
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election's timing, as client-go's: a holder that has not renewed within the renew
/// deadline stops leading before another may take over after the lease duration.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// How long a holder's renewal keeps other replicas away
    #[arg(long, default_value = "15s", env = "WEIR_LEASE_DURATION", value_name = "DURATION")]
    pub lease_duration: weir_model::HumanDuration,
    /// How long a holder goes on leading without renewing; shorter than the lease duration
    #[arg(long, default_value = "10s", env = "WEIR_RENEW_DEADLINE", value_name = "DURATION")]
    pub renew_deadline: weir_model::HumanDuration,
    /// How often the lease is read and renewed, and how long each call may take
    #[arg(long, default_value = "2s", env = "WEIR_RETRY_PERIOD", value_name = "DURATION")]
    pub retry_period: weir_model::HumanDuration,
}

impl LeaderArgs {
    /// An election of `identity` for `lease` in `namespace`; refused when the timing cannot
    /// keep two replicas from leading at once.
    pub fn election(
        &self,
        namespace: &str,
        lease: String,
        identity: String,
    ) -> anyhow::Result<weir_store::lease::Election> {
        let (duration, deadline, retry) =
            (self.lease_duration.get(), self.renew_deadline.get(), self.retry_period.get());
        if retry.is_zero() || retry * 2 > deadline || deadline >= duration {
            anyhow::bail!(
                "--retry-period ({retry:?}), --renew-deadline ({deadline:?}) and --lease-duration \
                 ({duration:?}) must grow: at least twice the retry period within the deadline, \
                 and the deadline shorter than the lease, or two replicas could lead at once"
            );
        }
        Ok(weir_store::lease::Election {
            namespace: namespace.to_owned(),
            lease,
            identity,
            duration,
            renew_deadline: deadline,
            retry,
        })
    }
}

/// `weir module`.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// The module to run
    pub name: String,
    /// Namespace for the Module resource and the leader election Lease, and whose nodes run
    /// here (unless --all-namespaces)
    #[arg(short, long, env = "POD_NAMESPACE", default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Run the nodes of every namespace (needs cluster-wide access to FlowNodes)
    #[arg(short = 'A', long, env = "WEIR_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// Address to serve gRPC on (deliveries from other modules, inspect, health); a loopback
    /// address outside a cluster, where nothing checks its callers [default: 0.0.0.0:7421 in a
    /// cluster, 127.0.0.1:7421 outside one]
    #[arg(long, env = "WEIR_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Address a module with webhooks (http) serves them on (`/hooks/NAMESPACE/FLOW/NODE`);
    /// other modules bind nothing there [default: 0.0.0.0:7423 in a cluster, 127.0.0.1:7423
    /// outside one, unless you mean others to reach your flows]
    #[arg(long, env = "WEIR_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// URL other modules reach this one at [default: http://$POD_IP:<port>, else the
    /// listening address]
    #[arg(long, env = "WEIR_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String>,
    /// Address of the HTTP endpoint (/healthz, /readyz, /metrics) [default: 0.0.0.0:7422 in a
    /// cluster, 127.0.0.1:7422 outside one]
    #[arg(long, env = "WEIR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Who this replica is in leader election [default: $HOSTNAME, the pod name]
    #[arg(long, env = "HOSTNAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// How the replicas elect a leader
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// In a cluster: the ServiceAccounts (of --namespace) of this release's processes, the
    /// only callers that may deliver along edges and watch nodes (the chart names them)
    #[arg(long, env = "WEIR_PEERS", value_name = "NAME,...", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// How often the Secrets that nodes' secret settings refer to are read again (at least
    /// 1s); a node is built again when one changed
    #[arg(long, default_value = "60s", env = "WEIR_SECRET_REFRESH", value_name = "DURATION", value_parser = secret_refresh)]
    pub secret_refresh: weir_model::HumanDuration,
}

/// `weir send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The node and its input port, as NODE:PORT (such as `plan:in`)
    #[arg(value_name = "NODE:PORT")]
    pub target: String,
    /// The message, as JSON; - reads it from standard input
    #[arg(value_name = "JSON")]
    pub message: String,
    /// The node's namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// How long the whole run may take (at most a day)
    #[arg(long, default_value = crate::ops::send::DEFAULT_TIMEOUT, value_name = "DURATION")]
    pub timeout: weir_model::HumanDuration,
}

/// A running engine, reached over its API (`weir up`'s, or a cluster's `weir engine`).
#[derive(Debug, Args)]
pub struct EngineAt {
    /// The engine's address: `weir up`'s, or a cluster engine's as `kubectl port-forward
    /// svc/weir-engine 7420` makes it reachable (with --kubeconfig or --context, the request
    /// carries that user's token)
    #[arg(long, default_value = "http://127.0.0.1:7420", env = "WEIR_ENGINE", value_name = "URL")]
    pub engine: String,
    /// A file holding the token `weir up` was started with (its --token-file)
    #[arg(long, env = "WEIR_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `weir runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The flow
    pub flow: String,
    /// A run's id (as the list shows it): print its messages instead
    pub run: Option<String>,
    /// The flow's namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Print the engine's JSON instead of columns
    #[arg(long)]
    pub json: bool,
    /// The engine
    #[command(flatten)]
    pub at: EngineAt,
}

/// `weir replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run's id, as `weir runs FLOW` shows it
    pub run: String,
    /// The node whose received message is sent again [default: the first node the run reached]
    pub node: Option<String>,
    /// The run's namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// How long the new run may take
    #[arg(long, default_value = crate::ops::send::DEFAULT_TIMEOUT, value_name = "DURATION")]
    pub timeout: weir_model::HumanDuration,
    /// The engine
    #[command(flatten)]
    pub at: EngineAt,
}

/// `weir mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The engine whose API the tools use, and whose token
    #[command(flatten)]
    pub at: EngineAt,
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub struct Sources {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or - for standard input;
    /// repeatable
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", required = true)]
    pub files: Vec<PathBuf>,
    /// Also read the directories below a directory given with -f
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `weir apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The manifests.
    #[command(flatten)]
    pub sources: Sources,
    /// Namespace for manifests that name none
    #[arg(short, long, value_parser = namespace_name)]
    pub namespace: Option<String>,
}

/// `weir rbac`.
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// The flow
    pub flow: String,
    /// The flow's namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Apply them to the cluster as you (the apiserver refuses to let you grant rules you do
    /// not hold) instead of printing them
    #[arg(long)]
    pub apply: bool,
}

/// `weir solution`.
#[derive(Debug, Args)]
pub struct SolutionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SolutionCommand,
    /// Where the solutions are [default: the solutions/ of the source tree this binary was
    /// built from]
    #[arg(long, env = "WEIR_SOLUTIONS_DIR", global = true, value_name = "DIR")]
    pub solutions_dir: Option<PathBuf>,
}

/// `weir solution list|install`.
#[derive(Debug, Subcommand)]
pub enum SolutionCommand {
    /// List the solutions with their settings
    List,
    /// Install a solution: its flow and nodes, with settings changed by --set
    Install {
        /// The solution, such as image-mirror
        name: String,
        /// A setting, as NAME=VALUE (lists comma-separated); repeat for several
        #[arg(long, value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Namespace to install into [default: the solution's, else `default`]
        #[arg(short, long, value_parser = namespace_name)]
        namespace: Option<String>,
    },
}

/// `weir validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The manifests.
    #[command(flatten)]
    pub sources: Sources,
}

/// `weir get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// flows, flownodes or modules (also fl, fn, wmod, flow, …)
    pub kind: String,
    /// Names to show; all when none
    pub names: Vec<String>,
    /// The namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Every namespace
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Label selector, such as app=mirror,tier!=test
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How `weir get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Columns, as `kubectl get` prints them
    Table,
    /// Columns including the wide ones
    Wide,
    /// The stored objects as YAML
    Yaml,
    /// The stored objects as JSON
    Json,
    /// kind/name, one a line
    Name,
}

/// `weir delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// flows, flownodes or modules
    pub kind: String,
    /// Names to delete
    #[arg(required = true)]
    pub names: Vec<String>,
    /// The namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
}

/// `weir export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Flows to export; all flows of the namespace when none
    pub flows: Vec<String>,
    /// The namespace
    #[arg(short, long, default_value = weir_store::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Keep metadata.namespace in the manifests (by default they apply to any namespace)
    #[arg(long)]
    pub keep_namespace: bool,
}

/// `weir crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing them
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `weir chart`.
#[derive(Debug, Args)]
pub struct ChartArgs {
    /// The chart's directory, such as charts/weir
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; fail, naming them, when generated files differ from what is there
    #[arg(long)]
    pub check: bool,
}

/// `weir image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Where to push it, such as 127.0.0.1:5000/weir:dev
    #[arg(long, value_name = "REFERENCE")]
    pub push: String,
    /// Speak plain HTTP to the registry (a registry on loopback)
    #[arg(long)]
    pub plain_http: bool,
    /// The weir binary to put in (this one when not given)
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// The built editor (scripts/ui.sh)
    #[arg(long, value_name = "DIR", default_value = "ui/dist")]
    pub ui: PathBuf,
    /// The solutions gallery: each folder with a solution.toml goes in
    #[arg(long, value_name = "DIR", default_value = "solutions")]
    pub solutions: PathBuf,
}

/// `weir reference`.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// Write the page to this file instead of printing it
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(duration: &str, deadline: &str, retry: &str) -> LeaderArgs {
        let parse = |text: &str| text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
        LeaderArgs {
            lease_duration: parse(duration),
            renew_deadline: parse(deadline),
            retry_period: parse(retry),
        }
    }

    #[test]
    fn leader_election_timing_that_could_make_two_leaders_is_refused() {
        let election = timing("15s", "10s", "2s").election("ns", "l".into(), "me".into());
        let election = election.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(election.renew_deadline, std::time::Duration::from_secs(10));
        for (duration, deadline, retry) in [("10s", "10s", "2s"), ("15s", "10s", "6s")] {
            let refused = timing(duration, deadline, retry).election("ns", "l".into(), "me".into());
            let message = refused.err().map(|err| err.to_string()).unwrap_or_default();
            assert!(message.contains("two replicas could lead at once"), "{message}");
        }
    }
}
