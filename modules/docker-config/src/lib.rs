//! Registry credentials from a docker config (a `kubernetes.io/dockerconfigjson` Secret, a
//! `~/.docker/config.json`), and the kubelet's rule for which of them an image is pulled with,
//! so a node that reads a pull secret authenticates exactly where the cluster would.

use std::{collections::BTreeMap, fmt};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The credentials a docker config holds for one registry; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryLogin {
    /// The registry as the config names it, such as `ghcr.io`, `registry.example.com:5000/team`
    /// or `*.example.com`; Docker Hub is `docker.io`.
    pub registry: String,
    /// The user name.
    pub username: String,
    /// The password or token (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub password: String,
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a docker config cannot be read. A message completes a sentence about the config, such
/// as `.dockerconfigjson {error}`, and names at most an entry's key and a position: never a
/// value, since the values are credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// The text is neither form of docker config.
    #[error("is not a docker config (line {line}, column {column})")]
    NotDockerConfig {
        /// Where reading stopped, from 1.
        line: usize,
        /// The column on that line, from 1.
        column: usize,
    },
    /// An entry's `auth` is not base64.
    #[error("has an auth for {registry} that is not base64")]
    AuthNotBase64 {
        /// The entry's key, as the config writes it.
        registry: String,
    },
    /// An entry's `auth` decodes to bytes that are not UTF-8.
    #[error("has an auth for {registry} that is not text")]
    AuthNotText {
        /// The entry's key, as the config writes it.
        registry: String,
    },
    /// An entry's `auth` decodes to text without the `:` between user and password.
    #[error("has an auth for {registry} that is not user:password")]
    AuthNotUserPassword {
        /// The entry's key, as the config writes it.
        registry: String,
    },
}

/// The logins of a docker config, in the order of their keys: the `{"auths": {...}}` form, or
/// without `auths` the legacy `.dockercfg` form (keys at the top). An entry's `auth` (base64 of
/// `user:password`) wins over its `username` and `password`. Each registry is normalised: the
/// scheme and trailing `/` dropped, an API version path (`/v1`, `/v2`) read as the bare host as
/// the kubelet does, and Docker Hub's names (`index.docker.io`, `registry-1.docker.io`) made
/// `docker.io`; a repository path is kept, since it narrows what the login is for.
pub fn parse(text: &str) -> Result<Vec<RegistryLogin>, DockerConfigError> {
    #[derive(Deserialize)]
    struct Current {
        auths: Option<BTreeMap<String, Entry>>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        auth: String,
    }
    // Only the position of a parse error is kept: serde's messages quote the offending value.
    let not_config = |err: serde_json::Error| DockerConfigError::NotDockerConfig {
        line: err.line(),
        column: err.column(),
    };
    let entries = match serde_json::from_str::<Current>(text).map_err(not_config)? {
        Current { auths: Some(auths) } => auths,
        Current { auths: None } => {
            serde_json::from_str::<BTreeMap<String, Entry>>(text).map_err(not_config)?
        }
    };
    let mut logins = Vec::with_capacity(entries.len());
    for (server, entry) in entries {
        let (username, password) = if entry.auth.is_empty() {
            (entry.username, entry.password)
        } else {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .map_err(|_| DockerConfigError::AuthNotBase64 { registry: server.clone() })?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| DockerConfigError::AuthNotText { registry: server.clone() })?;
            let Some((user, password)) = decoded.split_once(':') else {
                return Err(DockerConfigError::AuthNotUserPassword { registry: server });
            };
            (user.to_owned(), password.to_owned())
        };
        logins.push(RegistryLogin { registry: normalise(&server), username, password });
    }
    Ok(logins)
}

/// The login the kubelet would pull `image` with. `image` is `host[:port]/repository`, with
/// Docker Hub's images under `docker.io` (`docker.io/library/nginx`); a tag or digest after it
/// is ignored. A login is for the image when its host matches label by label (a `*` in a label
/// matches within that label only, so `*.example.com` is not for `example.com` nor
/// `a.b.example.com`; case does not matter), its port is the image's (none if the image has
/// none), and its path, if any, is a leading part of the image's path, whole segments only. Of
/// several, the longest registry wins, a literal host beating a glob of the same length, then
/// the first in `logins`.
pub fn lookup<'a>(logins: &'a [RegistryLogin], image: &str) -> Option<&'a RegistryLogin> {
    let mut best: Option<(&RegistryLogin, (usize, bool))> = None;
    for login in logins {
        let key = normalise(&login.registry);
        if !is_for(&key, image) {
            continue;
        }
        let specificity = (key.len(), !key.contains('*'));
        if best.is_none_or(|(_, held)| specificity > held) {
            best = Some((login, specificity));
        }
    }
    best.map(|(login, _)| login)
}

/// A docker config key as a registry, as described at [`parse`]. A key already normalised is
/// unchanged, so [`lookup`] can accept logins written by hand.
fn normalise(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    // `docker login` writes Docker Hub as `https://index.docker.io/v1/`; the kubelet, like the
    // docker client, reads an API version path as the registry itself.
    let path = match path.split_once('/') {
        Some(("v1" | "v2", rest)) => rest,
        None if matches!(path, "v1" | "v2") => "",
        _ => path,
    };
    let host = if ["docker.io", "index.docker.io", "registry-1.docker.io"]
        .iter()
        .any(|hub| host.eq_ignore_ascii_case(hub))
    {
        "docker.io"
    } else {
        host
    };
    if path.is_empty() { host.to_owned() } else { format!("{host}/{path}") }
}

/// Whether a normalised registry key is for an image, by the rules at [`lookup`].
fn is_for(key: &str, image: &str) -> bool {
    let (key_host, key_path) = key.split_once('/').unwrap_or((key, ""));
    let (image_host, image_path) = image.split_once('/').unwrap_or((image, ""));
    let (key_name, key_port) = split_port(key_host);
    let (image_name, image_port) = split_port(image_host);
    let (key_name, image_name) = (key_name.to_ascii_lowercase(), image_name.to_ascii_lowercase());
    key_port == image_port
        && key_name.split('.').count() == image_name.split('.').count()
        && key_name
            .split('.')
            .zip(image_name.split('.'))
            .all(|(glob, label)| glob_match(glob, label))
        && (key_path.is_empty()
            || image_path
                .strip_prefix(key_path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':', '@'])))
}

/// A host and its port, if any; the colons inside an IPv6 literal (`[::1]`) are not a port.
fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Whether one DNS label matches a pattern in which `*` stands for any run of characters.
/// Each character of the label is tried against the pattern at most once per star, so a
/// pattern of many stars (a pull secret's key, which a namespace's users write) costs the
/// product of the lengths, not an exponent of them.
fn glob_match(pattern: &str, label: &str) -> bool {
    let (pattern, label): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), label.chars().collect());
    let (mut at_pattern, mut at_label) = (0, 0);
    // Past the last star seen, and where in the label its run ends for now.
    let mut last_star: Option<(usize, usize)> = None;
    while at_label < label.len() {
        match pattern.get(at_pattern) {
            Some('*') => {
                at_pattern += 1;
                last_star = Some((at_pattern, at_label));
            }
            Some(&wanted) if wanted == label[at_label] => {
                at_pattern += 1;
                at_label += 1;
            }
            // A mismatch: the last star takes one more character, and the rest is tried again.
            _ => match &mut last_star {
                Some((after_star, run_end)) => {
                    *run_end += 1;
                    (at_pattern, at_label) = (*after_star, *run_end);
                }
                None => return false,
            },
        }
    }
    pattern[at_pattern..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(registry: &str) -> RegistryLogin {
        RegistryLogin {
            registry: registry.to_owned(),
            username: format!("user of {registry}"),
            password: "pw".to_owned(),
        }
    }

    fn registries(logins: &[RegistryLogin]) -> Vec<(&str, &str, &str)> {
        logins
            .iter()
            .map(|l| (l.registry.as_str(), l.username.as_str(), l.password.as_str()))
            .collect()
    }

    #[test]
    fn the_auths_form_decodes_both_kinds_of_entry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bot:s3cret:with:colons");
        let text = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"ghcr.io":{{"username":"ci","password":"t0ken"}}}},"credsStore":"desktop"}}"#
        );
        assert_eq!(
            registries(&parse(&text).unwrap()),
            [("ghcr.io", "ci", "t0ken"), ("docker.io", "bot", "s3cret:with:colons")]
        );
        assert_eq!(parse(r#"{"auths":{}}"#).unwrap(), []);
    }

    #[test]
    fn the_legacy_form_decodes_too() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bot:s3cret");
        let text = format!(
            r#"{{"https://quay.io/v1/":{{"auth":"{auth}","email":"bot@example.com"}},"registry.example.com:5000/team/":{{"username":"ci","password":"t0ken"}}}}"#
        );
        assert_eq!(
            registries(&parse(&text).unwrap()),
            [("quay.io", "bot", "s3cret"), ("registry.example.com:5000/team", "ci", "t0ken")]
        );
        assert_eq!(parse("{}").unwrap(), []);
    }

    #[test]
    fn keys_are_normalised_and_keep_their_path() {
        for (key, registry) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("https://registry-1.docker.io/v2/", "docker.io"),
            ("docker.io/v1", "docker.io"),
            ("Index.Docker.IO/library", "docker.io/library"),
            ("http://registry.example.com:5000/", "registry.example.com:5000"),
            ("https://registry.example.com/v2/team/", "registry.example.com/team"),
            ("registry.example.com/team/app", "registry.example.com/team/app"),
            ("registry.example.com/v10", "registry.example.com/v10"),
            ("*.example.com", "*.example.com"),
        ] {
            assert_eq!(normalise(key), registry, "{key}");
        }
    }

    #[test]
    fn a_bad_auth_names_its_registry_and_nothing_else() {
        let cases = [
            ("%%%s3cret".to_owned(), "has an auth for ghcr.io that is not base64"),
            (
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', b's']),
                "has an auth for ghcr.io that is not text",
            ),
            (
                base64::engine::general_purpose::STANDARD.encode("s3cret"),
                "has an auth for ghcr.io that is not user:password",
            ),
        ];
        for (auth, message) in cases {
            let text = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}}}}}}"#);
            assert_eq!(parse(&text).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn what_is_not_a_config_is_reported_by_position_only() {
        for text in [
            "s3cret",
            r#"{"auths":"s3cret"}"#,
            r#"{"auths":{"ghcr.io":{"password":["s3cret"]}}}"#,
            r#"{"ghcr.io":"s3cret"}"#,
            "{\"auths\":{\"ghcr.io\":{\"password\":\"s3cret\"}}\n",
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, DockerConfigError::NotDockerConfig { .. }), "{text}: {err:?}");
            let message = err.to_string();
            assert!(message.starts_with("is not a docker config (line "), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        assert_eq!(
            parse("{\n  \"auths\": 1").unwrap_err().to_string(),
            "is not a docker config (line 2, column 12)"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let login = RegistryLogin {
            registry: "ghcr.io".to_owned(),
            username: "ci".to_owned(),
            password: "s3cret".to_owned(),
        };
        let shown = format!("{login:?} {login:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ghcr.io") && shown.contains("ci"), "{shown}");
    }

    #[test]
    fn the_schema_marks_the_password_secret() {
        let schema = weir_sdk::port::schema_of::<RegistryLogin>();
        let mut sample =
            serde_json::json!({ "registry": "ghcr.io", "username": "ci", "password": "s3cret" });
        weir_sdk::redact(&schema, &mut sample);
        assert_eq!(
            sample,
            serde_json::json!({ "registry": "ghcr.io", "username": "ci", "password": weir_sdk::REDACTED })
        );
    }

    #[test]
    fn lookup_follows_the_kubelet() {
        // (the logins' registries, image, the registry of the login used); lookup normalises
        // registries written by hand, and a tie goes to the first login
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (
                &["https://index.docker.io/v1/"],
                "docker.io/library/nginx",
                Some("https://index.docker.io/v1/"),
            ),
            (&["registry-1.docker.io"], "docker.io/bitnami/redis", Some("registry-1.docker.io")),
            (&["docker.io/bitnami"], "docker.io/library/nginx", None),
            (
                &["docker.io", "docker.io/bitnami"],
                "docker.io/bitnami/redis",
                Some("docker.io/bitnami"),
            ),
            (&["ghcr.io"], "GHCR.io/acme/app", Some("ghcr.io")),
            (&["GHCR.IO"], "ghcr.io/acme/app", Some("GHCR.IO")),
            (&["ghcr.io"], "quay.io/acme/app", None),
            (&["ghcr.io"], "ghcr.io.evil.com/acme/app", None),
            (&["localhost:5000"], "localhost:5000/app", Some("localhost:5000")),
            (&["localhost:5000"], "localhost:5001/app", None),
            (&["localhost"], "localhost:5000/app", None),
            (&["localhost:5000"], "localhost/app", None),
            (&["[::1]:5000"], "[::1]:5000/app", Some("[::1]:5000")),
            (&["*.example.com"], "a.example.com/app", Some("*.example.com")),
            (&["*.example.com"], "example.com/app", None),
            (&["*.example.com"], "a.b.example.com/app", None),
            (&["*.example.com:5000"], "a.example.com/app", None),
            (
                &["registry-*.example.com"],
                "registry-eu.example.com/app",
                Some("registry-*.example.com"),
            ),
            (&["*.*.example.com"], "a.b.example.com/app", Some("*.*.example.com")),
            (&["*a*b.io"], "xaxxb.io/app", Some("*a*b.io")),
            (&["*a*b.io"], "xaxxc.io/app", None),
            (&["a*b*c.io"], "aXbYbZc.io/app", Some("a*b*c.io")),
            (&["*"], "registry/app", Some("*")),
            (&["**x"], "x/app", Some("**x")),
            // Stars a namespace's user may write by the dozen, against a long label: refused
            // at once (tried every way, this would not end in a lifetime).
            (&["*************************x.io"], &format!("{}.io/app", "a".repeat(50)), None),
            (
                &["registry.example.com/team"],
                "registry.example.com/team/app",
                Some("registry.example.com/team"),
            ),
            (
                &["registry.example.com/team"],
                "registry.example.com/team",
                Some("registry.example.com/team"),
            ),
            (&["registry.example.com/team"], "registry.example.com/teamx/app", None),
            (&["registry.example.com/team"], "registry.example.com/other/app", None),
            (&["registry.example.com/Team"], "registry.example.com/team/app", None),
            (
                &["registry.example.com/team/app"],
                "registry.example.com/team/app:1.0",
                Some("registry.example.com/team/app"),
            ),
            (
                &["registry.example.com/team/app"],
                "registry.example.com/team/app@sha256:abc",
                Some("registry.example.com/team/app"),
            ),
            (
                &[
                    "registry.example.com",
                    "registry.example.com/team/app",
                    "registry.example.com/team",
                ],
                "registry.example.com/team/app/api",
                Some("registry.example.com/team/app"),
            ),
            (&["*.example.com", "a.example.com"], "a.example.com/app", Some("a.example.com")),
            (
                &["*.example.com/team", "a.example.com"],
                "a.example.com/team/app",
                Some("*.example.com/team"),
            ),
            (&["https://ghcr.io/v2/", "ghcr.io"], "ghcr.io/acme/app", Some("https://ghcr.io/v2/")),
            (&["ghcr.io", "https://ghcr.io/v2/"], "ghcr.io/acme/app", Some("ghcr.io")),
            (&[], "ghcr.io/acme/app", None),
        ];
        for &(registries, image, expected) in cases {
            let logins: Vec<RegistryLogin> = registries.iter().map(|r| login(r)).collect();
            let found = lookup(&logins, image).map(|l| l.registry.as_str());
            assert_eq!(found, expected, "{registries:?} for {image}");
        }
    }
}
