//! Who may call a module, and whom its nodes act as. In a cluster every `Deliver`,
//! `DeliverAlongEdges` and `Inspect` carries the caller's Kubernetes bearer token, and a [`Gate`] (the engine's is
//! backed by the apiserver) says who it belongs to and what they may do; a module's own calls
//! present its [`Bearer`]. Nodes act as their flow's ServiceAccount, whose tokens [`Accounts`]
//! gives, and their secret settings given by reference are read as that account
//! ([`SecretValues`]).

use std::{
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use tonic::{Status, metadata::MetadataMap};
use weir_model::secret_ref::SecretKeyRef;
use weir_sdk::{AccountToken, NodeError};

use crate::key::NodeKey;

/// Who called, as the cluster knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The Kubernetes user name, such as `system:serviceaccount:weir:weir-common`.
    pub user: String,
    /// Whether the caller is one of this release's own processes, which deliver along edges
    /// and watch nodes.
    pub peer: bool,
}

/// Decides who a module answers.
#[tonic::async_trait]
pub trait Gate: std::fmt::Debug + Send + Sync + 'static {
    /// Who `token` belongs to; `UNAUTHENTICATED` when the cluster does not take it.
    async fn caller(&self, token: &str) -> Result<Caller, Status>;

    /// Whether `caller`, signed in with `token`, may start a run at `node` from outside any
    /// flow (`weir send`); `PERMISSION_DENIED` naming what is missing when not.
    async fn may_send(&self, caller: &Caller, token: &str, node: &NodeKey) -> Result<(), Status>;
}

/// Where the tokens of the ServiceAccounts flows act as come from, in a cluster.
pub trait Accounts: std::fmt::Debug + Send + Sync + 'static {
    /// A token of ServiceAccount `account` of `namespace`, which flow `flow` acts as; an
    /// invalid failure naming the account when there is none to be had (the account does not
    /// exist, the module may not ask for its tokens).
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        flow: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountToken, NodeError>>;
}

/// Where the values of secret settings given by reference (`weir_model::secret_ref`) come from.
pub trait SecretValues: std::fmt::Debug + Send + Sync + 'static {
    /// The text under `reference.key` of Secret `reference.name` in `namespace`, read as
    /// `account` (the flow's, in a cluster; `None` where nodes act with the user's own
    /// credentials); an invalid failure naming the Secret when it cannot be had as things
    /// stand, a transient one when the cluster does not answer.
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        account: Option<&'a AccountToken>,
        reference: &'a SecretKeyRef,
    ) -> BoxFuture<'a, Result<String, NodeError>>;
}

/// The bearer token of a request's metadata, if any.
pub fn bearer_of(metadata: &MetadataMap) -> Option<&str> {
    bearer_token(metadata.get("authorization")?.to_str().ok()?)
}

/// The token of an `authorization` value `Bearer TOKEN` (the scheme is case-insensitive, RFC
/// 9110); `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// How often a token file is read again: the kubelet rotates a projected token well before it
/// expires, so a minute-old copy is always still good.
const REREAD: Duration = Duration::from_secs(60);

/// The token a process presents when it calls a module: fixed, or read from a file that the
/// kubelet keeps fresh (a pod's ServiceAccount token).
#[derive(Debug)]
pub enum Bearer {
    /// A token given once.
    Token(String),
    /// A file holding the token, read again every [`REREAD`].
    File {
        /// The file.
        path: PathBuf,
        /// The token last read, and when.
        read: Mutex<Option<(Instant, String)>>,
    },
}

impl Bearer {
    /// The token in `path`, read when needed.
    pub fn file(path: PathBuf) -> Self {
        Self::File { path, read: Mutex::new(None) }
    }

    /// The token to present now; `None` (and a warning) when the file cannot be read, so the
    /// call goes out without one and is refused with a clear answer.
    pub fn token(&self) -> Option<String> {
        match self {
            Self::Token(token) => Some(token.clone()),
            Self::File { path, read } => {
                let mut read = read.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((at, token)) = read.as_ref()
                    && at.elapsed() < REREAD
                {
                    return Some(token.clone());
                }
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        let token = text.trim().to_owned();
                        *read = Some((Instant::now(), token.clone()));
                        Some(token)
                    }
                    Err(err) => {
                        tracing::warn!(file = %path.display(), error = %err, "cannot read the token to call modules with");
                        None
                    }
                }
            }
        }
    }

    /// `Bearer TOKEN`, for the `authorization` metadata entry.
    pub fn header(&self) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
        Self::header_of(&self.token()?)
    }

    /// `Bearer TOKEN` of `token`, for the `authorization` metadata entry; `None` when the
    /// token cannot be one (not visible ASCII).
    pub fn header_of(
        token: &str,
    ) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
        let mut value: tonic::metadata::MetadataValue<_> =
            format!("Bearer {token}").parse().ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_the_metadata() {
        let mut metadata = MetadataMap::new();
        assert_eq!(bearer_of(&metadata), None);
        metadata.insert("authorization", "Basic dTpw".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(bearer_of(&metadata), None);
        metadata.insert("authorization", "bearer  t0k ".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(bearer_of(&metadata), Some("t0k"));
    }

    #[test]
    fn a_token_file_is_read_and_kept_for_a_while() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("weir-bearer-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("token");
        std::fs::write(&path, "first\n")?;
        let bearer = Bearer::file(path.clone());
        assert_eq!(bearer.token().as_deref(), Some("first"));
        std::fs::write(&path, "second")?;
        assert_eq!(bearer.token().as_deref(), Some("first"), "kept until it is a minute old");
        std::fs::remove_file(&path)?;
        assert_eq!(Bearer::file(path).token(), None);
        let header = Bearer::Token("abc".into()).header();
        assert_eq!(
            header.and_then(|h| h.to_str().ok().map(str::to_owned)).as_deref(),
            Some("Bearer abc")
        );
        Ok(())
    }
}
