//! Why an operation failed: [`OpError`], with the failures of sending a message and of finding a
//! solution, each a type the command line and the API can tell apart.

use std::{path::PathBuf, time::Duration};

use weir_sdk::NodeError;
use weir_solutions::SolutionError;
use weir_store::StoreError;

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
    Catalogue(#[from] NodeError),
    /// A flow's rules cannot be derived (a component no module offers, a kind not named).
    #[error(transparent)]
    Derive(#[from] crate::rbac::DeriveError),
    /// A solution cannot be found, read or rendered.
    #[error(transparent)]
    Solution(#[from] SolutionProblem),
    /// A message sent from outside any flow got no answer.
    #[error(transparent)]
    Send(#[from] SendError),
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
            Self::Send(SendError::Store { source, .. }) => Some(source),
            _ => None,
        }
    }
}

/// Why a solution cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SolutionProblem {
    /// The solutions cannot be read.
    #[error("cannot read the solutions in {dir}")]
    Unreadable {
        /// Where they were looked for.
        dir: PathBuf,
        /// Why not.
        #[source]
        source: SolutionError,
    },
    /// There is no solution by that name.
    #[error("there is no solution {name} (solutions: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The solutions there are, comma-separated.
        known: String,
    },
    /// A setting given that the solution does not have (the error names the solution).
    #[error(transparent)]
    NoSuchSetting(SolutionError),
    /// The settings given do not fit the solution.
    #[error("solution {solution}")]
    Settings {
        /// The solution.
        solution: String,
        /// What does not fit.
        #[source]
        source: SolutionError,
    },
}

/// Why a message sent from outside any flow got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The run may not be waited for that long.
    #[error("timeout: {timeout:?} is longer than a run may be waited for ({longest:?})")]
    TooLong {
        /// The timeout asked for.
        timeout: Duration,
        /// The longest one may wait.
        longest: Duration,
    },
    /// The node does not exist.
    #[error("node {namespace}/{node} does not exist")]
    NoNode {
        /// The node's namespace.
        namespace: String,
        /// The node.
        node: String,
    },
    /// The store could not be read.
    #[error("cannot read {what}")]
    Store {
        /// What was being read.
        what: String,
        /// Why not.
        #[source]
        source: StoreError,
    },
    /// No process publishes the node's module.
    #[error("node {node} belongs to module {module}, which is not running (no Module resource)")]
    NotRunning {
        /// The node.
        node: String,
        /// Its module.
        module: String,
    },
    /// The module lists no replica that serves now.
    #[error("module {module} lists no replica that serves now")]
    NoEndpoint {
        /// The module.
        module: String,
    },
    /// Several namespaces other than the node's publish the module serving.
    #[error(
        "module {module} serves in namespaces {namespaces}, none of them the node's: which one \
         runs the node is not known, so the message is not sent"
    )]
    Ambiguous {
        /// The module.
        module: String,
        /// The namespaces that publish it.
        namespaces: String,
    },
    /// The module's endpoint does not answer.
    #[error("module {module} of node {node} does not answer at {endpoint}: is it running?")]
    Unreachable {
        /// The module.
        module: String,
        /// The node.
        node: String,
        /// Where it was asked.
        endpoint: String,
        /// What the connection said.
        #[source]
        source: tonic::transport::Error,
    },
    /// The node, or the flow downstream of it, failed.
    #[error("{node}:{port} failed ({}): {}", error.kind().as_str(), error.message())]
    Failed {
        /// The node.
        node: String,
        /// The port the message was sent to.
        port: String,
        /// The failure, with its kind.
        error: NodeError,
    },
    /// The module answered with something that is not an answer.
    #[error("module {module} answered with {what}")]
    BadAnswer {
        /// The module.
        module: String,
        /// What was wrong with the answer.
        what: &'static str,
    },
}
