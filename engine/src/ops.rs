//! The operations both faces of the engine offer: apply, delete and export resources, send a
//! message, install a solution, derive and apply a flow's rules. The command line (`cmd/`) and
//! the editor's API (`api/`) only translate arguments and answers (text and exit codes, HTTP
//! statuses); neither imports the other, and every failure here is an [`error::OpError`] they
//! can tell apart.

pub mod apply;
pub mod delete;
pub mod error;
pub mod export;
pub mod rbac;
pub mod send;
pub mod solution;

use weir_model::Kind;
use weir_store::{DynamicObject, Selector, Store, StoreError};

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
