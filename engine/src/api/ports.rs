//! A component's ports for given settings (a router has one output per route), from the
//! registrations of the modules running in this process: `POST
//! /api/modules/{module}/components/{component}/ports`, and the checks before saving a flow.

use axum::{
    Json,
    extract::{Path, State},
};
use serde_json::Value;
use weir_api::{PortsRequest, Problem};
use weir_model::PortDescriptor;
use weir_runtime::Runtime;
use weir_sdk::{NodeError, Port};

use super::{error::ApiError, extract::Body, state::Api};

/// The ports a node of `module`'s `component` would have with `settings`, when the module runs
/// in this process; a node is built to learn them (settings checks included) and let go.
pub async fn resolve(
    runtime: Option<&Runtime>,
    module: &str,
    component: &str,
    settings: &Value,
) -> Option<Result<Vec<PortDescriptor>, NodeError>> {
    let registration = runtime?.modules().iter().find(|m| m.name() == module)?.find(component)?;
    let node = match registration.build(settings) {
        Ok(node) => node,
        Err(err) => return Some(Err(err)),
    };
    let ports = node.ports().iter().map(Port::descriptor).collect();
    node.destroy().await;
    Some(ports)
}

/// Answers with the ports of a component for the settings given.
pub async fn resolve_for(
    State(api): State<Api>,
    Path((module, component)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Vec<PortDescriptor>>, ApiError> {
    let request: PortsRequest = body.json()?;
    let settings = Value::Object(request.settings);
    match resolve(api.runtime.as_ref(), &module, &component, &settings).await {
        None => Err(ApiError::not_found(format!(
            "component {module}/{component} does not run in this process"
        ))),
        Some(Err(err)) => Err(ApiError::invalid(Problem::new(None, "settings", err.message()))),
        Some(Ok(ports)) => Ok(Json(ports)),
    }
}
