//! Who a module answers in a cluster (`weir_runtime::trust::Gate`): every gRPC call carries a
//! Kubernetes bearer token, and the module asks the apiserver who it belongs to with that very
//! token (a SelfSubjectReview), so it needs no cluster-wide right such as TokenReview's. The
//! release's own processes (their ServiceAccounts, `--peers`) deliver along edges and watch
//! nodes; anyone else may only start a run at a node they may update (`weir send`), checked
//! with a SelfSubjectAccessReview made as them.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use tonic::Status;
use weir_model::Kind;
use weir_runtime::{
    NodeKey,
    trust::{Bearer, Caller, Gate},
};

use weir_store::kubernetes::KubeStore;

use crate::review;

/// How long the answer to "who is this token" is kept: a revoked token is refused at most
/// this long after.
const KEEP_CALLER: Duration = Duration::from_secs(60);

/// How many callers are kept at most.
const MAX_CALLERS: usize = 1024;

/// The gate of a module in a cluster.
pub struct ClusterGate {
    /// The cluster's address and CA, for clients acting as callers.
    base: kube::Config,
    /// The user names of the release's processes.
    peers: Vec<String>,
    known: Mutex<HashMap<[u8; 32], (Instant, Caller)>>,
}

impl std::fmt::Debug for ClusterGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGate").field("peers", &self.peers).finish_non_exhaustive()
    }
}

impl ClusterGate {
    /// A gate that asks the cluster of `base` (its address and CA; never its credentials) and
    /// takes the ServiceAccounts `peers` of namespace `home` for the release's processes.
    pub fn new(base: kube::Config, home: &str, peers: &[String]) -> Self {
        Self {
            base,
            peers: peers
                .iter()
                .map(|name| format!("system:serviceaccount:{home}:{name}"))
                .collect(),
            known: Mutex::default(),
        }
    }

    /// A client acting as the caller of `token`.
    fn client(&self, token: &str) -> Result<kube::Client, Status> {
        let store = KubeStore::with_token(&self.base, token).map_err(|err| {
            Status::unavailable(format!("cannot make a client to ask the cluster: {err}"))
        })?;
        Ok(store.client())
    }

    fn kept(&self, key: &[u8; 32]) -> Option<Caller> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(key).filter(|(at, _)| at.elapsed() < KEEP_CALLER).map(|(_, c)| c.clone())
    }

    fn keep(&self, key: [u8; 32], caller: Caller) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|_, (at, _)| at.elapsed() < KEEP_CALLER);
        if known.len() >= MAX_CALLERS
            && let Some(oldest) = known.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| *k)
        {
            known.remove(&oldest);
        }
        known.insert(key, (Instant::now(), caller));
    }
}

#[tonic::async_trait]
impl Gate for ClusterGate {
    async fn caller(&self, token: &str) -> Result<Caller, Status> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = self.kept(&key) {
            return Ok(caller);
        }
        let user = review::user_of(self.client(token)?).await.map_err(|err| match err {
            kube::Error::Api(status) if status.code == 401 => Status::unauthenticated(
                "the cluster does not accept this token: it may have expired, or be for another cluster",
            ),
            err => Status::unavailable(format!("cannot ask the cluster who called: {err}")),
        })?;
        let user = user.username.unwrap_or_default();
        let caller = Caller { peer: self.peers.contains(&user), user };
        self.keep(key, caller.clone());
        Ok(caller)
    }

    async fn may_send(&self, caller: &Caller, token: &str, node: &NodeKey) -> Result<(), Status> {
        let allowed =
            review::may(self.client(token)?, "update", Kind::FlowNode, &node.namespace, &node.name)
                .await
                .map_err(|err| {
                    Status::unavailable(format!(
                        "cannot ask the cluster what {} may do: {err}",
                        caller.user
                    ))
                })?;
        if allowed {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} may not update {}.{} {:?} in namespace {}, which sending to it takes",
            caller.user,
            Kind::FlowNode.plural(),
            weir_model::GROUP,
            node.name,
            node.namespace
        )))
    }
}

/// The bearer token the user of `config` signs in with, to present to modules: a token, or the
/// file the kubelet keeps a pod's token fresh in. `None` for a client certificate, which cannot
/// be passed on.
pub fn bearer(config: &kube::Config) -> Option<Bearer> {
    use secrecy::ExposeSecret as _;
    let auth = &config.auth_info;
    match (&auth.token, &auth.token_file) {
        (Some(token), _) => Some(Bearer::Token(token.expose_secret().trim().to_owned())),
        (None, Some(file)) => Some(Bearer::file(file.into())),
        (None, None) => None,
    }
}
