//! `weir rbac FLOW`: the ServiceAccount a flow acts as and the rules its nodes need
//! (`crate::ops::rbac`), as manifests to review and `kubectl apply`, or applied with `--apply`
//! as the person running it.

use std::io::Write;

use anyhow::{Result, bail};
use weir_sdk::Module;

use crate::{
    cli::RbacArgs,
    ops::{
        export::to_yaml,
        rbac::{apply_rules, flow_rules},
    },
};

/// Runs `weir rbac`.
pub async fn run(
    opened: &super::open::Opened,
    builtins: &[Module],
    args: RbacArgs,
    out: &mut impl Write,
) -> Result<()> {
    let rules = flow_rules(&*opened.store, builtins, &args.namespace, &args.flow).await?;
    if !args.apply {
        write!(out, "{}", to_yaml(&rules.manifests())?)?;
        return Ok(());
    }
    let Some(client) = &opened.client else {
        bail!(
            "--apply needs a cluster: give --kubeconfig or --context (or print and apply them yourself)"
        );
    };
    let mut said = Vec::new();
    let applied = apply_rules(client, &rules, |what| said.push(format!("{what} applied"))).await;
    for line in said {
        writeln!(out, "{line}")?;
    }
    Ok(applied?)
}
