//! JSON Schema pieces for free-form fields: settings, mappings and port schemas are structured
//! JSON in manifests, which the apiserver must keep as written instead of pruning.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON value, kept as written.
pub(crate) fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A JSON object with any fields, kept as written.
pub(crate) fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}
