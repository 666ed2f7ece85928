//! Flows as manifest files: `GET /api/flows/{flow}/export` prints what `weir export FLOW`
//! prints, and `POST /api/import` applies a file as `weir apply -f` does (every document
//! checked first; one bad document applies nothing), secret settings given as values kept in
//! Secrets in a cluster, as a save keeps them.

use std::collections::{BTreeMap, BTreeSet};

use axum::{Json, http::header, response::IntoResponse};
use serde_json::Value;
use weir_api::{Applied, Problem};
use weir_model::{Resource, manifest::SyntaxError};

use super::{
    access::Caller,
    error::ApiError,
    extract::{Body, FlowAt, Params},
    secret_settings,
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
    apply_all(&caller, read, namespace.as_deref()).await
}

/// Applies manifests as `caller`, every one checked first; answers with the flows they hold.
/// In a cluster the secret settings nodes give as values go into Secrets first, as a save
/// puts them, so that whoever may read flows reads no secret.
pub async fn apply_all(
    caller: &Caller,
    read: Vec<manifests::Manifest>,
    namespace: Option<&str>,
) -> Result<Json<Applied>, ApiError> {
    let store = &*caller.store;
    let mut planned = match apply::plan(store, read, namespace, "?namespace=").await? {
        Ok(planned) => planned,
        Err(invalid) => return Err(ApiError::Invalid(invalid.iter().map(problem).collect())),
    };
    let mut kept_apart = Vec::new();
    if let Some(client) = &caller.client {
        let mut catalogues: BTreeMap<String, Catalogue> = BTreeMap::new();
        for node in planned.iter_mut().filter(|p| matches!(p.resource, Resource::FlowNode(_))) {
            let object = node.object_mut();
            let at = object.metadata.namespace.clone().unwrap_or_default();
            if !catalogues.contains_key(&at) {
                catalogues.insert(at.clone(), Catalogue::read(store, &at).await?);
            }
            let catalogue = &catalogues[&at];
            if let Some(secret) =
                secret_settings::keep_apart(client, catalogue, &at, object).await?
            {
                kept_apart.push((at, object.metadata.name.clone().unwrap_or_default(), secret));
            }
        }
    }
    let flows: BTreeSet<String> = planned
        .iter()
        .filter_map(|p| match &p.resource {
            Resource::Flow(flow) => flow.metadata.name.clone(),
            Resource::FlowNode(node) => Some(node.spec.flow.to_string()),
            Resource::Module(_) => None,
        })
        .collect();
    apply::apply(store, planned, |_, _, _| {}).await?;
    if let Some(client) = &caller.client {
        for (at, node, secret) in &kept_apart {
            secret_settings::own(client, store, at, node, secret).await?;
        }
    }
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
