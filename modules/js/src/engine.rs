//! The seam between the js module and the JavaScript engine that runs scripts. QuickJS (through
//! rquickjs) is the engine today; another one plugs in by implementing these two traits.

use std::time::Duration;

use serde_json::Value;

/// What a script may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest one message may run, its promises included.
    pub time: Duration,
    /// The most memory the script's heap may hold.
    pub memory_bytes: usize,
    /// The largest output, as JSON.
    pub output_bytes: usize,
}

/// A JavaScript engine.
pub trait Engine: Send + Sync {
    /// Compiles and loads `source`, an ES module whose default export is the function to call.
    fn load(&self, source: &str, limits: Limits) -> Result<Box<dyn Program>, ScriptError>;
}

/// A loaded script, ready to be called again and again, one call at a time, on whichever
/// thread calls it.
pub trait Program: Send {
    /// Calls the script's function with `input`; waits for a returned promise to settle. The
    /// call fails with [`ScriptFailure::Timeout`] after `time` (or the limit, if sooner).
    fn call(&mut self, input: &Value, time: Duration) -> Result<Output, ScriptError>;
}

/// What a call gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The function's result (`undefined` becomes null).
    pub value: Value,
    /// What the script wrote with `console.log` and friends, one entry a call.
    pub logs: Vec<String>,
}

/// Why a script failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(*line, *column))]
pub struct ScriptError {
    /// What kind of failure it was.
    pub kind: ScriptFailure,
    /// The error's name, such as `TypeError`, when the script threw an Error.
    pub name: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The script's stack trace, when there is one.
    pub stack: Option<String>,
    /// The line in the script, from 1.
    pub line: Option<u32>,
    /// The column in the line, from 1.
    pub column: Option<u32>,
    /// What the script wrote before it failed.
    pub logs: Vec<String>,
}

impl ScriptError {
    /// A failure with no more than its kind and message: no error name, stack or place.
    pub fn bare(kind: ScriptFailure, message: String) -> Self {
        Self { kind, name: None, message, stack: None, line: None, column: None, logs: Vec::new() }
    }
}

fn location(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    }
}

/// The kinds of [`ScriptError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFailure {
    /// The script does not compile or has no default export function.
    Load,
    /// The script threw, or its promise rejected.
    Threw,
    /// It ran past its time limit.
    Timeout,
    /// It needed more memory (or stack) than its limit.
    Memory,
    /// Its output is not JSON or is too large.
    Output,
}
