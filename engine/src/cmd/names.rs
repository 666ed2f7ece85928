//! What the verbs that take resource names share: reading a resource type, and reporting every
//! name that failed.

use anyhow::{Context as _, Result};
use weir_model::Kind;

/// Reads a resource type the way kubectl does, or says which ones exist.
pub fn parse_kind(text: &str) -> Result<Kind> {
    Kind::from_cli(text).with_context(|| {
        format!("unknown resource type {text:?}: use flows (fl), flownodes (fn) or modules (wmod)")
    })
}

/// Fails after reporting every name that could not be handled, so one missing name does not
/// hide the others.
pub fn all_or_error(failures: Vec<anyhow::Error>) -> Result<()> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.into_iter().next().unwrap_or_else(|| unreachable!())),
        n => {
            let lines: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
            anyhow::bail!("{n} failures:\n  {}", lines.join("\n  "))
        }
    }
}
