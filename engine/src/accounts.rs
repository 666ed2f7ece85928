//! The ServiceAccounts flows act as, in a cluster (`weir_runtime::trust::Accounts`): which
//! account each flow names (`Flow.spec.serviceAccountName`, followed by a watch), and short
//! tokens for it from the TokenRequest API (audience: the apiserver), asked for with the
//! module's own ServiceAccount (`create serviceaccounts/token`) and kept until 80 % of their
//! life has passed, so a node's calls are its flow's account's and nobody else's.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use futures::{StreamExt as _, future::BoxFuture};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use weir_model::{Flow, Kind};
use weir_runtime::trust::Accounts;
use weir_sdk::{AccountToken, NodeError};
use weir_store::{DynamicObject, Store, StoreError, WatchEvent};

/// How long a token is asked for; the apiserver may give a shorter one.
const TOKEN_LIFE: Duration = Duration::from_secs(3600);

/// A flow, or an account, by namespace and name.
type Key = (String, String);

/// A token and when to ask for a new one.
#[derive(Debug)]
struct Minted {
    token: Arc<str>,
    renew: Instant,
}

/// The accounts of the flows of one scope, and their tokens.
pub struct FlowAccounts {
    /// The module's own client: it asks for the tokens.
    client: kube::Client,
    store: Arc<dyn Store>,
    /// Each flow's account, as the watch last saw it.
    named: Mutex<HashMap<Key, String>>,
    /// Tokens by account.
    minted: Mutex<HashMap<Key, Minted>>,
}

impl std::fmt::Debug for FlowAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flows = self.named.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("FlowAccounts").field("flows", &flows).finish_non_exhaustive()
    }
}

impl FlowAccounts {
    /// Follows the flows of `namespace` (every namespace for `None`) in `store` until `stop`,
    /// asking for tokens with `client`.
    pub fn start(
        client: kube::Client,
        store: Arc<dyn Store>,
        namespace: Option<String>,
        stop: &CancellationToken,
    ) -> Arc<Self> {
        let accounts = Arc::new(Self {
            client,
            store: Arc::clone(&store),
            named: Mutex::default(),
            minted: Mutex::default(),
        });
        let mut flows = weir_store::follow(store, Kind::Flow, namespace, stop.clone());
        let following = Arc::clone(&accounts);
        tokio::spawn(async move {
            while let Some(event) = flows.next().await {
                following.follow(event);
            }
        });
        accounts
    }

    fn follow(&self, event: WatchEvent) {
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            WatchEvent::Synced(flows) => {
                *named = flows.iter().filter_map(account_of).collect();
            }
            WatchEvent::Applied(flow) => {
                if let Some((key, account)) = account_of(&flow) {
                    named.insert(key, account);
                }
            }
            WatchEvent::Deleted(flow) => {
                if let Some((key, _)) = account_of(&flow) {
                    named.remove(&key);
                }
            }
        }
        // A token no flow names any more is dropped, not kept until it expires.
        let in_use: Vec<Key> = named
            .iter()
            .map(|((namespace, _), account)| (namespace.clone(), account.clone()))
            .collect();
        self.minted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| in_use.contains(key));
    }

    /// The account flow `flow` of `namespace` acts as: as the watch saw it, else as the store
    /// says now (a flow newer than the watch).
    async fn account(&self, namespace: &str, flow: &str) -> Result<String, NodeError> {
        let key = (namespace.to_owned(), flow.to_owned());
        if let Some(account) = self.named.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(account.clone());
        }
        match self.store.get(Kind::Flow, namespace, flow).await {
            Ok(object) => account_of(&object).map(|(_, account)| account).ok_or_else(|| {
                NodeError::invalid(format!("flow {namespace}/{flow} does not read as a Flow"))
            }),
            Err(StoreError::NotFound(_)) => Err(NodeError::invalid(format!(
                "flow {namespace}/{flow} does not exist, so it has no account to act as"
            ))),
            Err(err) => {
                Err(NodeError::transient(format!("cannot read flow {namespace}/{flow}: {err}")))
            }
        }
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

/// A flow's key and the account it acts as.
fn account_of(object: &DynamicObject) -> Option<(Key, String)> {
    let flow: Flow = serde_json::to_value(object).and_then(serde_json::from_value).ok()?;
    let namespace = flow.metadata.namespace.clone()?;
    let account = flow.spec.account().to_owned();
    Some(((namespace, flow.metadata.name?), account))
}

impl Accounts for FlowAccounts {
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        flow: &'a str,
    ) -> BoxFuture<'a, Result<AccountToken, NodeError>> {
        Box::pin(async move {
            let account = self.account(namespace, flow).await?;
            let key = (namespace.to_owned(), account.clone());
            let named = format!("{namespace}/{account}");
            let kept =
                self.minted.lock().unwrap_or_else(PoisonError::into_inner).get(&key).and_then(
                    |minted| (Instant::now() < minted.renew).then(|| Arc::clone(&minted.token)),
                );
            if let Some(token) = kept {
                return Ok(AccountToken { account: named, token });
            }
            let minted = self.mint(namespace, &account, flow).await?;
            let token = Arc::clone(&minted.token);
            self.minted.lock().unwrap_or_else(PoisonError::into_inner).insert(key, minted);
            Ok(AccountToken { account: named, token })
        })
    }
}
