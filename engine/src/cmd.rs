//! One module per `weir` verb; [`run`] dispatches to them.

use std::{io::Write as _, process::ExitCode};

use anyhow::{Context as _, Result};
use weir_sdk::Module;

use crate::cli::{Cli, Command, SolutionCommand};
use open::open_store;

pub mod apply;
pub mod chart;
pub mod crds;
pub mod delete;
pub mod engine;
pub mod export;
pub mod get;
pub mod image;
pub mod mcp;
pub mod module;
pub mod names;
pub mod open;
pub mod rbac;
pub mod remote;
pub mod runs;
pub mod send;
pub mod solution;
pub mod up;
pub mod validate;

/// Runs one command line; `builtins` are the modules this binary carries.
pub async fn run(cli: Cli, builtins: Vec<Module>) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let choice = cli.store();
    match cli.command {
        Command::Up(args) => up::run(open_store(choice).await?, builtins, args).await?,
        Command::Engine(args) => engine::run(open_store(choice).await?, args).await?,
        Command::Chart(args) => chart::run(&builtins, &args, &mut out)?,
        Command::Image(args) => image::run(args, &mut out).await?,
        Command::Module(args) => module::run(open_store(choice).await?, builtins, args).await?,
        Command::Mcp(args) => mcp::run(choice, args, &mut out).await?,
        Command::Send(args) => send::run(&open_store(choice).await?, args, &mut out).await?,
        Command::Runs(args) => {
            runs::list(&remote::Remote::new(&args.at, choice).await?, args, &mut out).await?;
        }
        Command::Replay(args) => {
            runs::replay(&remote::Remote::new(&args.at, choice).await?, args, &mut out).await?;
        }
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
