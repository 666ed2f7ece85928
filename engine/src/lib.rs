//! The Weir engine and the `weir` command line: reading manifests, printing resources, and
//! `weir up`, which runs the engine on the embedded store and serves the editor's API.

pub mod accounts;
pub mod api;
pub mod catalogue;
pub mod cli;
pub mod cmd;
pub mod controller;
pub mod editor_files;
pub mod gate;
pub mod guard;
pub mod hosting;
pub mod kinds;
pub mod manifests;
pub mod mcp;
pub mod metrics;
pub mod ops;
pub mod printer;
pub mod probes;
pub mod process;
pub mod rbac;
pub mod reference;
pub mod review;
pub mod scope;
pub mod secrets;
pub mod traces;

use std::process::ExitCode;

use clap::Parser as _;

/// The `weir` command line with `builtins` as the modules `weir up` and `weir module` run: the
/// whole of `weir`'s `main`, and of any binary that carries other modules.
pub async fn main(builtins: Vec<weir_sdk::Module>) -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.default_log_filter()));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    if cli.is_long_running() {
        logs.init();
    } else {
        // A one-shot command's warnings read as messages, not as a server log.
        logs.without_time().with_target(false).init();
    }
    match cmd::run(cli, builtins).await {
        Ok(code) => code,
        Err(err) => {
            // The one place errors reach the user: the whole chain, on one line.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
