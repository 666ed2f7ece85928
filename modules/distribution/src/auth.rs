//! Registry authentication, as the Distribution token specification describes it: a request
//! answered `401` names its scheme in `WWW-Authenticate`. `Basic` takes the credentials on
//! every request; `Bearer` sends the client to a token service (anonymously, or with the
//! credentials as Basic) for a token of the scope the request needs
//! (`repository:<name>:pull` to read, `pull,push` to write), kept until shortly before it
//! expires.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::Deserialize;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, whoever prints this.
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// What a `401` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The access the registry says the request needs, resources separated by spaces.
        scope: Option<String>,
    },
}

/// Reads a `WWW-Authenticate` header; `None` for schemes the client does not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let parameters = parameters(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: parameters.get("realm")?.clone(),
            service: parameters.get("service").cloned(),
            scope: parameters.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas (`scope="repo:a:pull,push"`).
fn parameters(text: &str) -> HashMap<String, String> {
    let mut found = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        found.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    found
}

/// A token service's answer.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    /// Seconds the token lasts; 60 when the service does not say (the specification's default).
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenAnswer {
    /// The token, under either of the names services use.
    pub fn token(&self) -> Option<&str> {
        [self.token.as_str(), self.access_token.as_str()].into_iter().find(|t| !t.is_empty())
    }

    /// How long to keep the token: its lifetime less a margin, so it is not used as it expires,
    /// and at most [`LONGEST_KEEP`] whatever the service claims.
    pub fn keep_for(&self) -> Duration {
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(1)).min(LONGEST_KEEP);
        lifetime.saturating_sub(lifetime / 10).max(Duration::from_secs(1))
    }
}

/// The longest a token is kept, however long its service says it lasts.
pub const LONGEST_KEEP: Duration = Duration::from_secs(24 * 3600);

/// How many scopes' tokens a cache keeps; past that, expired ones are dropped, and if none
/// had expired, all of them (a token costs one request to fetch again).
const MOST_TOKENS: usize = 1024;

/// Tokens by scope, each until it is about to expire.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

// The tokens are credentials: a client or node printed with `{:?}` shows how many, never them.
impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.tokens.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("TokenCache").field("tokens", &kept).finish()
    }
}

impl TokenCache {
    /// The token for `scope`, while it is fresh.
    pub fn get(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(token, _)| token.clone())
    }

    /// Keeps `token` for `scope` for `keep_for` (at most [`LONGEST_KEEP`]).
    pub fn put(&self, scope: &str, token: String, keep_for: Duration) {
        let now = Instant::now();
        let Some(until) = now.checked_add(keep_for.min(LONGEST_KEEP)) else { return };
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MOST_TOKENS {
            tokens.retain(|_, (_, until)| now < *until);
            if tokens.len() >= MOST_TOKENS {
                tokens.clear();
            }
        }
        tokens.insert(scope.to_owned(), (token, until));
    }

    /// Forgets the token for `scope` (it was refused).
    pub fn forget(&self, scope: &str) {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_tokens_are_never_printed() {
        let cache = TokenCache::default();
        cache.put("repository:a:pull", "s3cret-token".to_owned(), Duration::from_secs(60));
        assert_eq!(format!("{cache:?}"), "TokenCache { tokens: 1 }");
    }

    #[test]
    fn challenges_are_read_with_quoted_commas() {
        assert_eq!(parse_challenge("Basic realm=\"test-realm\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/nginx:pull,push\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".to_owned(),
                service: Some("registry.docker.io".to_owned()),
                scope: Some("repository:library/nginx:pull,push".to_owned()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:5600/token"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5600/token".to_owned(),
                service: None,
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge("Bearer service=\"x\""),
            None,
            "a Bearer challenge needs a realm"
        );
    }

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let answer: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"t","expires_in":300}"#).unwrap();
        assert_eq!((answer.token(), answer.keep_for()), (Some("t"), Duration::from_secs(270)));
        let answer: TokenAnswer = serde_json::from_str(r#"{"token":"u"}"#).unwrap();
        assert_eq!((answer.token(), answer.keep_for()), (Some("u"), Duration::from_secs(54)));
        let cache = TokenCache::default();
        cache.put("repository:a:pull", "t".to_owned(), Duration::from_secs(60));
        assert_eq!(cache.get("repository:a:pull").as_deref(), Some("t"));
        assert_eq!(cache.get("repository:a:pull,push"), None);
        cache.forget("repository:a:pull");
        assert_eq!(cache.get("repository:a:pull"), None);
    }

    #[test]
    fn a_token_lasting_forever_is_kept_a_day() {
        let answer: TokenAnswer =
            serde_json::from_value(serde_json::json!({ "token": "t", "expires_in": u64::MAX }))
                .unwrap();
        assert!(answer.keep_for() <= LONGEST_KEEP, "{:?}", answer.keep_for());
        let cache = TokenCache::default();
        cache.put("repository:a:pull", "t".to_owned(), Duration::MAX);
        assert_eq!(cache.get("repository:a:pull").as_deref(), Some("t"));
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_scopes() {
        let cache = TokenCache::default();
        for repository in 0..MOST_TOKENS {
            cache.put(&format!("repository:r{repository}:pull"), "t".to_owned(), Duration::ZERO);
        }
        cache.put("repository:fresh:pull", "t".to_owned(), Duration::from_secs(60));
        let kept = cache.tokens.lock().unwrap_or_else(PoisonError::into_inner).len();
        assert_eq!(kept, 1, "the expired tokens were dropped");
        for repository in 0..MOST_TOKENS {
            cache.put(
                &format!("repository:r{repository}:pull"),
                "t".to_owned(),
                Duration::from_secs(60),
            );
        }
        let kept = cache.tokens.lock().unwrap_or_else(PoisonError::into_inner).len();
        assert!(kept <= MOST_TOKENS, "{kept}");
    }

    #[test]
    fn credentials_never_print_their_password() {
        let credentials = Credentials { username: "ci".to_owned(), password: "t0ken".to_owned() };
        assert!(!format!("{credentials:?}").contains("t0ken"));
    }
}
