//! Hiding secret fields of a message before anyone sees it: the inspect stream, the editor's
//! last messages and debug output all pass messages through [`redact`]. Secret settings are
//! hidden the same way from the editor and from exports ([`conceal`]), with a placeholder that
//! keeps the stored value when it comes back ([`restore`]).
//!
//! A JSON Schema (a port's, or a component's settings schema) marks a field secret with
//! `"x-weir-secret": true` (in Rust, `#[schemars(extend("x-weir-secret" = true))]`) or the
//! standard `"writeOnly": true`. The value of such a field, whatever its type, becomes
//! [`REDACTED`] in messages and [`KEPT`] in settings.

use serde_json::Value;

/// What a secret value in a message is replaced with.
pub const REDACTED: &str = "<redacted>";

/// What a secret setting is shown as in the editor and in exports. Written back in its place
/// (saving from the editor, applying an export), it keeps the value already stored.
pub const KEPT: &str = "<secret>";

/// How deep schemas and messages are followed; deeper parts are hidden whole, as a schema that
/// refers to itself could otherwise be followed without end.
const MAX_DEPTH: usize = 64;

/// Replaces every value that `schema` marks secret in `message`. Parts of the message the schema
/// does not describe are left as they are.
pub fn redact(schema: &Value, message: &mut Value) {
    walk(schema, schema, message, &mut String::new(), 0, &mut |_, secret| {
        *secret = Value::String(REDACTED.to_owned());
    });
}

/// Replaces every value that `schema` marks secret in `settings` with [`KEPT`], for showing
/// settings to someone who may change them but must not read the secrets.
pub fn conceal(schema: &Value, settings: &mut Value) {
    walk(schema, schema, settings, &mut String::new(), 0, &mut |_, secret| {
        *secret = Value::String(KEPT.to_owned());
    });
}

/// Puts the values of `stored` back where `settings` holds [`KEPT`] in a field `schema` marks
/// secret, undoing [`conceal`]. Returns the JSON pointers (such as `/auth/password`) of the
/// placeholders `stored` has no value for; those are left as they are.
pub fn restore(schema: &Value, settings: &mut Value, stored: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    walk(schema, schema, settings, &mut String::new(), 0, &mut |pointer, secret| {
        if secret.as_str() != Some(KEPT) {
            return;
        }
        match stored.pointer(pointer) {
            Some(value) => *secret = value.clone(),
            None => missing.push(pointer.to_owned()),
        }
    });
    missing
}

/// The JSON pointers (such as `/auth/password`) of the parts of `value` that `schema` marks
/// secret.
pub fn secret_pointers(schema: &Value, value: &Value) -> Vec<String> {
    let mut pointers = Vec::new();
    let mut walked = value.clone();
    walk(schema, schema, &mut walked, &mut String::new(), 0, &mut |pointer, _| {
        pointers.push(pointer.to_owned());
    });
    pointers
}

/// Whether `schema` marks anything secret, so callers can skip [`redact`] for ports without
/// secrets.
pub fn has_secrets(schema: &Value) -> bool {
    match schema {
        Value::Object(fields) => is_secret(schema) || fields.values().any(has_secrets),
        Value::Array(items) => items.iter().any(has_secrets),
        _ => false,
    }
}

/// Words that mark a field secret by its name, for messages no schema describes (what a
/// `debug` node keeps): compared without case, `-` or `_`.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "auth",
    "credential",
    "dockerconfigjson",
    "privatekey",
];

/// Hides every value whose field name says it is secret (`password`, `apiToken`,
/// `.dockerconfigjson`, `Authorization`, …), at any depth. A safety net for messages without
/// a schema, not a replacement for marking fields in one.
pub fn redact_by_name(message: &mut Value) {
    match message {
        Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                let plain: String = name
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect();
                if SECRET_NAMES.iter().any(|word| plain.contains(word)) {
                    *value = Value::String(REDACTED.to_owned());
                } else {
                    redact_by_name(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_by_name),
        _ => {}
    }
}

fn is_secret(schema: &Value) -> bool {
    let flag = |name| schema.get(name).and_then(Value::as_bool) == Some(true);
    flag("x-weir-secret") || flag("writeOnly")
}

/// Calls `secret` with the JSON pointer and value of every part of `message` that `schema`
/// marks secret (or that lies too deep to follow).
fn walk(
    root: &Value,
    schema: &Value,
    message: &mut Value,
    pointer: &mut String,
    depth: usize,
    secret: &mut dyn FnMut(&str, &mut Value),
) {
    if depth > MAX_DEPTH {
        return secret(pointer, message);
    }
    let schema = resolve(root, schema);
    if is_secret(schema) {
        return secret(pointer, message);
    }
    for combined in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(combined) {
            for branch in branches {
                walk(root, branch, message, pointer, depth + 1, secret);
            }
        }
    }
    let len = pointer.len();
    match message {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (name, value) in fields.iter_mut() {
                if let Some(field_schema) = properties.and_then(|p| p.get(name)).or(additional) {
                    pointer.push('/');
                    pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                    walk(root, field_schema, value, pointer, depth + 1, secret);
                    pointer.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for (index, item) in items.iter_mut().enumerate() {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                    walk(root, item_schema, item, pointer, depth + 1, secret);
                    pointer.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// Follows a local `$ref` (`#/$defs/Name`, `#/definitions/Name`), as schemars writes them.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { return schema };
    reference.strip_prefix('#').and_then(|pointer| root.pointer(pointer)).unwrap_or(schema)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_fields_are_hidden_at_any_depth_and_through_refs() {
        let schema = json!({
            "type": "object",
            "properties": {
                "registry": { "type": "string" },
                "auth": { "$ref": "#/$defs/Auth" },
                "tokens": { "type": "array", "items": { "type": "string", "writeOnly": true } },
                "extra": { "type": "object", "additionalProperties": { "x-weir-secret": true } }
            },
            "$defs": {
                "Auth": {
                    "type": "object",
                    "properties": {
                        "username": { "type": "string" },
                        "password": { "type": "string", "x-weir-secret": true }
                    }
                }
            }
        });
        let mut message = json!({
            "registry": "ghcr.io",
            "auth": { "username": "bot", "password": "hunter2" },
            "tokens": ["a", "b"],
            "extra": { "x": { "nested": 1 } },
            "unknown": "kept"
        });
        redact(&schema, &mut message);
        assert_eq!(
            message,
            json!({
                "registry": "ghcr.io",
                "auth": { "username": "bot", "password": REDACTED },
                "tokens": [REDACTED, REDACTED],
                "extra": { "x": REDACTED },
                "unknown": "kept"
            })
        );
        assert!(has_secrets(&schema));
        assert!(!has_secrets(&json!({ "type": "object", "properties": { "a": {} } })));
    }

    #[test]
    fn fields_named_like_secrets_are_hidden_without_a_schema() {
        let mut message = json!({
            "image": "nginx",
            "auths": { "ghcr.io": { "auth": "dXNlcjpwYXNz" } },
            "items": [{ "apiToken": "t0k", "name": "a" }],
            ".dockerconfigjson": "e30=",
            "Private-Key": "k",
            "author": "ada"
        });
        redact_by_name(&mut message);
        assert_eq!(
            message,
            json!({
                "image": "nginx",
                "auths": REDACTED,
                "items": [{ "apiToken": REDACTED, "name": "a" }],
                ".dockerconfigjson": REDACTED,
                "Private-Key": REDACTED,
                "author": REDACTED
            })
        );
    }

    #[test]
    fn concealed_settings_get_their_stored_secrets_back() {
        let schema = json!({
            "type": "object",
            "properties": {
                "user": { "type": "string" },
                "password": { "type": "string", "x-weir-secret": true },
                "keys": { "type": "object", "additionalProperties": { "writeOnly": true } }
            }
        });
        let stored = json!({ "user": "bot", "password": "hunter2", "keys": { "a/b": "k1" } });
        let mut shown = stored.clone();
        conceal(&schema, &mut shown);
        assert_eq!(shown, json!({ "user": "bot", "password": KEPT, "keys": { "a/b": KEPT } }));
        // A changed secret is taken as given; a kept one comes back from the store.
        let mut edited =
            json!({ "user": "ops", "password": KEPT, "keys": { "a/b": "k2", "c": KEPT } });
        let missing = restore(&schema, &mut edited, &stored);
        assert_eq!(
            edited,
            json!({ "user": "ops", "password": "hunter2", "keys": { "a/b": "k2", "c": KEPT } })
        );
        assert_eq!(missing, ["/keys/c"]);
    }

    #[test]
    fn a_schema_that_refers_to_itself_ends() {
        let schema = json!({ "allOf": [{ "$ref": "#" }] });
        let mut message = json!({ "a": 1 });
        redact(&schema, &mut message);
        assert_eq!(message, json!(REDACTED));
    }
}
