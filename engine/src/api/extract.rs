//! Reading requests: the query parameters, names in the path and JSON bodies, each failure a
//! 400 that names the parameter or field, in the API's error shape.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use weir_api::FailureKind;
use weir_model::names::NameRule;

use super::{error::ApiError, state::Api};

/// The largest request body the API reads: a flow of many nodes, or a file of many flows.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The query parameters of a request.
#[derive(Debug)]
pub struct Params {
    given: HashMap<String, String>,
    /// The namespace of requests that name none: the engine's home.
    home: String,
}

impl FromRequestParts<Api> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let Query(given) = Query::try_from_uri(&parts.uri).map_err(|err| {
            ApiError::bad_request(format!("the query string: {}", err.body_text()))
        })?;
        Ok(Self { given, home: api.scope.home.clone() })
    }
}

impl Params {
    /// `?namespace=`, or the engine's home namespace.
    pub fn namespace(&self) -> Result<String, ApiError> {
        Ok(self.namespace_if_given()?.unwrap_or_else(|| self.home.clone()))
    }

    /// `?namespace=`, when given.
    pub fn namespace_if_given(&self) -> Result<Option<String>, ApiError> {
        self.given
            .get("namespace")
            .map(|namespace| name("namespace", "query parameter namespace", namespace))
            .transpose()
    }

    /// `?flow=`, when given.
    pub fn flow(&self) -> Result<Option<String>, ApiError> {
        self.given.get("flow").map(|flow| name("flow", "query parameter flow", flow)).transpose()
    }

    /// `?KEY=`, which the route needs.
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.given
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("query parameter {key}: it is required")))
    }

    /// `?limit=`: `default` when not given, at most `max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.given.get("limit") else { return Ok(default) };
        match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(ApiError::bad_request(format!(
                "query parameter limit: {text:?} is not a number from 1 to {max}"
            ))),
        }
    }
}

/// The flow a route's path names (`/flows/{flow}…`), its name checked, in the namespace the
/// request is for.
#[derive(Debug)]
pub struct FlowAt {
    /// The flow's name.
    pub flow: String,
    /// `?namespace=`, or the engine's home.
    pub namespace: String,
}

impl FromRequestParts<Api> for FlowAt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let Path(flow) = Path::<String>::from_request_parts(parts, api)
            .await
            .map_err(|err| ApiError::bad_request(format!("the path: {}", err.body_text())))?;
        let flow = name("flow", "the path", &flow)?;
        let namespace = Params::from_request_parts(parts, api).await?.namespace()?;
        Ok(Self { flow, namespace })
    }
}

/// Checks a resource name from the path or the query: `what` says which (`flow`, `node`).
pub fn name(what: &str, place: &str, value: &str) -> Result<String, ApiError> {
    if NameRule::DnsLabel.accepts(value) {
        return Ok(value.to_owned());
    }
    Err(ApiError::bad_request(format!(
        "{place}: {value:?} is not a valid {what} name: use {}",
        NameRule::DnsLabel.describe()
    )))
}

/// A request body, read whole.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|err| {
            if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::Failed {
                    status: err.status(),
                    kind: FailureKind::TooLarge,
                    message: format!(
                        "the body is larger than {} MiB, the most the API reads",
                        MAX_BODY_BYTES >> 20
                    ),
                }
            } else {
                ApiError::bad_request(format!(
                    "the body cannot be read: {}",
                    err.body_text().to_lowercase()
                ))
            }
        })?;
        Ok(Self(bytes))
    }
}

impl Body {
    /// The body as JSON of type `T`; a failure names the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let not_json = |inner| ApiError::bad_request(format!("the body is not JSON: {inner}"));
        let mut reader = serde_json::Deserializer::from_slice(&self.0);
        let value = serde_path_to_error::deserialize(&mut reader).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                not_json(inner)
            } else if path == "." {
                ApiError::bad_request(format!("the body: {inner}"))
            } else {
                ApiError::bad_request(format!("the body's field {path}: {inner}"))
            }
        })?;
        reader.end().map_err(not_json)?;
        Ok(value)
    }
}
