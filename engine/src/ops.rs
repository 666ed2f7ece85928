//! The operations both faces of the engine offer: apply, delete and export resources, send a
//! message, install a solution, derive and apply a flow's rules. The command line (`cmd/`) and
//! the editor's API (`api/`) only translate arguments and answers (text and exit codes, HTTP
//! statuses); neither imports the other, and every failure here is an [`OpError`] they can
//! tell apart.

pub mod apply;
pub mod delete;
pub mod export;
pub mod rbac;
pub mod send;
pub mod solution;

use weir_model::Kind;
use weir_store::{DynamicObject, Selector, Store, StoreError};

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refused or failed while doing what `doing` says.
    #[error("{doing}")]
    StoreWhile {
        /// What was being done, such as `cannot delete node tick of flow hello`.
        doing: String,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// Something stored or given does not read as what it should be.
    #[error("{what}")]
    Unreadable {
        /// What, and as what, such as `flow hello does not read as a Flow`.
        what: String,
        /// Why not.
        #[source]
        source: serde_json::Error,
    },
    /// YAML could not be written.
    #[error("cannot write YAML")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// The cluster refused or failed a write outside the store (an account, a role).
    #[error("cannot {doing}: {message}")]
    Cluster {
        /// What was being done, such as `apply Role weir-flow-hello`.
        doing: String,
        /// What the cluster said.
        message: String,
    },
    /// A module's catalogue cannot be made.
    #[error(transparent)]
    Module(#[from] crate::rbac::ModuleError),
    /// A module's catalogue cannot be made.
    #[error("a module catalogue cannot be made")]
    Catalogue(#[from] weir_sdk::NodeError),
    /// A flow's rules cannot be derived (a component no module offers, a kind not named).
    #[error(transparent)]
    Derive(#[from] crate::rbac::DeriveError),
    /// A solution cannot be found, read or rendered.
    #[error(transparent)]
    Solution(#[from] solution::SolutionProblem),
    /// A message sent from outside any flow got no answer.
    #[error(transparent)]
    Send(#[from] send::SendError),
}

impl OpError {
    /// A store failure while doing what `doing` says.
    pub fn store_while(doing: impl Into<String>, source: StoreError) -> Self {
        Self::StoreWhile { doing: doing.into(), source }
    }

    /// The store's error behind this one, if any: it decides how the API answers.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(source) | Self::StoreWhile { source, .. } => Some(source),
            Self::Send(send::SendError::Store { source, .. }) => Some(source),
            _ => None,
        }
    }
}

/// A flow's nodes, sorted by name.
pub async fn nodes_of(
    store: &dyn Store,
    namespace: &str,
    flow: &str,
) -> Result<Vec<DynamicObject>, StoreError> {
    let nodes = store.list(Kind::FlowNode, Some(namespace), &Selector::everything()).await?;
    Ok(nodes
        .into_iter()
        .filter(|n| n.data.pointer("/spec/flow").and_then(|f| f.as_str()) == Some(flow))
        .collect())
}
