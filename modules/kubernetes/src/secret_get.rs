//! `secret_get`: reads a Secret. A `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`)
//! Secret is decoded into registry credentials; any other type into its keys and text values.
//! It can also read several registry Secrets in one go, such as a pod's pull secrets and a
//! registry's own, and give their logins by group, so one message can carry the credentials of
//! both sides of a copy. Every value is marked secret in the output's schema, so the runtime
//! hides it from the editor, the inspect stream and debug nodes, and no error message quotes
//! it.
//!
//! Within one run a Secret is read once, however many messages of the run ask for it (a tick
//! of the image mirror reads its mirror's login once, not once per image); a new run reads it
//! again, so a rotated Secret is seen by the next run.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::{Deserialize, Serialize};
use weir_docker_config::{self as docker_config, RegistryLogin};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value, read_message,
};

use crate::access::{Cluster, Connection};

/// Settings of a secret get.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretGetSettings {
    /// Send failures (a denial, an unknown Secret) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

/// Which Secret to read: one by `namespace` and `name`, or several registry Secrets by
/// `secrets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The Secret's namespace.
    #[serde(default)]
    pub namespace: String,
    /// The Secret's name.
    #[serde(default)]
    pub name: String,
    /// Instead of one Secret, several registry Secrets (dockerconfigjson or dockercfg), such
    /// as a pod's image pull secrets and a registry's own; their logins come out by group.
    #[serde(default)]
    pub secrets: Vec<WantedSecret>,
}

/// One of several registry Secrets to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WantedSecret {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The group its logins join in the output's `logins`, such as `source` or `target`.
    #[serde(default)]
    pub group: String,
}

/// What the Secret holds.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
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
    /// When several Secrets were read: the logins of each group, in the order the Secrets
    /// were given (`registries` then holds them all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub logins: BTreeMap<String, Vec<RegistryLogin>>,
    /// When several Secrets were read: those left out, with why (missing, or not a registry
    /// Secret), as the kubelet leaves out such pull secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// A node of the secret get component.
#[derive(Debug)]
pub struct SecretGet {
    connection: Connection,
    reads: ReadsOfRuns,
}

/// How many runs' reads are remembered: runs in flight at once, with room to spare. An older
/// run that asks again reads again.
const RUNS_REMEMBERED: usize = 8;

/// The Secrets each recent run read, by run (its trace id), so the messages of a run share one
/// read of each Secret; concurrent messages wait for the first one's read.
#[derive(Debug, Default)]
struct ReadsOfRuns {
    runs: Mutex<VecDeque<(u128, ReadsOfRun)>>,
}

type ReadsOfRun = HashMap<(String, String), Arc<tokio::sync::OnceCell<Option<Secret>>>>;

impl ReadsOfRuns {
    /// The read of `namespace/name` in run `run`, done or to do.
    fn of(
        &self,
        run: u128,
        namespace: &str,
        name: &str,
    ) -> Arc<tokio::sync::OnceCell<Option<Secret>>> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let at = match runs.iter().position(|(id, _)| *id == run) {
            Some(at) => at,
            None => {
                if runs.len() == RUNS_REMEMBERED {
                    runs.pop_front();
                }
                runs.push_back((run, HashMap::new()));
                runs.len() - 1
            }
        };
        let key = (namespace.to_owned(), name.to_owned());
        Arc::clone(runs[at].1.entry(key).or_default())
    }
}

impl Component for SecretGet {
    const NAME: &'static str = "secret_get";
    type Settings = SecretGetSettings;

    fn describe() -> Description {
        Description {
            label: "Secret get",
            description: "Reads a Secret, or several registry Secrets at once; decodes registry Secrets into their logins. Values are never shown.",
            tags: &["kubernetes", "secret", "credentials", "registry"],
            trigger: false,
            permissions: &[Permission { api_group: "", resource: "secrets", verbs: &["get"] }],
        }
    }

    fn ports(settings: &SecretGetSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Wanted>("in"), Port::output::<SecretContents>("out")],
            settings.error_port,
        )
    }

    fn build(settings: SecretGetSettings) -> Result<Self, NodeError> {
        Ok(Self { connection: Connection::new(settings.cluster), reads: ReadsOfRuns::default() })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        let read = match (wanted.name.is_empty(), wanted.secrets.is_empty()) {
            // One Secret needs both, as it did before several could be read.
            (false, true) if wanted.namespace.is_empty() => {
                Err(NodeError::invalid(format!("{port}: missing field `namespace`")))
            }
            (false, true) => self.read(cx, &wanted.namespace, &wanted.name).await,
            (true, false) => self.read_several(cx, wanted.secrets).await,
            (true, true) => Err(NodeError::invalid(format!(
                "{port}: name what to read: a namespace and name, or secrets"
            ))),
            (false, false) => Err(NodeError::invalid(format!(
                "{port}: give a namespace and name, or secrets, not both"
            ))),
        };
        match read {
            Ok(contents) => cx.emit("out", contents).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl SecretGet {
    async fn read(
        &self,
        cx: &Context,
        namespace: &str,
        name: &str,
    ) -> Result<SecretContents, NodeError> {
        let secret = self.get(cx, namespace, name).await?.ok_or_else(|| {
            NodeError::invalid(format!(
                "cannot get secrets {name} in namespace {namespace}: not found"
            ))
        })?;
        decode(namespace, name, secret)
    }

    async fn read_several(
        &self,
        cx: &Context,
        wanted: Vec<WantedSecret>,
    ) -> Result<SecretContents, NodeError> {
        let mut contents = SecretContents::default();
        for WantedSecret { namespace, name, group } in wanted {
            let Some(secret) = self.get(cx, &namespace, &name).await? else {
                contents.skipped.push(format!("{namespace}/{name}: not found"));
                continue;
            };
            let one = decode(&namespace, &name, secret)?;
            if !REGISTRY_TYPES.iter().any(|(kind, _)| *kind == one.kind) {
                contents.skipped.push(format!("{namespace}/{name}: of type {}", one.kind));
                continue;
            }
            contents.logins.entry(group).or_default().extend(one.registries.iter().cloned());
            contents.registries.extend(one.registries);
        }
        Ok(contents)
    }

    /// The Secret, or none when it does not exist; read once per run.
    async fn get(
        &self,
        cx: &Context,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Secret>, NodeError> {
        let read = self.reads.of(cx.run().trace.trace_id, namespace, name);
        let secret = read
            .get_or_try_init(|| async {
                let session = self.connection.session(cx).await?;
                let secrets: Api<Secret> = Api::namespaced(session.client.clone(), namespace);
                let doing = format!("get secrets {name} in namespace {namespace}");
                secrets.get_opt(name).await.map_err(|err| session.error(&doing, err))
            })
            .await?;
        Ok(secret.clone())
    }
}

/// The Secret types that hold registry logins, and the key each keeps them under.
const REGISTRY_TYPES: [(&str, &str); 2] = [
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
    ("kubernetes.io/dockercfg", ".dockercfg"),
];

/// A Secret's contents: a registry Secret's logins, any other's text values.
fn decode(namespace: &str, name: &str, secret: Secret) -> Result<SecretContents, NodeError> {
    let kind = secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
    let mut data: BTreeMap<String, String> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, bytes)| (key, String::from_utf8_lossy(&bytes.0).into_owned()))
        .collect();
    let key = REGISTRY_TYPES.iter().find(|(registry, _)| *registry == kind).map(|(_, key)| *key);
    let registries = match key {
        Some(key) => {
            let config = data.remove(key).unwrap_or_default();
            docker_config::parse(&config).map_err(|why| {
                NodeError::invalid(format!("secret {namespace}/{name}: {key} {why}"))
            })?
        }
        None => Vec::new(),
    };
    Ok(SecretContents {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        kind,
        registries,
        data,
        ..SecretContents::default()
    })
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
            "data": { "token": "abc" },
            "logins": { "target": [{ "registry": "mirror:5000", "username": "m", "password": "pw" }] }
        });
        weir_sdk::redact(&schema, &mut sample);
        assert_eq!(sample["registries"][0]["password"], weir_sdk::REDACTED);
        assert_eq!(sample["registries"][0]["username"], "ci");
        assert_eq!(sample["data"]["token"], weir_sdk::REDACTED);
        assert_eq!(sample["logins"]["target"][0]["password"], weir_sdk::REDACTED);
    }

    #[test]
    fn a_run_shares_its_reads_and_a_later_run_reads_again() {
        let reads = ReadsOfRuns::default();
        let first = reads.of(1, "ops", "mirror-login");
        assert!(Arc::ptr_eq(&first, &reads.of(1, "ops", "mirror-login")));
        assert!(!Arc::ptr_eq(&first, &reads.of(1, "shop", "mirror-login")));
        assert!(!Arc::ptr_eq(&first, &reads.of(2, "ops", "mirror-login")));
        // Runs past the remembered ones push the oldest out: it would read again.
        for run in 3..=u128::try_from(RUNS_REMEMBERED).unwrap() + 1 {
            reads.of(run, "ops", "mirror-login");
        }
        assert!(!Arc::ptr_eq(&first, &reads.of(1, "ops", "mirror-login")));
    }
}
