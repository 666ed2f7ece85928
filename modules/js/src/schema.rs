//! Port schemas from examples: a flow author shows one input and one output, and the node's
//! ports take their shape, so the editor can check the mappings around a script.

use serde_json::{Map, Value, json};

/// The JSON Schema of values shaped like `example`: objects with its fields (more allowed, none
/// required), arrays of its first item's shape, and its scalar types. Null means any value.
pub fn schema_of_example(example: &Value) -> Value {
    match example {
        Value::Null => json!({}),
        Value::Bool(_) => json!({ "type": "boolean" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "type": "integer" }),
        Value::Number(_) => json!({ "type": "number" }),
        Value::String(_) => json!({ "type": "string" }),
        Value::Array(items) => match items.first() {
            Some(first) => json!({ "type": "array", "items": schema_of_example(first) }),
            None => json!({ "type": "array" }),
        },
        Value::Object(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(name, value)| (name.clone(), schema_of_example(value)))
                .collect();
            json!({ "type": "object", "properties": properties })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_become_schemas() {
        let schema = schema_of_example(
            &json!({ "images": [{ "name": "nginx", "replicas": 2 }], "ratio": 0.5, "any": null }),
        );
        assert_eq!(
            schema,
            json!({ "type": "object", "properties": {
                "images": { "type": "array", "items": { "type": "object", "properties": {
                    "name": { "type": "string" }, "replicas": { "type": "integer" } } } },
                "ratio": { "type": "number" },
                "any": {}
            } })
        );
    }
}
