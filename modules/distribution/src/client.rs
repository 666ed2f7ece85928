//! One registry as the copier talks to it: manifests read and written as raw bytes (so a copy is
//! byte-exact and keeps its digest), blobs checked with HEAD, streamed out with GET, and
//! streamed in as one monolithic PUT whose sha256 is verified while it flows.
//!
//! Each request authenticates as the registry asks (see [`crate::auth`]), and a request that is
//! safe to send again is retried on throttling, server errors and lost connections, with
//! exponential backoff and jitter, waiting as long as a `Retry-After` says.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode, header};
use sha2::{Digest as _, Sha256};

use crate::{
    auth::{Challenge, Credentials, TokenAnswer, TokenCache, parse_challenge},
    reference::check_digest,
};

/// Every manifest media type the copier understands, sent on every manifest GET and HEAD: a
/// registry answers with the form it stores only when the client accepts it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may stay silent in the middle of a response, so a black-holed peer
/// fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a request that is safe to repeat is sent, in all.
const ATTEMPTS: u32 = 4;
/// The wait before the second attempt; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The first chunk size once a registry refused a monolithic upload.
const FIRST_CHUNK: usize = 4 << 20;
/// The smallest chunk: a registry refusing these takes no uploads at all.
const SMALLEST_CHUNK: usize = 64 << 10;
/// The most bytes [`Registry::blob_bytes`] reads.
const SMALL_BLOB_LIMIT: usize = 4 << 20;
/// The largest manifest or index read: distribution's own limit for what it accepts.
pub const MANIFEST_LIMIT: usize = 4 << 20;
/// The largest token service answer read; real ones are a few kilobytes.
pub const TOKEN_ANSWER_LIMIT: usize = 64 << 10;
/// How much of an error answer's body is read (for its registry error codes); the rest is
/// left unread.
const ERROR_BODY_LIMIT: usize = 4 << 10;
/// How many characters of an error answer's body an error quotes.
const ERROR_BODY_SHOWN: usize = 300;
/// The longest wait between attempts, `Retry-After` included.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A registry failure, named by what was being done.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error status.
    #[error("{doing}: the registry answered {status}{}", detail(.body))]
    Status {
        /// What was being done, such as `GET manifest library/nginx:1.27 from docker.io`.
        doing: String,
        /// The status.
        status: StatusCode,
        /// The start of the error body (registry error codes), if any.
        body: String,
    },
    /// The request did not get an answer.
    #[error("{doing}: {}", chain(.source))]
    Transport {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The registry stayed silent past the timeout, at every attempt.
    #[error("{doing}: the registry did not answer within {}, {attempts} times", shown(*.waited))]
    Silent {
        /// What was being done.
        doing: String,
        /// How long each attempt waited.
        waited: Duration,
        /// How many attempts there were.
        attempts: u32,
    },
    /// The registry refused the credentials (or their absence).
    #[error("{doing}: the registry refused access ({reason})")]
    Denied {
        /// What was being done.
        doing: String,
        /// Why, as far as the registry said.
        reason: String,
    },
    /// The registry refused, in the middle of an upload, a token it took when the upload
    /// started.
    #[error("{doing}: the registry's token expired during the upload")]
    TokenExpired {
        /// What was being done.
        doing: String,
    },
    /// The image serves none of the platforms asked for.
    #[error("{doing}: the image serves none of {wanted} (it serves {found})")]
    NoPlatform {
        /// What was being done.
        doing: String,
        /// The platforms asked for.
        wanted: String,
        /// The platforms it serves.
        found: String,
    },
    /// The registry refused a blob in one request as too large; it goes in chunks from now on.
    #[error("{doing}: the registry takes no blob this large in one request")]
    TooLargeForOnePut {
        /// What was being done.
        doing: String,
    },
    /// An answer was larger than the client reads.
    #[error("{doing}: the {what} is larger than {limit} bytes")]
    TooLarge {
        /// What was being done.
        doing: String,
        /// What was too large, such as `manifest`.
        what: &'static str,
        /// The most bytes read.
        limit: usize,
    },
    /// The registry's pull budget is under the floor set for it: the pulls left stay with
    /// those that need them, until the window has passed or an answer reports more.
    #[error(
        "{registry} has {remaining} pulls left of {limit} in its {window_seconds} s window; copying from it stops below {floor} so running clusters keep theirs"
    )]
    OverBudget {
        /// The registry's host.
        registry: String,
        /// Pulls left in the window, as last reported.
        remaining: u64,
        /// Pulls allowed per window.
        limit: u64,
        /// The window, in seconds.
        window_seconds: u64,
        /// The fewest pulls left that copying goes on with.
        floor: u64,
    },
    /// The registry does not hold a manifest of an image it was just given or found holding.
    #[error("{image}: the registry does not have its {missing}")]
    Unconfirmed {
        /// The image, as `host/repository:tag@digest`.
        image: String,
        /// What it lacks, such as `manifest sha256:… (linux/arm64)`.
        missing: String,
    },
    /// What arrived is not what was asked for.
    #[error("{doing}: {problem}")]
    Content {
        /// What was being done.
        doing: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// An error with its causes, as reqwest's own message says only which request failed; the URL
/// it names without its query, which after a redirect to blob storage is a pre-signed URL's
/// credential (`X-Amz-Signature=…`).
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url()
        && url.query().is_some()
    {
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        text = text.replace(url.as_str(), shown.as_str());
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A timeout as people write it: `60 s`, `300 ms`.
fn shown(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

fn detail(body: &str) -> String {
    if body.is_empty() { String::new() } else { format!(": {body}") }
}

impl RegistryError {
    /// Whether trying again may succeed: throttling, server errors and lost connections.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Transport { .. }
            | Self::Silent { .. }
            | Self::TokenExpired { .. }
            | Self::TooLargeForOnePut { .. }
            | Self::OverBudget { .. }
            | Self::Unconfirmed { .. } => true,
            Self::Denied { .. }
            | Self::NoPlatform { .. }
            | Self::TooLarge { .. }
            | Self::Content { .. } => false,
        }
    }
}

/// How to reach a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Options {
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Accept any TLS certificate (a registry with a self-signed one, when no CA is given).
    pub insecure: bool,
    /// A CA certificate (PEM) to trust besides the usual ones.
    pub ca_pem: Option<String>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the registry may stay silent in the middle of an answer.
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            plain_http: false,
            insecure: false,
            ca_pem: None,
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: READ_TIMEOUT,
        }
    }
}

/// A manifest as stored: its bytes, media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// Its media type (the Content-Type the registry gave, or the document's `mediaType`).
    pub media_type: String,
    /// `sha256:` of the bytes.
    pub digest: String,
}

/// What a HEAD of a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The digest the registry gives (`Docker-Content-Digest`).
    pub digest: String,
    /// The media type it gives (`Content-Type`), if any.
    pub media_type: Option<String>,
}

/// One registry, reached at `http(s)://host`.
#[derive(Debug, Clone)]
pub struct Registry {
    http: reqwest::Client,
    /// How long connecting, and an answer's silences, may take.
    connect_timeout: Duration,
    read_timeout: Duration,
    base: String,
    host: String,
    credentials: Option<Credentials>,
    /// Whether the registry asked for Basic authentication.
    basic: Arc<std::sync::atomic::AtomicBool>,
    tokens: Arc<TokenCache>,
    /// Requests sent so far, retries and sign-ins included.
    sent: Arc<std::sync::atomic::AtomicU64>,
    /// Held while fetching a token, so requests refused at once share one fetch.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// The pull budget the registry last reported (Docker Hub's `ratelimit-*` headers).
    rate_limit: Arc<std::sync::Mutex<Option<Reported>>>,
    /// The size of the chunks blobs are uploaded in; 0 while monolithic uploads are taken.
    chunk_size: Arc<std::sync::atomic::AtomicUsize>,
    /// What the registry answered, by status; shared with whoever reports it.
    answers: Arc<Answers>,
}

/// How many answers of each status code a registry gave the clients that share this.
#[derive(Debug, Default)]
pub struct Answers(std::sync::Mutex<std::collections::BTreeMap<u16, u64>>);

impl Answers {
    fn count(&self, status: StatusCode) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(status.as_u16()).or_default() += 1;
    }

    /// Each status code and how many answers had it.
    pub fn by_status(&self) -> Vec<(u16, u64)> {
        let counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.iter().map(|(status, count)| (*status, *count)).collect()
    }
}

/// A registry's pull budget, as Docker Hub reports it on manifest requests
/// (`ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Pulls allowed per window.
    pub limit: u64,
    /// Pulls left in the window.
    pub remaining: u64,
    /// The window, in seconds.
    pub window_seconds: u64,
}

/// A pull budget and when the registry reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The budget.
    pub budget: RateLimit,
    /// When its answer arrived.
    pub at: tokio::time::Instant,
}

impl RateLimit {
    /// Reads the two headers; `None` when the registry sends no budget.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let read = |name: &str| -> Option<(u64, Option<u64>)> {
            let value = headers.get(name)?.to_str().ok()?;
            let (count, rest) = value.split_once(';').unwrap_or((value, ""));
            let window = rest.trim().strip_prefix("w=").and_then(|w| w.trim().parse().ok());
            Some((count.trim().parse().ok()?, window))
        };
        let (limit, window) = read("ratelimit-limit")?;
        let (remaining, remaining_window) = read("ratelimit-remaining")?;
        Some(Self { limit, remaining, window_seconds: window.or(remaining_window).unwrap_or(0) })
    }
}

impl Registry {
    /// The registry at `host` (`127.0.0.1:5001`, `ghcr.io`), over plain HTTP when `plain_http`.
    pub fn new(host: &str, plain_http: bool) -> Result<Self, RegistryError> {
        Self::with_options(host, &Options { plain_http, ..Options::default() })
    }

    /// The registry at `host`, reached as `options` say.
    pub fn with_options(host: &str, options: &Options) -> Result<Self, RegistryError> {
        let setting_up = |problem: String| RegistryError::Content {
            doing: format!("set up a client for {host}"),
            problem,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            // reqwest drops the Authorization header when a redirect leads to another host, so
            // credentials never follow a registry's redirect to its blob storage.
            .redirect(reqwest::redirect::Policy::limited(5))
            // HTTP/2, which registries offer over TLS, would carry every blob of a copy over
            // one connection in 16 KiB frames: 0.7 CPU-seconds more per GiB than a connection
            // per blob (docs/benchmarks.md), for no gain when each request moves megabytes.
            .http1_only()
            .danger_accept_invalid_certs(options.insecure);
        if let Some(pem) = &options.ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|err| setting_up(format!("the CA certificate is not PEM: {err}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|source| RegistryError::Transport {
            doing: format!("set up a client for {host}"),
            source,
        })?;
        let scheme = if options.plain_http { "http" } else { "https" };
        Ok(Self {
            http,
            connect_timeout: options.connect_timeout,
            read_timeout: options.read_timeout,
            base: format!("{scheme}://{host}"),
            host: host.to_owned(),
            credentials: None,
            basic: Arc::default(),
            tokens: Arc::default(),
            sent: Arc::default(),
            fetching: Arc::default(),
            rate_limit: Arc::default(),
            chunk_size: Arc::default(),
            answers: Arc::default(),
        })
    }

    /// The same registry, counting its answers in `answers` (shared with other clients of it).
    #[must_use]
    pub fn with_answers(mut self, answers: Arc<Answers>) -> Self {
        self.answers = answers;
        self
    }

    /// The same registry, signing in with `credentials` when it asks.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// How many requests this client has sent to the registry, retries and sign-ins included.
    pub fn requests(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The registry's host, as references name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the registry answers its API (`GET /v2/`) within `patience`, asked once and
    /// without signing in: any status is an answer (401 asks for a sign-in), and a registry
    /// that takes the connection and never answers is [`RegistryError::Silent`].
    pub async fn ping(&self, patience: Duration) -> Result<StatusCode, RegistryError> {
        let doing = format!("GET /v2/ on {}", self.host);
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = self.http.get(format!("{}/v2/", self.base)).timeout(patience);
        match request.send().await {
            Ok(response) => Ok(response.status()),
            Err(source) if source.is_timeout() => {
                Err(RegistryError::Silent { doing, waited: patience, attempts: 1 })
            }
            Err(source) => Err(RegistryError::Transport { doing, source }),
        }
    }

    /// The digest of a manifest, if the registry has it (HEAD).
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        Ok(self.manifest_head(repository, reference).await?.map(|head| head.digest))
    }

    /// A manifest's digest and media type, if the registry has it (HEAD).
    pub async fn manifest_head(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Head>, RegistryError> {
        let doing = format!("HEAD manifest {repository}:{reference} on {}", self.host);
        let response = self
            .send(
                Method::HEAD,
                &scope(repository, false),
                &format!("/v2/{repository}/manifests/{reference}"),
                &doing,
                |r| r.header(header::ACCEPT, MANIFEST_ACCEPT),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = ok(response, &doing).await?;
        self.note_rate_limit(&response);
        let Some(digest) = response.headers().get("docker-content-digest") else {
            return Ok(None);
        };
        let digest = digest.to_str().unwrap_or_default();
        check_digest(digest).map_err(|problem| RegistryError::Content {
            doing,
            problem: format!("its Docker-Content-Digest: {problem}"),
        })?;
        let media_type = content_type(&response);
        Ok(Some(Head { digest: digest.to_owned(), media_type }))
    }

    /// A manifest's exact bytes; its digest is computed, and checked when `reference` is one.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let doing = format!("GET manifest {repository}:{reference} from {}", self.host);
        let response = self
            .send_ok(
                Method::GET,
                &scope(repository, false),
                &format!("/v2/{repository}/manifests/{reference}"),
                &doing,
                |r| r.header(header::ACCEPT, MANIFEST_ACCEPT),
            )
            .await?;
        self.note_rate_limit(&response);
        let header_type = content_type(&response);
        let bytes = read_at_most(response, MANIFEST_LIMIT, "manifest", &doing).await?;
        let digest = sha256(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(RegistryError::Content {
                doing,
                problem: format!("the bytes hash to {digest}, not the digest asked for"),
            });
        }
        let document_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned));
        let media_type = document_type.or(header_type).ok_or_else(|| RegistryError::Content {
            doing: doing.clone(),
            problem: "the manifest names no media type".to_owned(),
        })?;
        Ok(Manifest { bytes, media_type, digest })
    }

    /// Stores a manifest's exact bytes under `reference` (a tag or its digest); returns the
    /// digest the registry reports.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError> {
        let doing = format!("PUT manifest {repository}:{reference} to {}", self.host);
        let body = manifest.bytes.clone();
        let response = self
            .send_ok(
                Method::PUT,
                &scope(repository, true),
                &format!("/v2/{repository}/manifests/{reference}"),
                &doing,
                |r| r.header(header::CONTENT_TYPE, &manifest.media_type).body(body.clone()),
            )
            .await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| manifest.digest.clone(), str::to_owned);
        if digest != manifest.digest {
            return Err(RegistryError::Content {
                doing,
                problem: format!("the registry stored it as {digest}, not {}", manifest.digest),
            });
        }
        Ok(digest)
    }

    /// Whether the registry has a blob in `repository` (HEAD).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let doing = format!("HEAD blob {digest} in {repository} on {}", self.host);
        let response = self
            .send(
                Method::HEAD,
                &scope(repository, false),
                &format!("/v2/{repository}/blobs/{digest}"),
                &doing,
                |r| r,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        ok(response, &doing).await.map(|_| true)
    }

    /// A blob's bytes as they arrive.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<
        (Option<u64>, impl Stream<Item = Result<Bytes, RegistryError>> + use<>),
        RegistryError,
    > {
        let doing = format!("GET blob {digest} from {repository} on {}", self.host);
        let response = self
            .send_ok(
                Method::GET,
                &scope(repository, false),
                &format!("/v2/{repository}/blobs/{digest}"),
                &doing,
                |r| r,
            )
            .await?;
        let length = response.content_length();
        let stream = response
            .bytes_stream()
            .map_err(move |source| RegistryError::Transport { doing: doing.clone(), source });
        Ok((length, stream))
    }

    /// A small blob's bytes (an image config), at most [`SMALL_BLOB_LIMIT`].
    pub async fn blob_bytes(&self, repository: &str, digest: &str) -> Result<Bytes, RegistryError> {
        let (_, mut stream) = self.blob(repository, digest).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() > SMALL_BLOB_LIMIT {
                return Err(RegistryError::Content {
                    doing: format!("GET blob {digest} from {repository} on {}", self.host),
                    problem: format!("it is larger than {SMALL_BLOB_LIMIT} bytes"),
                });
            }
        }
        let bytes = Bytes::from(bytes);
        if sha256(&bytes) != digest {
            return Err(RegistryError::Content {
                doing: format!("GET blob {digest} from {repository} on {}", self.host),
                problem: format!("the bytes hash to {}", sha256(&bytes)),
            });
        }
        Ok(bytes)
    }

    /// The pull budget the registry last reported, if it reports one.
    pub fn rate_limit(&self) -> Option<Reported> {
        *self.rate_limit.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_rate_limit(&self, response: &reqwest::Response) {
        let Some(budget) = RateLimit::from_headers(response.headers()) else { return };
        if budget.remaining.saturating_mul(10) < budget.limit {
            tracing::warn!(registry = %self.host, remaining = budget.remaining, limit = budget.limit, "the registry's pull budget is nearly spent");
        }
        let reported = Reported { budget, at: tokio::time::Instant::now() };
        *self.rate_limit.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reported);
    }

    /// Asks the registry to link a blob it holds in `from` into `repository` without moving
    /// its bytes; false when it would not (it then opened an upload session, which is closed).
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &str,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let doing = format!("mount blob {digest} from {from} into {repository} on {}", self.host);
        let path = format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}");
        // The token must also allow pulling from `from`, or the registry refuses the mount.
        let access = format!("{} {}", scope(repository, true), scope(from, false));
        let response = self.send(Method::POST, &access, &path, &doing, |r| r).await?;
        if response.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let response = ok(response, &doing).await?;
        if let Some(session) = self.session_url(&response) {
            self.abandon(&session, repository).await;
        }
        Ok(false)
    }

    /// The upload session a response points at.
    fn session_url(&self, response: &reqwest::Response) -> Option<String> {
        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
        Some(if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        })
    }

    /// Cancels an upload session that will not be finished, so it does not linger on the
    /// registry; best effort.
    async fn abandon(&self, session: &str, repository: &str) {
        let mut request = self.http.delete(session);
        if let Some(authorization) = self.authorization(&scope(repository, true)) {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(err) = request.send().await {
            tracing::debug!(session, error = %err, "cannot cancel an upload session");
        }
    }

    /// Uploads a blob, verifying while it flows that the bytes hash to `digest`: a mismatch
    /// aborts the upload before the registry commits it. The body goes as one monolithic PUT,
    /// unless the registry (or a proxy in front of it) refused one as too large: then, for
    /// this and every later blob, in chunks that shrink until it takes them.
    pub async fn put_blob(
        &self,
        repository: &str,
        digest: &str,
        length: Option<u64>,
        body: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
    ) -> Result<u64, RegistryError> {
        let doing = format!("upload blob {digest} to {repository} on {}", self.host);
        let response = self
            .send_ok(
                Method::POST,
                &scope(repository, true),
                &format!("/v2/{repository}/blobs/uploads/"),
                &doing,
                |r| r,
            )
            .await?;
        let session = self.session_url(&response).ok_or_else(|| RegistryError::Content {
            doing: doing.clone(),
            problem: "no upload Location".to_owned(),
        })?;
        let verified = verify(body, digest.to_owned(), doing.clone());
        let chunk = self.chunk_size.load(std::sync::atomic::Ordering::Relaxed);
        let uploaded = if chunk == 0 {
            self.put_whole(&session, repository, digest, length, verified, &doing).await
        } else {
            self.put_chunks(&session, repository, digest, chunk, verified, &doing).await
        };
        if uploaded.is_err() {
            self.abandon(&session, repository).await;
        }
        uploaded
    }

    /// Sends the whole blob in the PUT that closes the session.
    async fn put_whole(
        &self,
        session: &str,
        repository: &str,
        digest: &str,
        length: Option<u64>,
        body: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
        doing: &str,
    ) -> Result<u64, RegistryError> {
        let mut request = self
            .upload_request(Method::PUT, &with_digest(session, digest), repository)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(length) = length {
            request = request.header(header::CONTENT_LENGTH, length);
        }
        match self.upload_answer(request.send().await, repository, doing).await {
            Err(RegistryError::Status { status: StatusCode::PAYLOAD_TOO_LARGE, .. }) => {
                self.chunk_size.store(FIRST_CHUNK, std::sync::atomic::Ordering::Relaxed);
                Err(RegistryError::TooLargeForOnePut { doing: doing.to_owned() })
            }
            answer => answer.map(|_| length.unwrap_or(0)),
        }
    }

    /// Sends the blob in PATCHes of at most `chunk` bytes (halved, and the smaller size kept,
    /// each time one is refused as too large), then closes the session with an empty PUT.
    /// Memory holds one chunk.
    async fn put_chunks(
        &self,
        session: &str,
        repository: &str,
        digest: &str,
        mut chunk: usize,
        body: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
        doing: &str,
    ) -> Result<u64, RegistryError> {
        let mut body = std::pin::pin!(body);
        let (mut location, mut offset, mut pending, mut ended) =
            (session.to_owned(), 0_u64, bytes::BytesMut::new(), false);
        loop {
            while !ended && pending.len() < chunk {
                match body.next().await {
                    Some(bytes) => pending.extend_from_slice(&bytes?),
                    None => ended = true,
                }
            }
            if pending.is_empty() {
                break;
            }
            let piece = pending.split_to(chunk.min(pending.len())).freeze();
            let last = offset + piece.len() as u64 - 1;
            let request = self
                .upload_request(Method::PATCH, &location, repository)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{last}"))
                .header(header::CONTENT_LENGTH, piece.len())
                .body(piece.clone());
            match self.upload_answer(request.send().await, repository, doing).await {
                Ok(response) => {
                    location = self.session_url(&response).unwrap_or(location);
                    offset = last + 1;
                }
                Err(RegistryError::Status { status: StatusCode::PAYLOAD_TOO_LARGE, .. })
                    if chunk > SMALLEST_CHUNK =>
                {
                    chunk /= 2;
                    self.chunk_size.store(chunk, std::sync::atomic::Ordering::Relaxed);
                    let mut again = bytes::BytesMut::from(&piece[..]);
                    again.extend_from_slice(&pending);
                    pending = again;
                }
                Err(err) => return Err(err),
            }
        }
        let request = self
            .upload_request(Method::PUT, &with_digest(&location, digest), repository)
            .header(header::CONTENT_LENGTH, 0);
        self.upload_answer(request.send().await, repository, doing).await?;
        Ok(offset)
    }

    /// A request inside an upload session, with the rights the session was opened with: it is
    /// sent once, as its body cannot be sent twice.
    fn upload_request(
        &self,
        method: Method,
        url: &str,
        repository: &str,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(authorization) = self.authorization(&scope(repository, true)) {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        request
    }

    /// The answer to an upload request, when a success.
    async fn upload_answer(
        &self,
        outcome: Result<reqwest::Response, reqwest::Error>,
        repository: &str,
        doing: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        if let Ok(response) = &outcome {
            self.answers.count(response.status());
        }
        match outcome {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                // The token the session was opened with expired on the way; the next attempt
                // fetches a new one.
                self.tokens.forget(&scope(repository, true));
                Err(RegistryError::TokenExpired { doing: doing.to_owned() })
            }
            Ok(response) => ok(response, doing).await,
            Err(source) => Err(body_failure(&source)
                .unwrap_or(RegistryError::Transport { doing: doing.to_owned(), source })),
        }
    }

    /// Sends a request that can be sent again (its body, if any, is bytes) with the access
    /// `scope` names: signs it in as the registry asks, and retries it on transient failures.
    async fn send(
        &self,
        method: Method,
        scope: &str,
        path: &str,
        doing: &str,
        shape: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 1;
        let mut signed_in = false;
        loop {
            let mut request = shape(self.http.request(method.clone(), &url));
            let authorization = self.authorization(scope);
            if let Some(authorization) = &authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let outcome = request.send().await;
            if let Ok(response) = &outcome {
                self.answers.count(response.status());
            }
            let wait = match outcome {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !signed_in => {
                    self.sign_in(&response, scope, doing, authorization.as_deref()).await?;
                    signed_in = true;
                    continue;
                }
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    self.tokens.forget(scope);
                    let reason = if self.credentials.is_some() {
                        "the credentials were refused"
                    } else {
                        "it needs credentials"
                    };
                    return Err(RegistryError::Denied {
                        doing: doing.to_owned(),
                        reason: reason.to_owned(),
                    });
                }
                Ok(response)
                    if attempt < ATTEMPTS
                        && (response.status() == StatusCode::TOO_MANY_REQUESTS
                            || response.status().is_server_error()) =>
                {
                    retry_after(&response).unwrap_or_else(|| backoff(attempt))
                }
                Ok(response) => return Ok(response),
                Err(source) if attempt < ATTEMPTS && !source.is_builder() => {
                    tracing::debug!(doing, error = chain(&source), attempt, "retrying");
                    backoff(attempt)
                }
                Err(source) if source.is_timeout() => {
                    let waited =
                        if source.is_connect() { self.connect_timeout } else { self.read_timeout };
                    return Err(RegistryError::Silent {
                        doing: doing.to_owned(),
                        waited,
                        attempts: attempt,
                    });
                }
                Err(source) => {
                    return Err(RegistryError::Transport { doing: doing.to_owned(), source });
                }
            };
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
            attempt += 1;
        }
    }

    /// [`Registry::send`], then the response only when its status is a success.
    async fn send_ok(
        &self,
        method: Method,
        scope: &str,
        path: &str,
        doing: &str,
        shape: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let response = self.send(method, scope, path, doing, shape).await?;
        ok(response, doing).await
    }

    /// The Authorization header for `scope`, when the registry asked for one.
    fn authorization(&self, scope: &str) -> Option<String> {
        if self.basic.load(std::sync::atomic::Ordering::Relaxed) {
            return self.credentials.as_ref().map(basic);
        }
        self.tokens.get(scope).map(|token| format!("Bearer {token}"))
    }

    /// Answers a `401` to a request that carried `refused` (if anything): notes that Basic is
    /// wanted, or fetches a token for `scope`. A refused token is fetched again even when it
    /// should still be fresh, as the registry's clock (or a revocation) is what counts.
    async fn sign_in(
        &self,
        response: &reqwest::Response,
        scope: &str,
        doing: &str,
        refused: Option<&str>,
    ) -> Result<(), RegistryError> {
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Denied {
                doing: doing.to_owned(),
                reason: "it asks for an unknown kind of authentication".to_owned(),
            })?;
        match challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(RegistryError::Denied {
                        doing: doing.to_owned(),
                        reason: "it needs credentials".to_owned(),
                    });
                }
                self.basic.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Challenge::Bearer { realm, service, scope: asked } => {
                let _one_fetch = self.fetching.lock().await;
                if let Some(token) = self.tokens.get(scope)
                    && refused != Some(format!("Bearer {token}").as_str())
                {
                    // Another request fetched a new one while this one waited.
                    return Ok(());
                }
                // One `scope` parameter per resource, as the token specification asks: those
                // the request needs, and any more the registry named (`insufficient_scope`).
                let mut query: Vec<(&str, String)> = Vec::new();
                for one in scope.split(' ').chain(asked.as_deref().unwrap_or("").split(' ')) {
                    if !one.is_empty() && !query.iter().any(|(_, known)| known == one) {
                        query.push(("scope", one.to_owned()));
                    }
                }
                if let Some(service) = service {
                    query.push(("service", service));
                }
                let fetching = format!("{doing}: fetch a token from {realm}");
                let mut request = self.http.get(&realm).query(&query);
                self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(credentials) = &self.credentials {
                    request = request.header(header::AUTHORIZATION, basic(credentials));
                }
                let answer = request.send().await.map_err(|source| RegistryError::Transport {
                    doing: fetching.clone(),
                    source,
                })?;
                if matches!(answer.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    return Err(RegistryError::Denied {
                        doing: fetching,
                        reason: "the token service refused the credentials".to_owned(),
                    });
                }
                let answer: TokenAnswer = {
                    let answer = ok(answer, &fetching).await?;
                    let bytes =
                        read_at_most(answer, TOKEN_ANSWER_LIMIT, "token answer", &fetching).await?;
                    serde_json::from_slice(&bytes).map_err(|err| RegistryError::Content {
                        doing: fetching.clone(),
                        problem: format!("the answer is not a token: {err}"),
                    })?
                };
                let token = answer
                    .token()
                    .ok_or_else(|| RegistryError::Content {
                        doing: fetching.clone(),
                        problem: "the answer holds no token".to_owned(),
                    })?
                    .to_owned();
                self.tokens.put(scope, token, answer.keep_for());
                Ok(())
            }
        }
    }
}

/// The content error a request body failed with (a blob that is not what its digest says),
/// which reqwest reports as a transport error.
fn body_failure(error: &reqwest::Error) -> Option<RegistryError> {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(RegistryError::Content { doing, problem }) = error.downcast_ref() {
            return Some(RegistryError::Content { doing: doing.clone(), problem: problem.clone() });
        }
        cause = error.source();
    }
    None
}

/// A response's media type, without parameters.
fn content_type(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or(value).trim().to_owned())
}

/// An upload session's URL with the `digest` that closes it.
fn with_digest(session: &str, digest: &str) -> String {
    let separator = if session.contains('?') { '&' } else { '?' };
    format!("{session}{separator}digest={digest}")
}

/// The token scope a request on `repository` needs; a request touching several repositories
/// joins theirs with spaces.
fn scope(repository: &str, push: bool) -> String {
    format!("repository:{repository}:{}", if push { "pull,push" } else { "pull" })
}

fn basic(credentials: &Credentials) -> String {
    use base64::Engine as _;
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// `Retry-After` in seconds, when the registry sent one.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds =
        response.headers().get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The wait before attempt `attempt + 1`: doubling from [`FIRST_BACKOFF`], with up to half of
/// it added at random so that many copies do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << (attempt - 1).min(8));
    base + base.mul_f64(fastrand::f64() / 2.0)
}

/// The response when its status is a success, else an error holding the start of its body
/// (at most [`ERROR_BODY_LIMIT`] bytes of it are read).
async fn ok(
    mut response: reqwest::Response,
    doing: &str,
) -> Result<reqwest::Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(ERROR_BODY_LIMIT);
    let body: String =
        String::from_utf8_lossy(&body).trim().chars().take(ERROR_BODY_SHOWN).collect();
    Err(RegistryError::Status { doing: doing.to_owned(), status, body })
}

/// A response's whole body, refused once it passes `limit` bytes (by its Content-Length, or
/// as it arrives) without reading the rest.
async fn read_at_most(
    mut response: reqwest::Response,
    limit: usize,
    what: &'static str,
    doing: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge { doing: doing.to_owned(), what, limit };
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| RegistryError::Transport { doing: doing.to_owned(), source })?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Passes `body` through, hashing it, one chunk behind: the last chunk is let through only
/// once the bytes are known to hash to `digest`. Otherwise the stream fails instead, so the
/// registry never receives the whole blob and cannot commit it, even when it was told its
/// length.
fn verify(
    body: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
    digest: String,
    doing: String,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static {
    struct Verifying<S> {
        body: std::pin::Pin<Box<S>>,
        hasher: Sha256,
        held: Option<Bytes>,
        done: bool,
    }
    let state = Verifying { body: Box::pin(body), hasher: Sha256::new(), held: None, done: false };
    futures::stream::unfold(state, move |mut state| {
        let (digest, doing) = (digest.clone(), doing.clone());
        async move {
            if state.done {
                return None;
            }
            loop {
                match state.body.next().await {
                    Some(Ok(chunk)) => {
                        state.hasher.update(&chunk);
                        if let Some(previous) = state.held.replace(chunk) {
                            return Some((Ok(previous), state));
                        }
                    }
                    Some(Err(err)) => {
                        state.done = true;
                        return Some((Err(err), state));
                    }
                    None => {
                        state.done = true;
                        let got = format!("sha256:{}", hex(&state.hasher.clone().finalize()));
                        if got != digest {
                            let problem = format!("the bytes hash to {got}, not {digest}");
                            return Some((Err(RegistryError::Content { doing, problem }), state));
                        }
                        return state.held.take().map(|last| (Ok(last), state));
                    }
                }
            }
        }
    })
}

/// `sha256:` and the lowercase hex of `bytes`' SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_request_is_told_without_its_query() {
        // A port nothing listens on: the connection is refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let url =
            format!("http://{closed}/blobs/sha256:ab?X-Amz-Signature=s3cr3t&X-Amz-Expires=60");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let error = client.get(&url).send().await.unwrap_err();
        assert!(error.to_string().contains("s3cr3t"), "reqwest quotes the query: {error}");
        let told = chain(&error);
        assert!(!told.contains("s3cr3t") && !told.contains("X-Amz"), "{told}");
        assert!(told.contains(&format!("http://{closed}/blobs/sha256:ab")), "{told}");
    }

    #[test]
    fn docker_hub_budgets_are_read_from_their_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(RateLimit::from_headers(&headers), None);
        headers.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        headers.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        assert_eq!(
            RateLimit::from_headers(&headers),
            Some(RateLimit { limit: 100, remaining: 76, window_seconds: 21600 })
        );
        headers.insert("ratelimit-remaining", "many".parse().unwrap());
        assert_eq!(RateLimit::from_headers(&headers), None);
    }
}
