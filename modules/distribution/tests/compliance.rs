//! Every component of the distribution module follows the node rules (docs/specs/node.md).

#[tokio::test]
async fn every_component_follows_the_node_rules() {
    let module = weir_distribution::module();
    for component in module.components() {
        if let Err(problem) = component.check_compliance().await {
            panic!("{problem}");
        }
    }
    let names: Vec<&str> = module.components().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["mirror_plan", "registry_copy", "registry_check"]);
}
