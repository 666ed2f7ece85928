//! The common module's behaviour scenarios (`tests/scenarios/*.yaml`, the format of
//! `weir_runtime::scenario`), run in-process on a real runtime.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_goes_as_written() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    match weir_runtime::scenario::run_all(&dir, || vec![weir_common::module()]).await {
        Ok(count) => assert!(count >= 3, "only {count} scenarios found in {}", dir.display()),
        Err(failures) => {
            let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
            panic!("{} scenarios failed:\n{}", lines.len(), lines.join("\n"));
        }
    }
}
