//! The solutions gallery: `GET /api/solutions` lists the ready-made flows with their settings,
//! and `POST /api/solutions/{name}/install` installs one with settings given as text, as
//! `weir solution install NAME --set key=value` does.

use axum::{
    Json,
    extract::{Path, State},
};
use weir_api::{Applied, Install, SolutionSetting, SolutionSummary};

use super::{
    access::Caller,
    error::ApiError,
    extract::{Body, Params},
    state::Api,
    transfer,
};
use crate::ops::{error::SolutionProblem, solution};

/// Every solution, with what its settings are for.
pub async fn list(State(_): State<Api>) -> Result<Json<Vec<SolutionSummary>>, ApiError> {
    let solutions = solution::all(&solution::default_dir())?;
    let listed = solutions
        .into_iter()
        .map(|solution| {
            let spec = solution.spec;
            let settings = spec
                .settings
                .into_iter()
                .map(|setting| SolutionSetting {
                    kind: format!("{:?}", setting.kind).to_lowercase(),
                    name: setting.name,
                    description: setting.description,
                    default: setting.default,
                    required: setting.required,
                    values: setting.values,
                    minimum: setting.minimum,
                    maximum: setting.maximum,
                })
                .collect();
            SolutionSummary {
                name: spec.name,
                title: spec.title,
                description: spec.description,
                settings,
            }
        })
        .collect();
    Ok(Json(listed))
}

/// Installs a solution; answers with its flows.
pub async fn install(
    caller: Caller,
    Path(name): Path<String>,
    params: Params,
    body: Body,
) -> Result<Json<Applied>, ApiError> {
    let install: Install = if body.0.is_empty() {
        Install::default()
    } else {
        serde_json::from_slice(&body.0)
            .map_err(|err| ApiError::bad_request(format!("the body is not an install: {err}")))?
    };
    let found = solution::find(&solution::default_dir(), &name)?;
    let sets: Vec<(String, String)> = install.settings.into_iter().collect();
    let manifests = solution::manifests_of(&found, &sets).map_err(|err| match err {
        // The path names the solution: the answer says only what does not fit.
        SolutionProblem::Settings { source, .. } => {
            ApiError::bad_request(super::error::chain(&source))
        }
        err => err.into(),
    })?;
    let flows = solution::flows_in(&manifests);
    let namespace = params.namespace_if_given()?;
    let installed = transfer::apply_all(&caller, manifests, namespace.as_deref()).await?;
    // In a cluster each flow's account is made as the caller, who must hold its rules, in the
    // namespace the flows went to (a solution's manifests name none).
    if let Some(client) = &caller.client {
        let namespace = namespace.unwrap_or_else(|| weir_store::DEFAULT_NAMESPACE.to_owned());
        let store = &*caller.store;
        solution::create_accounts(store, &[], client, &namespace, &flows, |_| {})
            .await
            .map_err(|err| ApiError::forbidden(super::error::chain(&err)))?;
    }
    Ok(installed)
}
