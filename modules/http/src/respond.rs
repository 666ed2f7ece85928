//! `respond`: the end of a webhook's flow, answering with the status, headers and body the
//! message (or the settings) give; the webhook turns that answer into its HTTP response.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::{Component, Context, Description, JsonSchema, NodeError, Port, Value, read_message};

/// Settings of a respond node: what the message does not say.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RespondSettings {
    /// The status, unless the message gives one.
    pub status: u16,
    /// Headers, to which the message's add (and win).
    pub headers: BTreeMap<String, String>,
}

impl Default for RespondSettings {
    fn default() -> Self {
        Self { status: 200, headers: BTreeMap::new() }
    }
}

/// What the `in` input takes, and what the node answers.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Reply {
    /// The status, such as `201`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers by name.
    pub headers: BTreeMap<String, String>,
    /// The body: a string is sent as text, anything else as JSON, null as nothing.
    pub body: Value,
}

/// A node of the respond component.
#[derive(Debug)]
pub struct Respond {
    settings: RespondSettings,
}

impl Component for Respond {
    const NAME: &'static str = "respond";
    type Settings = RespondSettings;

    fn describe() -> Description {
        Description {
            label: "Respond",
            description: "Answers a webhook's request: status, headers and body.",
            tags: &["http", "webhook", "response", "reply"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &RespondSettings) -> Vec<Port> {
        vec![Port::input::<Reply>("in")]
    }

    fn build(settings: RespondSettings) -> Result<Self, NodeError> {
        if !(200..=999).contains(&settings.status) {
            return Err(NodeError::invalid(format!(
                "settings.status: {} is not between 200 and 999",
                settings.status
            )));
        }
        Ok(Self { settings })
    }

    async fn handle(&self, _: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let reply: Reply = read_message(port, message)?;
        let mut headers = self.settings.headers.clone();
        headers.extend(reply.headers);
        let status = reply.status.unwrap_or(self.settings.status);
        Ok(serde_json::json!({ "status": status, "headers": headers, "body": reply.body }))
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{json, testing::Harness};

    use super::*;

    #[tokio::test]
    async fn answers_with_the_message_over_the_settings() {
        let node = Harness::build::<Respond>(&json!({ "headers": { "x-team": "a", "x-id": "0" } }))
            .unwrap();
        let answer = node
            .send("in", json!({ "headers": { "x-id": "7" }, "body": { "ok": true } }))
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({ "status": 200, "headers": { "x-id": "7", "x-team": "a" }, "body": { "ok": true } })
        );
        let answer = node.send("in", json!({ "status": 201 })).await.unwrap();
        assert_eq!(answer["status"], 201);
        assert!(node.emitted().is_empty());
        let err = Harness::build::<Respond>(&json!({ "status": 99 })).unwrap_err();
        assert_eq!(err.message(), "settings.status: 99 is not between 200 and 999");
    }
}
