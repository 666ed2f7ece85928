//! What the kubernetes components refuse before reaching any cluster: bad settings and bad
//! messages, each named by field.

use weir_kubernetes::{
    secret_get::SecretGet, workload_list::WorkloadList, workload_patch::WorkloadPatch,
};
use weir_sdk::{ErrorKind, json, testing::Harness};

#[test]
fn bad_settings_fail_the_build_naming_the_field() {
    let err = Harness::build::<WorkloadList>(&json!({ "pageSize": 5 })).unwrap_err();
    assert_eq!(err.message(), "settings.pageSize: 5 is not between 10 and 5000");
    let err = Harness::build::<WorkloadPatch>(&json!({ "fieldManager": " " })).unwrap_err();
    assert_eq!(err.message(), "settings.fieldManager: must not be empty");
    let err = Harness::build::<SecretGet>(&json!({ "kubeconfg": "/x" })).unwrap_err();
    assert_eq!(err.message(), "settings: unknown field `kubeconfg`");
}

#[tokio::test]
async fn bad_messages_are_refused_naming_the_field() {
    let patch = Harness::build::<WorkloadPatch>(&json!({})).unwrap();
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
    let list = Harness::build::<WorkloadList>(&json!({ "kubeconfig": "/nonexistent/kubeconfig" }))
        .unwrap();
    let err = list.send("in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.message().starts_with("settings.kubeconfig: cannot read /nonexistent/kubeconfig: "),
        "{err}"
    );
}

#[test]
fn settings_that_name_no_kind_or_bad_fields_fail_the_build() {
    use weir_kubernetes::{
        pod_logs::PodLogs, resource_get::ResourceGet, resource_list::ResourceList,
        resource_patch::ResourcePatch,
    };
    let refused = |err: weir_sdk::NodeError| err.message().to_owned();
    let cases = [
        (
            Harness::build::<ResourceGet>(
                &json!({ "apiVersion": "apps/v1", "kind": "deployment" }),
            ),
            "settings.kind: must start with a capital letter, as kinds do (Pod, not pod)",
        ),
        (
            Harness::build::<ResourceGet>(
                &json!({ "apiVersion": "v1", "kind": "Pod", "fields": ["status.phase"] }),
            ),
            "settings.fields[0]: \"status.phase\" is not a path such as /status/phase",
        ),
        (
            Harness::build::<ResourceList>(
                &json!({ "apiVersion": "v1", "kind": "Pod", "maxBytes": 10 }),
            ),
            "settings.maxBytes: 10 is not between 1024 and 8388608",
        ),
        (
            Harness::build::<ResourceList>(
                &json!({ "apiVersion": "v1", "kind": "Pod", "maxItems": 0 }),
            ),
            "settings.maxItems: must be at least 1",
        ),
        (
            Harness::build::<ResourcePatch>(
                &json!({ "apiVersion": "v1", "kind": "Pod", "patchType": "xml" }),
            ),
            "settings.patchType: unknown variant `xml`, expected one of `merge`, `json`, `strategic`",
        ),
        (
            Harness::build::<PodLogs>(&json!({ "limitBytes": 1 })),
            "settings.limitBytes: 1 is not between 1024 and 8388608",
        ),
    ];
    for (built, expected) in cases {
        assert_eq!(built.err().map(refused).as_deref(), Some(expected));
    }
}

#[tokio::test]
async fn a_patch_of_the_wrong_shape_is_refused_before_any_call() {
    use weir_kubernetes::{resource_apply::ResourceApply, resource_patch::ResourcePatch};
    let json_patch = Harness::build::<ResourcePatch>(
        &json!({ "apiVersion": "v1", "kind": "ConfigMap", "patchType": "json" }),
    )
    .unwrap();
    let err =
        json_patch.send("in", json!({ "name": "a", "patch": { "data": {} } })).await.unwrap_err();
    assert_eq!(err.message(), "in.patch: a JSON patch is a list of operations");
    let apply =
        Harness::build::<ResourceApply>(&json!({ "apiVersion": "v1", "kind": "ConfigMap" }))
            .unwrap();
    let err = apply
        .send("in", json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" } }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "in: the object is Secret of v1, not this node's ConfigMap of v1");
    let err = apply
        .send("in", json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {} }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "in.metadata.name: missing");
}

#[test]
fn settings_without_a_kind_are_refused_naming_the_field() {
    use weir_kubernetes::scale::Scale;
    let err = Harness::build::<Scale>(&json!({ "namespace": "web" })).unwrap_err();
    assert_eq!(
        err.message(),
        "settings.apiVersion: must be a version such as v1, or group/version such as apps/v1"
    );
}
