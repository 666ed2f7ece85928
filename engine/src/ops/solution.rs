//! The ready-made flows under `solutions/` (see `solutions/README.md`): found, rendered with
//! settings given as text, installed through the same checks and writes as any manifest
//! (`super::apply`), and in a cluster given the accounts their flows act as. `weir solution`
//! and the editor's gallery use these.

use std::path::{Path, PathBuf};

use weir_model::manifest::Position;
use weir_sdk::Module;
use weir_solutions::{Solution, SolutionError};

use super::error::{OpError, SolutionProblem};
use crate::manifests::Manifest;

/// Where the solutions are when nothing says: `$WEIR_SOLUTIONS_DIR`, else the `solutions/` of
/// the source tree this binary was built from.
pub fn default_dir() -> PathBuf {
    std::env::var_os("WEIR_SOLUTIONS_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions"), PathBuf::from)
}

/// Every solution in `dir`.
pub fn all(dir: &Path) -> Result<Vec<Solution>, SolutionProblem> {
    Solution::all(dir).map_err(|source| SolutionProblem::Unreadable { dir: dir.to_owned(), source })
}

/// The solution called `name` in `dir`.
pub fn find(dir: &Path, name: &str) -> Result<Solution, SolutionProblem> {
    let solutions = all(dir)?;
    let known: Vec<String> = solutions.iter().map(|s| s.spec.name.clone()).collect();
    solutions
        .into_iter()
        .find(|s| s.spec.name == name)
        .ok_or_else(|| SolutionProblem::Unknown { name: name.to_owned(), known: known.join(", ") })
}

/// The solution's manifests with `sets` (`(name, value as text)`) applied, ready for
/// [`super::apply::plan`].
pub fn manifests_of(
    solution: &Solution,
    sets: &[(String, String)],
) -> Result<Vec<Manifest>, SolutionProblem> {
    let source = format!("solution {}", solution.spec.name);
    let documents = solution.render(sets).map_err(|source| match source {
        SolutionError::UnknownSetting { .. } => SolutionProblem::NoSuchSetting(source),
        source => SolutionProblem::Settings { solution: solution.spec.name.clone(), source },
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

/// The names of the flows among `manifests`.
pub fn flows_in(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .filter(|m| m.value["kind"] == "Flow")
        .filter_map(|m| m.value["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Creates the account each of `flows` (installed in `namespace`) acts as, with the rules its
/// nodes need, as `client`'s user (as `weir rbac --apply` does), telling `applied` each object.
pub async fn create_accounts(
    store: &dyn weir_store::Store,
    builtins: &[Module],
    client: &kube::Client,
    namespace: &str,
    flows: &[String],
    mut applied: impl FnMut(&str),
) -> Result<(), OpError> {
    for flow in flows {
        let rules = super::rbac::flow_rules(store, builtins, namespace, flow).await?;
        super::rbac::apply_rules(client, &rules, &mut applied).await.map_err(|err| {
            OpError::Cluster {
                doing: format!("install the account of flow {flow} (the flow is installed)"),
                message: err.to_string(),
            }
        })?;
    }
    Ok(())
}
