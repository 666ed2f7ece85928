//! `registry_copy`: copies an image from one registry to another, byte-exact, and answers with
//! the target pinned by a digest the target has just confirmed holding. Blobs the target has
//! are skipped; an image it already has under the same digest costs two requests (an index,
//! one more and a HEAD per platform, to confirm it). Throttling, server errors and lost
//! connections are retried inside the copy and, once those attempts are spent, reported as
//! transient so the edge's retry policy can try again later; refused credentials and missing
//! images are permanent.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_docker_config::{self as docker_config, RegistryLogin};
use weir_sdk::{
    Component, Context, Description, ErrorKind, Gauge, HumanDuration, JsonSchema, NodeError, Port,
    Series, Value, gauge::MAX_SERIES, read_message,
};

use crate::{
    auth::Credentials,
    client::{Answers, Options, Registry, RegistryError, Reported},
    copy::{Copier, Side},
    platform::{Platform, Platforms},
    reference::Reference,
};

/// Settings of a registry copy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegistryCopySettings {
    /// Send failures to the `error` output as data instead of failing the caller.
    pub error_port: bool,
    /// The fewest pulls a source registry must have left (as Docker Hub reports them) for a
    /// copy to pull from it; 0 turns the floor off. Under it, copies that would pull from that
    /// registry fail at once (transient, naming the registry, the pulls left and the window)
    /// until the window has passed or an answer reports more, so the last pulls stay with the
    /// clusters that need them. An image the mirror already has unchanged is still checked and
    /// answered, as that costs HEAD requests only, which Docker Hub does not count. The budget
    /// is shared by all copies of the node.
    pub min_pulls_left: u64,
    /// How long a registry may stay silent, before answering or in the middle of an answer,
    /// before the request counts as lost, such as `30s`; between 1ms and 1h. A lost request
    /// is sent 4 times in all, so a registry that takes connections and never answers (a
    /// black hole) fails the copy after about 4 times this, with an error naming it and
    /// saying it did not answer.
    pub answer_timeout: HumanDuration,
}

impl Default for RegistryCopySettings {
    fn default() -> Self {
        Self {
            error_port: false,
            min_pulls_left: DEFAULT_MIN_PULLS_LEFT,
            answer_timeout: HumanDuration::from_secs(60),
        }
    }
}

/// The longest `answerTimeout`.
const MAX_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The default floor of a source's pull budget: a few pulls for the nodes of a cluster that
/// restart while the mirror waits.
pub const DEFAULT_MIN_PULLS_LEFT: u64 = 10;

/// What to copy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyRequest {
    /// The image to copy, such as `nginx:1.27` or `ghcr.io/acme/api@sha256:…`.
    pub source: String,
    /// Where it goes, with the tag to give it, such as `registry.local:5000/mirror/nginx:1.27`.
    pub target: String,
    /// Credentials for the source registry; none to pull anonymously.
    #[serde(default)]
    pub source_credentials: Option<Login>,
    /// Credentials for the target registry.
    #[serde(default)]
    pub target_credentials: Option<Login>,
    /// Talk to the source registry over plain HTTP.
    #[serde(default)]
    pub source_plain_http: bool,
    /// Talk to the target registry over plain HTTP.
    #[serde(default)]
    pub target_plain_http: bool,
    /// Accept any TLS certificate from the source registry.
    #[serde(default)]
    pub source_insecure: bool,
    /// Accept any TLS certificate from the target registry.
    #[serde(default)]
    pub target_insecure: bool,
    /// A CA certificate (PEM) the source registry's certificate is signed by.
    #[serde(default)]
    pub source_ca: Option<String>,
    /// A CA certificate (PEM) the target registry's certificate is signed by.
    #[serde(default)]
    pub target_ca: Option<String>,
    /// The platforms to copy, such as `linux/amd64` or `linux/arm/v7`; none for all. An
    /// index is cut down to those it serves and gets a new digest; an image serving none of
    /// them is an error.
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// Credentials for one registry: a user name and password, or the logins of a pull secret to
/// pick from as the kubelet would (the most specific entry for the image; none matching means
/// anonymous). Passwords are never shown.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    /// The user name.
    pub username: Option<String>,
    /// The password or token (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub password: Option<String>,
    /// Logins by registry, as `secret_get` reads them from a dockerconfigjson Secret.
    pub registries: Vec<RegistryLogin>,
    /// The text of a `.dockerconfigjson` (or `.dockercfg`) to read the logins from (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub dockerconfigjson: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or the config text, whoever prints a request.
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// The credentials for `image` (`host/repository`), or none to go anonymously.
    fn for_image(self, field: &str, image: &str) -> Result<Option<Credentials>, NodeError> {
        let invalid = |why: String| NodeError::invalid(format!("in.{field}: {why}"));
        let basic = self.username.is_some() || self.password.is_some();
        let given = [basic, !self.registries.is_empty(), self.dockerconfigjson.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(invalid(
                "give a username and password, registries or a dockerconfigjson, not several"
                    .to_owned(),
            ));
        }
        if basic {
            let (Some(username), Some(password)) = (self.username, self.password) else {
                return Err(invalid(
                    "a username needs a password, and a password a username".to_owned(),
                ));
            };
            return Ok(Some(Credentials { username, password }));
        }
        let logins = match self.dockerconfigjson {
            Some(text) => docker_config::parse(&text)
                .map_err(|err| invalid(format!("dockerconfigjson {err}")))?,
            None => self.registries,
        };
        Ok(docker_config::lookup(&logins, image).map(|login| Credentials {
            username: login.username.clone(),
            password: login.password.clone(),
        }))
    }
}

/// What the copy did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Copied {
    /// The target, pinned by digest: what a Deployment should pull.
    pub target: String,
    /// The image's digest on the target: the source's, unless platforms were chosen from an
    /// index.
    pub digest: String,
    /// The image's digest on the source.
    pub source_digest: String,
    /// When platforms were chosen: those the copied image serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
    /// Whether anything was written to the target.
    pub changed: bool,
    /// Bytes uploaded.
    pub bytes_moved: u64,
    /// Blobs the target had already.
    pub blobs_skipped: usize,
    /// Blobs linked from another repository of the target without moving their bytes.
    pub blobs_mounted: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Manifests written (an index and each of its platforms).
    pub manifests_written: usize,
    /// True in every answer: just before answering, the target registry confirmed holding the
    /// image by the digest `target` pins and, for an index, each platform's manifest (a HEAD
    /// each; an unchanged index is read from the target for its list). A copy the target
    /// cannot confirm fails instead, naming the image and what is missing, so a flow may point
    /// workloads at `target` as it is. An unchanged image lacking a platform's manifest is
    /// copied again first.
    pub verified: bool,
    /// The source registry's pull budget after the copy, when it reports one (Docker Hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pulls_left: Option<PullsLeft>,
}

/// What is left of a registry's pull budget.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullsLeft {
    /// Pulls left in the window.
    pub remaining: u64,
    /// Pulls allowed per window.
    pub limit: u64,
    /// The window, in seconds.
    pub window_seconds: u64,
}

/// A node of the registry copy component. It keeps one client per registry and credentials,
/// so connections and tokens last across messages, and one [`Copier`] that its copies share:
/// what each registry is known to hold lasts across messages (a layer shared by many images
/// is mounted, not uploaded again), and a blob one copy is moving is waited for by the
/// others, not pulled again. At most [`MOST_CLIENTS`] clients are kept, each until it has been
/// idle for [`CLIENT_IDLE`]: messages may name any number of registries and credentials.
#[derive(Debug)]
pub struct RegistryCopy {
    clients: std::sync::Mutex<std::collections::HashMap<ClientKey, Kept>>,
    copier: Copier,
    /// What each registry answered the node's clients, by host, for `/metrics`.
    answers: std::sync::Mutex<std::collections::BTreeMap<String, Arc<Answers>>>,
    /// Bytes uploaded to each registry, by host.
    moved: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// How long a registry may stay silent.
    answer_timeout: std::time::Duration,
}

/// How many registry clients a node keeps.
pub const MOST_CLIENTS: usize = 64;
/// How long a client no message used is kept.
pub const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What tells two registry clients apart: host, how it is reached, credentials.
type ClientKey = (String, Options, Option<Credentials>);

/// A kept client and when a message last used it.
#[derive(Debug)]
struct Kept {
    client: Registry,
    used: tokio::time::Instant,
}

impl Component for RegistryCopy {
    const NAME: &'static str = "registry_copy";
    type Settings = RegistryCopySettings;

    fn describe() -> Description {
        Description {
            label: "Registry copy",
            description: "Copies an image between OCI registries byte-exact, skipping what the target has, and answers with the target pinned by digest.",
            tags: &["registry", "image", "mirror", "copy", "oci"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &RegistryCopySettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<CopyRequest>("in"), Port::output::<Copied>("out")],
            settings.error_port,
        )
    }

    fn build(settings: RegistryCopySettings) -> Result<Self, NodeError> {
        let answer_timeout = settings.answer_timeout.get();
        if answer_timeout.is_zero() || answer_timeout > MAX_ANSWER_TIMEOUT {
            return Err(NodeError::invalid(format!(
                "settings.answerTimeout: {} is not between 1ms and 1h",
                settings.answer_timeout
            )));
        }
        Ok(Self {
            clients: std::sync::Mutex::default(),
            copier: Copier::with_min_pulls_left(settings.min_pulls_left),
            answers: std::sync::Mutex::default(),
            moved: std::sync::Mutex::default(),
            answer_timeout,
        })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let request: CopyRequest = read_message(port, message.clone())?;
        let copied = self.run(request).await;
        self.report(cx)?;
        match copied {
            Ok(copied) => cx.emit("out", copied).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl RegistryCopy {
    /// The client for `host` with these credentials, made on first use.
    fn client(
        &self,
        host: &str,
        options: Options,
        credentials: Option<Credentials>,
    ) -> Result<Registry, NodeError> {
        let key = (host.to_owned(), options, credentials.clone());
        let now = tokio::time::Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        clients.retain(|_, kept| now.saturating_duration_since(kept.used) < CLIENT_IDLE);
        if let Some(kept) = clients.get_mut(&key) {
            kept.used = now;
            return Ok(kept.client.clone());
        }
        if clients.len() >= MOST_CLIENTS {
            let least_recent =
                clients.iter().min_by_key(|(_, kept)| kept.used).map(|(key, _)| key.clone());
            if let Some(least_recent) = least_recent {
                tracing::debug!(registry = %least_recent.0, "dropping the least recently used registry client");
                clients.remove(&least_recent);
            }
        }
        let answers = Arc::clone(
            self.answers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(host.to_owned())
                .or_default(),
        );
        let client = Registry::with_options(host, &key.1)
            .map_err(|err| failure(&err))?
            .with_credentials(credentials)
            .with_answers(answers);
        clients.insert(key, Kept { client: client.clone(), used: now });
        Ok(client)
    }

    async fn run(&self, request: CopyRequest) -> Result<Copied, NodeError> {
        let parse = |field: &str, text: &str| {
            text.parse::<Reference>()
                .map_err(|err| NodeError::invalid(format!("in.{field}: {err}")))
        };
        let (source, target) =
            (parse("source", &request.source)?, parse("target", &request.target)?);
        let Some(tag) = target.tag().filter(|_| target.digest().is_none()) else {
            return Err(NodeError::invalid(format!(
                "in.target: {target} must name a tag to copy to, not a digest"
            )));
        };
        let platforms = if request.platforms.is_empty() {
            Platforms::All
        } else {
            let parsed: Result<Vec<Platform>, NodeError> = request
                .platforms
                .iter()
                .enumerate()
                .map(|(at, text)| {
                    text.parse()
                        .map_err(|err| NodeError::invalid(format!("in.platforms[{at}]: {err}")))
                })
                .collect();
            Platforms::Only(parsed?)
        };
        let login = |field: &str, login: Option<Login>, image: &Reference| match login {
            Some(login) => {
                login.for_image(field, &format!("{}/{}", image.registry(), image.repository()))
            }
            None => Ok(None),
        };
        let options = |plain_http, insecure, ca_pem| Options {
            plain_http,
            insecure,
            ca_pem,
            read_timeout: self.answer_timeout,
            ..Options::default()
        };
        let from = self.client(
            source.api_host(),
            options(request.source_plain_http, request.source_insecure, request.source_ca),
            login("sourceCredentials", request.source_credentials, &source)?,
        )?;
        let to = self.client(
            target.api_host(),
            options(request.target_plain_http, request.target_insecure, request.target_ca),
            login("targetCredentials", request.target_credentials, &target)?,
        )?;
        let report = self
            .copier
            .copy_platforms(
                Side { registry: &from, repository: source.repository() },
                source.manifest_reference(),
                Side { registry: &to, repository: target.repository() },
                tag,
                &platforms,
            )
            .await
            .map_err(|err| failure(&err))?;
        *self
            .moved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(to.host().to_owned())
            .or_default() += report.bytes_moved;
        Ok(Copied {
            target: target.pinned(&report.digest).to_string(),
            digest: report.digest,
            source_digest: report.source_digest,
            platforms: report.platforms,
            changed: report.changed,
            bytes_moved: report.bytes_moved,
            blobs_skipped: report.blobs_skipped,
            blobs_mounted: report.blobs_mounted,
            blobs_uploaded: report.blobs_uploaded,
            manifests_written: report.manifests_written,
            verified: report.manifests_verified > 0,
            source_pulls_left: from.rate_limit().map(|Reported { budget, .. }| PullsLeft {
                remaining: budget.remaining,
                limit: budget.limit,
                window_seconds: budget.window_seconds,
            }),
        })
    }
}

/// Requests by registry and status code.
const REQUESTS: Gauge = Gauge {
    name: "weir_registry_requests",
    help: "Answers each registry gave the node's copies since the node was built, by status code.",
};
/// Throttled requests by registry.
const THROTTLED: Gauge = Gauge {
    name: "weir_registry_throttled",
    help: "Requests each registry refused as too many (429) since the node was built.",
};
/// Bytes uploaded by registry.
const BYTES_MOVED: Gauge = Gauge {
    name: "weir_registry_bytes_moved",
    help: "Bytes the node's copies uploaded to each registry since the node was built.",
};
/// Pulls left by registry.
const PULLS_LEFT: Gauge = Gauge {
    name: "weir_registry_pulls_left",
    help: "Pulls a source registry said are left in its window (Docker Hub's ratelimit-remaining), as it last said.",
};

impl RegistryCopy {
    /// Reports on `/metrics` what the node's copies did to each registry so far.
    fn report(&self, cx: &Context) -> Result<(), NodeError> {
        let registry = |host: &str| vec![("registry", host.to_owned())];
        let (mut requests, mut throttled) = (Vec::new(), Vec::new());
        for (host, answers) in
            self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let by_status = answers.by_status();
            let too_many =
                by_status.iter().find(|(status, _)| *status == 429).map_or(0, |(_, n)| *n);
            throttled.push((registry(host), count(too_many)));
            requests.extend(by_status.into_iter().map(|(status, n)| {
                let mut labels = registry(host);
                labels.push(("code", status.to_string()));
                (labels, count(n))
            }));
        }
        let moved: Vec<Series> = self
            .moved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(host, bytes)| (registry(host), count(*bytes)))
            .collect();
        let left: Vec<Series> =
            self.copier.pulls_left().iter().map(|(host, n)| (registry(host), count(*n))).collect();
        for (gauge, mut series) in
            [(REQUESTS, requests), (THROTTLED, throttled), (BYTES_MOVED, moved), (PULLS_LEFT, left)]
        {
            // Past the bound, the registries last by name are left out.
            series.truncate(MAX_SERIES);
            cx.set_gauge(gauge, series)?;
        }
        Ok(())
    }
}

/// A count as a gauge's value (exact up to 2^53).
#[allow(clippy::cast_precision_loss)]
fn count(n: u64) -> f64 {
    n as f64
}

/// A registry failure as a node error: transient when trying later may help.
fn failure(error: &RegistryError) -> NodeError {
    let kind = if error.is_transient() { ErrorKind::Transient } else { ErrorKind::Invalid };
    NodeError::new(kind, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(node: &RegistryCopy) -> Vec<String> {
        let clients = node.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut hosts: Vec<String> = clients.keys().map(|key| key.0.clone()).collect();
        hosts.sort();
        hosts
    }

    #[tokio::test(start_paused = true)]
    async fn clients_are_bounded_and_dropped_when_idle() {
        let node = RegistryCopy::build(RegistryCopySettings::default()).unwrap();
        let plain = || Options { plain_http: true, ..Options::default() };
        node.client("first:5000", plain(), None).unwrap();
        for registry in 1..MOST_CLIENTS {
            tokio::time::advance(std::time::Duration::from_secs(1)).await;
            node.client(&format!("r{registry}:5000"), plain(), None).unwrap();
        }
        // The first is used again, so the second is the least recently used.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        node.client("first:5000", plain(), None).unwrap();
        node.client("one-more:5000", plain(), None).unwrap();
        let hosts = kept(&node);
        assert_eq!(hosts.len(), MOST_CLIENTS);
        assert!(hosts.contains(&"first:5000".to_owned()) && !hosts.contains(&"r1:5000".to_owned()));
        tokio::time::advance(CLIENT_IDLE - std::time::Duration::from_secs(1)).await;
        node.client("first:5000", plain(), None).unwrap();
        assert_eq!(kept(&node), ["first:5000", "one-more:5000"], "the idle ones are dropped");
    }

    #[test]
    fn a_request_never_prints_its_secrets() {
        let request: CopyRequest = serde_json::from_value(serde_json::json!({
            "source": "nginx:1.27",
            "target": "m:5000/nginx:1.27",
            "sourceCredentials": { "username": "ci", "password": "s3cret" },
            "targetCredentials": { "dockerconfigjson": "{\"auths\":{\"m:5000\":{\"auth\":\"czNjcmV0\"}}}" },
        }))
        .unwrap();
        let printed = format!("{request:?}");
        assert!(printed.contains("ci"), "{printed}");
        assert!(!printed.contains("s3cret") && !printed.contains("czNjcmV0"), "{printed}");
    }
}
