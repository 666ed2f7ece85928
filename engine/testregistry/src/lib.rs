//! Real registries for tests: Debian's docker-registry on free loopback ports (plain HTTP, TLS,
//! a password, or tokens from a token service of our own), and images made of random layers
//! pushed with our own client. Each registry keeps its files in its own temporary directory and
//! dies with its handle or with the test binary.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use serde_json::json;
use weir_distribution::client::{Manifest, Registry, sha256};

/// A docker-registry serving plain HTTP on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct LocalRegistry {
    child: Child,
    /// Where it listens, `127.0.0.1:PORT`.
    pub host: String,
    dir: tempfile::TempDir,
}

impl LocalRegistry {
    /// Stops it now, as an outage would; its port then refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A registry anyone may pull from and push to.
pub async fn start_registry() -> Result<LocalRegistry> {
    start_registry_with(&[], "").await
}

/// `tester` / `s3cret` as an htpasswd line (bcrypt, the only kind the registry takes).
fn htpasswd() -> Result<Vec<u8>> {
    let output = Command::new("htpasswd")
        .args(["-Bbn", "tester", "s3cret"])
        .output()
        .context("htpasswd (apache2-utils)")?;
    ensure!(output.status.success(), "htpasswd failed");
    Ok(output.stdout)
}

/// A registry that takes `tester` / `s3cret` by Basic authentication (htpasswd).
pub async fn start_registry_with_password() -> Result<LocalRegistry> {
    start_registry_with(
        &[("htpasswd", htpasswd()?)],
        "auth:\n  htpasswd: {realm: test-realm, path: {dir}/htpasswd}\n",
    )
    .await
}

/// A `kubernetes.io/dockerconfigjson` Secret `name` (JSON, to create) holding the login
/// `tester` / `s3cret` for `registry`, as [`start_registry_with_password`]'s takes it.
pub fn login_secret(name: &str, registry: &str) -> serde_json::Value {
    let config = json!({ "auths": { registry: { "username": "tester", "password": "s3cret" } } })
        .to_string();
    json!({
        "metadata": { "name": name },
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": { ".dockerconfigjson": config },
    })
}

/// A registry whose config ends with `extra`, in which `{dir}` names the registry's own
/// directory, where `files` are written first (so nothing outlives the registry).
pub async fn start_registry_with(files: &[(&str, Vec<u8>)], extra: &str) -> Result<LocalRegistry> {
    let dir = tempfile::tempdir()?;
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents)?;
    }
    let extra = extra.replace("{dir}", &dir.path().display().to_string());
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let host = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {host}\n  secret: test-only-secret\n{extra}",
            dir.path().join("data").display()
        ),
    )?;
    let child = serve(dir.path())?;
    let mut registry = LocalRegistry { child, host, dir };
    registry.until_listening().await?;
    Ok(registry)
}

/// docker-registry serving the config in `dir`: loopback only, never the package's own config;
/// it dies with the test binary.
fn serve(dir: &std::path::Path) -> Result<Child> {
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("registry.log"))?;
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "docker-registry", "serve"])
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start docker-registry (scripts/test installs it)")
}

impl LocalRegistry {
    /// Starts it again after [`LocalRegistry::stop`], on the same address with the same
    /// images, as a registry back from an outage.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.child = serve(self.dir.path())?;
        self.until_listening().await
    }

    async fn until_listening(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("docker-registry exited with {status}:\n{}", self.log());
            }
            // Up once it accepts connections (it may speak TLS, or want a password).
            if tokio::net::TcpStream::connect(&self.host).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "docker-registry on {} did not listen within 20 s:\n{}",
                    self.host,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl LocalRegistry {
    /// What the registry wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests the registry has answered, as its log counts them (it logs each
    /// answer at level info, successful or not).
    pub fn requests_answered(&self) -> usize {
        self.log().matches("msg=\"response completed").count()
    }

    /// The requests answered so far, as (method, URI) in the order they were answered, from
    /// the log.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.log()
            .lines()
            .filter(|line| line.contains("msg=\"response completed"))
            .map(|line| {
                let field = |name: &str| {
                    line.split(&format!(" {name}=")).nth(1).map_or_else(String::new, |rest| {
                        let value = rest.strip_prefix('"').map_or_else(
                            || rest.split_whitespace().next().unwrap_or_default(),
                            |quoted| quoted.split('"').next().unwrap_or_default(),
                        );
                        value.to_owned()
                    })
                };
                (field("http.request.method"), field("http.request.uri"))
            })
            .collect()
    }

    /// The requests answered so far by method (`GET`, `HEAD`, `PUT`, …), from the log.
    pub fn requests_by_method(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (method, _) in self.requests() {
            *counts.entry(method).or_insert(0) += 1;
        }
        counts
    }
}

/// `len` pseudo-random bytes: a layer that compresses to nothing and shares nothing.
pub fn random_bytes(len: usize) -> Bytes {
    Bytes::from((0..len).map(|_| fastrand::u8(..)).collect::<Vec<u8>>())
}

/// Pushes `bytes` as a blob and returns its descriptor (digest and size).
pub async fn push_blob(
    registry: &Registry,
    repository: &str,
    bytes: Bytes,
) -> Result<serde_json::Value> {
    let digest = sha256(&bytes);
    let size = bytes.len() as u64;
    let body = futures::stream::once(async move { Ok(bytes) });
    registry.put_blob(repository, &digest, Some(size), body).await?;
    Ok(json!({ "digest": digest, "size": size }))
}

/// Pushes an image of `layers` (shared ones first) and returns its manifest.
pub async fn push_image(
    registry: &Registry,
    repository: &str,
    layers: &[Bytes],
    docker: bool,
    platform: &str,
) -> Result<Manifest> {
    let (manifest_type, config_type, layer_type) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let config = Bytes::from(serde_json::to_vec(
        &json!({ "architecture": platform, "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] } }),
    )?);
    let mut config_descriptor = push_blob(registry, repository, config).await?;
    config_descriptor["mediaType"] = json!(config_type);
    let mut descriptors = Vec::new();
    for layer in layers {
        let mut descriptor = push_blob(registry, repository, layer.clone()).await?;
        descriptor["mediaType"] = json!(layer_type);
        descriptors.push(descriptor);
    }
    // Written by hand with odd spacing: a copier that re-serialises would change the digest.
    let bytes = Bytes::from(format!(
        "{{\"schemaVersion\": 2,  \"mediaType\": \"{manifest_type}\", \"config\": {config_descriptor}, \"layers\": {}}}",
        serde_json::to_string(&descriptors)?
    ));
    let manifest = Manifest { digest: sha256(&bytes), bytes, media_type: manifest_type.to_owned() };
    registry.put_manifest(repository, &manifest.digest, &manifest).await?;
    Ok(manifest)
}

/// Pushes an index of `children` (each with its architecture) tagged `tag`, in the Docker
/// family's media type when `docker`, and returns it.
pub async fn push_index(
    registry: &Registry,
    repository: &str,
    tag: &str,
    children: &[(&Manifest, &str)],
    docker: bool,
) -> Result<Manifest> {
    let index_type = if docker {
        "application/vnd.docker.distribution.manifest.list.v2+json"
    } else {
        "application/vnd.oci.image.index.v1+json"
    };
    let entries: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, arch)| json!({ "mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len(), "platform": { "architecture": arch, "os": "linux" } }))
        .collect();
    let bytes = Bytes::from(serde_json::to_vec_pretty(
        &json!({ "schemaVersion": 2, "mediaType": index_type, "manifests": entries }),
    )?);
    let index = Manifest { digest: sha256(&bytes), bytes, media_type: index_type.to_owned() };
    registry.put_manifest(repository, tag, &index).await?;
    Ok(index)
}

/// A token service as registries use (the Distribution token specification), signing ES256
/// JWTs with a certificate the registry trusts. `tester` / `s3cret` may pull and push; anyone
/// else gets pull only, and nothing of the repositories under `private/`, as a private
/// repository on Docker Hub. It counts the tokens it hands out.
#[derive(Debug)]
pub struct TokenService {
    /// The URL registries send clients to for tokens.
    pub realm: String,
    /// The certificate registries check the tokens' signatures with.
    pub certificate_pem: String,
    /// How many tokens it has handed out.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone)]
struct Signer {
    key: std::sync::Arc<ring::signature::EcdsaKeyPair>,
    certificate_der: String,
    issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lifetime: TokenLifetime,
}

/// How long tokens last: what the service tells the client (`expires_in`), and how long the
/// registry really takes them. The two differ to play a registry whose clock runs ahead, or a
/// token revoked early.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetime {
    /// The lifetime the service tells the client.
    pub claimed_secs: u64,
    /// The lifetime the registry takes the token for.
    pub at_registry_secs: u64,
}

/// The registry's allowance for clock skew past a token's `exp` (docker distribution's
/// `token.Leeway`).
const REGISTRY_LEEWAY_SECS: u64 = 60;

/// A token service whose tokens last five minutes, as it says.
pub async fn start_token_service() -> Result<TokenService> {
    start_token_service_with(TokenLifetime { claimed_secs: 300, at_registry_secs: 300 }).await
}

/// A token service whose tokens last as `lifetime` says, on a free loopback port, served
/// until the runtime it was started on ends.
pub async fn start_token_service_with(lifetime: TokenLifetime) -> Result<TokenService> {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate =
        rcgen::CertificateParams::new(vec!["token-signer".to_owned()])?.self_signed(&key)?;
    let ring_key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|err| anyhow::anyhow!("cannot load the signing key: {err}"))?;
    let signer = Signer {
        key: std::sync::Arc::new(ring_key),
        certificate_der: base64::engine::general_purpose::STANDARD.encode(certificate.der()),
        issued: std::sync::Arc::default(),
        lifetime,
    };
    let issued = std::sync::Arc::clone(&signer.issued);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let realm = format!("http://{}/token", listener.local_addr()?);
    let app = axum::Router::new().route("/token", axum::routing::get(issue)).with_state(signer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(TokenService { realm, certificate_pem: certificate.pem(), issued })
}

async fn issue(
    axum::extract::State(signer): axum::extract::State<Signer>,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> (axum::http::StatusCode, String) {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let user = match basic.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()) {
        Some(pair) if pair == b"tester:s3cret" => Some("tester"),
        Some(_) => {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                "{\"details\":\"wrong credentials\"}".to_owned(),
            );
        }
        None => None,
    };
    let mut access = Vec::new();
    let mut service = String::new();
    for (key, value) in &query {
        if key == "service" {
            service.clone_from(value);
        }
        if key != "scope" {
            continue;
        }
        let parts: Vec<&str> = value.splitn(3, ':').collect();
        if let [kind, name, actions] = parts.as_slice() {
            let public = !name.starts_with("private/");
            let granted: Vec<&str> =
                actions.split(',').filter(|a| user.is_some() || (*a == "pull" && public)).collect();
            access.push(json!({ "type": kind, "name": name, "actions": granted }));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [signer.certificate_der] });
    let claims = json!({
        "iss": "test-issuer", "sub": user.unwrap_or(""), "aud": service,
        "exp": now + signer.lifetime.at_registry_secs - REGISTRY_LEEWAY_SECS,
        "nbf": now - 10, "iat": now, "jti": format!("{}", fastrand::u64(..)), "access": access,
    });
    let unsigned =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let Ok(signature) = signer.key.sign(&ring::rand::SystemRandom::new(), unsigned.as_bytes())
    else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    signer.issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let token = format!("{unsigned}.{}", b64(signature.as_ref()));
    (
        axum::http::StatusCode::OK,
        json!({ "token": token, "expires_in": signer.lifetime.claimed_secs }).to_string(),
    )
}

/// A registry that takes Bearer tokens from `tokens`.
pub async fn start_registry_with_tokens(tokens: &TokenService) -> Result<LocalRegistry> {
    start_registry_with(&[token_signer(tokens)], &token_auth(tokens)).await
}

/// The file of the certificate a registry checks `tokens`' signatures with.
fn token_signer(tokens: &TokenService) -> (&'static str, Vec<u8>) {
    ("token-signer.crt", tokens.certificate_pem.clone().into_bytes())
}

/// The config that makes a registry take Bearer tokens from `tokens`, whose certificate is
/// [`token_signer`].
fn token_auth(tokens: &TokenService) -> String {
    format!(
        "auth:\n  token:\n    realm: {}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {{dir}}/token-signer.crt\n",
        tokens.realm
    )
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM: (CA, certificate, key).
pub fn tls_files() -> Result<(String, String, String)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "weir-test-ca");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let certificate = params.signed_by(&key, &ca)?;
    Ok((ca.pem(), certificate.pem(), key.serialize_pem()))
}

/// A registry serving TLS with `certificate` and `key`, taking `tester` / `s3cret`.
pub async fn start_tls_registry(certificate: &str, key: &str) -> Result<LocalRegistry> {
    let [crt, key] = tls_keys(certificate, key);
    start_registry_with(
        &[("htpasswd", htpasswd()?), crt, key],
        &format!("{TLS}auth:\n  htpasswd: {{realm: test-realm, path: {{dir}}/htpasswd}}\n"),
    )
    .await
}

/// A registry serving TLS with `certificate` and `key`, taking Bearer tokens from `tokens`.
pub async fn start_tls_registry_with_tokens(
    tokens: &TokenService,
    certificate: &str,
    key: &str,
) -> Result<LocalRegistry> {
    let [crt, key] = tls_keys(certificate, key);
    start_registry_with(&[token_signer(tokens), crt, key], &format!("{TLS}{}", token_auth(tokens)))
        .await
}

/// The config (under `http:`) that makes a registry serve TLS with [`tls_keys`].
const TLS: &str = "  tls: {certificate: {dir}/server.crt, key: {dir}/server.key}\n";

/// The files of a registry's TLS certificate and key.
fn tls_keys(certificate: &str, key: &str) -> [(&'static str, Vec<u8>); 2] {
    [("server.crt", certificate.as_bytes().to_vec()), ("server.key", key.as_bytes().to_vec())]
}
