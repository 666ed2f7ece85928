//! `weir get`: shows resources as a table, YAML, JSON or names.

use std::io::Write;

use anyhow::{Result, anyhow};
use weir_store::{Selector, Store};

use crate::{cli::GetArgs, printer};

/// Runs `weir get`.
pub async fn run(store: &dyn Store, args: GetArgs, out: &mut impl Write) -> Result<()> {
    let kind = super::names::parse_kind(&args.kind)?;
    let selector: Selector = args.selector.as_deref().unwrap_or_default().parse()?;
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let mut failures = Vec::new();
    let objects = if args.names.is_empty() {
        store.list(kind, namespace, &selector).await?
    } else {
        let mut found = Vec::new();
        for name in &args.names {
            match store.get(kind, &args.namespace, name).await {
                Ok(object) => found.push(object),
                Err(err) => failures.push(anyhow!(err)),
            }
        }
        found
    };
    // Only missing names: the errors say it all, an empty table would just be noise.
    if !objects.is_empty() || failures.is_empty() {
        printer::print(out, kind, &objects, args.output, args.all_namespaces)?;
    }
    super::names::all_or_error(failures)
}
