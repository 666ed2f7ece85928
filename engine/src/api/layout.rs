//! `PUT /api/flows/{flow}/layout`: moves nodes on the canvas by writing only the Flow's
//! `spec.layout`, so the nodes (and their generations) are never touched.

use axum::Json;
use serde_json::{Map, Value};
use weir_api::{Layout, Problem};
use weir_model::{Kind, Position};
use weir_store::StoreError;

use super::{
    access::Caller,
    document::to_json,
    error::ApiError,
    extract::{Body, FlowAt},
    modify::modify,
};

/// The most nodes a layout places, as the CRD schema allows.
const MAX_LAYOUT_ENTRIES: usize = 512;

/// Writes the flow's layout; answers with the Flow.
pub async fn put(
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: Layout = body.json()?;
    if request.layout.len() > MAX_LAYOUT_ENTRIES {
        return Err(ApiError::invalid(Problem::new(
            Some(format!("Flow/{flow}")),
            "spec.layout",
            format!(
                "{} nodes is too many: a layout places at most {MAX_LAYOUT_ENTRIES}",
                request.layout.len()
            ),
        )));
    }
    let layout: Map<String, Value> = request
        .layout
        .iter()
        .map(|(node, position)| (node.to_string(), position_json(*position)))
        .collect();
    let written = modify(&*caller.store, Kind::Flow, &namespace, &flow, |data| {
        let Some(spec) = data.get_mut("spec").and_then(Value::as_object_mut) else { return false };
        let empty = Value::Object(Map::new());
        if spec.get("layout").unwrap_or(&empty) == &Value::Object(layout.clone()) {
            return false;
        }
        if layout.is_empty() {
            spec.shift_remove("layout");
        } else {
            spec.insert("layout".to_owned(), Value::Object(layout.clone()));
        }
        true
    })
    .await
    .map_err(|err| match err {
        StoreError::NotFound(_) => {
            ApiError::not_found(format!("flow {namespace}/{flow} does not exist"))
        }
        err => err.into(),
    })?;
    Ok(Json(to_json(written)?))
}

/// A position as JSON with whole numbers written as integers, as manifests write them: `80`
/// and `80.0` are different JSON, and the difference would rewrite an unchanged layout and
/// show up in exports.
pub fn position_json(position: Position) -> Value {
    let number = |n: f64| {
        // Within ±2^53 every whole f64 is exactly an i64.
        if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
            Value::from(n as i64)
        } else {
            Value::from(n)
        }
    };
    let mut fields = Map::new();
    fields.insert("left".to_owned(), number(position.left));
    fields.insert("top".to_owned(), number(position.top));
    Value::Object(fields)
}

/// A Flow document's layout with whole numbers written as integers (see [`position_json`]).
pub fn normalize(flow: &mut Value) {
    let Some(Value::Object(layout)) = flow.pointer_mut("/spec/layout") else { return };
    for position in layout.values_mut() {
        if let Ok(parsed) = serde_json::from_value::<Position>(position.clone()) {
            *position = position_json(parsed);
        }
    }
}
