//! Deleting resources: a flow takes its nodes with it, as owner references make a cluster's
//! garbage collector do.

use weir_model::Kind;
use weir_store::Store;

use super::error::OpError;

/// Deletes one resource, a flow's nodes first, telling `report` each deleted kind and name.
pub async fn delete(
    store: &dyn Store,
    kind: Kind,
    namespace: &str,
    name: &str,
    mut report: impl FnMut(Kind, &str),
) -> Result<(), OpError> {
    // Read first so a missing flow is reported as missing, not as a flow without nodes.
    store.get(kind, namespace, name).await?;
    if kind == Kind::Flow {
        for node in super::nodes_of(store, namespace, name).await? {
            let node_name = node.metadata.name.unwrap_or_default();
            store.delete(Kind::FlowNode, namespace, &node_name).await.map_err(|err| {
                OpError::store_while(format!("cannot delete node {node_name} of flow {name}"), err)
            })?;
            report(Kind::FlowNode, &node_name);
        }
    }
    store.delete(kind, namespace, name).await?;
    report(kind, name);
    Ok(())
}
