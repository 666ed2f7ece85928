//! `weir solution list` and `weir solution install NAME --set key=value`: the ready-made flows
//! under `solutions/`, installed through `crate::ops::solution`.

use std::{io::Write, path::Path};

use anyhow::{Result, bail};
use weir_sdk::Module;
use weir_solutions::parse_set;

use crate::{
    cli::SolutionCommand,
    ops::{
        apply,
        solution::{all, create_accounts, find, flows_in, manifests_of},
    },
    printer::resource_name,
};

/// Runs `weir solution`; in a cluster, an install also creates the account each of the
/// solution's flows acts as, with the rules its nodes need (as `weir rbac --apply` does, as
/// the person installing).
pub async fn run(
    opened: Option<&super::open::Opened>,
    builtins: &[Module],
    dir: &Path,
    command: SolutionCommand,
    out: &mut impl Write,
) -> Result<()> {
    match command {
        SolutionCommand::List => list(dir, out),
        SolutionCommand::Install { name, set, namespace } => {
            let Some(opened) = opened else { bail!("installing needs a store") };
            let store = &*opened.store;
            let sets = set.iter().map(|text| parse_set(text)).collect::<Result<Vec<_>, _>>()?;
            let solution = find(dir, &name)?;
            let manifests = manifests_of(&solution, &sets)?;
            let flows = flows_in(&manifests);
            let total = manifests.len();
            let planned = match apply::plan(store, manifests, namespace.as_deref(), "--namespace")
                .await?
            {
                Ok(planned) => planned,
                Err(invalid) => {
                    let mut stderr = std::io::stderr().lock();
                    for problem in &invalid {
                        writeln!(stderr, "error: {problem}")?;
                    }
                    bail!(
                        "{} of the {total} documents of solution {name} are invalid; nothing was installed",
                        invalid.len()
                    );
                }
            };
            let mut said = Vec::new();
            apply::apply(store, planned, |kind, resource, outcome| {
                said.push(format!("{}/{resource} {outcome}", resource_name(kind)));
            })
            .await?;
            let Some(client) = &opened.client else {
                return said.iter().try_for_each(|line| Ok(writeln!(out, "{line}")?));
            };
            let namespace = namespace.as_deref().unwrap_or(weir_store::DEFAULT_NAMESPACE);
            let created = create_accounts(store, builtins, client, namespace, &flows, |what| {
                said.push(format!("{what} applied"));
            })
            .await;
            for line in &said {
                writeln!(out, "{line}")?;
            }
            Ok(created?)
        }
    }
}

/// Prints each solution with its settings.
fn list(dir: &Path, out: &mut impl Write) -> Result<()> {
    for solution in all(dir)? {
        let spec = &solution.spec;
        writeln!(out, "{}: {}", spec.name, spec.title)?;
        writeln!(out, "  {}", spec.description)?;
        for setting in &spec.settings {
            let required = if setting.required { ", required" } else { "" };
            let bounds = match (setting.minimum, setting.maximum) {
                (Some(min), Some(max)) => format!(" {min} to {max}"),
                (Some(min), None) => format!(" from {min}"),
                (None, Some(max)) => format!(" up to {max}"),
                (None, None) => String::new(),
            };
            writeln!(
                out,
                "  --set {}=…  ({}{bounds}{required}, default {}) {}",
                setting.name,
                format!("{:?}", setting.kind).to_lowercase(),
                setting.default,
                setting.description
            )?;
        }
    }
    Ok(())
}
