//! Every component of the kubernetes module follows the node rules (docs/specs/node.md) and
//! declares the RBAC rules it needs.

#[tokio::test]
async fn every_component_follows_the_node_rules_and_declares_its_rules() {
    let module = weir_kubernetes::module();
    for component in module.components() {
        if let Err(problem) = component.check_compliance().await {
            panic!("{problem}");
        }
        let descriptor = component.descriptor().expect("a catalogue entry");
        assert!(descriptor.acts(), "{} declares no RBAC rules", component.name());
    }
    let names: Vec<&str> = module.components().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "workload_list",
            "workload_patch",
            "secret_get",
            "tls_certificates",
            "resource_get",
            "resource_list",
            "resource_apply",
            "resource_patch",
            "resource_delete",
            "scale",
            "pod_logs",
            "resource_watch"
        ]
    );
}
