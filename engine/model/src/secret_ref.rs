//! Secret settings given by reference: a field a component's settings schema marks secret may
//! hold `{"secretKeyRef": {"name": "…", "key": "…"}}` instead of its value, as a pod's
//! environment names a Secret's key. The FlowNode then holds no secret at all (so `get` on
//! flows shows none); the runtime reads the value, as the flow's ServiceAccount, when it builds
//! the node, and the value is text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{manifest::FieldError, redact};

/// The field that gives a secret setting by reference.
pub const SECRET_KEY_REF: &str = "secretKeyRef";

/// A key of a Secret in the node's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its `data`.
    pub key: String,
}

impl SecretKeyRef {
    /// The reference as a setting holds it.
    pub fn to_setting(&self) -> Value {
        serde_json::json!({ SECRET_KEY_REF: { "name": self.name, "key": self.key } })
    }
}

/// A secret setting given by reference, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referred {
    /// Its JSON pointer in the settings, such as `/auth/password`.
    pub pointer: String,
    /// The key it refers to.
    pub reference: SecretKeyRef,
}

/// Whether `settings` hold a reference anywhere, so that a node without one is built without
/// reading its schema.
pub fn holds_reference(settings: &Value) -> bool {
    match settings {
        Value::Object(fields) => {
            fields.contains_key(SECRET_KEY_REF) || fields.values().any(holds_reference)
        }
        Value::Array(items) => items.iter().any(holds_reference),
        _ => false,
    }
}

/// The references among `settings`, which `schema` describes. Fails naming the field (as
/// `spec.settings…`) of a reference that is malformed or stands in a field the schema does not
/// mark secret (whose value would be shown).
pub fn references(schema: &Value, settings: &Value) -> Result<Vec<Referred>, FieldError> {
    let secret = redact::secret_pointers(schema, settings);
    let mut found = Vec::new();
    let mut all = Vec::new();
    referring(settings, &mut String::new(), &mut all);
    for pointer in all {
        let path = format!("spec.settings{}", field_path(&pointer));
        if !secret.contains(&pointer) {
            return Err(FieldError::new(
                path,
                format!("{SECRET_KEY_REF} is taken only in a field marked secret"),
            ));
        }
        let value = settings.pointer(&pointer).unwrap_or(&Value::Null);
        let reference = parse(value).map_err(|message| FieldError::new(path, message))?;
        found.push(Referred { pointer, reference });
    }
    Ok(found)
}

/// Every well-formed reference in `settings`, wherever it stands: the Secrets a node reads
/// when it is built (what its flow's account must be allowed to get).
pub fn named(settings: &Value) -> Vec<SecretKeyRef> {
    let mut pointers = Vec::new();
    referring(settings, &mut String::new(), &mut pointers);
    pointers.iter().filter_map(|p| parse(settings.pointer(p)?).ok()).collect()
}

/// Puts `text` in place of the reference at `pointer`.
pub fn fill(settings: &mut Value, pointer: &str, text: String) {
    if let Some(place) = settings.pointer_mut(pointer) {
        *place = Value::String(text);
    }
}

/// The settings with each reference replaced by [`redact::KEPT`], so that they can be checked
/// against the schema, whose secret fields take text, without reading any Secret.
pub fn stand_in(schema: &Value, settings: &Value) -> Value {
    let mut standing = settings.clone();
    for Referred { pointer, .. } in references(schema, settings).unwrap_or_default() {
        fill(&mut standing, &pointer, redact::KEPT.to_owned());
    }
    standing
}

/// A JSON pointer (`/auth/tokens/0`) as a field path (`.auth.tokens[0]`), as errors name fields.
pub fn field_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            path.push('.');
            path.push_str(&segment);
        }
    }
    path
}

/// The pointers of the objects holding [`SECRET_KEY_REF`].
fn referring(value: &Value, pointer: &mut String, found: &mut Vec<String>) {
    let len = pointer.len();
    match value {
        Value::Object(fields) if fields.contains_key(SECRET_KEY_REF) => found.push(pointer.clone()),
        Value::Object(fields) => {
            for (name, field) in fields {
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                referring(field, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                pointer.push_str(&format!("/{index}"));
                referring(item, pointer, found);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

fn parse(value: &Value) -> Result<SecretKeyRef, String> {
    let shape = || format!("a reference is {{\"{SECRET_KEY_REF}\": {{\"name\": …, \"key\": …}}}}");
    let Some(fields) = value.as_object().filter(|f| f.len() == 1) else {
        return Err(format!("{} and nothing else", shape()));
    };
    let reference: SecretKeyRef = fields
        .get(SECRET_KEY_REF)
        .cloned()
        .and_then(|inner| serde_json::from_value(inner).ok())
        .ok_or_else(shape)?;
    let valid_name = !reference.name.is_empty()
        && reference.name.len() <= 253
        && reference.name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        });
    if !valid_name {
        return Err(format!("{SECRET_KEY_REF}.name: {:?} is not a Secret's name", reference.name));
    }
    let valid_key = !reference.key.is_empty()
        && reference.key.len() <= 253
        && reference.key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !valid_key {
        return Err(format!(
            "{SECRET_KEY_REF}.key: {:?} is not a Secret's key (letters, digits, - . _)",
            reference.key
        ));
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": { "type": "string" },
                "auth": { "$ref": "#/$defs/Auth" },
                "extra": { "type": "object", "additionalProperties": { "type": "string", "x-weir-secret": true } }
            },
            "$defs": { "Auth": { "type": "object", "properties": {
                "user": { "type": "string" },
                "password": { "type": "string", "x-weir-secret": true }
            } } }
        })
    }

    #[test]
    fn references_in_secret_fields_are_found_at_any_depth() -> Result<(), FieldError> {
        let settings = json!({
            "url": "https://x",
            "auth": { "user": "u", "password": { "secretKeyRef": { "name": "creds", "key": "pw" } } },
            "extra": { "a/b": { "secretKeyRef": { "name": "other.one", "key": "k_1" } }, "c": "plain" }
        });
        assert!(holds_reference(&settings));
        let found = references(&schema(), &settings)?;
        let pointers: Vec<&str> = found.iter().map(|r| r.pointer.as_str()).collect();
        assert_eq!(pointers, ["/auth/password", "/extra/a~1b"]);
        assert_eq!(found[0].reference, SecretKeyRef { name: "creds".into(), key: "pw".into() });
        let standing = stand_in(&schema(), &settings);
        assert_eq!(standing["auth"]["password"], redact::KEPT);
        assert_eq!(standing["extra"]["c"], "plain");
        let mut filled = settings.clone();
        fill(&mut filled, "/auth/password", "s3cret".into());
        assert_eq!(filled["auth"]["password"], "s3cret");
        assert_eq!(found[0].reference.to_setting(), settings["auth"]["password"]);
        assert!(!holds_reference(&json!({ "url": "x", "list": [1, {"a": 2}] })));
        let names: Vec<String> = named(&settings).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["creds", "other.one"]);
        Ok(())
    }

    #[test]
    fn a_reference_outside_a_secret_field_or_malformed_is_named() {
        let error = |settings: Value| {
            references(&schema(), &settings).err().map(|e| format!("{}: {}", e.path, e.message))
        };
        assert_eq!(
            error(json!({ "url": { "secretKeyRef": { "name": "a", "key": "b" } } })).as_deref(),
            Some("spec.settings.url: secretKeyRef is taken only in a field marked secret")
        );
        assert_eq!(
            error(json!({ "auth": { "password": { "secretKeyRef": { "name": "a" } } } }))
                .as_deref(),
            Some(
                "spec.settings.auth.password: a reference is {\"secretKeyRef\": {\"name\": …, \"key\": …}}"
            )
        );
        assert_eq!(
            error(
                json!({ "auth": { "password": { "secretKeyRef": { "name": "A_b", "key": "k" } } } })
            )
            .as_deref(),
            Some("spec.settings.auth.password: secretKeyRef.name: \"A_b\" is not a Secret's name")
        );
        assert_eq!(
            error(
                json!({ "auth": { "password": { "secretKeyRef": { "name": "a", "key": "k/1" } } } })
            )
            .as_deref(),
            Some(
                "spec.settings.auth.password: secretKeyRef.key: \"k/1\" is not a Secret's key (letters, digits, - . _)"
            )
        );
        assert!(
            error(json!({ "auth": { "password": { "secretKeyRef": { "name": "a", "key": "k" }, "x": 1 } } }))
                .is_some_and(|e| e.ends_with("and nothing else"))
        );
    }

    #[test]
    fn pointers_read_as_field_paths() {
        assert_eq!(field_path("/auth/tokens/0"), ".auth.tokens[0]");
        assert_eq!(field_path("/a~1b/c~0d"), ".a/b.c~d");
        assert_eq!(field_path(""), "");
    }
}
