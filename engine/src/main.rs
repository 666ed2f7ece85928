//! `weir`: the command line and the engine in one binary, with every built-in module.

use std::process::ExitCode;

/// mimalloc rather than the system's malloc: deliveries and jq evaluations make and drop many
/// small values, and glibc's malloc and free took a fifth of a flow run's time (a fifth more
/// runs a second with mimalloc, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Mappings evaluate in place on a thread with this much stack, instead of on a stack made
    // for each message.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(weir_model::mapping::THREAD_STACK)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: cannot start the async runtime: {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(weir_engine::main(vec![
        weir_common::module(),
        weir_distribution::module(),
        weir_http::module(),
        weir_js::module(),
        weir_kubernetes::module(),
    ]))
}
