//! `weir export`: flows with their nodes as clean manifests, through [`crate::ops::export`].

use std::io::Write;

use anyhow::{Result, anyhow};
use weir_model::Kind;
use weir_store::{Selector, Store};

use crate::{
    catalogue::Catalogue,
    cli::ExportArgs,
    ops::export::{manifests, to_yaml},
};

/// Runs `weir export`.
pub async fn run(store: &dyn Store, args: ExportArgs, out: &mut impl Write) -> Result<()> {
    let mut failures = Vec::new();
    let flows = if args.flows.is_empty() {
        store.list(Kind::Flow, Some(&args.namespace), &Selector::everything()).await?
    } else {
        let mut flows = Vec::new();
        for name in &args.flows {
            match store.get(Kind::Flow, &args.namespace, name).await {
                Ok(flow) => flows.push(flow),
                Err(err) => failures.push(anyhow!(err)),
            }
        }
        flows
    };
    let catalogue = Catalogue::read(store, &args.namespace).await?;
    let mut documents = Vec::new();
    for flow in flows {
        documents.extend(manifests(store, &catalogue, &flow, args.keep_namespace).await?);
    }
    write!(out, "{}", to_yaml(&documents)?)?;
    super::names::all_or_error(failures)
}
