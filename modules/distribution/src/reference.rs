//! Image references, parsed and normalised as the Docker and containerd tooling does
//! (distribution/reference): `nginx` is `docker.io/library/nginx:latest`, `bitnami/redis` is
//! on Docker Hub, a first component with a `.` or `:` (or `localhost`, or an uppercase letter)
//! is a registry host, `index.docker.io` is `docker.io`, a digest wins over a tag, and an
//! uppercase repository is an error rather than something to lowercase.

use std::{fmt, str::FromStr};

/// Docker Hub's canonical name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The most characters of `registry/repository` the tooling accepts.
const MAX_NAME: usize = 255;
/// The most characters of a tag.
const MAX_TAG: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Text that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {text:?}: {problem}")]
pub struct ReferenceError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Reference {
    /// The registry, as credentials and mirrors know it: `docker.io`, `ghcr.io`,
    /// `localhost:5000`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host the registry API is served at (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// The repository inside the registry, such as `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the reference named neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, such as `sha256:…`, when pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The same image pinned to `digest`, its tag kept for people to read.
    #[must_use]
    pub fn pinned(&self, digest: &str) -> Self {
        Self { digest: Some(digest.to_owned()), ..self.clone() }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, ReferenceError> {
        let fail =
            |problem: &str| ReferenceError { text: text.to_owned(), problem: problem.to_owned() };
        if text.is_empty() {
            return Err(fail("is empty"));
        }
        if text.trim() != text {
            return Err(fail("has spaces around it"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|problem| fail(&problem))?;
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag follows the last `:` that comes after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                let tag = &rest[at + 1..];
                check_tag(tag).map_err(|problem| fail(&problem))?;
                (&rest[..at], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(fail("has no repository name"));
        }
        let (registry, path) = split_registry(name);
        if let Some(registry) = registry {
            check_registry(registry).map_err(|problem| fail(&problem))?;
        }
        let registry = match registry {
            None | Some("index.docker.io") => DOCKER_HUB.to_owned(),
            Some(other) => other.to_owned(),
        };
        check_path(path).map_err(|problem| fail(&problem))?;
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(fail("names more than 255 characters of registry and repository"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Self { registry, repository, tag, digest })
    }
}

/// `text` as a registry host the way references name one (`host[:port]`, `[::1]:5000`),
/// lowercase; `None` for anything else, such as a scheme or a path.
pub fn registry_host(text: &str) -> Option<String> {
    let reference: Reference = format!("{text}/probe").parse().ok()?;
    reference.registry().eq_ignore_ascii_case(text).then(|| text.to_lowercase())
}

/// Splits off the registry: the first component is one when it is `localhost`, holds a `.` or
/// a `:`, or has an uppercase letter (repositories cannot).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry {registry} opens [ without closing it"))?;
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("registry {registry} is not an IPv6 address"));
        }
        (
            None,
            after
                .strip_prefix(':')
                .map(Some)
                .unwrap_or_else(|| (!after.is_empty()).then_some(after)),
        )
    } else {
        match registry.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(format!("registry host {host} is not a host name"));
        }
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(format!("registry {registry} has a port that is not a number up to 65535"));
    }
    Ok(())
}

/// Repository path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, separated by `/`.
fn check_path(path: &str) -> Result<(), String> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".to_owned());
    }
    for component in path.split('/') {
        if !path_component(component) {
            return Err(format!(
                "repository component {component:?} is not lowercase letters and digits joined by ., _, __ or dashes"
            ));
        }
    }
    Ok(())
}

fn path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(bytes[index]) {
            index += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or one or more `-`, followed by an alphanumeric.
        let start = index;
        match bytes[index] {
            b'.' => index += 1,
            b'_' => index += if bytes.get(index + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while bytes.get(index) == Some(&b'-') {
                    index += 1;
                }
            }
            _ => return false,
        }
        if index == start || !bytes.get(index).is_some_and(|b| alnum(*b)) {
            return false;
        }
    }
    true
}

/// Tags: `[\w][\w.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(word);
    if !first_ok || tag.len() > MAX_TAG || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!(
            "tag {tag:?} is not up to 128 letters, digits, _, . and - (not starting with . or -)"
        ));
    }
    Ok(())
}

/// Checks a digest before it goes into a URL: `algorithm:hex` as the OCI image specification
/// writes it (algorithm components of lowercase letters and digits joined by one of `+._-`),
/// sha256 with 64 lowercase hex digits, sha512 with 128, others at least 32.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} is not algorithm:hex"));
    };
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|component| {
        !component.is_empty()
            && component.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let hex_ok = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let length_ok = match algorithm {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => hex.len() >= 32,
    };
    if !algorithm_ok || !hex_ok || !length_ok {
        return Err(format!(
            "digest {digest:?} is not algorithm:hex with lowercase hex of the algorithm's length"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn registry_hosts_are_what_references_name_as_one() {
        for (text, host) in [
            ("Registry.Local:5000", Some("registry.local:5000")),
            ("[::1]:5000", Some("[::1]:5000")),
            ("localhost", Some("localhost")),
            ("https://registry.local", None),
            ("registry.local/path", None),
            ("nginx", None),
            ("", None),
        ] {
            assert_eq!(registry_host(text).as_deref(), host, "{text:?}");
        }
    }

    /// A reference that parses: text, registry, repository, tag, digest.
    type Good = (String, &'static str, &'static str, Option<&'static str>, Option<String>);

    fn good() -> Vec<Good> {
        let d = Some(D.to_owned());
        vec![
            ("nginx".into(), "docker.io", "library/nginx", Some("latest"), None),
            ("nginx:1.27".into(), "docker.io", "library/nginx", Some("1.27"), None),
            (
                "nginx:1.27-alpine3.20".into(),
                "docker.io",
                "library/nginx",
                Some("1.27-alpine3.20"),
                None,
            ),
            (format!("nginx@{D}"), "docker.io", "library/nginx", None, d.clone()),
            (format!("nginx:1.27@{D}"), "docker.io", "library/nginx", Some("1.27"), d.clone()),
            ("library/nginx".into(), "docker.io", "library/nginx", Some("latest"), None),
            ("docker.io/nginx".into(), "docker.io", "library/nginx", Some("latest"), None),
            ("docker.io/library/nginx:1".into(), "docker.io", "library/nginx", Some("1"), None),
            ("index.docker.io/nginx".into(), "docker.io", "library/nginx", Some("latest"), None),
            (
                "index.docker.io/bitnami/redis:7.2".into(),
                "docker.io",
                "bitnami/redis",
                Some("7.2"),
                None,
            ),
            ("bitnami/redis".into(), "docker.io", "bitnami/redis", Some("latest"), None),
            ("foo/bar/baz".into(), "docker.io", "foo/bar/baz", Some("latest"), None),
            ("ghcr.io/acme/api:2.3.1".into(), "ghcr.io", "acme/api", Some("2.3.1"), None),
            ("ghcr.io/ubuntu".into(), "ghcr.io", "ubuntu", Some("latest"), None),
            (
                "quay.io/prometheus/node-exporter:v1.8.2".into(),
                "quay.io",
                "prometheus/node-exporter",
                Some("v1.8.2"),
                None,
            ),
            ("registry.k8s.io/pause:3.10".into(), "registry.k8s.io", "pause", Some("3.10"), None),
            (
                "gcr.io/distroless/static-debian12:nonroot".into(),
                "gcr.io",
                "distroless/static-debian12",
                Some("nonroot"),
                None,
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1".into(),
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "team/app",
                Some("v1"),
                None,
            ),
            ("localhost/app".into(), "localhost", "app", Some("latest"), None),
            ("localhost:5000/app:dev".into(), "localhost:5000", "app", Some("dev"), None),
            (
                "127.0.0.1:5001/mirror/docker.io/library/nginx:1.27".into(),
                "127.0.0.1:5001",
                "mirror/docker.io/library/nginx",
                Some("1.27"),
                None,
            ),
            ("[::1]:5000/app".into(), "[::1]:5000", "app", Some("latest"), None),
            ("[fe80::1]/app:1".into(), "[fe80::1]", "app", Some("1"), None),
            ("Example.com/app".into(), "Example.com", "app", Some("latest"), None),
            (
                "registry.local:5000/a__b/c--d/e.f_g:T_1.x-y".into(),
                "registry.local:5000",
                "a__b/c--d/e.f_g",
                Some("T_1.x-y"),
                None,
            ),
            (format!("ghcr.io/acme/api@{D}"), "ghcr.io", "acme/api", None, d),
            ("myhost:5000/repo".into(), "myhost:5000", "repo", Some("latest"), None),
            ("a/b:_tag".into(), "docker.io", "a/b", Some("_tag"), None),
            (
                format!("x@sha512:{}", "a".repeat(128)),
                "docker.io",
                "library/x",
                None,
                Some(format!("sha512:{}", "a".repeat(128))),
            ),
        ]
    }

    #[test]
    fn digests_are_checked_as_the_oci_specification_writes_them() {
        for good in [
            D.to_owned(),
            format!("sha512:{}", "a".repeat(128)),
            format!("multihash+base58:{}", "0".repeat(32)),
        ] {
            assert_eq!(check_digest(&good), Ok(()), "{good}");
        }
        for bad in [
            format!("sha256:{}/../../x", &D[7..60]),
            format!("sha256:{}?mount=x", &D[7..]),
            format!("..:{}", "0".repeat(32)),
            format!("sha+:{}", "0".repeat(32)),
            format!("SHA256:{}", &D[7..]),
            format!(":{}", &D[7..]),
            "sha256".to_owned(),
        ] {
            assert!(check_digest(&bad).is_err(), "{bad}");
        }
    }

    /// (text, the problem named) for references that do not.
    fn bad() -> Vec<(String, &'static str)> {
        vec![
            (String::new(), "is empty"),
            (" nginx".into(), "has spaces around it"),
            ("Nginx".into(), "repository name must be lowercase"),
            ("docker.io/Library/nginx".into(), "repository name must be lowercase"),
            ("nginx:".into(), "tag \"\" is not"),
            ("nginx:.hidden".into(), "tag \".hidden\" is not"),
            (format!("nginx:{}", "t".repeat(129)), "is not up to 128"),
            ("nginx@sha256:abc".into(), "digest \"sha256:abc\" is not"),
            (
                "nginx@sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
                    .into(),
                "is not algorithm:hex",
            ),
            ("nginx@latest".into(), "is not algorithm:hex"),
            ("-nginx".into(), "repository component \"-nginx\""),
            ("nginx-".into(), "repository component \"nginx-\""),
            ("ng..inx".into(), "repository component \"ng..inx\""),
            ("ng___inx".into(), "repository component \"ng___inx\""),
            ("a//b".into(), "repository component \"\""),
            ("ghcr.io/".into(), "repository component \"\""),
            (":tag".into(), "has no repository name"),
            ("localhost:99999/app".into(), "has a port that is not a number"),
            ("localhost:port/app".into(), "has a port that is not a number"),
            ("bad_host.io/app".into(), "registry host bad_host.io is not a host name"),
            ("[::1/app".into(), "opens [ without closing it"),
            ("[zz::1]:5000/app".into(), "is not an IPv6 address"),
            ("nginx:1.27:extra".into(), "repository component \"nginx:1.27\""),
            (format!("ghcr.io/{}", "a".repeat(250)), "more than 255 characters"),
            ("app name".into(), "repository component \"app name\""),
        ]
    }

    #[test]
    fn references_parse_and_normalise_as_the_docker_tooling_does() {
        let cases = good();
        assert!(cases.len() + bad().len() >= 40);
        for (text, registry, repository, tag, digest) in cases {
            let reference: Reference = text.parse().unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(
                (reference.registry(), reference.repository(), reference.tag(), reference.digest()),
                (registry, repository, tag, digest.as_deref()),
                "{text}"
            );
            // The canonical form reads back as itself.
            let canonical = reference.to_string();
            assert_eq!(canonical.parse::<Reference>().as_ref(), Ok(&reference), "{canonical}");
        }
    }

    #[test]
    fn malformed_references_are_refused_naming_the_problem() {
        for (text, problem) in bad() {
            let err = text.parse::<Reference>().expect_err(&text);
            assert!(err.to_string().contains(problem), "{text:?}: {err}");
        }
    }

    #[test]
    fn docker_hub_is_served_elsewhere_and_a_digest_wins() {
        let hub: Reference = "nginx:1.27".parse().unwrap();
        assert_eq!((hub.api_host(), hub.manifest_reference()), ("registry-1.docker.io", "1.27"));
        let pinned = hub.pinned(D);
        assert_eq!(pinned.manifest_reference(), D);
        assert_eq!(pinned.to_string(), format!("docker.io/library/nginx:1.27@{D}"));
        let local: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(local.api_host(), "localhost:5000");
    }
}
