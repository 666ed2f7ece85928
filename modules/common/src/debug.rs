//! `debug`: a sink that shows what reaches it. It keeps the last messages in its status (for the
//! editor and `weir get fn NAME -o yaml`) and logs each one. Fields named like secrets
//! (`password`, `token`, `auth`, …) are hidden before anything is kept or logged, and large
//! messages are cut down, so memory and status stay bounded.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Port, Value, json, redact_by_name,
};

/// Settings of a debug node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DebugSettings {
    /// How many of the latest messages to keep (at most 100).
    pub keep: u32,
    /// Also log each message (at info level).
    pub log: bool,
}

impl Default for DebugSettings {
    fn default() -> Self {
        Self { keep: 20, log: true }
    }
}

/// The most messages a debug node keeps.
const MAX_KEEP: u32 = 100;
/// Messages larger than this, as JSON, are kept as their size only.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// One kept message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    /// When it arrived (RFC 3339, UTC).
    time: String,
    /// The message, secret-looking fields hidden.
    message: Value,
}

/// What a debug node keeps: shown in its status.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    /// Messages seen since the node was created.
    count: u64,
    /// The latest ones, oldest first.
    messages: VecDeque<Seen>,
}

/// A node of the debug component.
#[derive(Debug)]
pub struct Debug {
    keep: usize,
    log: bool,
    /// One message at a time updates the kept list.
    updating: tokio::sync::Mutex<()>,
}

impl Component for Debug {
    const NAME: &'static str = "debug";
    type Settings = DebugSettings;

    fn describe() -> Description {
        Description {
            label: "Debug",
            description: "Keeps the last messages that reach it, for the editor, and logs them.",
            tags: &["sink", "log", "inspect", "output"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &DebugSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }

    fn build(settings: DebugSettings) -> Result<Self, NodeError> {
        if settings.keep > MAX_KEEP {
            return Err(NodeError::invalid(format!(
                "settings.keep: {} is more than the {MAX_KEEP} messages a debug node keeps",
                settings.keep
            )));
        }
        Ok(Self {
            keep: usize::try_from(settings.keep).unwrap_or(0),
            log: settings.log,
            updating: tokio::sync::Mutex::new(()),
        })
    }

    async fn handle(&self, cx: &Context, _: &str, mut message: Value) -> Result<Value, NodeError> {
        redact_by_name(&mut message);
        let size = serde_json::to_vec(&message).map_or(0, |bytes| bytes.len());
        if size > MAX_MESSAGE_BYTES {
            message = json!({ "truncated": true, "bytes": size });
        }
        if self.log {
            tracing::info!(node = %cx.node(), message = %message, "debug");
        }
        let _one_at_a_time = self.updating.lock().await;
        let mut kept: Kept = cx.state()?;
        kept.count += 1;
        kept.messages.push_back(Seen { time: crate::now_rfc3339(), message });
        while kept.messages.len() > self.keep {
            kept.messages.pop_front();
        }
        let count = kept.count;
        cx.save_state(kept)?;
        Ok(json!({ "seen": count }))
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{REDACTED, testing::Harness};

    use super::*;

    #[tokio::test]
    async fn keeps_the_latest_messages_with_secrets_hidden() {
        let node = Harness::build::<Debug>(&json!({ "keep": 2, "log": false })).unwrap();
        for n in 1..=3 {
            let answer = node.send("in", json!({ "n": n, "password": "hunter2" })).await.unwrap();
            assert_eq!(answer, json!({ "seen": n }));
        }
        let kept = node.kept_state();
        assert_eq!(kept["count"], 3);
        let messages: Vec<Value> =
            kept["messages"].as_array().unwrap().iter().map(|m| m["message"].clone()).collect();
        assert_eq!(
            messages,
            [json!({ "n": 2, "password": REDACTED }), json!({ "n": 3, "password": REDACTED })]
        );
        assert!(!kept.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn large_messages_are_kept_as_their_size() {
        let node = Harness::build::<Debug>(&json!({ "log": false })).unwrap();
        node.send("in", json!({ "blob": "x".repeat(10_000) })).await.unwrap();
        assert_eq!(
            node.kept_state()["messages"][0]["message"],
            json!({ "truncated": true, "bytes": 10_011 })
        );
    }

    #[test]
    fn keeping_too_many_is_refused() {
        let err = Harness::build::<Debug>(&json!({ "keep": 1000 })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.keep: 1000 is more than the 100 messages a debug node keeps"
        );
    }
}
