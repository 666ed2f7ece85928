//! Status conditions in the shape Kubernetes users know from `kubectl describe`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One observation about a resource, such as `Ready` or `Degraded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What the condition is about: `Ready`, `Degraded`, `Built`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A one-word reason in CamelCase, for machines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened, for people; names the node, edge or field concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation of the spec this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Condition {
    /// The condition with its `lastTransitionTime` set: kept from the condition of its type in
    /// `previous` when that one had the same status, else `now` (RFC 3339), since the status
    /// changed (or is new) at this observation.
    #[must_use]
    pub fn since(mut self, previous: &[Condition], now: &str) -> Self {
        let kept = previous
            .iter()
            .find(|c| c.type_ == self.type_ && c.status == self.status)
            .and_then(|c| c.last_transition_time.clone());
        self.last_transition_time = Some(kept.unwrap_or_else(|| now.to_owned()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: ConditionStatus, since: Option<&str>) -> Condition {
        Condition {
            type_: "Ready".to_owned(),
            status,
            reason: String::new(),
            message: String::new(),
            last_transition_time: since.map(str::to_owned),
            observed_generation: None,
        }
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_does() {
        let before = [ready(ConditionStatus::True, Some("2026-12-06T10:00:00Z"))];
        let now = "2026-12-06T11:00:00Z";
        let same = ready(ConditionStatus::True, None).since(&before, now);
        assert_eq!(same.last_transition_time.as_deref(), Some("2026-12-06T10:00:00Z"));
        let changed = ready(ConditionStatus::False, None).since(&before, now);
        assert_eq!(changed.last_transition_time.as_deref(), Some(now));
        let new = ready(ConditionStatus::True, None).since(&[], now);
        assert_eq!(new.last_transition_time.as_deref(), Some(now));
    }
}
