//! `collect`: joins items that arrive one by one (from an `array_split`, say) back into an
//! array. Items are grouped by a key (the run, unless a jq key says otherwise); a group goes
//! out once it holds its count (a setting, or the `total` the items carry), or, incomplete,
//! when its timeout passes. The last item's caller gets the downstream answer; the others are
//! answered at once with how far the group got.
//!
//! Memory is bounded: at most [`MAX_OPEN_GROUPS`] groups are open, a group holds at most
//! [`MAX_GROUP_ITEMS`] items, and the open groups hold at most [`MAX_HELD_BYTES`] of items (as
//! JSON) in all; an item past a bound is refused with an error naming it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use weir_sdk::{
    Component, Context, Description, Expression, HumanDuration, JsonSchema, NodeError, Port, Value,
    json, json_size,
};

/// Settings of a collect node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CollectSettings {
    /// How many items make a group (at most 10000); when unset, the `total` field of the
    /// items (as an `array_split` sends them) says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub count: Option<u32>,
    /// A jq expression over each item giving its group, such as `.item.namespace`; when
    /// unset, the items of one run form a group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// A jq expression giving what to keep of each item, such as `.item`; the whole item
    /// when unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keep: String,
    /// How long a group may wait for its last item; then it goes out incomplete.
    pub timeout: HumanDuration,
}

impl Default for CollectSettings {
    fn default() -> Self {
        Self {
            count: None,
            key: String::new(),
            keep: String::new(),
            timeout: HumanDuration::from_secs(60),
        }
    }
}

/// What a group goes out as.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Group {
    /// The group's key.
    pub key: String,
    /// The items, in the order they arrived.
    pub items: Vec<Value>,
    /// How many items the group was waiting for.
    pub expected: usize,
    /// Whether all of them arrived (false when the timeout sent it).
    pub complete: bool,
}

/// The most groups open at once, so a key that never repeats cannot grow memory without end.
pub const MAX_OPEN_GROUPS: usize = 1024;
/// The most items a group holds (the largest `count` or `total`).
pub const MAX_GROUP_ITEMS: usize = 10_000;
/// The most bytes of items (as JSON) the open groups of a node hold in all.
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// A group still filling up.
struct Open {
    items: Vec<Value>,
    expected: usize,
    /// The items' size as JSON.
    bytes: usize,
    /// Sends the group incomplete when the timeout passes; aborted when it completes.
    timer: JoinHandle<()>,
}

/// The open groups by key, and the bytes they hold.
#[derive(Default)]
struct Held {
    open: HashMap<String, Open>,
    bytes: usize,
}

impl Held {
    fn take(&mut self, key: &str) -> Option<Open> {
        let open = self.open.remove(key)?;
        self.bytes -= open.bytes;
        Some(open)
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("open", &self.open.len()).field("bytes", &self.bytes).finish()
    }
}

type Groups = Arc<Mutex<Held>>;

/// A node of the collect component.
#[derive(Debug)]
pub struct Collect {
    count: Option<usize>,
    key: Option<Expression>,
    keep: Option<Expression>,
    timeout: Duration,
    groups: Groups,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("items", &self.items.len())
            .field("expected", &self.expected)
            .finish()
    }
}

impl Component for Collect {
    const NAME: &'static str = "collect";
    type Settings = CollectSettings;

    fn describe() -> Description {
        Description {
            label: "Collect",
            description: "Joins items that arrive one by one back into an array, by count, key and timeout.",
            tags: &["join", "gather", "batch", "aggregate"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &CollectSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Group>("out")]
    }

    fn build(settings: CollectSettings) -> Result<Self, NodeError> {
        let compile = |source: &str, place: &str| {
            (!source.trim().is_empty())
                .then(|| Expression::compile(source, place))
                .transpose()
                .map_err(|err| NodeError::invalid(err.to_string()))
        };
        if settings.count == Some(0) {
            return Err(NodeError::invalid("settings.count: a group needs at least one item"));
        }
        if settings.count.is_some_and(|count| count as usize > MAX_GROUP_ITEMS) {
            return Err(NodeError::invalid(format!(
                "settings.count: a group holds at most {MAX_GROUP_ITEMS} items"
            )));
        }
        if settings.timeout.get().is_zero() {
            return Err(NodeError::invalid("settings.timeout: must be longer than 0s"));
        }
        Ok(Self {
            count: settings.count.and_then(|c| usize::try_from(c).ok()),
            key: compile(&settings.key, "settings.key")?,
            keep: compile(&settings.keep, "settings.keep")?,
            timeout: settings.timeout.get(),
            groups: Arc::default(),
        })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let key = match &self.key {
            Some(key) => match cx.evaluate(key, &message) {
                Ok(Value::String(text)) => text,
                Ok(other) => other.to_string(),
                Err(err) => return Err(NodeError::invalid(err.to_string())),
            },
            None => cx.run().trace.trace_hex().to_string(),
        };
        let expected = match self.count {
            Some(count) => count,
            None => message.get("total").and_then(Value::as_u64).and_then(|t| usize::try_from(t).ok()).ok_or_else(|| {
                NodeError::invalid("in: the item has no total field; set settings.count or send items with a total, as array_split does")
            })?,
        };
        if expected > MAX_GROUP_ITEMS {
            return Err(NodeError::invalid(format!(
                "in.total: a group holds at most {MAX_GROUP_ITEMS} items, not {expected}"
            )));
        }
        let item = match &self.keep {
            Some(keep) => {
                cx.evaluate(keep, &message).map_err(|err| NodeError::invalid(err.to_string()))?
            }
            None => message,
        };
        let size = json_size(&item);
        let full = {
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            if !groups.open.contains_key(&key) && groups.open.len() >= MAX_OPEN_GROUPS {
                return Err(NodeError::invalid(format!(
                    "{MAX_OPEN_GROUPS} groups are open already: does settings.key give a new value for every item?"
                )));
            }
            if groups.bytes + size > MAX_HELD_BYTES {
                return Err(NodeError::invalid(format!(
                    "in: the open groups would hold more than {MAX_HELD_BYTES} bytes with this item of {size}: keep less of each item (settings.keep)"
                )));
            }
            groups.bytes += size;
            let group = groups.open.entry(key.clone()).or_insert_with(|| Open {
                items: Vec::new(),
                expected,
                bytes: 0,
                timer: self.time_out(cx.clone(), key.clone()),
            });
            group.items.push(item);
            group.bytes += size;
            if group.items.len() < group.expected {
                return Ok(json!({ "collected": group.items.len(), "expected": group.expected }));
            }
            groups.take(&key)
        };
        let Some(full) = full else { return Ok(Value::Null) };
        full.timer.abort();
        let group = Group { key, expected: full.expected, items: full.items, complete: true };
        cx.emit("out", group).await
    }

    async fn destroy(&self) {
        let groups =
            std::mem::take(&mut *self.groups.lock().unwrap_or_else(PoisonError::into_inner));
        for open in groups.open.into_values() {
            open.timer.abort();
        }
    }
}

impl Collect {
    /// Sends the group `key` out incomplete once the timeout passes, unless it completed.
    fn time_out(&self, cx: Context, key: String) -> JoinHandle<()> {
        let (groups, timeout) = (Arc::clone(&self.groups), self.timeout);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let open = groups.lock().unwrap_or_else(PoisonError::into_inner).take(&key);
            let Some(open) = open else { return };
            let group = Group { key, expected: open.expected, items: open.items, complete: false };
            if let Err(err) = cx.emit("out", group).await {
                tracing::warn!(node = %cx.node(), error = %err, "an incomplete group could not go out");
                cx.report(&err);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::testing::Harness;

    use super::*;

    fn item(index: usize, total: usize) -> Value {
        json!({ "item": format!("image-{index}"), "index": index, "total": total })
    }

    #[tokio::test]
    async fn a_group_goes_out_when_its_last_item_arrives() {
        let node = Harness::build::<Collect>(&json!({ "keep": ".item" })).unwrap();
        node.answer_with(|_, group| Ok(json!({ "got": group["items"].as_array().map(Vec::len) })));
        assert_eq!(
            node.send("in", item(0, 3)).await.unwrap(),
            json!({ "collected": 1, "expected": 3 })
        );
        assert_eq!(
            node.send("in", item(1, 3)).await.unwrap(),
            json!({ "collected": 2, "expected": 3 })
        );
        assert_eq!(node.send("in", item(2, 3)).await.unwrap(), json!({ "got": 3 }));
        let sent = node.emitted();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].message["items"], json!(["image-0", "image-1", "image-2"]));
        assert_eq!(sent[0].message["complete"], true);
    }

    #[tokio::test]
    async fn keys_keep_groups_apart() {
        let node = Harness::build::<Collect>(&json!({ "count": 2, "key": ".ns" })).unwrap();
        for (ns, n) in [("a", 1), ("b", 1), ("a", 2), ("b", 2)] {
            node.send("in", json!({ "ns": ns, "n": n })).await.unwrap();
        }
        let keys: Vec<Value> = node.emitted().iter().map(|e| e.message["key"].clone()).collect();
        assert_eq!(keys, [json!("a"), json!("b")]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_incomplete_group_goes_out_when_its_timeout_passes() {
        let node = Harness::build::<Collect>(&json!({ "timeout": "5s" })).unwrap();
        node.send("in", item(0, 3)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(node.emitted().is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = node.emitted();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].message["complete"].clone(), sent[0].message["expected"].clone()),
            (json!(false), json!(3))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn groups_past_their_bounds_are_refused_naming_the_bound() {
        let err = Harness::build::<Collect>(&json!({ "count": MAX_GROUP_ITEMS + 1 })).unwrap_err();
        assert_eq!(err.message(), "settings.count: a group holds at most 10000 items");
        let node = Harness::build::<Collect>(&json!({})).unwrap();
        let err = node.send("in", item(0, 1_000_000_000)).await.unwrap_err();
        assert_eq!(err.message(), "in.total: a group holds at most 10000 items, not 1000000000");

        // Items of 1 MiB each: the 64th fills the budget, the 65th is refused, and a group
        // going out frees what it held.
        let node =
            Harness::build::<Collect>(&json!({ "count": 100, "key": ".group", "timeout": "5s" }))
                .unwrap();
        let big = |group: &str| json!({ "group": group, "data": "x".repeat((1 << 20) - 40) });
        let size = json_size(&big("a"));
        let fit = MAX_HELD_BYTES / size;
        for _ in 0..fit {
            node.send("in", big("a")).await.unwrap();
        }
        let err = node.send("in", big("b")).await.unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "in: the open groups would hold more than {MAX_HELD_BYTES} bytes with this item of {size}: keep less of each item (settings.keep)"
            )
        );
        assert_eq!(err.kind(), weir_sdk::ErrorKind::Invalid);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(node.emitted().len(), 1, "group a went out incomplete");
        node.send("in", big("b")).await.unwrap();
    }

    #[tokio::test]
    async fn items_without_a_count_or_total_are_refused() {
        let node = Harness::build::<Collect>(&json!({})).unwrap();
        let err = node.send("in", json!({ "image": "nginx" })).await.unwrap_err();
        assert_eq!(
            err.message(),
            "in: the item has no total field; set settings.count or send items with a total, as array_split does"
        );
        let err = Harness::build::<Collect>(&json!({ "count": 0 })).unwrap_err();
        assert_eq!(err.message(), "settings.count: a group needs at least one item");
    }
}
