//! One module per `weir` verb; [`run`] dispatches to them.

use std::{io::Write as _, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context as _, Result};
use weir_model::Kind;
use weir_sdk::Module;
use weir_store::{Store, embedded::EmbeddedStore, kubernetes::KubeStore};

use crate::cli::{Cli, Command, SolutionCommand, StoreChoice};

pub mod apply;
pub mod chart;
pub mod crds;
pub mod delete;
pub mod engine;
pub mod export;
pub mod get;
pub mod image;
pub mod module;
pub mod rbac;
pub mod send;
pub mod solution;
pub mod validate;

/// Runs one command line; `builtins` are the modules this binary carries.
pub async fn run(cli: Cli, builtins: Vec<Module>) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let choice = cli.store();
    match cli.command {
        Command::Up(args) => crate::server::up(open_store(choice).await?, builtins, args).await?,
        Command::Engine(args) => engine::run(open_store(choice).await?, args).await?,
        Command::Chart(args) => chart::run(&builtins, &args, &mut out)?,
        Command::Image(args) => image::run(args, &mut out).await?,
        Command::Module(args) => module::run(open_store(choice).await?, builtins, args).await?,
        Command::Send(args) => send::run(&open_store(choice).await?, args, &mut out).await?,
        Command::Apply(args) => {
            apply::run(&*open_store(choice).await?.store, args, &mut out).await?;
        }
        Command::Get(args) => get::run(&*open_store(choice).await?.store, args, &mut out).await?,
        Command::Delete(args) => {
            delete::run(&*open_store(choice).await?.store, args, &mut out).await?;
        }
        Command::Export(args) => {
            export::run(&*open_store(choice).await?.store, args, &mut out).await?;
        }
        Command::Solution(args) => {
            let dir = args.solutions_dir.unwrap_or_else(crate::ops::solution::default_dir);
            if matches!(args.command, SolutionCommand::List) {
                solution::run(None, &builtins, &dir, args.command, &mut out).await?;
            } else {
                let opened = open_store(choice).await?;
                solution::run(Some(&opened), &builtins, &dir, args.command, &mut out).await?;
            }
        }
        Command::Rbac(args) => {
            rbac::run(&open_store(choice).await?, &builtins, args, &mut out).await?;
        }
        Command::Validate(args) => validate::run(&args, &mut out)?,
        Command::Crds(args) => crds::run(args, &mut out)?,
        Command::Reference(args) => {
            let page = crate::reference::render(&builtins)?;
            match args.out {
                Some(path) => {
                    std::fs::write(&path, page)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    writeln!(out, "wrote {}", path.display())?;
                }
                None => write!(out, "{page}")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An open store.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where it keeps things, for logs.
    pub place: String,
    /// The cluster's client, when the store is a cluster (for leader election).
    pub client: Option<kube::Client>,
    /// How the client was configured, when the store is a cluster: the address and CA that
    /// users' own tokens are used against.
    pub config: Option<kube::Config>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("place", &self.place).finish_non_exhaustive()
    }
}

/// The chosen store.
async fn open_store(choice: StoreChoice) -> Result<Opened> {
    match choice {
        StoreChoice::Embedded(data_dir) => {
            let dir = match data_dir {
                Some(dir) => dir,
                None => default_data_dir()
                    .context("cannot tell where to keep data: set --data-dir or HOME")?,
            };
            let store = EmbeddedStore::open(&dir)
                .with_context(|| format!("cannot open the store in {}", dir.display()))?;
            let place = dir.display().to_string();
            Ok(Opened { store: Arc::new(store), place, client: None, config: None })
        }
        StoreChoice::Cluster { kubeconfig, context } => {
            let config = weir_store::kubernetes::config(kubeconfig.as_deref(), context.as_deref())
                .await
                .context("cannot reach the Kubernetes cluster")?;
            let store = KubeStore::with_config(config.clone())
                .context("cannot reach the Kubernetes cluster")?;
            let place = match (&kubeconfig, &context) {
                (Some(file), _) => format!("the cluster of {}", file.display()),
                (None, Some(context)) => format!("the cluster of context {context}"),
                (None, None) => "the current cluster".to_owned(),
            };
            let client = Some(store.client());
            Ok(Opened { store: Arc::new(store), place, client, config: Some(config) })
        }
    }
}

fn default_data_dir() -> Option<PathBuf> {
    let base =
        std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(
            || std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")),
        )?;
    Some(base.join("weir"))
}

/// Reads a resource type the way kubectl does, or says which ones exist.
fn parse_kind(text: &str) -> Result<Kind> {
    Kind::from_cli(text).with_context(|| {
        format!("unknown resource type {text:?}: use flows (fl), flownodes (fn) or modules (wmod)")
    })
}

/// Fails after reporting every name that could not be handled, so one missing name does not
/// hide the others.
fn all_or_error(failures: Vec<anyhow::Error>) -> Result<()> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.into_iter().next().unwrap_or_else(|| unreachable!())),
        n => {
            let lines: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
            anyhow::bail!("{n} failures:\n  {}", lines.join("\n  "))
        }
    }
}
