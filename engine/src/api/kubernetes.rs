//! The editor's pickers and previews for the nodes that work on any Kubernetes kind:
//! `GET /api/kubernetes/offer` (the kinds and namespaces the caller may list) and
//! `GET /api/kubernetes/schema?apiVersion=&kind=` (a kind's schema, from the apiserver's
//! OpenAPI), both asked of the cluster as the caller: with their own token in a cluster, and
//! on `weir up` with the kubeconfig its nodes act with (see [`crate::kinds`]).

use axum::{Json, extract::State};
use kube::Client;
use weir_api::{KindSchema, KubernetesOffer};

use super::{access::Caller, error::ApiError, extract::Params, state::Api};
use crate::kinds::{self, KindsError};

/// The client that asks the cluster as `caller`, and the namespace the caller works in there:
/// `?namespace=` in a cluster, the kubeconfig's on `weir up`.
async fn client_of(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<(Client, String), ApiError> {
    match &caller.client {
        Some(client) => Ok((client.clone(), params.namespace()?)),
        None => Ok(api.own_cluster.client().await?),
    }
}

/// The kinds the caller may list in the namespace they work in, and the namespaces they may
/// pick.
pub async fn offer(
    State(api): State<Api>,
    caller: Caller,
    params: Params,
) -> Result<Json<KubernetesOffer>, ApiError> {
    let (client, namespace) = client_of(&api, &caller, &params).await?;
    kinds::offer(&client, &namespace).await.map(Json).map_err(|err| refused(&caller, err))
}

/// The schema of `?kind=` in `?apiVersion=`.
pub async fn schema(
    State(api): State<Api>,
    caller: Caller,
    params: Params,
) -> Result<Json<KindSchema>, ApiError> {
    let (api_version, kind) = (params.required("apiVersion")?, params.required("kind")?);
    let (client, _) = client_of(&api, &caller, &params).await?;
    let schema =
        api.schemas.of(&client, api_version, kind).await.map_err(|err| refused(&caller, err))?;
    Ok(Json(KindSchema::clone(&schema)))
}

/// What the cluster said, as the API answers it: a refusal of the kubeconfig's credentials is
/// no reason for the editor to ask the user to sign in.
fn refused(caller: &Caller, err: KindsError) -> ApiError {
    match err {
        KindsError::Unauthorized if caller.client.is_none() => ApiError::unreachable(
            "the cluster does not accept the kubeconfig's credentials".to_owned(),
        ),
        err => err.into(),
    }
}
