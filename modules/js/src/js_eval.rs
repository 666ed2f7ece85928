//! `js_eval`: runs a user's JavaScript function on each message, sandboxed. The script is an ES
//! module whose default export takes the input and returns the output, or a promise of it. The
//! examples in the settings give the ports their schemas, so the editor can check mappings.
//! Output goes to `response`; failures name the line and column, and go to `error` as data when
//! that output is on. `console.log` lines reach the node's debug stream.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, Direction, ErrorKind, HumanDuration, JsonSchema, NodeError,
    Port, Value,
};

use crate::{
    engine::{Limits, ScriptError, ScriptFailure},
    quickjs::QuickJs,
    schema::schema_of_example,
    script::Script,
};

/// Settings of a js_eval node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JsEvalSettings {
    /// The script: an ES module whose default export is a function of the input returning the
    /// output (or a promise of it), such as `export default (input) => ({ n: input.n + 1 })`.
    #[schemars(extend("x-weir-code" = "javascript"))]
    pub script: String,
    /// An example input; its shape becomes the `in` port's schema (any message when null).
    pub example_input: Value,
    /// An example output; its shape becomes the `response` port's schema (any when null).
    pub example_output: Value,
    /// The longest one message may run, its promises included, such as `500ms`; at most `1m`.
    pub timeout: HumanDuration,
    /// The most memory the script may use, in MiB (4 to 1024).
    pub memory_mib: u32,
    /// Send failures to the `error` output as data (message, stack, line, column) instead of
    /// failing the caller.
    pub error_port: bool,
}

impl Default for JsEvalSettings {
    fn default() -> Self {
        Self {
            script: "export default function (input) {\n  return input;\n}\n".to_owned(),
            example_input: Value::Null,
            example_output: Value::Null,
            timeout: HumanDuration::from_secs(1),
            memory_mib: 32,
            error_port: false,
        }
    }
}

/// What a failure goes out as on the `error` output.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ScriptFailed {
    /// What went wrong.
    pub error: FailureDetail,
    /// The message the script was given.
    pub input: Value,
}

/// The details of a script's failure.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FailureDetail {
    /// `transient` when the script ran past its time limit, else `invalid`.
    pub kind: String,
    /// The error's name, such as `TypeError`, when the script threw an Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The script's stack trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The line in the script, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The column, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// The longest timeout a node may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest output, as JSON.
const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

/// A node of the js_eval component.
#[derive(Debug)]
pub struct JsEval {
    script: Script,
}

impl Component for JsEval {
    const NAME: &'static str = "js_eval";
    type Settings = JsEvalSettings;

    fn describe() -> Description {
        Description {
            label: "JavaScript",
            description: "Runs a JavaScript function on each message, sandboxed (no file system, network or process), with time and memory limits.",
            tags: &["script", "function", "transform", "code", "javascript"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &JsEvalSettings) -> Vec<Port> {
        let mut ports = vec![
            Port::with_schema("in", Direction::In, schema_of_example(&settings.example_input)),
            Port::with_schema(
                "response",
                Direction::Out,
                schema_of_example(&settings.example_output),
            ),
        ];
        if settings.error_port {
            ports.push(Port::output::<ScriptFailed>(weir_sdk::ERROR_PORT).with_label("Error"));
        }
        ports
    }

    fn build(settings: JsEvalSettings) -> Result<Self, NodeError> {
        let time = settings.timeout.get();
        if time.is_zero() || time > MAX_TIMEOUT {
            return Err(NodeError::invalid(format!(
                "settings.timeout: {} is not between 1ms and {MAX_TIMEOUT:?}",
                settings.timeout
            )));
        }
        if !(4..=1024).contains(&settings.memory_mib) {
            return Err(NodeError::invalid(format!(
                "settings.memoryMib: {} is not between 4 and 1024",
                settings.memory_mib
            )));
        }
        let limits = Limits {
            time,
            memory_bytes: usize::try_from(settings.memory_mib).unwrap_or(32) * 1024 * 1024,
            output_bytes: MAX_OUTPUT_BYTES,
        };
        let script = Script::load(Arc::new(QuickJs), settings.script, limits)
            .map_err(|err| NodeError::invalid(format!("settings.script: {err}")))?;
        Ok(Self { script })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let called = self.script.call(message.clone()).await;
        match called {
            Ok(output) => {
                for line in &output.logs {
                    cx.log(line);
                }
                cx.emit("response", output.value).await
            }
            Err(failure) => {
                for line in &failure.logs {
                    cx.log(line);
                }
                let kind = match failure.kind {
                    // A time limit hit on a busy machine may pass on a retry; memory, stack,
                    // throws and bad output fail the same way again.
                    ScriptFailure::Timeout => ErrorKind::Transient,
                    ScriptFailure::Load
                    | ScriptFailure::Threw
                    | ScriptFailure::Memory
                    | ScriptFailure::Output => ErrorKind::Invalid,
                };
                self.failed(cx, kind, failure, message).await
            }
        }
    }
}

impl JsEval {
    async fn failed(
        &self,
        cx: &Context,
        kind: ErrorKind,
        failure: ScriptError,
        input: Value,
    ) -> Result<Value, NodeError> {
        let error = NodeError::new(kind, format!("{} script: {failure}", cx.node().node));
        if !cx.has_output(weir_sdk::ERROR_PORT) {
            return Err(error);
        }
        let detail = FailureDetail {
            kind: kind.as_str().to_owned(),
            name: failure.name,
            message: failure.message,
            stack: failure.stack,
            line: failure.line,
            column: failure.column,
        };
        cx.emit(weir_sdk::ERROR_PORT, ScriptFailed { error: detail, input }).await
    }
}
