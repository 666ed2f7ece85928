//! `weir`: the command line and the engine in one binary, with every built-in module.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    weir_engine::main(vec![
        weir_common::module(),
        weir_distribution::module(),
        weir_js::module(),
        weir_kubernetes::module(),
    ])
    .await
}
