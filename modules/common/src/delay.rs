//! `delay`: holds each message for a while, then sends it on; cancelling the run (a timeout,
//! a stopped flow) ends the wait at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Port, Value,
};

/// Settings of a delay.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DelaySettings {
    /// How long to hold each message, such as `500ms` or `2m`; at most a day.
    pub duration: HumanDuration,
}

impl Default for DelaySettings {
    fn default() -> Self {
        Self { duration: HumanDuration::from_secs(1) }
    }
}

/// The longest delay: longer waits belong to a `cron` node.
const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// A node of the delay component.
#[derive(Debug)]
pub struct Delay {
    duration: Duration,
}

impl Component for Delay {
    const NAME: &'static str = "delay";
    type Settings = DelaySettings;

    fn describe() -> Description {
        Description {
            label: "Delay",
            description: "Holds each message for a while, then sends it on.",
            tags: &["wait", "sleep", "pause"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &DelaySettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Value>("out")]
    }

    fn build(settings: DelaySettings) -> Result<Self, NodeError> {
        if settings.duration.get() > MAX_DELAY {
            return Err(NodeError::invalid(format!(
                "settings.duration: {} is longer than a day; use a cron node for long waits",
                settings.duration
            )));
        }
        Ok(Self { duration: settings.duration.get() })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        tokio::select! {
            () = tokio::time::sleep(self.duration) => cx.emit("out", message).await,
            () = cx.cancelled() => Err(NodeError::cancelled(format!(
                "the run was cancelled while {} waited", cx.node().node
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{ErrorKind, json, testing::Harness};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_message_then_sends_it_on() {
        let node = Harness::build::<Delay>(&json!({ "duration": "2s" })).unwrap();
        node.answer_with(|_, message| Ok(json!({ "late": message })));
        let started = tokio::time::Instant::now();
        let answer = node.send("in", json!(1)).await.unwrap();
        assert_eq!(answer, json!({ "late": 1 }));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_ends_the_wait() {
        let node = Harness::build::<Delay>(&json!({ "duration": "1h" })).unwrap();
        let sent = node.send("in", json!(1));
        let cancel = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            node.cancel();
        };
        let (result, ()) = tokio::join!(sent, cancel);
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
        assert!(node.emitted().is_empty());
    }

    #[test]
    fn too_long_a_delay_is_refused() {
        let err = Harness::build::<Delay>(&json!({ "duration": "2d" })).unwrap_err();
        assert_eq!(
            err.message(),
            "settings.duration: 2d is longer than a day; use a cron node for long waits"
        );
    }
}
