//! `array_split`: sends each item of an array on its way, one at a time or a bounded number at
//! once, and answers its caller with a summary of how each item went, so one bad item never
//! silently stops the rest. Failed items can also go out on `error` as they fail, and each item
//! can be the `$trigger` of what follows it, so nodes further down can map from the item even
//! past a step that does not pass it on.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, ERROR_PORT, Failure, JsonSchema, NodeError, Port, Value,
    read_message,
};

/// Settings of an array split.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ArraySplitSettings {
    /// How many items are on their way at once (1: one after another, in order).
    pub concurrency: u32,
    /// `continue` with the other items when one fails, or `stop` sending new items after the
    /// first failure (items already on their way finish).
    pub on_error: OnError,
    /// Make each item, as it goes out (`{item, index, total}`), the `$trigger` of what follows
    /// it, so a mapping past a step that does not pass the item on (a secret read, say) can
    /// still read it as `$trigger.item`.
    pub item_as_trigger: bool,
    /// Also send each item that failed to the `error` output, as it fails, with why.
    pub error_port: bool,
}

impl Default for ArraySplitSettings {
    fn default() -> Self {
        Self {
            concurrency: 1,
            on_error: OnError::Continue,
            item_as_trigger: false,
            error_port: false,
        }
    }
}

/// What a failed item does to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Send the rest anyway.
    Continue,
    /// Send no more.
    Stop,
}

/// What the input takes.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Items {
    /// The items to send one by one.
    pub items: Vec<Value>,
}

/// What each item goes out as.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    /// The item.
    pub item: Value,
    /// Its place in the array, from 0.
    pub index: usize,
    /// How many items the array has.
    pub total: usize,
}

/// What the caller gets back.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// How many items there were.
    pub total: usize,
    /// How many went through.
    pub succeeded: usize,
    /// The items that failed, with why.
    pub failed: Vec<ItemFailure>,
    /// How many were never sent, after a failure with `onError: stop`.
    pub skipped: usize,
    /// What downstream answered for each item, by index (null for items that failed or were
    /// skipped).
    pub answers: Vec<Value>,
}

/// One failed item.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ItemFailure {
    /// The item's index.
    pub index: usize,
    /// `invalid`, `transient`, `cancelled` or `internal`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

/// The most items on their way at once.
const MAX_CONCURRENCY: u32 = 256;

/// A node of the array split component.
#[derive(Debug)]
pub struct ArraySplit {
    concurrency: usize,
    on_error: OnError,
    item_as_trigger: bool,
}

impl Component for ArraySplit {
    const NAME: &'static str = "array_split";
    type Settings = ArraySplitSettings;

    fn describe() -> Description {
        Description {
            label: "Array split",
            description: "Sends each item of an array on its way and answers with a summary.",
            tags: &["split", "foreach", "loop", "batch"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &ArraySplitSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Items>("in"), Port::output::<Item>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ArraySplitSettings) -> Result<Self, NodeError> {
        if !(1..=MAX_CONCURRENCY).contains(&settings.concurrency) {
            return Err(NodeError::invalid(format!(
                "settings.concurrency: {} is not between 1 and {MAX_CONCURRENCY}",
                settings.concurrency
            )));
        }
        let concurrency = usize::try_from(settings.concurrency).unwrap_or(1);
        Ok(Self {
            concurrency,
            on_error: settings.on_error,
            item_as_trigger: settings.item_as_trigger,
        })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let Items { items } = read_message(port, message)?;
        let total = items.len();
        let mut summary =
            Summary { total, answers: vec![Value::Null; total], ..Summary::default() };
        // Set by the first failure with `onError: stop`; no item is sent after it.
        let stop = AtomicBool::new(false);
        let sends = stream::iter(items.into_iter().enumerate())
            .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
            .map(|(index, item)| {
                let stop = &stop;
                async move {
                    let result = self.send(cx, Item { item, index, total }).await;
                    if result.is_err() && self.on_error == OnError::Stop {
                        stop.store(true, Ordering::Relaxed);
                    }
                    (index, result)
                }
            })
            .buffer_unordered(self.concurrency);
        let results: Vec<(usize, Result<Value, NodeError>)> = sends.collect().await;
        let sent = results.len();
        for (index, result) in results {
            match result {
                Ok(answer) => {
                    summary.succeeded += 1;
                    summary.answers[index] = answer;
                }
                Err(err) => summary.failed.push(ItemFailure {
                    index,
                    kind: err.kind().as_str().to_owned(),
                    message: err.message().to_owned(),
                }),
            }
        }
        summary.failed.sort_by_key(|f| f.index);
        summary.skipped = total - sent;
        if cx.is_cancelled() {
            return Err(NodeError::cancelled(format!(
                "the run was cancelled after {sent} of {total} items"
            )));
        }
        serde_json::to_value(summary)
            .map_err(|err| NodeError::internal(format!("cannot encode the summary: {err}")))
    }
}

impl ArraySplit {
    /// Sends one item on its way (in a scope of its own when each item is the trigger) and,
    /// when it fails and the `error` output is on, sends the failure there too.
    async fn send(&self, cx: &Context, item: Item) -> Result<Value, NodeError> {
        let message = serde_json::to_value(&item).map_err(|err| {
            NodeError::internal(format!("cannot encode item {}: {err}", item.index))
        })?;
        let scoped = self.item_as_trigger.then(|| cx.with_trigger(message.clone()));
        let cx = scoped.as_ref().unwrap_or(cx);
        let result = cx.emit("out", message.clone()).await;
        if let Err(err) = &result
            && cx.has_output(ERROR_PORT)
            && !cx.is_cancelled()
            && let Err(unsent) = cx.emit(ERROR_PORT, Failure::new(err, message)).await
        {
            // The item's own failure stays in the summary; this one has no caller to go to.
            tracing::warn!(node = %cx.node(), error = %unsent, "a failed item could not go to the error output");
            cx.report(&unsent);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{json, testing::Harness};

    use super::*;

    #[tokio::test]
    async fn each_item_goes_out_in_order_and_the_summary_tells_how_each_went() {
        let node = Harness::build::<ArraySplit>(&json!({})).unwrap();
        node.answer_with(|_, item| match item["item"].as_str() {
            Some("bad") => Err(NodeError::invalid("bad image reference")),
            other => Ok(json!({ "copied": other })),
        });
        let summary = node.send("in", json!({ "items": ["a", "bad", "c"] })).await.unwrap();
        assert_eq!(
            summary,
            json!({
                "total": 3,
                "succeeded": 2,
                "failed": [{ "index": 1, "kind": "invalid", "message": "bad image reference" }],
                "skipped": 0,
                "answers": [{ "copied": "a" }, null, { "copied": "c" }]
            })
        );
        let sent: Vec<Value> = node.emitted().into_iter().map(|e| e.message).collect();
        assert_eq!(sent[2], json!({ "item": "c", "index": 2, "total": 3 }));
    }

    #[tokio::test]
    async fn stop_sends_nothing_after_the_first_failure() {
        let node = Harness::build::<ArraySplit>(&json!({ "onError": "stop" })).unwrap();
        node.answer_with(|_, item| {
            if item["index"] == 1 { Err(NodeError::transient("429")) } else { Ok(Value::Null) }
        });
        let summary = node.send("in", json!({ "items": [1, 2, 3, 4] })).await.unwrap();
        assert_eq!(
            (summary["succeeded"].clone(), summary["skipped"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(node.emitted().len(), 2);
    }

    #[tokio::test]
    async fn with_concurrency_every_answer_still_lands_at_its_index() {
        let node = Harness::build::<ArraySplit>(&json!({ "concurrency": 3 })).unwrap();
        node.answer_with(|_, item| Ok(json!(item["item"].as_u64().map(|n| n * 10))));
        let items: Vec<Value> = (0..20).map(|i| json!(i)).collect();
        let summary = node.send("in", json!({ "items": items })).await.unwrap();
        assert_eq!(summary["succeeded"], 20);
        let expected: Vec<Value> = (0..20).map(|i| json!(i * 10)).collect();
        assert_eq!(summary["answers"], json!(expected));
    }

    #[tokio::test]
    async fn failed_items_also_go_to_the_error_output_when_it_is_on() {
        let node = Harness::build::<ArraySplit>(&json!({ "errorPort": true })).unwrap();
        node.answer_with(|port, message| match (port, message["item"].as_str()) {
            ("out", Some("missing")) => Err(NodeError::invalid("manifest unknown")),
            _ => Ok(json!("ok")),
        });
        let summary = node.send("in", json!({ "items": ["a", "missing", "c"] })).await.unwrap();
        assert_eq!(
            (summary["succeeded"].clone(), summary["failed"][0]["index"].clone()),
            (json!(2), json!(1))
        );
        let failures: Vec<Value> =
            node.emitted().into_iter().filter(|e| e.port == "error").map(|e| e.message).collect();
        assert_eq!(
            failures,
            [json!({
                "error": { "kind": "invalid", "message": "manifest unknown" },
                "input": { "item": "missing", "index": 1, "total": 3 }
            })]
        );
    }

    #[tokio::test]
    async fn bad_input_and_settings_name_the_field() {
        let node = Harness::build::<ArraySplit>(&json!({})).unwrap();
        let err = node.send("in", json!({ "items": "a,b" })).await.unwrap_err();
        assert_eq!(err.message(), "in.items: expected a sequence");
        let err = node.send("in", json!([1, 2])).await.unwrap_err();
        assert_eq!(err.message(), "in[0]: expected a sequence");
        let err = Harness::build::<ArraySplit>(&json!({ "concurrency": 0 })).unwrap_err();
        assert_eq!(err.message(), "settings.concurrency: 0 is not between 1 and 256");
    }
}
