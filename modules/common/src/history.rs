//! `history`: keeps the latest items of each series (a probe's results per endpoint, a
//! metric per host) in the node's kept state, so they outlive restarts, and gives them back.
//! `record` adds items and answers with the histories; `read` sends the histories on `out`,
//! for a page or a report to be made of them. Both are bounded: so many items per series,
//! so many bytes in all, the oldest going first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Port, Value, json_size, read_message,
    state::MAX_STATE_BYTES,
};

/// Settings of a history.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HistorySettings {
    /// How many of the latest items each series keeps (1 to 1000).
    pub keep: usize,
    /// The most all series may take as JSON, in bytes (at most 256 KiB, what a node may keep);
    /// beyond it the oldest items of the longest series go first.
    pub max_bytes: usize,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self { keep: 50, max_bytes: 64 * 1024 }
    }
}

/// What the `record` input takes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The items to add, each to its series, in order.
    pub entries: Vec<Entry>,
}

/// One item of one series.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The series it belongs to, such as an endpoint's name.
    pub series: String,
    /// The item.
    pub item: Value,
}

/// What `record` answers and `read` sends on: the items of each series, oldest first.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Histories {
    /// The items by series name, oldest first.
    pub series: BTreeMap<String, Vec<Value>>,
}

/// The most items a series may keep.
const MAX_KEEP: usize = 1000;

/// A node of the history component.
#[derive(Debug)]
pub struct History {
    keep: usize,
    max_bytes: usize,
    /// Serializes records, so two runs recording at once never lose each other's items.
    recording: tokio::sync::Mutex<()>,
}

impl Component for History {
    const NAME: &'static str = "history";
    type Settings = HistorySettings;

    fn describe() -> Description {
        Description {
            label: "History",
            description: "Keeps the latest items of each series across restarts and gives them back.",
            tags: &["state", "store", "history", "context"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &HistorySettings) -> Vec<Port> {
        vec![
            Port::input::<Record>("record").with_label("Record"),
            Port::input::<Value>("read").with_label("Read"),
            Port::output::<Histories>("out"),
        ]
    }

    fn build(settings: HistorySettings) -> Result<Self, NodeError> {
        if !(1..=MAX_KEEP).contains(&settings.keep) {
            return Err(NodeError::invalid(format!(
                "settings.keep: {} is not between 1 and {MAX_KEEP}",
                settings.keep
            )));
        }
        if !(1024..=MAX_STATE_BYTES).contains(&settings.max_bytes) {
            return Err(NodeError::invalid(format!(
                "settings.maxBytes: {} is not between 1024 and {MAX_STATE_BYTES}",
                settings.max_bytes
            )));
        }
        Ok(Self {
            keep: settings.keep,
            max_bytes: settings.max_bytes,
            recording: tokio::sync::Mutex::new(()),
        })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        if port == "read" {
            let kept: Histories = cx.state()?;
            return cx.emit("out", kept).await;
        }
        let Record { entries } = read_message(port, message)?;
        let _one_at_a_time = self.recording.lock().await;
        let mut kept: Histories = cx.state()?;
        for (index, Entry { series, item }) in entries.into_iter().enumerate() {
            let size = json_size(&item);
            if size > self.max_bytes / 2 {
                return Err(NodeError::invalid(format!(
                    "{port}.entries[{index}].item: {size} bytes is over half of settings.maxBytes ({})",
                    self.max_bytes
                )));
            }
            let items = kept.series.entry(series).or_default();
            items.push(item);
            if items.len() > self.keep {
                items.drain(..items.len() - self.keep);
            }
        }
        self.trim(&mut kept);
        cx.save_state(&kept)?;
        serde_json::to_value(&kept)
            .map_err(|err| NodeError::internal(format!("cannot encode the histories: {err}")))
    }
}

impl History {
    /// Drops the oldest items of the longest series until everything fits `max_bytes`.
    fn trim(&self, kept: &mut Histories) {
        let mut size = json_size(&serde_json::to_value(&*kept).unwrap_or_default());
        while size > self.max_bytes {
            let Some(longest) = kept.series.values_mut().max_by_key(|items| items.len()) else {
                return;
            };
            if longest.is_empty() {
                return;
            }
            let dropped = longest.remove(0);
            // The item and the comma before the next one.
            size = size.saturating_sub(json_size(&dropped) + 1);
        }
        kept.series.retain(|_, items| !items.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{ErrorKind, json, testing::Harness};

    use super::*;

    fn entries(pairs: &[(&str, Value)]) -> Value {
        let entries: Vec<Value> =
            pairs.iter().map(|(series, item)| json!({ "series": series, "item": item })).collect();
        json!({ "entries": entries })
    }

    #[tokio::test]
    async fn keeps_the_latest_items_of_each_series_and_sends_them_on_read() {
        let node = Harness::build::<History>(&json!({ "keep": 2 })).unwrap();
        node.send("record", entries(&[("api", json!(1)), ("web", json!("a"))])).await.unwrap();
        let answer =
            node.send("record", entries(&[("api", json!(2)), ("api", json!(3))])).await.unwrap();
        let expected = json!({ "series": { "api": [2, 3], "web": ["a"] } });
        assert_eq!(answer, expected);
        assert_eq!(node.kept_state(), expected, "kept across restarts");
        assert!(node.emitted().is_empty(), "record sends nothing on");
        node.answer_with(|_, histories| Ok(histories.clone()));
        assert_eq!(node.send("read", json!({})).await.unwrap(), expected);
        assert_eq!(node.emitted()[0].port, "out");
    }

    #[tokio::test]
    async fn a_built_again_node_goes_on_from_what_it_kept() {
        let node = Harness::build::<History>(&json!({})).unwrap();
        node.keep_state(json!({ "series": { "api": [1] } })).unwrap();
        let answer = node.send("record", entries(&[("api", json!(2))])).await.unwrap();
        assert_eq!(answer, json!({ "series": { "api": [1, 2] } }));
    }

    #[tokio::test]
    async fn the_oldest_items_of_the_longest_series_go_when_the_bytes_run_out() {
        let node = Harness::build::<History>(&json!({ "maxBytes": 1024 })).unwrap();
        let text = "x".repeat(100);
        for n in 0..12 {
            node.send("record", entries(&[("long", json!([n, text]))])).await.unwrap();
        }
        let answer =
            node.send("record", entries(&[("short", json!("s")), ("long", json!([12, text]))]));
        let answer = answer.await.unwrap();
        assert!(json_size(&answer) <= 1024, "{answer}");
        let long = answer["series"]["long"].as_array().unwrap();
        assert_eq!(long.last().unwrap()[0], 12, "the newest stays");
        assert!(long[0][0].as_u64().unwrap() > 0, "the oldest went");
        assert_eq!(answer["series"]["short"], json!(["s"]));
    }

    #[tokio::test]
    async fn bad_settings_and_items_too_large_are_refused_naming_them() {
        let err = Harness::build::<History>(&json!({ "keep": 0 })).unwrap_err();
        assert_eq!(err.message(), "settings.keep: 0 is not between 1 and 1000");
        let err = Harness::build::<History>(&json!({ "maxBytes": 1_000_000 })).unwrap_err();
        assert_eq!(err.message(), "settings.maxBytes: 1000000 is not between 1024 and 262144");
        let node = Harness::build::<History>(&json!({ "maxBytes": 1024 })).unwrap();
        let err = node
            .send("record", entries(&[("a", json!(1)), ("b", json!("y".repeat(600)))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(
            err.message(),
            "record.entries[1].item: 602 bytes is over half of settings.maxBytes (1024)"
        );
        assert_eq!(node.kept_state(), Value::Null, "nothing was kept");
    }
}
