//! `secret_get`: reads a Secret. A `kubernetes.io/dockerconfigjson` Secret is decoded into
//! registry credentials; any other type into its keys and text values. Every value is marked
//! secret in the output's schema, so the runtime hides it from the editor, the inspect stream
//! and debug nodes, and no error message quotes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value,
    docker_config::{self, RegistryLogin},
    read_message,
};

use crate::access::{Cluster, Connection, api_error};

/// Settings of a secret get.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretGetSettings {
    /// Send failures (a denial, an unknown Deployment) to the `error` output as data instead
    /// of failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

/// Which Secret to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

/// What the Secret holds.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretContents {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// Its type, such as `kubernetes.io/dockerconfigjson`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a dockerconfigjson Secret: the credentials of each registry.
    pub registries: Vec<RegistryLogin>,
    /// For other Secrets: each key's value as text (secret).
    #[schemars(extend("additionalProperties" = { "type": "string", "x-weir-secret": true }))]
    pub data: BTreeMap<String, String>,
}

/// A node of the secret get component.
#[derive(Debug)]
pub struct SecretGet {
    connection: Connection,
}

impl Component for SecretGet {
    const NAME: &'static str = "secret_get";
    type Settings = SecretGetSettings;

    fn describe() -> Description {
        Description {
            label: "Secret get",
            description: "Reads a Secret; decodes a dockerconfigjson Secret into registry credentials. Values are never shown.",
            tags: &["kubernetes", "secret", "credentials", "registry"],
            trigger: false,
            permissions: &[Permission { api_group: "", resource: "secrets", verbs: &["get"] }],
        }
    }

    fn ports(settings: &SecretGetSettings) -> Vec<Port> {
        let mut ports = vec![Port::input::<Wanted>("in"), Port::output::<SecretContents>("out")];
        if settings.error_port {
            ports.push(Port::error());
        }
        ports
    }

    fn build(settings: SecretGetSettings) -> Result<Self, NodeError> {
        Ok(Self { connection: Connection::new(settings.cluster) })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.read(wanted).await {
            Ok(contents) => cx.emit("out", contents).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl SecretGet {
    async fn read(&self, wanted: Wanted) -> Result<SecretContents, NodeError> {
        let client = self.connection.client().await?;
        let (namespace, name) = (&wanted.namespace, &wanted.name);
        let secrets: Api<Secret> = Api::namespaced(client, namespace);
        let doing = format!("get secrets {name} in namespace {namespace}");
        let secret = secrets.get(name).await.map_err(|err| api_error(&doing, err))?;
        let kind = secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
        let mut data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, bytes)| (key, String::from_utf8_lossy(&bytes.0).into_owned()))
            .collect();
        let mut registries = Vec::new();
        if kind == "kubernetes.io/dockerconfigjson" {
            let config = data.remove(".dockerconfigjson").unwrap_or_default();
            registries = docker_config::parse(&config).map_err(|why| {
                NodeError::invalid(format!("secret {namespace}/{name}: .dockerconfigjson {why}"))
            })?;
        }
        Ok(SecretContents {
            namespace: namespace.clone(),
            name: name.clone(),
            kind,
            registries,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_schema_marks_every_value_secret() {
        let schema = weir_sdk::port::schema_of::<SecretContents>();
        let mut sample = serde_json::json!({
            "namespace": "web", "name": "hub", "type": "kubernetes.io/dockerconfigjson",
            "registries": [{ "registry": "ghcr.io", "username": "ci", "password": "t0ken" }],
            "data": { "token": "abc" }
        });
        weir_sdk::redact(&schema, &mut sample);
        assert_eq!(sample["registries"][0]["password"], weir_sdk::REDACTED);
        assert_eq!(sample["registries"][0]["username"], "ci");
        assert_eq!(sample["data"]["token"], weir_sdk::REDACTED);
    }
}
