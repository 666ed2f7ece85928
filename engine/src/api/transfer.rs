//! Flows as manifest files: `GET /api/flows/{flow}/export` prints what `weir export FLOW`
//! prints, and `POST /api/import` applies a file as `weir apply -f` does (every document
//! checked first; one bad document applies nothing).

use std::collections::BTreeSet;

use axum::{Json, http::header, response::IntoResponse};
use serde_json::Value;
use weir_api::{Applied, Problem};
use weir_model::{Resource, manifest::SyntaxError};
use weir_store::Store;

use super::{
    access::Caller,
    error::ApiError,
    extract::{Body, FlowAt, Params},
};
use crate::{
    catalogue::Catalogue,
    manifests::{self, Invalid},
    ops::{apply, export},
};

/// What import errors name as the file.
const SOURCE: &str = "the body";

/// The flow and its nodes as YAML manifests, secret settings concealed.
pub async fn export(
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
) -> Result<impl IntoResponse, ApiError> {
    let store = &*caller.store;
    let object = super::document::existing_flow(store, &namespace, &flow).await?;
    let catalogue = Catalogue::read(store, &namespace).await?;
    let documents = export::manifests(store, &catalogue, &object, false).await?;
    Ok(([(header::CONTENT_TYPE, "text/yaml")], export::to_yaml(&documents)?))
}

/// Applies a YAML (or JSON) file of one or more documents; answers with the flows it holds.
pub async fn import(caller: Caller, params: Params, body: Body) -> Result<Json<Applied>, ApiError> {
    // Without ?namespace= documents go to their own namespace, as with `weir apply`.
    let namespace = params.namespace_if_given()?;
    let text = std::str::from_utf8(&body.0)
        .map_err(|err| ApiError::bad_request(format!("the body is not UTF-8 text: {err}")))?;
    let read = manifests::parse(SOURCE, text).map_err(|err| {
        match err.chain().find_map(|e| e.downcast_ref::<SyntaxError>()) {
            Some(syntax) => ApiError::invalid(Problem {
                document: Some(syntax.document),
                ..Problem::new(None, "", format!("not valid YAML: {}", syntax.message))
            }),
            None => ApiError::bad_request(format!("{err:#}")),
        }
    })?;
    if read.is_empty() {
        return Err(ApiError::bad_request("the body holds no manifests"));
    }
    apply_all(&*caller.store, read, namespace.as_deref()).await
}

/// Applies manifests, every one checked first; answers with the flows they hold.
pub async fn apply_all(
    store: &dyn Store,
    read: Vec<manifests::Manifest>,
    namespace: Option<&str>,
) -> Result<Json<Applied>, ApiError> {
    let planned = match apply::plan(store, read, namespace, "?namespace=").await? {
        Ok(planned) => planned,
        Err(invalid) => return Err(ApiError::Invalid(invalid.iter().map(problem).collect())),
    };
    let flows: BTreeSet<String> = planned
        .iter()
        .filter_map(|p| match &p.resource {
            Resource::Flow(flow) => flow.metadata.name.clone(),
            Resource::FlowNode(node) => Some(node.spec.flow.to_string()),
            Resource::Module(_) => None,
        })
        .collect();
    apply::apply(store, planned, |_, _, _| {}).await?;
    Ok(Json(Applied { flows: flows.into_iter().collect() }))
}

/// An invalid document as a problem naming its place, resource and field.
fn problem(invalid: &Invalid) -> Problem {
    let value = &invalid.manifest.value;
    let kind = value.get("kind").and_then(Value::as_str);
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    let resource = match (kind, name) {
        (Some(kind), Some(name)) => Some(format!("{kind}/{name}")),
        (Some(kind), None) => Some(kind.to_owned()),
        _ => None,
    };
    let position = invalid.manifest.position;
    Problem {
        document: Some(position.document),
        item: position.item,
        ..Problem::new(resource, &invalid.error.path, invalid.error.message.clone())
    }
}
