//! How a node reaches its cluster, and what a refusal means. In a cluster a node acts as its
//! flow's ServiceAccount: every call is made with a token of that account
//! ([`Context::account_token`]), against the cluster the module runs in, so the flow can do no
//! more than its account may and the audit log names the flow's account, not Weir. Where nodes
//! act with the user's own credentials (`weir up`), the client is made on the first message
//! from the `kubeconfig` and `context` settings, or without them from `$KUBECONFIG` or
//! `~/.kube/config`, as `kubectl` finds it. API errors become node errors of the right kind in
//! one place ([`api_error`]), once a component has taken what its call expects (a delete's
//! missing object, a watch's expired version, an apply's field conflict): a conflict,
//! throttling or a server error is transient; a denial names the verb, resource and namespace
//! that RBAC refused and the account it refused them to.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use kube::{
    Client, Config,
    config::{AuthInfo, KubeConfigOptions, Kubeconfig},
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use weir_sdk::{Context, JsonSchema, NodeError};

/// Which cluster a node talks to where it acts with the user's own credentials (`weir up`);
/// shared by the settings of every component. In a cluster nodes act as their flow's
/// ServiceAccount in the cluster the module runs in, and these are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// A kubeconfig file to use outside a cluster; empty for `$KUBECONFIG` or
    /// `~/.kube/config`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kubeconfig: String,
    /// The kubeconfig context to use outside a cluster; empty for its current context.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
}

/// A node's way to its cluster: clients made on first use and kept by the node.
#[derive(Default)]
pub struct Connection {
    cluster: Cluster,
    /// The client of the user's own credentials.
    own: OnceCell<Client>,
    /// The address and CA of the cluster the module runs in.
    base: OnceCell<Config>,
    /// The client acting as the flow's account, with the token it was made with.
    account: Mutex<Option<(Arc<str>, Client)>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("cluster", &self.cluster)
            .field("connected", &self.own.initialized())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection to `cluster`, made on the first message.
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster, ..Self::default() }
    }

    /// The client to make the node's calls with: as its flow's account in a cluster, else
    /// with the user's own credentials.
    pub async fn session(&self, cx: &Context) -> Result<Session, NodeError> {
        let Some(account) = cx.account_token().await? else {
            let client = self.own.get_or_try_init(|| connect(&self.cluster)).await.cloned()?;
            return Ok(Session { client, account: "the kubeconfig's user".to_owned() });
        };
        // The value is never quoted: a path names a file of the module's host.
        for (field, value) in
            [("kubeconfig", &self.cluster.kubeconfig), ("context", &self.cluster.context)]
        {
            if !value.is_empty() {
                return Err(NodeError::invalid(format!(
                    "settings.{field}: not taken in a cluster, where nodes act as their flow's \
                     ServiceAccount ({})",
                    account.account
                )));
            }
        }
        let named = format!("ServiceAccount {}", account.account);
        if let Some((token, client)) =
            self.account.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && *token == account.token
        {
            return Ok(Session { client: client.clone(), account: named });
        }
        let base = self
            .base
            .get_or_try_init(|| async {
                Config::infer().await.map_err(|err| {
                    NodeError::transient(format!(
                        "cannot find the cluster this module runs in: {err}"
                    ))
                })
            })
            .await?;
        let mut config = base.clone();
        config.auth_info =
            AuthInfo { token: Some(account.token.to_string().into()), ..AuthInfo::default() };
        let client = Client::try_from(config).map_err(|err| {
            NodeError::transient(format!("cannot make a Kubernetes client: {err}"))
        })?;
        *self.account.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((account.token, client.clone()));
        Ok(Session { client, account: named })
    }
}

/// A client and whom it acts as, for the node's calls of one message.
#[derive(Clone)]
pub struct Session {
    /// The client.
    pub client: Client,
    /// Whom the apiserver sees: `ServiceAccount ops/weir-flow`, or the kubeconfig's user.
    pub account: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("account", &self.account).finish_non_exhaustive()
    }
}

impl Session {
    /// A failure of the call `doing` (such as `list deployments.apps in namespace web`) as a
    /// node error (see [`api_error`]).
    pub fn error(&self, doing: &str, error: kube::Error) -> NodeError {
        api_error(doing, &self.account, error)
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
/// `list deployments.apps in namespace web`, and `account` as whom. A conflict (someone
/// changed the object since it was read), throttling, a server error or a broken connection
/// is transient, so an edge's retry may succeed; a denial names what RBAC refused and the
/// account it refused it to, which needs the rule, not a retry.
pub fn api_error(doing: &str, account: &str, error: kube::Error) -> NodeError {
    match error {
        kube::Error::Api(status) => {
            let message = format!("cannot {doing}: {} ({})", status.message, status.reason);
            match status.code {
                403 => NodeError::invalid(format!(
                    "kubernetes denied it: cannot {doing} as {account}: {}",
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
            api_error("patch deployments.apps web in namespace shop", "me", status(code, reason))
                .kind()
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
        let conflict = api_error(
            "patch deployments.apps web in namespace shop",
            "ServiceAccount shop/weir-flow",
            status(409, "Conflict"),
        );
        assert_eq!(
            conflict.message(),
            "cannot patch deployments.apps web in namespace shop: the server said Conflict (Conflict)"
        );
        let denial = api_error(
            "patch deployments.apps web in namespace shop",
            "ServiceAccount shop/weir-flow",
            status(403, "Forbidden"),
        );
        assert_eq!(
            denial.message(),
            "kubernetes denied it: cannot patch deployments.apps web in namespace shop as \
             ServiceAccount shop/weir-flow: the server said Forbidden"
        );
    }
}
