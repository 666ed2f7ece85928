//! Bodies as messages carry them, by content type: JSON as JSON, a form as an object of its
//! fields, text as a string, anything else as base64. Both directions use it: the webhook for
//! what it receives, `request` for what it is answered.

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a body was read into a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// There was no body; the message's `body` is null.
    None,
    /// JSON, read as JSON.
    Json,
    /// A URL-encoded form, read as an object of its fields (a field given twice as a list).
    Form,
    /// Text (`text/*`, XML), read as a string.
    Text,
    /// Anything else (or text that is not UTF-8), as base64.
    Base64,
}

/// Why a body does not read as its content type says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body claims JSON and is not.
    #[error("the body is not JSON ({0})")]
    Json(String),
    /// The body claims a form and is not one.
    #[error("the body is not a URL-encoded form ({0})")]
    Form(String),
}

/// The media type of a `Content-Type` header, lowercase and without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Reads `bytes` as `content_type` says.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<(Value, Encoding), BodyError> {
    if bytes.is_empty() {
        return Ok((Value::Null, Encoding::None));
    }
    let media = content_type.map(media_type).unwrap_or_default();
    if media == "application/json" || media.ends_with("+json") {
        // serde_json's messages give line and column, never the text.
        let value =
            serde_json::from_slice(bytes).map_err(|err| BodyError::Json(err.to_string()))?;
        return Ok((value, Encoding::Json));
    }
    if media == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(bytes).map_err(|err| BodyError::Form(err.to_string()))?;
        return Ok((Value::Object(form_object(pairs)), Encoding::Form));
    }
    let textual = media.starts_with("text/")
        || media == "application/xml"
        || media.ends_with("+xml")
        || media == "application/javascript";
    if textual && let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((Value::String(text.to_owned()), Encoding::Text));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok((Value::String(encoded), Encoding::Base64))
}

/// A form's fields as an object; a field given more than once becomes a list of its values.
pub(crate) fn form_object(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut object = Map::new();
    for (key, value) in pairs {
        match object.get_mut(&key) {
            None => {
                object.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                object.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_content_type_reads_its_way() {
        let read = |content_type, bytes: &[u8]| parse(Some(content_type), bytes).unwrap();
        assert_eq!(
            read("application/json; charset=utf-8", br#"{"a":1}"#),
            (json!({ "a": 1 }), Encoding::Json)
        );
        assert_eq!(read("application/vnd.github+json", b"[1]"), (json!([1]), Encoding::Json));
        assert_eq!(
            read("application/x-www-form-urlencoded", b"payload=%7B%7D&tag=a&tag=b&tag=c"),
            (json!({ "payload": "{}", "tag": ["a", "b", "c"] }), Encoding::Form)
        );
        assert_eq!(read("Text/Plain", "héllo".as_bytes()), (json!("héllo"), Encoding::Text));
        assert_eq!(read("application/xml", b"<a/>"), (json!("<a/>"), Encoding::Text));
        assert_eq!(read("text/plain", &[0xff, 0xfe]), (json!("//4="), Encoding::Base64));
        assert_eq!(read("image/png", &[1, 2, 3]), (json!("AQID"), Encoding::Base64));
        assert_eq!(parse(None, b"x").unwrap(), (json!("eA=="), Encoding::Base64));
        assert_eq!(read("application/json", b""), (Value::Null, Encoding::None));
    }

    #[test]
    fn a_body_that_is_not_what_it_claims_says_where_not_what() {
        let err = parse(Some("application/json"), br#"{"password": hunter2}"#).unwrap_err();
        assert_eq!(err.to_string(), "the body is not JSON (expected value at line 1 column 14)");
    }
}
