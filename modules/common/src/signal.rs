//! `signal`: a manual trigger. A message sent to it from the editor or `weir send` starts a new
//! run with that message as the run's context (`$trigger`); an empty message starts it with the
//! node's default payload instead.

use serde::{Deserialize, Serialize};
use weir_sdk::{Component, Context, Description, JsonSchema, NodeError, Port, Value, json};

/// Settings of a signal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SignalSettings {
    /// What a run starts with when the message sent is empty (null or `{}`).
    pub payload: Value,
}

impl Default for SignalSettings {
    fn default() -> Self {
        Self { payload: json!({}) }
    }
}

/// A node of the signal component.
#[derive(Debug)]
pub struct Signal {
    payload: Value,
}

impl Component for Signal {
    const NAME: &'static str = "signal";
    type Settings = SignalSettings;

    fn describe() -> Description {
        Description {
            label: "Signal",
            description: "Starts a run with the message sent to it, from the editor or `weir send`.",
            tags: &["trigger", "manual", "inject", "test"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &SignalSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Value>("out")]
    }

    fn build(settings: SignalSettings) -> Result<Self, NodeError> {
        Ok(Self { payload: settings.payload })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let empty = message.is_null() || message.as_object().is_some_and(serde_json::Map::is_empty);
        let message = if empty { self.payload.clone() } else { message };
        cx.start_run(message.clone()).emit("out", message).await
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::testing::Harness;

    use super::*;

    #[tokio::test]
    async fn starts_a_run_with_the_message_or_the_payload() {
        let node = Harness::build::<Signal>(&json!({ "payload": { "namespace": "web" } })).unwrap();
        node.answer_with(|_, message| Ok(json!({ "handled": message })));
        let answer = node.send("in", json!({ "namespace": "shop" })).await.unwrap();
        assert_eq!(answer, json!({ "handled": { "namespace": "shop" } }));
        node.send("in", json!({})).await.unwrap();
        node.send("in", Value::Null).await.unwrap();
        let sent: Vec<Value> = node.emitted().into_iter().map(|e| e.message).collect();
        assert_eq!(
            sent,
            [
                json!({ "namespace": "shop" }),
                json!({ "namespace": "web" }),
                json!({ "namespace": "web" })
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_run_fails_the_send_with_its_kind() {
        let node = Harness::build::<Signal>(&json!({})).unwrap();
        node.answer_with(|_, _| Err(NodeError::transient("registry answered 503")));
        let err = node.send("in", json!({ "go": true })).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (weir_sdk::ErrorKind::Transient, "registry answered 503")
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = Harness::build::<Signal>(&json!({ "context": {} })).unwrap_err();
        assert_eq!(err.message(), "settings.context: unknown field `context`, expected `payload`");
    }
}
