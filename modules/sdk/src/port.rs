//! Ports: a node's named inputs and outputs, each with the JSON Schema of its messages. A
//! component computes its ports from its settings, so a router can have one output per route.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_model::{Direction, PortDescriptor, names::PortName};

use crate::error::NodeError;

/// The conventional name of the output that failures go to when it is wired.
pub const ERROR_PORT: &str = "error";

/// One input or output of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    name: String,
    direction: Direction,
    label: String,
    schema: Value,
}

impl Port {
    /// An input whose messages have the shape of `T`.
    pub fn input<T: JsonSchema>(name: &str) -> Self {
        Self::new(name, Direction::In, schema_of::<T>())
    }

    /// An output whose messages have the shape of `T`.
    pub fn output<T: JsonSchema>(name: &str) -> Self {
        Self::new(name, Direction::Out, schema_of::<T>())
    }

    /// The `error` output: a failure as data, with the message that caused it.
    pub fn error() -> Self {
        Self::output::<Failure>(ERROR_PORT).with_label("Error")
    }

    /// `ports`, with the `error` output ([`Port::error`]) after them when the node's settings
    /// turn it on.
    pub fn with_error(mut ports: Vec<Port>, error_port: bool) -> Vec<Port> {
        if error_port {
            ports.push(Self::error());
        }
        ports
    }

    /// A port whose schema is only known at run time (from settings).
    pub fn with_schema(name: &str, direction: Direction, schema: Value) -> Self {
        Self::new(name, direction, schema)
    }

    fn new(name: &str, direction: Direction, schema: Value) -> Self {
        Self { name: name.to_owned(), direction, label: String::new(), schema }
    }

    /// A label for the editor (the name is shown otherwise).
    #[must_use]
    pub fn with_label(mut self, label: &str) -> Self {
        label.clone_into(&mut self.label);
        self
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether messages come in or go out.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The JSON Schema of the port's messages.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The port as the catalogue lists it; fails when the name breaks the naming rule.
    pub fn descriptor(&self) -> Result<PortDescriptor, NodeError> {
        let name = PortName::new(self.name.as_str())
            .map_err(|err| NodeError::internal(err.to_string()))?;
        Ok(PortDescriptor {
            name,
            direction: self.direction,
            label: self.label.clone(),
            schema: Some(self.schema.clone()),
        })
    }
}

/// What the `error` port carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The failure.
    pub error: FailureDetail,
    /// The message the node was handling when it failed.
    pub input: Value,
}

/// A failure as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDetail {
    /// `invalid`, `transient`, `cancelled` or `internal`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// The failure of handling `input`.
    pub fn new(error: &NodeError, input: Value) -> Self {
        let detail = FailureDetail {
            kind: error.kind().as_str().to_owned(),
            message: error.message().to_owned(),
        };
        Self { error: detail, input }
    }
}

/// Reads a message that arrived at `port` as `T`. The runtime has already checked it against
/// the port's schema, so this fails only where serde is stricter than the schema; the error is
/// invalid and names the port and field, never the value (which may be a secret).
pub fn read_message<T: serde::de::DeserializeOwned>(
    port: &str,
    message: Value,
) -> Result<T, NodeError> {
    serde_path_to_error::deserialize(message).map_err(|err| {
        let path = err.path().to_string();
        let field = match path.as_str() {
            "." => String::new(),
            index if index.starts_with('[') => path,
            _ => format!(".{path}"),
        };
        let problem = err.into_inner().to_string();
        // serde quotes the value it could not read: keep only what follows it.
        let problem = problem
            .split_once(", expected ")
            .map_or(problem.clone(), |(_, expected)| format!("expected {expected}"));
        NodeError::invalid(format!("{port}{field}: {problem}"))
    })
}

/// The JSON Schema of `T`, as a JSON value.
pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        user: String,
        pin: u32,
    }

    #[test]
    fn a_message_that_does_not_read_names_port_and_field_but_not_the_value() {
        let err = read_message::<Login>("in", json!({ "user": "ada", "pin": "hunter2" }))
            .expect_err("a string is no pin");
        assert_eq!(err.message(), "in.pin: expected u32");
        let err = read_message::<Login>("in", json!({ "pin": 1 })).expect_err("no user");
        assert_eq!(err.message(), "in: missing field `user`");
        assert!(read_message::<Login>("in", json!({ "user": "ada", "pin": 1 })).is_ok());
    }
}
