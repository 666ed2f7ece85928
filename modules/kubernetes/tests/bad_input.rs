//! What the kubernetes components refuse before reaching any cluster: bad settings and bad
//! messages, each named by field.

use weir_kubernetes::{
    deployment_list::DeploymentList, deployment_patch::DeploymentPatch, secret_get::SecretGet,
};
use weir_sdk::{ErrorKind, json, testing::Harness};

#[test]
fn bad_settings_fail_the_build_naming_the_field() {
    let err = Harness::build::<DeploymentList>(&json!({ "pageSize": 5 })).unwrap_err();
    assert_eq!(err.message(), "settings.pageSize: 5 is not between 10 and 5000");
    let err = Harness::build::<DeploymentPatch>(&json!({ "fieldManager": " " })).unwrap_err();
    assert_eq!(err.message(), "settings.fieldManager: must not be empty");
    let err = Harness::build::<SecretGet>(&json!({ "kubeconfg": "/x" })).unwrap_err();
    assert_eq!(err.message(), "settings: unknown field `kubeconfg`");
}

#[tokio::test]
async fn bad_messages_are_refused_naming_the_field() {
    let patch = Harness::build::<DeploymentPatch>(&json!({})).unwrap();
    let err = patch.send("in", json!({ "namespace": "web", "images": {} })).await.unwrap_err();
    assert_eq!((err.kind(), err.message()), (ErrorKind::Invalid, "in: missing field `name`"));
    let err = patch
        .send("in", json!({ "namespace": "web", "name": "api", "images": { "api": 7 } }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "in.images.api: expected a string");
    let secret = Harness::build::<SecretGet>(&json!({})).unwrap();
    let err = secret.send("in", json!({ "name": "hub" })).await.unwrap_err();
    assert_eq!(err.message(), "in: missing field `namespace`");
}

#[tokio::test]
async fn a_kubeconfig_that_cannot_be_read_is_named() {
    let list =
        Harness::build::<DeploymentList>(&json!({ "kubeconfig": "/nonexistent/kubeconfig" }))
            .unwrap();
    let err = list.send("in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.message().starts_with("settings.kubeconfig: cannot read /nonexistent/kubeconfig: "),
        "{err}"
    );
}
