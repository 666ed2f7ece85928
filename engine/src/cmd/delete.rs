//! `weir delete`: removes resources; a flow takes its nodes with it, as owner references make a
//! cluster's garbage collector do.

use std::io::Write;

use anyhow::{Context as _, Result};
use weir_model::Kind;
use weir_store::Store;

use crate::{cli::DeleteArgs, printer::resource_name};

/// Runs `weir delete`.
pub async fn run(store: &dyn Store, args: DeleteArgs, out: &mut impl Write) -> Result<()> {
    let kind = super::parse_kind(&args.kind)?;
    let mut failures = Vec::new();
    for name in &args.names {
        let deleted = delete(store, kind, &args.namespace, name, |kind, name| {
            Ok(writeln!(out, "{}/{name} deleted", resource_name(kind))?)
        });
        if let Err(err) = deleted.await {
            failures.push(err);
        }
    }
    super::all_or_error(failures)
}

/// Deletes one resource, a flow's nodes first, telling `report` each deleted kind and name.
pub async fn delete(
    store: &dyn Store,
    kind: Kind,
    namespace: &str,
    name: &str,
    mut report: impl FnMut(Kind, &str) -> Result<()>,
) -> Result<()> {
    // Read first so a missing flow is reported as missing, not as a flow without nodes.
    store.get(kind, namespace, name).await?;
    if kind == Kind::Flow {
        for node in super::nodes_of(store, namespace, name).await? {
            let node_name = node.metadata.name.unwrap_or_default();
            store
                .delete(Kind::FlowNode, namespace, &node_name)
                .await
                .with_context(|| format!("cannot delete node {node_name} of flow {name}"))?;
            report(Kind::FlowNode, &node_name)?;
        }
    }
    store.delete(kind, namespace, name).await?;
    report(kind, name)
}
