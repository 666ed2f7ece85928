//! Durations written the way people write them (`500ms`, `30s`, `1h30m`), kept as written so a
//! manifest round-trips unchanged.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The units a [`HumanDuration`] accepts, longest suffix first so `ms` wins over `m`.
const UNITS: &[(&str, Duration)] = &[
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
    ("d", Duration::from_secs(86_400)),
];

/// JSON Schema pattern for [`HumanDuration`].
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// The longest text of a [`HumanDuration`], as the CRD schema's `maxLength` says.
pub const MAX_DURATION_TEXT: usize = 32;

/// A duration such as `250ms`, `30s`, `5m` or `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration {
    text: String,
    value: Duration,
}

/// Text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    /// It does not read as one.
    #[error(
        "{text:?} is not a duration: write a whole number and a unit (ms, s, m, h, d), such as 500ms, 30s or 1h30m"
    )]
    Unreadable {
        /// The rejected text.
        text: String,
    },
    /// It is longer than a duration is written.
    #[error("a duration is at most {MAX_DURATION_TEXT} characters, and this one is {length}")]
    TooLong {
        /// Its length in characters.
        length: usize,
    },
}

impl HumanDuration {
    /// Whole seconds, written the shortest way (`90` becomes `90s`, `300` becomes `5m`): for
    /// defaults in settings.
    pub fn from_secs(seconds: u64) -> Self {
        let text = match seconds {
            0 => "0s".to_owned(),
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        Self { text, value: Duration::from_secs(seconds) }
    }

    /// The duration's value.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// The duration as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for HumanDuration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, InvalidDuration> {
        let length = text.chars().count();
        if length > MAX_DURATION_TEXT {
            return Err(InvalidDuration::TooLong { length });
        }
        let invalid = || InvalidDuration::Unreadable { text: text.to_owned() };
        let mut rest = text;
        let mut value = Duration::ZERO;
        if rest.is_empty() {
            return Err(invalid());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let amount: u32 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let (suffix, unit) =
                UNITS.iter().find(|(suffix, _)| rest.starts_with(suffix)).ok_or_else(invalid)?;
            rest = &rest[suffix.len()..];
            value =
                unit.checked_mul(amount).and_then(|d| value.checked_add(d)).ok_or_else(invalid)?;
        }
        Ok(Self { text: text.to_owned(), value })
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = InvalidDuration;
    fn try_from(text: String) -> Result<Self, InvalidDuration> {
        text.parse()
    }
}

impl From<HumanDuration> for String {
    fn from(duration: HumanDuration) -> String {
        duration.text
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN, "maxLength": MAX_DURATION_TEXT })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m500ms", Duration::from_millis(60_500)),
            ("2d", Duration::from_secs(172_800)),
        ];
        for (text, expected) in cases {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.get(), expected, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn whole_seconds_are_written_the_shortest_way() {
        for (seconds, text) in
            [(0, "0s"), (45, "45s"), (300, "5m"), (5400, "90m"), (7200, "2h"), (86_400, "1d")]
        {
            let duration = HumanDuration::from_secs(seconds);
            assert_eq!((duration.as_str(), duration.get()), (text, Duration::from_secs(seconds)));
            assert_eq!(text.parse::<HumanDuration>().unwrap(), duration);
        }
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in ["", "5", "m", "1.5s", "-1s", "10 s", "5sec", "1S", "1h 30m", "99999999999s"] {
            let parsed = text.parse::<HumanDuration>();
            assert!(parsed.is_err(), "{text:?} was accepted");
            if text != "99999999999s" {
                assert!(!pattern.is_match(text), "pattern accepts {text:?}");
            }
        }
        let long = "1s".repeat(17);
        assert_eq!(
            long.parse::<HumanDuration>().unwrap_err().to_string(),
            "a duration is at most 32 characters, and this one is 34"
        );
        assert_eq!(
            "1s".repeat(16).parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(16)
        );
        assert_eq!(
            "5sec".parse::<HumanDuration>().unwrap_err().to_string(),
            "\"5sec\" is not a duration: write a whole number and a unit (ms, s, m, h, d), such as 500ms, 30s or 1h30m"
        );
    }
}
