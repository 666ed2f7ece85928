//! Reaching a running engine's API from the command line, as the editor does: at `--engine`
//! (`weir up`'s address unless told), with the token `weir up` was started with, or in a
//! cluster the kubeconfig user's own bearer token, so the engine acts for that user.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::{Serialize, de::DeserializeOwned};
use weir_api::{ErrorBody, REQUEST_HEADER};

use crate::cli::{EngineAt, StoreChoice};

/// How long a request that starts no run may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read: a large flow, or many messages.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// A running engine's API.
#[derive(Debug)]
pub struct Remote {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    /// The engine `at` names, with the token `at` or the kubeconfig of `choice` gives.
    pub async fn new(at: &EngineAt, choice: StoreChoice) -> Result<Self> {
        let base = Url::parse(&at.engine)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .with_context(|| {
                format!("--engine {:?} is not an http:// or https:// URL", at.engine)
            })?;
        let token = match (&at.token_file, choice) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the token in {}", file.display()))?;
                Some(text.trim().to_owned())
            }
            (None, StoreChoice::Cluster { kubeconfig, context }) => {
                let config =
                    weir_store::kubernetes::config(kubeconfig.as_deref(), context.as_deref())
                        .await
                        .context("cannot read the kubeconfig")?;
                let token = crate::gate::bearer(&config).and_then(|bearer| bearer.token());
                Some(token.context(
                    "the kubeconfig's user has no bearer token for the engine to act as (a \
                     client certificate cannot be passed on): use one with a token, such as \
                     `kubectl create token` prints",
                )?)
            }
            (None, StoreChoice::Embedded(_)) => None,
        };
        let http = reqwest::Client::builder().build().context("cannot make an HTTP client")?;
        Ok(Self { base, token, http })
    }

    /// `GET /api/{path…}?namespace=`.
    pub async fn get<T: DeserializeOwned>(&self, path: &[&str], namespace: &str) -> Result<T> {
        let request = self.http.get(self.url(path, namespace)).timeout(READ_TIMEOUT);
        self.answer(request).await
    }

    /// `POST /api/{path…}?namespace=` with a JSON body, waiting up to `timeout` and a little
    /// more for the answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        namespace: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T> {
        let request = self
            .http
            .post(self.url(path, namespace))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).context("cannot write the request")?)
            .timeout(timeout.saturating_add(READ_TIMEOUT));
        self.answer(request).await
    }

    /// The URL of an API route; each part of `path` is one path segment, escaped.
    fn url(&self, path: &[&str], namespace: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("api").extend(path);
        }
        url.query_pairs_mut().append_pair("namespace", namespace);
        url
    }

    /// `method` on the API route `path` (such as `/flows/hello?namespace=shop`; the caller
    /// checks the names in it) with a JSON `body`, waiting up to `timeout`: the status and the
    /// body as the engine answered, a refusal included. The MCP tools read answers this way.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("api").extend(path.trim_start_matches('/').split('/'));
        }
        url.set_query((!query.is_empty()).then_some(query));
        let mut request = self.http.request(method, url).timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        self.send(request).await
    }

    /// Sends `request` as the caller: the status and the body, at most [`MAX_ANSWER_BYTES`].
    async fn send(&self, request: RequestBuilder) -> Result<(StatusCode, Vec<u8>)> {
        let mut request = request.header(REQUEST_HEADER, "1");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.with_context(|| {
            format!("cannot reach the engine at {} (is `weir up` running? see --engine)", self.base)
        })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("the engine at {} broke off its answer", self.base))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                bail!(
                    "the engine at {} answered more than {} MiB, the most read",
                    self.base,
                    MAX_ANSWER_BYTES >> 20
                );
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    async fn answer<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).with_context(|| {
                format!("the engine at {} answered something this weir does not read", self.base)
            });
        }
        let refused = serde_json::from_slice::<ErrorBody>(&body).ok().and_then(|answer| {
            let problems = answer.errors.iter().map(ToString::to_string);
            let all: Vec<String> =
                answer.error.map(|e| e.message).into_iter().chain(problems).collect();
            (!all.is_empty()).then(|| all.join("; "))
        });
        match refused {
            Some(message) => bail!("the engine answered {status}: {message}"),
            None => bail!("the engine at {} answered {status}", self.base),
        }
    }
}
