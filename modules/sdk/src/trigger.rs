//! The message that started a run (`$trigger` in mappings), which every hop of the run carries.
//! Between modules it travels as JSON, and the receiving side checks that JSON but parses it
//! only where something reads it: most nodes never do, and a run's trigger is often a whole
//! Kubernetes object, which costs six times more to parse than to check. A trigger that came
//! as JSON goes on to the next module as the same bytes, and one made here is written once
//! however many hops leave this process.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A run's trigger: its value, its JSON, or both once either was asked for. Cloning shares it.
#[derive(Clone, Default)]
pub struct Trigger(Arc<Forms>);

#[derive(Default)]
struct Forms {
    value: OnceLock<Value>,
    json: OnceLock<Vec<u8>>,
}

/// serde_json reads an object whose first key is this as a raw value held in a string, so a
/// trigger with that key would read differently from how it was checked.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

impl Trigger {
    /// A trigger made in this process.
    pub fn new(value: Value) -> Self {
        Self(Arc::new(Forms { value: OnceLock::from(value), json: OnceLock::new() }))
    }

    /// A trigger that came as `json`, checked now (it reads as JSON, within serde_json's
    /// nesting limit) and parsed when first read.
    pub fn from_json(json: Vec<u8>) -> Result<Self, serde_json::Error> {
        let mut reader = serde_json::Deserializer::from_slice(&json);
        reader.deserialize_any(Check)?;
        reader.end()?;
        Ok(Self(Arc::new(Forms { value: OnceLock::new(), json: OnceLock::from(json) })))
    }

    /// The trigger's value, parsed from its JSON on the first call.
    pub fn value(&self) -> &Value {
        self.0.value.get_or_init(|| {
            // Only `from_json` leaves the value unset, and what it checked parses (the tests
            // below hold the two to the same inputs), so the default is never taken.
            self.0.json.get().and_then(|json| serde_json::from_slice(json).ok()).unwrap_or_default()
        })
    }

    /// The trigger's value for what reads it only if `reads` (an expression or a mapping whose
    /// text names `$trigger`); otherwise null stands in, and the trigger is not parsed.
    pub fn value_if(&self, reads: bool) -> &Value {
        if reads { self.value() } else { &Value::Null }
    }

    /// The trigger's JSON, written from its value on the first call.
    pub fn json(&self) -> &[u8] {
        self.0.json.get_or_init(|| {
            // A `Value` always encodes: its keys are strings and its numbers finite.
            serde_json::to_vec(self.value()).unwrap_or_default()
        })
    }
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.value.get(), self.0.json.get()) {
            (Some(value), _) => f.debug_tuple("Trigger").field(value).finish(),
            (None, json) => write!(f, "Trigger({} bytes of JSON)", json.map_or(0, Vec::len)),
        }
    }
}

/// Reads a JSON value as `Value` would and keeps nothing of it.
struct Check;

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Check)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let mut first = true;
        while let Some(reserved) = fields.next_key_seed(Key)? {
            if reserved && first {
                return Err(de::Error::custom(format!(
                    "an object's first key may not be {RAW_VALUE_KEY:?}"
                )));
            }
            first = false;
            fields.next_value_seed(Check)?;
        }
        Ok(())
    }
}

/// Reads an object's key; true for [`RAW_VALUE_KEY`].
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<bool, D::Error> {
        reader.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == RAW_VALUE_KEY)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_trigger_reads_the_same_as_json_or_as_a_value_and_is_written_once() {
        let value = json!({ "kind": "Pod", "spec": { "containers": [{ "image": "nginx", "ports": [80, 443.5, -1] }] }, "ok": true, "none": null, "text": "é\n\u{1F600}" });
        let made = Trigger::new(value.clone());
        let json = made.json().to_vec();
        assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), value);
        assert!(std::ptr::eq(made.json(), made.json()), "written once");

        let came = Trigger::from_json(json.clone()).unwrap();
        assert_eq!(format!("{came:?}"), format!("Trigger({} bytes of JSON)", json.len()));
        assert_eq!(came.json(), json, "handed on as it came");
        assert_eq!(came.value(), &value);
        assert_eq!(Trigger::default().value(), &Value::Null);
    }

    #[test]
    fn what_the_check_refuses_value_refuses_and_what_it_takes_parses() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let refused: &[&[u8]] = &[
            b"",
            b"{",
            b"{\"a\": 1,}",
            b"[1] [2]",
            b"1e400",
            b"-1e400",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"{1: 2}",
            b"nul",
            deep.as_bytes(),
            b"{\"$serde_json::private::RawValue\": \"not json\"}",
        ];
        for input in refused {
            let text = String::from_utf8_lossy(input);
            assert!(Trigger::from_json(input.to_vec()).is_err(), "took {text}");
        }
        let value_refuses = refused.iter().filter(|input| !input.starts_with(b"{\"$serde"));
        for input in value_refuses {
            let text = String::from_utf8_lossy(input);
            assert!(serde_json::from_slice::<Value>(input).is_err(), "Value took {text}");
        }
        let shallow = "[".repeat(100) + &"]".repeat(100);
        let taken: &[&[u8]] = &[
            b"null",
            b" {\"a\": [1, -2, 3.5e10, \"\\u00e9\\n\"], \"a\": {}} ",
            b"18446744073709551615",
            b"-9223372036854775808",
            b"1e308",
            shallow.as_bytes(),
            b"{\"a\": 1, \"$serde_json::private::RawValue\": 0}",
        ];
        for input in taken {
            let trigger = Trigger::from_json(input.to_vec()).unwrap();
            assert_eq!(trigger.value(), &serde_json::from_slice::<Value>(input).unwrap());
        }
    }
}
