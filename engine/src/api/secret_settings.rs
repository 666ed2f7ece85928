//! Secret settings kept out of FlowNodes, in a cluster: when the editor saves a node whose
//! secret settings hold values, the values go into a Secret named after the node (written as
//! the caller, so their RBAC decides) and the node holds only references to it
//! (`weir_model::secret_ref`), so whoever may read flows reads no secret. The node owns the
//! Secret, so it goes when the node goes. In `weir up` the values stay in the node: the
//! embedded store has no Secrets.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::Value;
use weir_api::Problem;
use weir_model::{
    API_VERSION, Kind,
    secret_ref::{SecretKeyRef, field_path},
};
use weir_store::{DynamicObject, Store};

use super::error::ApiError;
use crate::catalogue::Catalogue;

/// The Secret that holds a node's secret settings.
pub fn secret_name(node: &str) -> String {
    format!("weir-node-{node}")
}

/// The label that tells which node a Secret holds the settings of.
const NODE_LABEL: &str = "weir.dev/flow-node";

/// Moves the secret settings `node` gives as values into its Secret and puts references in
/// their place; the Secret's name when it wrote one.
pub async fn keep_apart(
    client: &kube::Client,
    catalogue: &Catalogue,
    namespace: &str,
    node: &mut DynamicObject,
) -> Result<Option<String>, ApiError> {
    let pointers = catalogue.secret_values(&node.data);
    if pointers.is_empty() {
        return Ok(None);
    }
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let name = secret_name(&node_name);
    let mut data = BTreeMap::new();
    for pointer in &pointers {
        let place = format!("/spec/settings{pointer}");
        let field = format!("spec.settings{}", field_path(pointer));
        let Some(Value::String(text)) = node.data.pointer(&place) else {
            return Err(ApiError::invalid(Problem::new(
                Some(format!("FlowNode/{node_name}")),
                &field,
                "a secret setting is text",
            )));
        };
        let key = key_of(pointer);
        data.insert(key.clone(), ByteString(text.as_bytes().to_vec()));
        let reference = SecretKeyRef { name: name.clone(), key };
        if let Some(value) = node.data.pointer_mut(&place) {
            *value = reference.to_setting();
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(NODE_LABEL.to_owned(), node_name.clone())])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let written = match secrets.patch(&name, &PatchParams::default(), &Patch::Merge(&secret)).await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => {
            secrets.create(&PostParams::default(), &secret).await.map(|_| ())
        }
        patched => patched.map(|_| ()),
    };
    written.map_err(|err| refused(&format!("write Secret {namespace}/{name}"), &node_name, err))?;
    Ok(Some(name))
}

/// Makes the saved node `node_name` own its Secret `name`.
pub async fn own(
    client: &kube::Client,
    store: &dyn Store,
    namespace: &str,
    node_name: &str,
    name: &str,
) -> Result<(), ApiError> {
    let node = store.get(Kind::FlowNode, namespace, node_name).await?;
    let Some(uid) = node.metadata.uid else { return Ok(()) };
    let owner = OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: Kind::FlowNode.name().to_owned(),
        name: node_name.to_owned(),
        uid,
        ..OwnerReference::default()
    };
    let patch = Secret {
        metadata: ObjectMeta { owner_references: Some(vec![owner]), ..ObjectMeta::default() },
        ..Secret::default()
    };
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    secrets
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|err| refused(&format!("update Secret {namespace}/{name}"), node_name, err))
}

/// The Secret's key for the setting at `pointer`: its field path, in the characters a key may
/// hold (such as `auth.password`).
fn key_of(pointer: &str) -> String {
    let path = field_path(pointer);
    path.trim_start_matches('.')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '-' })
        .collect()
}

fn refused(doing: &str, node: &str, err: kube::Error) -> ApiError {
    let message = format!("cannot {doing} for the secret settings of node {node}");
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            ApiError::forbidden(format!("{message}: {}", status.message))
        }
        err => ApiError::unreachable(format!("{message}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_field_paths_a_secret_takes() {
        assert_eq!(key_of("/auth/password"), "auth.password");
        assert_eq!(key_of("/tokens/0"), "tokens-0-");
        assert_eq!(key_of("/extra/my key"), "extra.my-key");
        assert_eq!(secret_name("notify"), "weir-node-notify");
    }
}
