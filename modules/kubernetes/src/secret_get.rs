//! `secret_get`: reads a Secret. A `kubernetes.io/dockerconfigjson` Secret is decoded into
//! registry credentials; any other type into its keys and text values. Every value is marked
//! secret in the output's schema, so the runtime hides it from the editor, the inspect stream
//! and debug nodes, and no error message quotes it.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value, read_message,
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
    pub registries: Vec<RegistryCredentials>,
    /// For other Secrets: each key's value as text (secret).
    #[schemars(extend("additionalProperties" = { "type": "string", "x-weir-secret": true }))]
    pub data: BTreeMap<String, String>,
}

/// The credentials for one registry.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RegistryCredentials {
    /// The registry host, such as `ghcr.io` (`docker.io` for Docker Hub's old names).
    pub registry: String,
    /// The user name.
    pub username: String,
    /// The password or token (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub password: String,
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
            registries = docker_config(&config).map_err(|why| {
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

/// The registries of a `.dockerconfigjson`: each entry's `username` and `password`, or its
/// `auth` (base64 of `user:password`). Errors never quote the content.
fn docker_config(text: &str) -> Result<Vec<RegistryCredentials>, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        auth: String,
    }
    let file: File = serde_json::from_str(text).map_err(|err| {
        format!("is not a docker config (line {}, column {})", err.line(), err.column())
    })?;
    let mut registries = Vec::new();
    for (server, entry) in file.auths {
        let (username, password) = if entry.auth.is_empty() {
            (entry.username, entry.password)
        } else {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .map_err(|_| format!("has an auth for {server} that is not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| format!("has an auth for {server} that is not text"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| format!("has an auth for {server} that is not user:password"))?;
            (user.to_owned(), password.to_owned())
        };
        registries.push(RegistryCredentials {
            registry: registry_host(&server),
            username,
            password,
        });
    }
    Ok(registries)
}

/// The host of a docker config key: `https://index.docker.io/v1/` is Docker Hub.
fn registry_host(server: &str) -> String {
    let host = server.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_configs_decode_both_ways_and_errors_quote_nothing() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bot:s3cret");
        let text = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"ghcr.io":{{"username":"ci","password":"t0ken"}}}}}}"#
        );
        let registries = docker_config(&text).unwrap();
        let seen: Vec<(&str, &str, &str)> = registries
            .iter()
            .map(|r| (r.registry.as_str(), r.username.as_str(), r.password.as_str()))
            .collect();
        assert_eq!(seen, [("ghcr.io", "ci", "t0ken"), ("docker.io", "bot", "s3cret")]);
        let err = docker_config(r#"{"auths":{"ghcr.io":{"auth":"%%%s3cret"}}}"#).unwrap_err();
        assert_eq!(err, "has an auth for ghcr.io that is not base64");
        let err = docker_config("s3cret").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

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
