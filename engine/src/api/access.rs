//! Who calls the API, and whose rights it acts with.
//!
//! On `weir up` the API is open to whoever reaches its address (loopback by default, and only
//! requests for that address, see `crate::guard`), as the embedded store has no users; with
//! `--token-file` every request must carry that token. In a cluster (`weir engine`) every
//! request must carry the caller's Kubernetes bearer token, in the `Authorization` header or in
//! the session cookie that `POST /api/session` sets, and the API reads and writes flows with
//! that token: the apiserver authenticates the caller and its RBAC decides what they may see
//! and change, and its audit log names them. The engine's own ServiceAccount lends a caller
//! nothing; only the module catalogues (the palette, which every editor needs) are read with
//! it, once the cluster accepted the caller's token.
//!
//! [`authenticate`] runs before every route but signing in and out, so no body is read and
//! nothing is read with the engine's identity for a caller the API does not know.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest as _, Sha256};
use weir_api::Session;
use weir_model::Kind;
use weir_store::{Store, StoreError, kubernetes::KubeStore};

use super::error::ApiError;

/// The session cookie: the caller's token, readable by the engine only (`HttpOnly`).
pub const SESSION_COOKIE: &str = "weir_session";

/// How long a caller's client is kept for their next request.
const CLIENT_IDLE: Duration = Duration::from_secs(300);

/// How long the cluster's acceptance of a token is trusted before it is asked again, so that a
/// token revoked or expired is refused soon, without a review per request.
const ACCEPTED_FOR: Duration = Duration::from_secs(60);

/// How many callers' clients are kept at most.
const MAX_CLIENTS: usize = 256;

/// The fewest characters a `--token-file` token may have.
const MIN_TOKEN_CHARS: usize = 16;

/// How the API decides who may do what.
#[derive(Clone)]
pub enum Access {
    /// Everyone who reaches the API may do everything, through the engine's store.
    Open,
    /// Whoever sends this token may do everything, through the engine's store.
    Token(Arc<SharedToken>),
    /// Each caller acts with their own Kubernetes bearer token.
    Tokens(Arc<Clients>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "Open",
            Self::Token(_) => "Token",
            Self::Tokens(_) => "Tokens",
        })
    }
}

impl Access {
    /// Callers' tokens are used against the cluster `base` describes (its address and CA;
    /// its own credentials are never used for a caller).
    pub fn tokens(base: kube::Config) -> Self {
        Self::Tokens(Arc::new(Clients { base, kept: Mutex::default() }))
    }
}

/// The one token `weir up --token-file` takes. Only its digest is kept, and a token is
/// compared by digest in constant time, so neither its length nor its first differing byte
/// shows in how long a refusal takes.
pub struct SharedToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedToken(<redacted>)")
    }
}

impl SharedToken {
    /// The token `text` holds (surrounding whitespace aside), if it is one: at least
    /// [`MIN_TOKEN_CHARS`] characters that a header and a cookie carry as they are.
    pub fn new(text: &str) -> Result<Self, String> {
        let token = text.trim();
        let fits = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
        if token.len() < MIN_TOKEN_CHARS || !token.bytes().all(fits) {
            return Err(format!(
                "a token is at least {MIN_TOKEN_CHARS} characters of letters, digits and \
                 - . _ ~ + / =, such as `openssl rand -hex 32` prints"
            ));
        }
        Ok(Self { digest: Sha256::digest(token.as_bytes()).into() })
    }

    /// Whether `given` is the token.
    pub fn accepts(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.iter().zip(self.digest).fold(0, |differ, (a, b)| differ | (a ^ b)) == 0
    }
}

/// Who the holder of the `--token-file` token is, as `GET /api/session` tells.
const TOKEN_HOLDER: &str = "holder of the --token-file token";

/// A client per caller whose token the cluster accepted, kept for a while so that a busy
/// editor does not open a connection (nor ask the cluster again) per request: at most
/// [`MAX_CLIENTS`], each dropped after [`CLIENT_IDLE`] unused. Keyed by a hash of the token, so
/// the token itself lives only in its caller's client.
pub struct Clients {
    base: kube::Config,
    kept: Mutex<HashMap<[u8; 32], Kept>>,
}

/// A caller's client, with who the cluster says they are.
struct Kept {
    /// When the caller last sent a request.
    used: Instant,
    /// When the cluster last accepted the token.
    accepted: Instant,
    store: Arc<KubeStore>,
    who: Session,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").field("cluster", &self.base.cluster_url).finish_non_exhaustive()
    }
}

impl Clients {
    /// The store that acts as whoever `token` belongs to, and who that is, once the cluster
    /// accepted the token (asked again after [`ACCEPTED_FOR`]); 401 when it does not.
    pub(super) async fn accepted(
        &self,
        token: &str,
    ) -> Result<(Arc<KubeStore>, Session), ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.get_mut(&key).map(|kept| {
                kept.used = Instant::now();
                (kept.accepted.elapsed() < ACCEPTED_FOR, Arc::clone(&kept.store), kept.who.clone())
            })
        };
        if let Some((true, store, who)) = known {
            return Ok((store, who));
        }
        let store = match known {
            Some((_, store, _)) => store,
            None => Arc::new(KubeStore::with_token(&self.base, token)?),
        };
        let who = who_is(store.client()).await?;
        self.keep(key, Arc::clone(&store), who.clone());
        Ok((store, who))
    }

    /// Keeps a caller's client, making room by dropping idle ones, then the least recently
    /// used.
    fn keep(&self, key: [u8; 32], store: Arc<KubeStore>, who: Session) {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|_, kept| now.duration_since(kept.used) < CLIENT_IDLE);
        if kept.len() >= MAX_CLIENTS
            && !kept.contains_key(&key)
            && let Some(oldest) = kept.iter().min_by_key(|(_, kept)| kept.used).map(|(k, _)| *k)
        {
            kept.remove(&oldest);
        }
        kept.insert(key, Kept { used: now, accepted: now, store, who });
    }
}

/// Asks the apiserver who a client's credentials belong to (user and groups); 401 when it does
/// not accept them.
async fn who_is(client: kube::Client) -> Result<Session, ApiError> {
    let user = crate::review::user_of(client).await.map_err(|err| match err {
        kube::Error::Api(status) if status.code == 401 => ApiError::token_refused(),
        err => ApiError::from(StoreError::Unavailable(Box::new(err))),
    })?;
    let groups = Some(user.groups.unwrap_or_default());
    Ok(Session { user: user.username, groups, ..Session::default() })
}

/// What [`authenticate`] knows: who may do what, and with which store and namespace the
/// engine acts itself.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// Who may do what.
    pub access: Access,
    /// The engine's own store: the module catalogues, and everything when access is open.
    pub store: Arc<dyn Store>,
    /// The engine's home namespace, where the module catalogues are.
    pub home: String,
}

/// Lets a request through only once its caller is known (see the module's documentation), and
/// hands the handlers the [`Caller`].
pub(super) async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    match Caller::identify(request.headers(), &authenticator).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

/// Signs in with `token`: who it belongs to, or 401.
pub(super) async fn sign_in(access: &Access, token: &str) -> Result<Session, ApiError> {
    match access {
        Access::Open => Err(ApiError::bad_request("this engine has no users to sign in as")),
        Access::Token(own) if own.accepts(token) => Ok(holder()),
        Access::Token(_) => Err(ApiError::shared_token_refused()),
        Access::Tokens(clients) => Ok(clients.accepted(token).await?.1),
    }
}

fn holder() -> Session {
    Session { user: Some(TOKEN_HOLDER.to_owned()), groups: Some(Vec::new()), ..Session::default() }
}

/// The caller of a request: the store that acts for them, and their client in a cluster.
#[derive(Clone)]
pub struct Caller {
    /// Reads and writes as the caller.
    pub store: Arc<dyn Store>,
    /// The caller's own client, in a cluster.
    pub client: Option<kube::Client>,
    /// Who the caller is (user and groups); none where the API has no users.
    pub who: Option<Session>,
    /// The caller's bearer token, in a cluster, for the modules the caller sends to.
    pub token: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("store", &self.store).finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route that needs a caller is not authenticated"))
    }
}

impl Caller {
    /// The caller whose credentials `headers` carry, once they are accepted.
    async fn identify(headers: &HeaderMap, api: &Authenticator) -> Result<Self, ApiError> {
        match &api.access {
            Access::Open => {
                Ok(Self { store: Arc::clone(&api.store), client: None, who: None, token: None })
            }
            Access::Token(own) => {
                let token = token_of(headers).ok_or_else(ApiError::shared_token_missing)?;
                if !own.accepts(&token) {
                    return Err(ApiError::shared_token_refused());
                }
                let store = Arc::clone(&api.store);
                Ok(Self { store, client: None, who: Some(holder()), token: None })
            }
            Access::Tokens(clients) => {
                let token = token_of(headers).ok_or_else(ApiError::unauthenticated)?;
                let (caller, who) = clients.accepted(&token).await?;
                let client = caller.client();
                let store = CallerStore {
                    caller: KubeStore::clone(&caller),
                    engine: Arc::clone(&api.store),
                    home: api.home.clone(),
                };
                let store = Arc::new(store);
                Ok(Self { store, client: Some(client), who: Some(who), token: Some(token) })
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
        .and_then(weir_runtime::trust::bearer_token);
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
        let clients = Clients { base: kube::Config::new(url), kept: Mutex::default() };
        let key = |token: &str| -> [u8; 32] { Sha256::digest(token.as_bytes()).into() };
        let store = || KubeStore::with_token(&clients.base, "t").map(Arc::new);
        clients.keep(key("token-a"), store()?, Session::default());
        for n in 0..MAX_CLIENTS {
            clients.keep(key(&format!("token-{n}")), store()?, Session::default());
        }
        let kept = clients.kept.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(kept.len(), MAX_CLIENTS);
        assert!(!kept.contains_key(&key("token-a")), "the least recently used caller made room");
        assert!(kept.contains_key(&key("token-0")));
        Ok(())
    }

    #[test]
    fn a_shared_token_is_long_and_plain_and_taken_only_exactly() {
        let token = SharedToken::new("  0123456789abcdef0123\n").unwrap_or_else(|_| unreachable!());
        assert!(token.accepts("0123456789abcdef0123"));
        assert!(!token.accepts("0123456789abcdef012"));
        assert!(!token.accepts("0123456789abcdef01234"));
        assert!(!token.accepts(""));
        assert!(SharedToken::new("short").is_err());
        assert!(SharedToken::new("0123456789abcdef;0123").is_err());
        assert!(SharedToken::new("0123456789 abcdef 0123").is_err());
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
