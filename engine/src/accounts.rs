//! Tokens of the ServiceAccounts flows act as, in a cluster (`weir_runtime::trust::Accounts`;
//! the runtime knows which account each flow names): short tokens from the TokenRequest API
//! (audience: the apiserver), asked for with the module's own ServiceAccount (`create
//! serviceaccounts/token`) and kept until 80 % of their life has passed, so a node's calls are
//! its flow's account's and nobody else's.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use futures::future::BoxFuture;
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::api::PostParams;
use weir_runtime::trust::Accounts;
use weir_sdk::{AccountToken, NodeError};

/// How long a token is asked for; the apiserver may give a shorter one.
const TOKEN_LIFE: Duration = Duration::from_secs(3600);

/// An account by namespace and name.
type Key = (String, String);

/// A token and when to ask for a new one.
#[derive(Debug)]
struct Minted {
    token: Arc<str>,
    renew: Instant,
}

/// Tokens of the accounts flows act as, by account.
pub struct FlowAccounts {
    /// The module's own client: it asks for the tokens.
    client: kube::Client,
    minted: Mutex<HashMap<Key, Minted>>,
}

impl std::fmt::Debug for FlowAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.minted.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("FlowAccounts").field("tokens", &kept).finish_non_exhaustive()
    }
}

impl FlowAccounts {
    /// Tokens asked for with `client`, the module's own.
    pub fn new(client: kube::Client) -> Self {
        Self { client, minted: Mutex::default() }
    }

    /// A new token of `account` in `namespace`, for `flow`'s messages.
    async fn mint(&self, namespace: &str, account: &str, flow: &str) -> Result<Minted, NodeError> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: i64::try_from(TOKEN_LIFE.as_secs()).ok(),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let accounts: kube::Api<ServiceAccount> =
            kube::Api::namespaced(self.client.clone(), namespace);
        let asked = Instant::now();
        let answer = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) if status.code == 404 => NodeError::invalid(format!(
                    "flow {flow} acts as ServiceAccount {namespace}/{account}, which does not \
                     exist: create it with the rules the flow needs (weir rbac {flow} --apply), \
                     or name another in spec.serviceAccountName"
                )),
                kube::Error::Api(status) if status.code == 403 => NodeError::invalid(format!(
                    "cannot act as ServiceAccount {namespace}/{account} for flow {flow}: {}",
                    status.message
                )),
                err => NodeError::transient(format!(
                    "cannot get a token of ServiceAccount {namespace}/{account}: {err}"
                )),
            })?;
        let status = answer.status.ok_or_else(|| {
            NodeError::transient(format!(
                "the token request for {namespace}/{account} has no answer"
            ))
        })?;
        let expires = SystemTime::from(status.expiration_timestamp.0);
        let life = expires.duration_since(SystemTime::now()).unwrap_or_default().min(TOKEN_LIFE);
        Ok(Minted { token: status.token.into(), renew: asked + life.mul_f64(0.8) })
    }
}

impl Accounts for FlowAccounts {
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        flow: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountToken, NodeError>> {
        Box::pin(async move {
            let key = (namespace.to_owned(), account.to_owned());
            let named = format!("{namespace}/{account}");
            let now = Instant::now();
            let kept = {
                let mut minted = self.minted.lock().unwrap_or_else(PoisonError::into_inner);
                // Tokens past renewal are dropped: an account no flow names any more goes too.
                minted.retain(|_, m| now < m.renew);
                minted.get(&key).map(|m| Arc::clone(&m.token))
            };
            if let Some(token) = kept {
                return Ok(AccountToken { account: named, token });
            }
            let minted = self.mint(namespace, account, flow).await?;
            let token = Arc::clone(&minted.token);
            self.minted.lock().unwrap_or_else(PoisonError::into_inner).insert(key, minted);
            Ok(AccountToken { account: named, token })
        })
    }
}
