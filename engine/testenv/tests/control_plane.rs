//! The test control plane itself: it serves Weir's CRDs, answers kubectl, and enforces RBAC
//! for minted identities.

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::ListParams};
use weir_testenv::{ControlPlane, client_for};

#[tokio::test]
async fn serves_the_crds_to_kubectl() -> Result<()> {
    let plane = ControlPlane::shared();
    let output =
        plane.kubectl().args(["api-resources", "--api-group=weir.dev", "-o", "name"]).output()?;
    ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let names = String::from_utf8(output.stdout)?;
    for name in ["flows.weir.dev", "flownodes.weir.dev", "modules.weir.dev"] {
        ensure!(names.lines().any(|l| l == name), "{name} not served: {names}");
    }
    Ok(())
}

#[tokio::test]
async fn a_minted_identity_has_no_rights_until_granted() -> Result<()> {
    let plane = ControlPlane::shared();
    let admin = plane.client().await?;
    Api::<Namespace>::all(admin).list(&ListParams::default()).await?;
    let alice = client_for(&plane.identity("alice", &[])?).await?;
    let err = Api::<Namespace>::all(alice)
        .list(&ListParams::default())
        .await
        .expect_err("alice may list namespaces");
    ensure!(err.to_string().contains("forbidden"), "{err}");
    Ok(())
}
