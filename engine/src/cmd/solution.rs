//! `weir solution list` and `weir solution install NAME --set key=value`: the ready-made flows
//! under `solutions/` (see `solutions/README.md`), installed through the same checks and writes
//! as `weir apply`. The editor's gallery installs through [`manifests_of`] too.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use weir_model::manifest::Position;
use weir_sdk::Module;
use weir_solutions::{Solution, SolutionError, parse_set};

use super::apply;
use crate::{cli::SolutionCommand, manifests::Manifest, printer::resource_name};

/// Where the solutions are when nothing says: `$WEIR_SOLUTIONS_DIR`, else the `solutions/` of
/// the source tree this binary was built from.
pub fn default_dir() -> PathBuf {
    std::env::var_os("WEIR_SOLUTIONS_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions"), PathBuf::from)
}

/// Every solution in `dir`.
pub fn all(dir: &Path) -> Result<Vec<Solution>> {
    Solution::all(dir).with_context(|| format!("cannot read the solutions in {}", dir.display()))
}

/// The solution called `name` in `dir`.
pub fn find(dir: &Path, name: &str) -> Result<Solution> {
    let solutions = all(dir)?;
    let known: Vec<String> = solutions.iter().map(|s| s.spec.name.clone()).collect();
    solutions
        .into_iter()
        .find(|s| s.spec.name == name)
        .with_context(|| format!("there is no solution {name} (solutions: {})", known.join(", ")))
}

/// The solution's manifests with `sets` (`(name, value as text)`) applied, ready for
/// [`apply::plan`].
pub fn manifests_of(solution: &Solution, sets: &[(String, String)]) -> Result<Vec<Manifest>> {
    let source = format!("solution {}", solution.spec.name);
    let documents = solution.render(sets).map_err(|err| match err {
        // It names the solution already.
        SolutionError::UnknownSetting { .. } => anyhow::Error::new(err),
        err => anyhow::Error::new(err).context(source.clone()),
    })?;
    Ok(documents
        .into_iter()
        .enumerate()
        .map(|(index, value)| Manifest {
            source: source.clone(),
            position: Position { document: index + 1, item: None },
            value,
        })
        .collect())
}

/// Runs `weir solution`; in a cluster, an install also creates the account each of the
/// solution's flows acts as, with the rules its nodes need (as `weir rbac --apply` does, as
/// the person installing).
pub async fn run(
    opened: Option<&super::Opened>,
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
            apply::apply(store, planned, |kind, resource, outcome| {
                Ok(writeln!(out, "{}/{resource} {outcome}", resource_name(kind))?)
            })
            .await?;
            let Some(client) = &opened.client else { return Ok(()) };
            let namespace = namespace.as_deref().unwrap_or(weir_store::DEFAULT_NAMESPACE);
            create_accounts(store, builtins, client, namespace, &flows, out).await
        }
    }
}

/// The names of the flows among `manifests`.
pub fn flows_in(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .filter(|m| m.value["kind"] == "Flow")
        .filter_map(|m| m.value["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Creates the account each of `flows` (installed in `namespace`) acts as, with the rules its
/// nodes need, as `client`'s user (as `weir rbac --apply` does).
pub async fn create_accounts(
    store: &dyn weir_store::Store,
    builtins: &[Module],
    client: &kube::Client,
    namespace: &str,
    flows: &[String],
    out: &mut impl Write,
) -> Result<()> {
    for flow in flows {
        let rules = super::rbac::flow_rules(store, builtins, namespace, flow).await?;
        super::rbac::apply_rules(client, &rules, out)
            .await
            .with_context(|| format!("flow {flow} is installed, but not its account"))?;
    }
    Ok(())
}

/// Prints each solution with its settings.
fn list(dir: &Path, out: &mut impl Write) -> Result<()> {
    for solution in all(dir)? {
        let spec = &solution.spec;
        writeln!(out, "{}: {}", spec.name, spec.title)?;
        writeln!(out, "  {}", spec.description)?;
        for setting in &spec.settings {
            let required = if setting.required { ", required" } else { "" };
            writeln!(
                out,
                "  --set {}=…  ({}{required}, default {}) {}",
                setting.name,
                format!("{:?}", setting.kind).to_lowercase(),
                setting.default,
                setting.description
            )?;
        }
    }
    Ok(())
}
