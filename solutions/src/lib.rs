//! Solutions: ready-made flows, one folder each under `solutions/`. A folder holds manifests
//! that `kubectl apply -f` takes as they are (their values are the defaults), a README, and
//! `solution.toml`, which lists the settings an install may change, with a description, a type
//! and a default, and the places in the manifests each one goes. (TOML, because `kubectl apply
//! -f FOLDER` reads every `.yaml`, `.yml` and `.json` file there as a manifest.) [`Solution::load`] reads a
//! folder; [`Solution::render`] gives its manifests with settings applied, as
//! `weir solution install NAME --set key=value` does. The format is described in
//! `solutions/README.md`.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::Value;
use weir_model::{HumanDuration, manifest};

/// The file in a solution folder that describes it.
pub const SOLUTION_FILE: &str = "solution.toml";

/// A solution that cannot be read, or settings that do not fit it.
#[derive(Debug, thiserror::Error)]
pub enum SolutionError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not say what it should.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the place.
        message: String,
    },
    /// A `--set` names no setting of the solution.
    #[error("solution {solution} has no setting {name} (settings: {known})")]
    UnknownSetting {
        /// The solution.
        solution: String,
        /// The name given.
        name: String,
        /// The settings there are.
        known: String,
    },
    /// A `--set` value does not fit the setting's type.
    #[error("setting {name}: {why}")]
    BadValue {
        /// The setting.
        name: String,
        /// What is wrong with the value.
        why: String,
    },
    /// A required setting was not given.
    #[error("setting {name} is required: {description}")]
    Missing {
        /// The setting.
        name: String,
        /// What it is for.
        description: String,
    },
}

/// One solution folder.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The folder.
    pub dir: PathBuf,
    /// What `solution.toml` says.
    pub spec: SolutionSpec,
}

/// What `solution.toml` holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SolutionSpec {
    /// The name to install it by, the folder's name.
    pub name: String,
    /// A title for lists and the editor's gallery.
    pub title: String,
    /// What it does, in a few sentences.
    pub description: String,
    /// The manifest files, relative to the folder, in the order they apply.
    pub manifests: Vec<PathBuf>,
    /// What an install may change.
    #[serde(default)]
    pub settings: Vec<Setting>,
}

/// One setting of a solution.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Setting {
    /// Its name, as `--set NAME=value` gives it.
    pub name: String,
    /// What it means, for `weir solution list` and the gallery's form.
    pub description: String,
    /// How a value given as text is read.
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// The value the manifests hold.
    pub default: Value,
    /// Whether an install must give it (the default is only a placeholder).
    #[serde(default)]
    pub required: bool,
    /// The values it may take, for a string that is one of a few.
    #[serde(default, rename = "enum")]
    pub values: Vec<String>,
    /// The least value an integer may take.
    #[serde(default)]
    pub minimum: Option<i64>,
    /// The greatest value an integer may take.
    #[serde(default)]
    pub maximum: Option<i64>,
    /// Where it goes in the manifests.
    pub targets: Vec<Target>,
}

/// How a setting's value is read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SettingType {
    /// Taken as it is.
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A duration such as `30s` or `10m`.
    Duration,
    /// Strings separated by commas (`a,b`); nothing for an empty list.
    List,
}

/// A place a setting goes: a JSON pointer into one resource of the manifests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The resource's kind, such as `FlowNode`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A JSON pointer into it, such as `/spec/settings/interval`.
    pub pointer: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at {}", self.kind, self.name, self.pointer)
    }
}

impl Solution {
    /// Reads the solution in `dir` and checks it: every setting's targets exist in the
    /// manifests and hold its default there.
    pub fn load(dir: &Path) -> Result<Self, SolutionError> {
        let path = dir.join(SOLUTION_FILE);
        let text = read(&path)?;
        let spec: SolutionSpec = toml::from_str(&text).map_err(|err| {
            // The message names the line; the source line it quotes is left out.
            let line = err.span().map(|span| 1 + text[..span.start].matches('\n').count());
            let at = line.map(|line| format!("line {line}: ")).unwrap_or_default();
            SolutionError::Invalid { path: path.clone(), message: format!("{at}{}", err.message()) }
        })?;
        let solution = Self { dir: dir.to_owned(), spec };
        solution.check()?;
        Ok(solution)
    }

    /// Every solution under `root`: its folders that have a `solution.toml`, by name.
    pub fn all(root: &Path) -> Result<Vec<Self>, SolutionError> {
        let entries = std::fs::read_dir(root)
            .map_err(|source| SolutionError::Read { path: root.to_owned(), source })?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join(SOLUTION_FILE).is_file())
            .collect();
        dirs.sort();
        dirs.iter().map(|dir| Self::load(dir)).collect()
    }

    /// The manifests' documents as the files hold them.
    pub fn documents(&self) -> Result<Vec<Value>, SolutionError> {
        let mut documents = Vec::new();
        for file in &self.spec.manifests {
            let path = self.dir.join(file);
            let parsed = manifest::parse_documents(&read(&path)?).map_err(|err| {
                SolutionError::Invalid { path: path.clone(), message: err.to_string() }
            })?;
            documents.extend(parsed.into_iter().map(|d| d.value));
        }
        Ok(documents)
    }

    /// The manifests with `sets` (`(name, value as text)`, as `--set name=value` gives them)
    /// applied; every other setting keeps its default. A required setting must be given.
    pub fn render(&self, sets: &[(String, String)]) -> Result<Vec<Value>, SolutionError> {
        let mut given = BTreeMap::new();
        for (name, text) in sets {
            let setting = self.setting(name)?;
            given.insert(name.as_str(), setting.read(text)?);
        }
        let mut documents = self.documents()?;
        for setting in &self.spec.settings {
            let Some(value) = given.remove(setting.name.as_str()) else {
                if setting.required {
                    return Err(SolutionError::Missing {
                        name: setting.name.clone(),
                        description: setting.description.clone(),
                    });
                }
                continue;
            };
            for target in &setting.targets {
                let place = find(&mut documents, target)
                    .ok_or_else(|| self.missing_target(setting, target))?;
                *place = value.clone();
            }
        }
        Ok(documents)
    }

    /// The setting called `name`.
    pub fn setting(&self, name: &str) -> Result<&Setting, SolutionError> {
        self.spec.settings.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.spec.settings.iter().map(|s| s.name.as_str()).collect();
            SolutionError::UnknownSetting {
                solution: self.spec.name.clone(),
                name: name.to_owned(),
                known: known.join(", "),
            }
        })
    }

    fn check(&self) -> Result<(), SolutionError> {
        let invalid = |message: String| SolutionError::Invalid {
            path: self.dir.join(SOLUTION_FILE),
            message,
        };
        let folder = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if self.spec.name != folder {
            return Err(invalid(format!(
                "name {} is not the folder's name, {folder}",
                self.spec.name
            )));
        }
        let mut documents = self.documents()?;
        for setting in &self.spec.settings {
            setting.check_bounds().map_err(invalid)?;
            if setting.targets.is_empty() {
                return Err(invalid(format!(
                    "setting {} goes nowhere: give it targets",
                    setting.name
                )));
            }
            for target in &setting.targets {
                let place = find(&mut documents, target)
                    .ok_or_else(|| self.missing_target(setting, target))?;
                if *place != setting.default {
                    return Err(invalid(format!(
                        "setting {}: {target} holds {place}, not the default {}",
                        setting.name, setting.default
                    )));
                }
            }
        }
        Ok(())
    }

    fn missing_target(&self, setting: &Setting, target: &Target) -> SolutionError {
        SolutionError::Invalid {
            path: self.dir.join(SOLUTION_FILE),
            message: format!("setting {}: the manifests have no {target}", setting.name),
        }
    }
}

impl Setting {
    /// The value `text` gives this setting.
    pub fn read(&self, text: &str) -> Result<Value, SolutionError> {
        let bad = |why: String| SolutionError::BadValue { name: self.name.clone(), why };
        let value = match self.kind {
            SettingType::String => Value::String(text.to_owned()),
            SettingType::Boolean => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad(format!("{text:?} is not true or false"))),
            },
            SettingType::Integer => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(format!("{text:?} is not a whole number")))?,
            SettingType::Duration => {
                text.parse::<HumanDuration>().map_err(|err| bad(err.to_string()))?;
                Value::String(text.to_owned())
            }
            SettingType::List => Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            ),
        };
        if !self.values.is_empty() && !self.values.iter().any(|v| *v == text) {
            return Err(bad(format!("{text:?} is not one of {}", self.values.join(", "))));
        }
        if let Some(number) = value.as_i64() {
            self.within_bounds(number).map_err(bad)?;
        }
        Ok(value)
    }

    /// Whether `number` lies within the setting's `minimum` and `maximum`; if not, why.
    fn within_bounds(&self, number: i64) -> Result<(), String> {
        if let Some(min) = self.minimum
            && number < min
        {
            return Err(format!("{number} is below the minimum, {min}"));
        }
        if let Some(max) = self.maximum
            && number > max
        {
            return Err(format!("{number} is above the maximum, {max}"));
        }
        Ok(())
    }

    /// The bounds fit the setting: only an integer has them, the least is not above the
    /// greatest, and the default lies within them.
    fn check_bounds(&self) -> Result<(), String> {
        if self.minimum.is_none() && self.maximum.is_none() {
            return Ok(());
        }
        let name = &self.name;
        if self.kind != SettingType::Integer {
            return Err(format!(
                "setting {name}: only an integer setting has a minimum or maximum"
            ));
        }
        if let (Some(min), Some(max)) = (self.minimum, self.maximum)
            && min > max
        {
            return Err(format!("setting {name}: minimum {min} is more than maximum {max}"));
        }
        match self.default.as_i64() {
            Some(default) => self
                .within_bounds(default)
                .map_err(|why| format!("setting {name}: the default {why}")),
            None => {
                Err(format!("setting {name}: the default {} is not a whole number", self.default))
            }
        }
    }
}

/// Reads `name=value` as `--set` gives it.
pub fn parse_set(text: &str) -> Result<(String, String), SolutionError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(SolutionError::BadValue {
            name: text.to_owned(),
            why: "write --set NAME=VALUE".to_owned(),
        }),
    }
}

/// The place `target` names in `documents`.
fn find<'a>(documents: &'a mut [Value], target: &Target) -> Option<&'a mut Value> {
    documents
        .iter_mut()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(target.kind.as_str())
                && d.pointer("/metadata/name").and_then(Value::as_str) == Some(target.name.as_str())
        })?
        .pointer_mut(&target.pointer)
}

fn read(path: &Path) -> Result<String, SolutionError> {
    std::fs::read_to_string(path)
        .map_err(|source| SolutionError::Read { path: path.to_owned(), source })
}
