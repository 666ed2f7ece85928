//! Reading the Secrets that nodes' settings refer to (`weir_runtime::trust::SecretValues`):
//! in a cluster as the node's flow's ServiceAccount, against the cluster the module runs in,
//! so a flow reads only the Secrets its account may get; in `weir up` with the user's own
//! kubeconfig, as `kubectl` finds it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::config::AuthInfo;
use tokio::sync::OnceCell;
use weir_model::secret_ref::SecretKeyRef;
use weir_runtime::trust::SecretValues;
use weir_sdk::{AccountToken, NodeError};

/// Reads Secrets for the runtime.
pub struct KubeSecrets {
    /// The cluster the module runs in (its address and CA; its own credentials are never
    /// used), or `None` where nodes act with the user's kubeconfig.
    cluster: Option<kube::Config>,
    /// The user's client, made on first use.
    own: OnceCell<kube::Client>,
    /// A client per flow account, with the token it was made with, so that reading the
    /// Secrets again every refresh does not open a connection per read; a new token (tokens
    /// are renewed) makes a new client.
    accounts: Mutex<HashMap<String, (Arc<str>, kube::Client)>>,
}

impl std::fmt::Debug for KubeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cluster = self.cluster.as_ref().map(|c| c.cluster_url.to_string());
        f.debug_struct("KubeSecrets").field("cluster", &cluster).finish_non_exhaustive()
    }
}

impl KubeSecrets {
    /// Secrets read in `cluster` as flows' accounts, or with the user's kubeconfig for `None`.
    pub fn new(cluster: Option<kube::Config>) -> Self {
        Self { cluster, own: OnceCell::new(), accounts: Mutex::default() }
    }

    async fn client(&self, account: Option<&AccountToken>) -> Result<kube::Client, NodeError> {
        let Some(cluster) = &self.cluster else {
            return self
                .own
                .get_or_try_init(|| async {
                    kube::Client::try_default().await.map_err(|err| {
                        NodeError::invalid(format!(
                            "no cluster to read it from (no kubeconfig): {err}; give the value \
                             itself"
                        ))
                    })
                })
                .await
                .cloned();
        };
        // Never with the module's own identity: it may read what the flow may not.
        let account = account.ok_or_else(|| {
            NodeError::invalid("this module's nodes do not act as their flows' accounts")
        })?;
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, client)) = accounts.get(&account.account)
            && *token == account.token
        {
            return Ok(client.clone());
        }
        let mut config = cluster.clone();
        config.auth_info =
            AuthInfo { token: Some(account.token.to_string().into()), ..AuthInfo::default() };
        let client = kube::Client::try_from(config).map_err(|err| {
            NodeError::transient(format!("cannot make a Kubernetes client: {err}"))
        })?;
        accounts.insert(account.account.clone(), (Arc::clone(&account.token), client.clone()));
        Ok(client)
    }
}

impl SecretValues for KubeSecrets {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        account: Option<&'a AccountToken>,
        reference: &'a SecretKeyRef,
    ) -> BoxFuture<'a, Result<String, NodeError>> {
        Box::pin(async move {
            let SecretKeyRef { name, key } = reference;
            let secret = format!("Secret {namespace}/{name}");
            let client = self.client(account).await?;
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client, namespace);
            let found = secrets.get(name).await.map_err(|err| match err {
                kube::Error::Api(status) if status.code == 404 => {
                    NodeError::invalid(format!("{secret} does not exist"))
                }
                kube::Error::Api(status) if status.code == 403 => {
                    let who = account.map_or_else(
                        || "your kubeconfig's user".to_owned(),
                        |a| format!("ServiceAccount {}", a.account),
                    );
                    NodeError::invalid(format!(
                        "{who} may not get {secret}: grant it (weir rbac FLOW --apply does)"
                    ))
                }
                err => NodeError::transient(format!("cannot read {secret}: {err}")),
            })?;
            let bytes = found.data.as_ref().and_then(|data| data.get(key)).ok_or_else(|| {
                let keys: Vec<&str> =
                    found.data.iter().flat_map(|d| d.keys()).map(String::as_str).collect();
                let has = if keys.is_empty() { "none".to_owned() } else { keys.join(", ") };
                NodeError::invalid(format!("{secret} has no key {key} (it has {has})"))
            })?;
            String::from_utf8(bytes.0.clone())
                .map_err(|_| NodeError::invalid(format!("{secret}: key {key} is not UTF-8 text")))
        })
    }
}
