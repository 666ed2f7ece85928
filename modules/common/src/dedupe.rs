//! `dedupe`: lets a message through once per key and value, as an alert wants: a pod crashing
//! again and again is one message, not one per restart. Each message gives a key (what it is
//! about) and a value (its state; null for "all is well"). A value different from the one kept
//! for its key goes through; the same value again does not. A null value starts the key's
//! recovery, and once the key has stayed null for `resetAfter` it is forgotten, so the next
//! problem goes through again; a problem inside that time is the old one going on.
//!
//! Durations are measured between the messages' own times (`time`, such as the status
//! timestamps of a pod) when they carry them, else between their arrivals: messages that queue
//! behind a slow run arrive late, and a recovery of one second must not look like one of ten.
//! Keys null for `resetAfter` and an hour more are dropped as messages pass, to bound the state.
//!
//! The keys are kept in the node's state, so a restart does not send them again. A message
//! whose way on failed (a chat that stayed down) is not remembered, so the next one tries
//! again. At most `maxKeys` keys are kept; past that the one let through longest ago goes.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, Expression, HumanDuration, JsonSchema, NodeError, Port, Value,
    json,
};

/// Settings of a dedupe node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DedupeSettings {
    /// A jq expression giving what a message is about, such as
    /// `.namespace + "/" + .pod + "/" + .container`; the whole message when unset.
    pub key: String,
    /// A jq expression giving its state, such as `.reason`; null means all is well and starts
    /// the key's recovery. The whole message when unset.
    pub value: String,
    /// A jq expression giving when the message's state began, as an RFC 3339 time, such as
    /// `.startedAt`; null (or unset) for the message's arrival.
    pub time: String,
    /// How long a key must stay null before it is forgotten, so that its next value goes
    /// through again, such as `1m`; `0s` forgets it at once.
    pub reset_after: HumanDuration,
    /// The most keys kept (at most 2000); past that the one let through longest ago is
    /// forgotten.
    #[schemars(range(min = 1, max = 2000))]
    pub max_keys: u32,
}

impl Default for DedupeSettings {
    fn default() -> Self {
        Self {
            key: String::new(),
            value: String::new(),
            time: String::new(),
            reset_after: HumanDuration::from_secs(0),
            max_keys: 1000,
        }
    }
}

/// The most keys a node keeps: its state lives in the FlowNode, at most 256 KiB.
pub const MAX_KEYS: u32 = 2000;
/// How long past `resetAfter` a null key of no message is kept: messages arrive late, and a
/// key dropped early would let its old problem through as new.
const FORGET_AFTER_MS: i64 = 3_600_000;

/// What is kept of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The last value let through.
    value: Value,
    /// When it was let through, in milliseconds since the epoch.
    passed: i64,
    /// Since when the key has been null, when it is recovering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    null_since: Option<i64>,
}

/// The node's kept state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    keys: BTreeMap<String, Entry>,
}

/// A node of the dedupe component.
#[derive(Debug)]
pub struct Dedupe {
    key: Option<Expression>,
    value: Option<Expression>,
    time: Option<Expression>,
    reset_after_ms: i64,
    max_keys: usize,
    /// Makes each read, change and save of the kept keys one step.
    writing: Mutex<()>,
}

impl Component for Dedupe {
    const NAME: &'static str = "dedupe";
    type Settings = DedupeSettings;

    fn describe() -> Description {
        Description {
            label: "Dedupe",
            description: "Lets a message through once per key and value until the key has been null (recovered) for a while; drops repeats.",
            tags: &["dedupe", "filter", "once", "alert", "unique"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &DedupeSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Value>("out")]
    }

    fn build(settings: DedupeSettings) -> Result<Self, NodeError> {
        if settings.max_keys == 0 || settings.max_keys > MAX_KEYS {
            return Err(NodeError::invalid(format!(
                "settings.maxKeys: {} is not between 1 and {MAX_KEYS}",
                settings.max_keys
            )));
        }
        let compile = |source: &str, place: &str| {
            Expression::compile(source, place).map_err(|err| NodeError::invalid(err.to_string()))
        };
        let optional = |source: &str, place: &str| {
            (!source.trim().is_empty()).then(|| compile(source, place)).transpose()
        };
        Ok(Self {
            key: optional(&settings.key, "settings.key")?,
            value: optional(&settings.value, "settings.value")?,
            time: optional(&settings.time, "settings.time")?,
            reset_after_ms: i64::try_from(settings.reset_after.get().as_millis())
                .unwrap_or(i64::MAX),
            max_keys: settings.max_keys as usize,
            writing: Mutex::new(()),
        })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let key = match &self.key {
            Some(key) => match cx.evaluate(key, &message) {
                Ok(Value::String(text)) => text,
                Ok(Value::Null) => {
                    return Err(NodeError::invalid("in: settings.key gives null for this message"));
                }
                Ok(other) => other.to_string(),
                Err(err) => return Err(NodeError::invalid(err.to_string())),
            },
            None => message.to_string(),
        };
        let value = match &self.value {
            Some(value) => {
                cx.evaluate(value, &message).map_err(|err| NodeError::invalid(err.to_string()))?
            }
            None => message.clone(),
        };
        let arrived = chrono::Utc::now().timestamp_millis();
        let now = match &self.time {
            Some(time) => match cx
                .evaluate(time, &message)
                .map_err(|err| NodeError::invalid(err.to_string()))?
            {
                Value::Null => arrived,
                Value::String(text) => chrono::DateTime::parse_from_rfc3339(&text)
                    .map_err(|err| {
                        NodeError::invalid(format!(
                            "in: settings.time gives {text:?}, not an RFC 3339 time: {err}"
                        ))
                    })?
                    .timestamp_millis(),
                other => {
                    return Err(NodeError::invalid(format!(
                        "in: settings.time gives {other}, not an RFC 3339 time"
                    )));
                }
            },
            None => arrived,
        };
        let before = {
            let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
            let mut kept: Kept = cx.state()?;
            let forget_after = self.reset_after_ms.saturating_add(FORGET_AFTER_MS);
            kept.keys.retain(|other, entry| {
                let recovered_by = |at: i64, after: i64| {
                    entry.null_since.is_some_and(|since| at.saturating_sub(since) >= after)
                };
                if *other == key {
                    !recovered_by(now, self.reset_after_ms)
                } else {
                    !recovered_by(arrived, forget_after)
                }
            });
            let entry = kept.keys.get_mut(&key);
            let decision = match (entry, value.is_null()) {
                (Some(entry), true) => {
                    // The earliest null counts: a late message does not shorten a recovery.
                    entry.null_since = Some(entry.null_since.map_or(now, |since| since.min(now)));
                    None
                }
                (None, true) => None,
                (Some(entry), false) if entry.value == value => {
                    entry.null_since = None;
                    None
                }
                (entry, false) => Some(entry.map(|e| e.clone())),
            };
            match decision {
                None => {
                    cx.save_state(&kept)?;
                    return Ok(json!({ "passed": false, "key": key }));
                }
                Some(before) => {
                    kept.keys.insert(
                        key.clone(),
                        Entry { value: value.clone(), passed: now, null_since: None },
                    );
                    while kept.keys.len() > self.max_keys {
                        let oldest = kept
                            .keys
                            .iter()
                            .filter(|(k, _)| **k != key)
                            .min_by_key(|(_, e)| e.passed)
                            .map(|(k, _)| k.clone());
                        let Some(oldest) = oldest else { break };
                        kept.keys.remove(&oldest);
                    }
                    cx.save_state(&kept)?;
                    before
                }
            }
        };
        let answer = cx.emit("out", message).await;
        if let Err(error) = &answer {
            // Said, since what follows may have acted before it failed (an alert posted, say)
            // and the next message with this value goes through again.
            tracing::warn!(node = %cx.node(), %error, "the way on failed, so the value is not kept");
            self.forget_failed(cx, &key, &value, now, before)?;
        }
        answer
    }
}

impl Dedupe {
    /// Puts back what was kept of `key` before a message whose way on failed, unless another
    /// message changed the key since.
    fn forget_failed(
        &self,
        cx: &Context,
        key: &str,
        value: &Value,
        passed: i64,
        before: Option<Entry>,
    ) -> Result<(), NodeError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept: Kept = cx.state()?;
        let mine = Entry { value: value.clone(), passed, null_since: None };
        if kept.keys.get(key) != Some(&mine) {
            return Ok(());
        }
        match before {
            Some(entry) => kept.keys.insert(key.to_owned(), entry),
            None => kept.keys.remove(key),
        };
        cx.save_state(&kept)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_sdk::{ErrorKind, testing::Harness};

    use super::*;

    fn alert(pod: &str, reason: Option<&str>) -> Value {
        json!({ "pod": pod, "reason": reason })
    }

    fn passed(node: &Harness) -> Vec<Value> {
        node.emitted().into_iter().map(|e| e.message).collect()
    }

    #[tokio::test]
    async fn a_value_goes_through_once_until_it_changes() {
        let node = Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason" })).unwrap();
        for message in [
            alert("a", Some("CrashLoopBackOff")),
            alert("a", Some("CrashLoopBackOff")),
            alert("b", Some("CrashLoopBackOff")),
            alert("a", Some("OOMKilled")),
            alert("a", Some("OOMKilled")),
        ] {
            node.send("in", message).await.unwrap();
        }
        assert_eq!(
            passed(&node),
            [
                alert("a", Some("CrashLoopBackOff")),
                alert("b", Some("CrashLoopBackOff")),
                alert("a", Some("OOMKilled"))
            ]
        );
        let answer = node.send("in", alert("b", Some("CrashLoopBackOff"))).await.unwrap();
        assert_eq!(answer, json!({ "passed": false, "key": "b" }));
    }

    #[tokio::test]
    async fn a_key_null_for_reset_after_is_forgotten_and_a_short_recovery_is_not_one() {
        let node = Harness::build::<Dedupe>(
            &json!({ "key": ".pod", "value": ".reason", "resetAfter": "200ms" }),
        )
        .unwrap();
        node.send("in", alert("a", Some("CrashLoopBackOff"))).await.unwrap();
        // Running for a moment between two crashes is no recovery.
        node.send("in", alert("a", None)).await.unwrap();
        node.send("in", alert("a", Some("CrashLoopBackOff"))).await.unwrap();
        assert_eq!(passed(&node).len(), 1);
        // The recovery starts again from the next null.
        node.send("in", alert("a", None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        node.send("in", alert("a", None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        node.send("in", alert("a", Some("CrashLoopBackOff"))).await.unwrap();
        assert_eq!(passed(&node).len(), 2, "well for 250ms: a new failure");
    }

    #[tokio::test]
    async fn with_no_reset_time_a_null_forgets_at_once() {
        let node = Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason" })).unwrap();
        for reason in [Some("x"), None, Some("x"), None, None] {
            node.send("in", alert("a", reason)).await.unwrap();
        }
        assert_eq!(passed(&node).len(), 2);
        assert_eq!(node.kept_state(), json!({ "keys": {} }), "nothing kept of recovered keys");
    }

    #[tokio::test]
    async fn the_messages_own_times_measure_the_recovery_however_late_they_arrive() {
        let node = Harness::build::<Dedupe>(
            &json!({ "key": ".pod", "value": ".reason", "time": ".at", "resetAfter": "10s" }),
        )
        .unwrap();
        let at = |pod: &str, reason: Option<&str>, at: &str| json!({ "pod": pod, "reason": reason, "at": at });
        node.send("in", at("a", Some("x"), "2026-12-06T10:00:00Z")).await.unwrap();
        // Well for 2 s, told at once: no recovery.
        node.send("in", at("a", None, "2026-12-06T10:00:10Z")).await.unwrap();
        node.send("in", at("a", Some("x"), "2026-12-06T10:00:12Z")).await.unwrap();
        // Well for 12 s: a recovery, and the failure after it is news.
        node.send("in", at("a", None, "2026-12-06T10:00:20Z")).await.unwrap();
        node.send("in", at("a", Some("x"), "2026-12-06T10:00:32Z")).await.unwrap();
        assert_eq!(passed(&node).len(), 2);
        let err = node.send("in", at("a", Some("x"), "yesterday")).await.unwrap_err();
        assert!(
            err.message()
                .starts_with("in: settings.time gives \"yesterday\", not an RFC 3339 time: "),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn by_default_each_distinct_message_goes_through_once() {
        let node = Harness::build::<Dedupe>(&json!({})).unwrap();
        for message in [json!({ "a": 1 }), json!({ "a": 1 }), json!({ "a": 2 })] {
            node.send("in", message).await.unwrap();
        }
        assert_eq!(passed(&node), [json!({ "a": 1 }), json!({ "a": 2 })]);
    }

    #[tokio::test]
    async fn what_is_kept_outlives_a_restart() {
        let first =
            Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason" })).unwrap();
        first.send("in", alert("a", Some("x"))).await.unwrap();
        let second =
            Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason" })).unwrap();
        second.keep_state(first.kept_state()).unwrap();
        second.send("in", alert("a", Some("x"))).await.unwrap();
        assert!(second.emitted().is_empty());
    }

    #[tokio::test]
    async fn a_message_whose_way_on_failed_goes_again_next_time() {
        let node = Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason" })).unwrap();
        node.answer_with(|_, _| Err(NodeError::transient("the chat answered 503")));
        let err = node.send("in", alert("a", Some("x"))).await.unwrap_err();
        assert_eq!(err.message(), "the chat answered 503");
        node.answer_with(|_, _| Ok(json!("ok")));
        assert_eq!(node.send("in", alert("a", Some("x"))).await.unwrap(), json!("ok"));
        assert_eq!(passed(&node).len(), 2);
    }

    #[tokio::test]
    async fn past_max_keys_the_oldest_goes() {
        let node =
            Harness::build::<Dedupe>(&json!({ "key": ".pod", "value": ".reason", "maxKeys": 2 }))
                .unwrap();
        for pod in ["a", "b", "c", "a"] {
            node.send("in", alert(pod, Some("x"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(passed(&node).len(), 4, "a was forgotten for c, so it went again");
        let keys: Vec<String> =
            node.kept_state()["keys"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "c"]);
    }

    #[tokio::test]
    async fn bad_settings_and_keys_are_refused_by_name() {
        let err = Harness::build::<Dedupe>(&json!({ "key": ".a", "maxKeys": 5000 })).unwrap_err();
        assert_eq!(err.message(), "settings.maxKeys: 5000 is not between 1 and 2000");
        let err = Harness::build::<Dedupe>(&json!({ "key": ".a | " })).unwrap_err();
        assert!(err.message().starts_with("settings.key: "), "{}", err.message());
        let node = Harness::build::<Dedupe>(&json!({ "key": ".pod" })).unwrap();
        let err = node.send("in", json!({ "other": 1 })).await.unwrap_err();
        assert_eq!(err.message(), "in: settings.key gives null for this message");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
}
