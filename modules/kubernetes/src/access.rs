//! How a node reaches its cluster, and what a refusal means. Each node has a client made on
//! its first message from its `kubeconfig` and `context` settings, or, without them, from the
//! in-cluster ServiceAccount or the user's kubeconfig (`$KUBECONFIG`, `~/.kube/config`), as
//! `kubectl` finds it. API errors become node errors of the right kind: a conflict, throttling
//! or a server error is transient; a denial names the verb and resource that RBAC refused.

use std::path::PathBuf;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use weir_sdk::{JsonSchema, NodeError};

/// Which cluster a node talks to; shared by the settings of every component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// A kubeconfig file to use; empty for the in-cluster ServiceAccount, else `$KUBECONFIG`
    /// or `~/.kube/config`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kubeconfig: String,
    /// The kubeconfig context to use; empty for its current context.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
}

/// A client made on first use and kept by the node.
#[derive(Default)]
pub struct Connection {
    cluster: Cluster,
    client: OnceCell<Client>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("cluster", &self.cluster)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl Connection {
    /// A connection to `cluster`, made on the first message.
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster, client: OnceCell::new() }
    }

    /// The client, made now when this is the first call.
    pub async fn client(&self) -> Result<Client, NodeError> {
        self.client.get_or_try_init(|| connect(&self.cluster)).await.cloned()
    }
}

async fn connect(cluster: &Cluster) -> Result<Client, NodeError> {
    let options = KubeConfigOptions {
        context: (!cluster.context.is_empty()).then(|| cluster.context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = if cluster.kubeconfig.is_empty() {
        if options.context.is_some() {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|err| NodeError::invalid(format!("settings.context: {err}")))?
        } else {
            Config::infer().await.map_err(|err| {
                NodeError::transient(format!(
                    "cannot find a cluster (no ServiceAccount, no kubeconfig): {err}"
                ))
            })?
        }
    } else {
        let path = PathBuf::from(&cluster.kubeconfig);
        let file = Kubeconfig::read_from(&path).map_err(|err| {
            NodeError::invalid(format!(
                "settings.kubeconfig: cannot read {}: {err}",
                path.display()
            ))
        })?;
        Config::from_custom_kubeconfig(file, &options).await.map_err(|err| {
            NodeError::invalid(format!("settings.kubeconfig: {}: {err}", path.display()))
        })?
    };
    Client::try_from(config)
        .map_err(|err| NodeError::transient(format!("cannot make a Kubernetes client: {err}")))
}

/// A Kubernetes API failure as a node error: `doing` says what was attempted, such as
/// `list deployments.apps in namespace web`.
pub fn api_error(doing: &str, error: kube::Error) -> NodeError {
    match error {
        kube::Error::Api(status) => {
            let message = format!("cannot {doing}: {} ({})", status.message, status.reason);
            match status.code {
                403 => NodeError::invalid(format!(
                    "kubernetes denied it: cannot {doing}: {}",
                    status.message
                )),
                404 => NodeError::invalid(format!("cannot {doing}: not found")),
                409 | 429 | 500..=599 => NodeError::transient(message),
                _ => NodeError::invalid(message),
            }
        }
        other => NodeError::transient(format!("cannot {doing}: {other}")),
    }
}

/// Where a namespace-scoped call goes, for messages: `in namespace web`, or `in every
/// namespace`.
pub fn scope(namespace: &str) -> String {
    if namespace.is_empty() {
        "in every namespace".to_owned()
    } else {
        format!("in namespace {namespace}")
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::ErrorKind;

    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        let status = serde_json::json!({
            "status": "Failure",
            "message": format!("the server said {reason}"),
            "reason": reason,
            "code": code,
        });
        kube::Error::Api(Box::new(serde_json::from_value(status).expect("a Status")))
    }

    #[test]
    fn api_failures_get_the_kind_that_decides_a_retry() {
        let kinds: Vec<ErrorKind> = [
            (409, "Conflict"),
            (429, "TooManyRequests"),
            (503, "ServiceUnavailable"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (422, "Invalid"),
        ]
        .into_iter()
        .map(|(code, reason)| {
            api_error("patch deployments.apps web in namespace shop", status(code, reason)).kind()
        })
        .collect();
        assert_eq!(
            kinds,
            [
                ErrorKind::Transient,
                ErrorKind::Transient,
                ErrorKind::Transient,
                ErrorKind::Invalid,
                ErrorKind::Invalid,
                ErrorKind::Invalid
            ]
        );
        let conflict =
            api_error("patch deployments.apps web in namespace shop", status(409, "Conflict"));
        assert_eq!(
            conflict.message(),
            "cannot patch deployments.apps web in namespace shop: the server said Conflict (Conflict)"
        );
    }
}
