//! Reading manifests from files, directories and standard input, and checking them, with every
//! error naming the file, the document and the field.

use std::{
    fmt, fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use weir_model::{
    Resource,
    manifest::{self, Position},
};

use crate::cli::Sources;

/// One document read from a source.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from, or `-` for standard input.
    pub source: String,
    /// Where it stands in that file.
    pub position: Position,
    /// The document.
    pub value: Value,
}

impl Manifest {
    /// `Kind name` when the document says so, for messages.
    fn label(&self) -> Option<String> {
        let kind = self.value.get("kind")?.as_str()?;
        let name =
            self.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<no name>");
        Some(format!("{kind} {name}"))
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.position)?;
        if let Some(label) = self.label() {
            write!(f, " ({label})")?;
        }
        Ok(())
    }
}

/// A document that breaks a rule.
#[derive(Debug, thiserror::Error)]
#[error("{manifest}: {error}")]
pub struct Invalid {
    /// The document.
    pub manifest: Manifest,
    /// The field and the rule.
    pub error: weir_model::FieldError,
}

/// Reads every document of every source, in the order given (files of a directory sorted by
/// name). A file that cannot be read or parsed fails the whole read, so nothing half-read is
/// ever applied.
pub fn read(sources: &Sources) -> Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for source in &sources.files {
        if source == Path::new("-") {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            manifests.extend(parse("-", &text)?);
        } else if source.is_dir() {
            let files = manifest_files(source, sources.recursive)?;
            if files.is_empty() {
                bail!("{} holds no *.yaml, *.yml or *.json files", source.display());
            }
            for file in files {
                manifests.extend(parse_file(&file)?);
            }
        } else {
            manifests.extend(parse_file(source)?);
        }
    }
    if manifests.is_empty() {
        bail!("no manifests found in {}", show_sources(sources));
    }
    Ok(manifests)
}

/// Checks each document; returns the valid resources, or every invalid document.
pub fn check(manifests: Vec<Manifest>) -> Result<Vec<(Manifest, Resource)>, Vec<Invalid>> {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for manifest in manifests {
        match manifest::check(&manifest.value) {
            Ok(resource) => valid.push((manifest, resource)),
            Err(error) => invalid.push(Invalid { manifest, error }),
        }
    }
    if invalid.is_empty() { Ok(valid) } else { Err(invalid) }
}

fn parse_file(path: &Path) -> Result<Vec<Manifest>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Reads every document of one text, naming `source` in errors (a [`manifest::SyntaxError`]
/// underneath says which document is not YAML).
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>> {
    let documents =
        manifest::parse_documents(text).with_context(|| format!("{source} is not valid YAML"))?;
    Ok(documents
        .into_iter()
        .map(|d| Manifest { source: source.to_owned(), position: d.position, value: d.value })
        .collect())
}

fn manifest_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries =
        fs::read_dir(dir).with_context(|| format!("cannot read directory {}", dir.display()))?;
    for entry in entries {
        let path =
            entry.with_context(|| format!("cannot read directory {}", dir.display()))?.path();
        if path.is_dir() {
            if recursive {
                files.extend(manifest_files(&path, true)?);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn show_sources(sources: &Sources) -> String {
    sources.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
