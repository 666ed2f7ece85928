//! Who calls the API, and whose rights it acts with.
//!
//! On `weir up` the API is open to whoever reaches its address (loopback by default), as the
//! embedded store has no users. In a cluster (`weir engine`) every request must carry the
//! caller's Kubernetes bearer token, in the `Authorization` header or in the session cookie
//! that `POST /api/session` sets, and the API reads and writes flows with that token: the
//! apiserver authenticates the caller and its RBAC decides what they may see and change, and
//! its audit log names them. The engine's own ServiceAccount lends a caller nothing; only the
//! module catalogues (the palette, which every editor needs) are read with it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use sha2::{Digest as _, Sha256};
use weir_model::Kind;
use weir_store::{Store, StoreError, kubernetes::KubeStore};

use super::{Api, error::ApiError};

/// The session cookie: the caller's token, readable by the engine only (`HttpOnly`).
pub const SESSION_COOKIE: &str = "weir_session";

/// How long a caller's client is kept for their next request.
const CLIENT_IDLE: Duration = Duration::from_secs(300);

/// How many callers' clients are kept at most.
const MAX_CLIENTS: usize = 256;

/// How the API decides who may do what.
#[derive(Clone)]
pub enum Access {
    /// Everyone who reaches the API may do everything, through the engine's store.
    Open,
    /// Each caller acts with their own Kubernetes bearer token.
    Tokens(Arc<Clients>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "Open",
            Self::Tokens(_) => "Tokens",
        })
    }
}

impl Access {
    /// Callers' tokens are used against the cluster `base` describes (its address and CA;
    /// its own credentials are never used for a caller).
    pub fn tokens(base: kube::Config) -> Self {
        Self::Tokens(Clients::new(base))
    }
}

/// A client per caller, kept for a while so that a busy editor does not open a connection per
/// request: at most [`MAX_CLIENTS`], each dropped after [`CLIENT_IDLE`] unused. Keyed by a hash
/// of the token, so the token itself lives only in its caller's client.
pub struct Clients {
    base: kube::Config,
    kept: Mutex<Kept>,
}

/// Callers' stores by the hash of their token, with when each was last used.
type Kept = HashMap<[u8; 32], (Instant, Arc<KubeStore>)>;

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").field("cluster", &self.base.cluster_url).finish_non_exhaustive()
    }
}

impl Clients {
    /// Clients for callers of the cluster `base` describes (its address and CA; its own
    /// credentials are never used for a caller).
    pub fn new(base: kube::Config) -> Arc<Self> {
        Arc::new(Self { base, kept: Mutex::default() })
    }

    /// The store that acts as whoever `token` belongs to.
    pub fn store_for(&self, token: &str) -> Result<Arc<KubeStore>, StoreError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((used, store)) = kept.get_mut(&key) {
            *used = now;
            return Ok(Arc::clone(store));
        }
        kept.retain(|_, (used, _)| now.duration_since(*used) < CLIENT_IDLE);
        if kept.len() >= MAX_CLIENTS
            && let Some(oldest) = kept.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| *k)
        {
            kept.remove(&oldest);
        }
        let store = Arc::new(KubeStore::with_token(&self.base, token)?);
        kept.insert(key, (now, Arc::clone(&store)));
        Ok(store)
    }
}

/// The caller of a request: the store that acts for them, and their client in a cluster.
pub struct Caller {
    /// Reads and writes as the caller.
    pub store: Arc<dyn Store>,
    /// The caller's own client, in a cluster.
    pub client: Option<kube::Client>,
    /// The caller's bearer token, in a cluster, for the modules the caller sends to.
    pub token: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("store", &self.store).finish_non_exhaustive()
    }
}

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        Self::for_headers(&parts.headers, api)
    }
}

impl Caller {
    /// The caller whose credentials `headers` carry.
    pub(super) fn for_headers(headers: &HeaderMap, api: &Api) -> Result<Self, ApiError> {
        match &api.access {
            Access::Open => Ok(Self { store: Arc::clone(&api.store), client: None, token: None }),
            Access::Tokens(clients) => {
                let token = token_of(headers).ok_or_else(ApiError::unauthenticated)?;
                let caller = clients.store_for(&token)?;
                let client = caller.client();
                let store = CallerStore {
                    caller: KubeStore::clone(&caller),
                    engine: Arc::clone(&api.store),
                    home: api.scope.home.clone(),
                };
                Ok(Self { store: Arc::new(store), client: Some(client), token: Some(token) })
            }
        }
    }

    /// Fails with 403 unless the caller may `verb` the FlowNode `name` in `namespace`, as the
    /// apiserver's RBAC answers for them; always allowed when the API has no users.
    pub async fn may(
        &self,
        verb: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let Some(client) = &self.client else { return Ok(()) };
        let allowed = crate::review::may(client.clone(), verb, Kind::FlowNode, namespace, name)
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) if status.code == 401 => ApiError::unauthenticated(),
                err => ApiError::from(StoreError::Unavailable(Box::new(err))),
            })?;
        if allowed {
            return Ok(());
        }
        Err(StoreError::Forbidden {
            user: "this caller".to_owned(),
            verb,
            resource: format!(
                "{}.{} {name:?} in namespace {namespace}",
                Kind::FlowNode.plural(),
                weir_model::GROUP
            ),
        }
        .into())
    }
}

/// The bearer token of a request: the `Authorization` header, else the session cookie.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // The scheme is case-insensitive (RFC 9110).
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.trim())
    };
    bearer.or_else(cookie).filter(|token| !token.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap_or_else(|_| unreachable!()));
        }
        map
    }

    #[tokio::test]
    async fn a_caller_keeps_their_client_and_the_oldest_goes_first() -> Result<(), ApiError> {
        let url = "https://127.0.0.1:6443".parse().unwrap_or_else(|_| unreachable!());
        let clients = Clients::new(kube::Config::new(url));
        let first = clients.store_for("token-a")?;
        assert!(Arc::ptr_eq(&first, &clients.store_for("token-a")?));
        assert!(!Arc::ptr_eq(&first, &clients.store_for("token-b")?));
        for n in 0..MAX_CLIENTS {
            clients.store_for(&format!("token-{n}"))?;
        }
        let kept = clients.kept.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(kept.len(), MAX_CLIENTS);
        let a: [u8; 32] = Sha256::digest(b"token-a").into();
        assert!(!kept.contains_key(&a), "the least recently used caller made room");
        Ok(())
    }

    #[test]
    fn the_header_wins_over_the_cookie() {
        let both = headers(&[
            (header::AUTHORIZATION, "Bearer from-header"),
            (header::COOKIE, "weir_session=from-cookie"),
        ]);
        assert_eq!(token_of(&both).as_deref(), Some("from-header"));
        let lower = headers(&[(header::AUTHORIZATION, "bearer abc")]);
        assert_eq!(token_of(&lower).as_deref(), Some("abc"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let cookies =
            headers(&[(header::COOKIE, "theme=dark"), (header::COOKIE, "a=1; weir_session=t0k")]);
        assert_eq!(token_of(&cookies).as_deref(), Some("t0k"));
    }

    #[test]
    fn no_token_is_no_token() {
        assert_eq!(token_of(&headers(&[])), None);
        assert_eq!(token_of(&headers(&[(header::AUTHORIZATION, "Basic dTpw")])), None);
        assert_eq!(token_of(&headers(&[(header::AUTHORIZATION, "Bearer ")])), None);
        assert_eq!(token_of(&headers(&[(header::COOKIE, "weir_session=")])), None);
    }
}

/// A caller's view of the store: flows and nodes as the caller, module catalogues as the
/// engine, read where the modules publish them (`home`). A caller needs no rights on `Module`
/// resources to use the palette, and none across namespaces.
#[derive(Debug)]
pub struct CallerStore {
    caller: KubeStore,
    engine: Arc<dyn Store>,
    home: String,
}

impl CallerStore {
    fn for_kind(&self, kind: Kind) -> &dyn Store {
        match kind {
            Kind::Module => &*self.engine,
            Kind::Flow | Kind::FlowNode => &self.caller,
        }
    }

    /// Modules are read at home, whatever namespace was asked for.
    fn namespace_for<'a>(&'a self, kind: Kind, namespace: Option<&'a str>) -> Option<&'a str> {
        match kind {
            Kind::Module => Some(&self.home),
            Kind::Flow | Kind::FlowNode => namespace,
        }
    }
}

#[async_trait::async_trait]
impl Store for CallerStore {
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<weir_store::DynamicObject, StoreError> {
        let namespace = self.namespace_for(kind, Some(namespace)).unwrap_or(namespace);
        self.for_kind(kind).get(kind, namespace, name).await
    }

    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &weir_store::Selector,
    ) -> Result<Vec<weir_store::DynamicObject>, StoreError> {
        self.for_kind(kind).list(kind, self.namespace_for(kind, namespace), selector).await
    }

    async fn create(
        &self,
        object: weir_store::DynamicObject,
    ) -> Result<weir_store::DynamicObject, StoreError> {
        self.caller.create(object).await
    }

    async fn update(
        &self,
        object: weir_store::DynamicObject,
    ) -> Result<weir_store::DynamicObject, StoreError> {
        self.caller.update(object).await
    }

    async fn update_status(
        &self,
        object: weir_store::DynamicObject,
    ) -> Result<weir_store::DynamicObject, StoreError> {
        self.caller.update_status(object).await
    }

    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), StoreError> {
        self.caller.delete(kind, namespace, name).await
    }

    fn watch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &weir_store::Selector,
    ) -> weir_store::WatchStream {
        self.for_kind(kind).watch(kind, self.namespace_for(kind, namespace), selector)
    }
}
