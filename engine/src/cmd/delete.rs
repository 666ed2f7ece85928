//! `weir delete`: removes resources through [`crate::ops::delete`].

use std::io::Write;

use anyhow::Result;
use weir_store::Store;

use crate::{cli::DeleteArgs, ops::delete::delete, printer::resource_name};

/// Runs `weir delete`.
pub async fn run(store: &dyn Store, args: DeleteArgs, out: &mut impl Write) -> Result<()> {
    let kind = super::names::parse_kind(&args.kind)?;
    let mut failures = Vec::new();
    for name in &args.names {
        let mut deleted = Vec::new();
        let outcome = delete(store, kind, &args.namespace, name, |kind, name| {
            deleted.push(format!("{}/{name} deleted", resource_name(kind)));
        })
        .await;
        for line in deleted {
            writeln!(out, "{line}")?;
        }
        if let Err(err) = outcome {
            failures.push(err.into());
        }
    }
    super::names::all_or_error(failures)
}
