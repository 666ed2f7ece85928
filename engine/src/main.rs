//! `weir`: the command line and the engine in one binary.

use std::process::ExitCode;

use clap::Parser;
use weir_engine::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match weir_engine::cmd::run(cli).await {
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
