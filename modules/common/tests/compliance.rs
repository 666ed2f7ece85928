//! Every component of the common module follows the node rules (docs/specs/node.md).

#[tokio::test]
async fn every_component_follows_the_node_rules() {
    let module = weir_common::module();
    let mut broken = Vec::new();
    for component in module.components() {
        if let Err(problem) = component.check_compliance().await {
            broken.push(problem.to_string());
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
    let names: Vec<&str> = module.components().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "ticker",
            "cron",
            "cron_check",
            "signal",
            "router",
            "array_split",
            "collect",
            "delay",
            "dedupe",
            "debug",
            "history"
        ]
    );
}
