//! Reading the JSON Schemas of settings and ports as the editor needs them: following `$ref`s
//! and optional (`null`-or) types, making a sample value to start from, and a light check of a
//! value (types, required fields, enums, unknown fields) for the mapping preview. The engine
//! does the full validation when a message is delivered.

use serde_json::{Map, Value, json};

/// The schema `schema` stands for: its `$ref` followed (against `root`'s `$defs` or
/// `definitions`), and a `null`-or union (an `Option`) unwrapped.
pub fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..16 {
        if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            let path = reference.trim_start_matches("#/");
            let found = path.split('/').try_fold(root, |at, key| at.get(key));
            match found {
                Some(target) => {
                    current = target;
                    continue;
                }
                None => return current,
            }
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(options) = current.get(union).and_then(Value::as_array) {
                let not_null: Vec<&Value> = options
                    .iter()
                    .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                if let [only] = not_null.as_slice() {
                    current = only;
                    continue;
                }
            }
        }
        if let Some([only]) = current.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            current = only;
            continue;
        }
        return current;
    }
    current
}

/// The schema's type, the first non-null one when it lists several.
pub fn kind(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null"),
        _ if schema.get("properties").is_some() => Some("object"),
        _ if choices(schema).is_some() => Some("enum"),
        _ => None,
    }
}

/// The values a schema allows when it lists them: `enum`, or a `oneOf` (`anyOf`) of `const`s
/// as documented enums come out of schemars.
pub fn choices(schema: &Value) -> Option<Vec<Value>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.clone());
    }
    ["oneOf", "anyOf"].iter().find_map(|union| {
        let options = schema.get(*union)?.as_array()?;
        options.iter().map(|option| option.get("const").cloned()).collect::<Option<Vec<_>>>()
    })
}

/// Whether a value of this schema is a secret, to be shown as a password field and never sent
/// back in clear.
pub fn is_secret(schema: &Value) -> bool {
    schema.get("x-weir-secret").and_then(Value::as_bool) == Some(true)
        || schema.get("writeOnly").and_then(Value::as_bool) == Some(true)
}

/// A value to start from: the schema's first example, else its default, else one made from its
/// type with every required field filled.
pub fn sample(root: &Value, schema: &Value) -> Value {
    let schema = resolve(root, schema);
    if let Some(example) = schema.get("examples").and_then(|e| e.get(0)) {
        return example.clone();
    }
    if let Some(default) = schema.get("default") {
        return default.clone();
    }
    if let Some(first) = choices(schema).and_then(|c| c.into_iter().next()) {
        return first;
    }
    match kind(schema) {
        Some("object") => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut object = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if required.contains(&name.as_str()) {
                        object.insert(name.clone(), sample(root, property));
                    }
                }
            }
            Value::Object(object)
        }
        Some("array") => json!([]),
        Some("string") => json!(""),
        Some("integer" | "number") => json!(0),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

/// A value with every field `schema` names, `depth` levels of fields deep (a list with one
/// item), so that a mapping's source shows each field it may take; scalars as [`sample`].
pub fn outline(root: &Value, schema: &Value, depth: usize) -> Value {
    let schema = resolve(root, schema);
    if choices(schema).is_some() {
        return sample(root, schema);
    }
    match kind(schema) {
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let fields = properties.filter(|_| depth > 0).into_iter().flatten();
            Value::Object(
                fields
                    .map(|(name, field)| (name.clone(), outline(root, field, depth - 1)))
                    .collect(),
            )
        }
        Some("array") => match schema.get("items") {
            Some(items) if depth > 0 => json!([outline(root, items, depth - 1)]),
            _ => json!([]),
        },
        _ => sample(root, schema),
    }
}

/// What is wrong with `value` for `schema`, each problem naming its field (`/a/0/b`).
pub fn problems(root: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(root, schema, value, "", &mut found);
    found
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let schema = resolve(root, schema);
    let at = if path.is_empty() { "/" } else { path };
    if let Some(allowed) = choices(schema)
        && !allowed.contains(value)
    {
        found.push(format!("{at}: not one of the allowed values"));
        return;
    }
    let fits = |kind: &str| match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !kinds.is_empty() && !kinds.iter().any(|k| fits(k)) {
        found.push(format!("{at}: {} is not of type {}", type_name(value), kinds.join(" or ")));
        return;
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    found.push(format!("{at}: {name} is required"));
                }
            }
        }
        for (name, field) in object {
            let field_path = format!("{path}/{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => check(root, property, field, &field_path, found),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    found.push(format!("{field_path}: not a field of this port"));
                }
                None => {
                    if let Some(extra) =
                        schema.get("additionalProperties").filter(|a| a.is_object())
                    {
                        check(root, extra, field, &field_path, found);
                    }
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{path}/{index}"), found);
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["image", "replicas"],
            "additionalProperties": false,
            "properties": {
                "image": { "$ref": "#/$defs/Image" },
                "replicas": { "type": "integer", "default": 1 },
                "mode": { "anyOf": [{ "enum": ["fast", "safe"] }, { "type": "null" }] },
                "tags": { "type": "array", "items": { "type": "string" } },
                "password": { "type": "string", "x-weir-secret": true }
            },
            "$defs": { "Image": { "type": "string", "examples": ["nginx:1.27"] } }
        })
    }

    #[test]
    fn references_and_optionals_resolve() {
        let root = schema();
        let image = resolve(&root, &root["properties"]["image"]);
        assert_eq!(kind(image), Some("string"));
        let mode = resolve(&root, &root["properties"]["mode"]);
        assert_eq!(kind(mode), Some("enum"));
        assert!(is_secret(&root["properties"]["password"]));
        assert!(!is_secret(image));
    }

    #[test]
    fn documented_enums_are_choices() {
        let schema = json!({ "oneOf": [
            { "const": "immediately", "description": "at once" },
            { "const": "afterInterval", "description": "later" }
        ]});
        assert_eq!(choices(&schema), Some(vec![json!("immediately"), json!("afterInterval")]));
        assert_eq!(kind(&schema), Some("enum"));
        assert_eq!(sample(&schema, &schema), json!("immediately"));
        assert_eq!(
            problems(&schema, &schema, &json!("soon")),
            ["/: not one of the allowed values"]
        );
        assert_eq!(choices(&json!({ "type": "string" })), None);
    }

    #[test]
    fn samples_fill_what_is_required_from_examples_and_defaults() {
        let root = schema();
        assert_eq!(sample(&root, &root), json!({ "image": "nginx:1.27", "replicas": 1 }));
    }

    #[test]
    fn an_outline_has_every_field_to_a_depth() {
        let root = json!({ "type": "object", "properties": {
            "kind": { "type": "string", "enum": ["Deployment"] },
            "spec": { "type": "object", "properties": {
                "replicas": { "type": "integer" },
                "containers": { "type": "array", "items": { "type": "object", "properties": {
                    "image": { "type": "string" } } } } } } } });
        assert_eq!(
            outline(&root, &root, 4),
            json!({ "kind": "Deployment", "spec": { "replicas": 0, "containers": [{ "image": "" }] } })
        );
        assert_eq!(
            outline(&root, &root, 2),
            json!({ "kind": "Deployment", "spec": { "replicas": 0, "containers": [] } })
        );
    }

    #[test]
    fn problems_name_their_field() {
        let root = schema();
        assert!(problems(&root, &root, &json!({ "image": "a", "replicas": 2 })).is_empty());
        assert_eq!(
            problems(
                &root,
                &root,
                &json!({ "image": 3, "tags": ["a", 1], "mode": "slow", "extra": true })
            ),
            [
                "/: replicas is required",
                "/image: a number is not of type string",
                "/tags/1: a number is not of type string",
                "/mode: not one of the allowed values",
                "/extra: not a field of this port",
            ]
        );
        assert_eq!(problems(&root, &root, &json!([])), ["/: an array is not of type object"]);
    }
}
