//! The Kubernetes store against a real kube-apiserver and etcd: the shared contract, plus what
//! only a real server does (RBAC).

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use weir_model::Kind;
use weir_store::{Selector, Store, StoreError, contract::Fixture, kubernetes::KubeStore};
use weir_testenv::{ControlPlane, client_for};

async fn fixture() -> Fixture {
    let plane = ControlPlane::shared();
    let client = plane.client().await.expect("admin client");
    Fixture {
        store: Arc::new(KubeStore::new(client)),
        namespace: plane.namespace("contract").await.expect("namespace"),
        other_namespace: plane.namespace("contract-other").await.expect("namespace"),
        guard: Box::new(()),
    }
}

weir_store::contract_tests!(fixture());

/// Without a grant every verb is forbidden, and the error says who may not do what where; with
/// a grant for reading only, writing is still forbidden and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_denials_name_the_user_verb_and_resource() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("rbac").await?;
    let store = KubeStore::new(client_for(&plane.identity("mallory", &[])?).await?);
    let err = store
        .list(Kind::Flow, Some(&namespace), &Selector::everything())
        .await
        .err()
        .context("list allowed")?;
    ensure!(matches!(err, StoreError::Forbidden { .. }), "wrong error: {err}");
    ensure!(
        err.to_string()
            == format!(
                "forbidden: user \"mallory\" may not list flows.weir.dev in namespace {namespace}"
            ),
        "{err}"
    );

    let grant = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: read-flows, namespace: {namespace}}}\n\
         rules: [{{apiGroups: [weir.dev], resources: [flows], verbs: [get, list, watch]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: mallory-reads, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-flows}}\n\
         subjects: [{{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}}]\n"
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("grant.yaml"), grant)?;
    let applied =
        plane.kubectl().args(["apply", "-f"]).arg(dir.path().join("grant.yaml")).output()?;
    ensure!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // RBAC caches refresh quickly but not instantly; read until the grant is in force.
    let mut listed = store.list(Kind::Flow, Some(&namespace), &Selector::everything()).await;
    for _ in 0..50 {
        if listed.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listed = store.list(Kind::Flow, Some(&namespace), &Selector::everything()).await;
    }
    ensure!(listed?.is_empty(), "unexpected flows");
    let err = store
        .create(weir_store::contract::flow(&namespace, "mirror", &[]))
        .await
        .err()
        .context("create allowed with a read-only grant")?;
    ensure!(
        err.to_string()
            == format!(
                "forbidden: user \"mallory\" may not create flows.weir.dev \"mirror\" in namespace {namespace}"
            ),
        "{err}"
    );
    Ok(())
}
