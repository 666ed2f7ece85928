//! `weir apply`: the manifests of files, directories or standard input, through
//! [`crate::ops::apply`].

use std::io::Write;

use anyhow::{Result, bail};
use weir_store::Store;

use crate::{
    cli::ApplyArgs,
    manifests,
    ops::apply::{apply, plan},
    printer::resource_name,
};

/// Runs `weir apply`.
pub async fn run(store: &dyn Store, args: ApplyArgs, out: &mut impl Write) -> Result<()> {
    let read = manifests::read(&args.sources)?;
    let total = read.len();
    let planned = match plan(store, read, args.namespace.as_deref(), "--namespace").await? {
        Ok(planned) => planned,
        Err(invalid) => {
            let mut stderr = std::io::stderr().lock();
            for problem in &invalid {
                writeln!(stderr, "error: {problem}")?;
            }
            bail!("{} of {total} documents are invalid; nothing was applied", invalid.len());
        }
    };
    let mut said = Ok(());
    apply(store, planned, |kind, name, outcome| {
        if said.is_ok() {
            said = writeln!(out, "{}/{name} {outcome}", resource_name(kind));
        }
    })
    .await?;
    Ok(said?)
}
