//! Who may call a webhook: anyone, a caller with the bearer token, or a sender that signs each
//! body with a shared secret as GitHub, Slack or any other service does (HMAC). Every
//! comparison takes the same time whatever the bytes (ring's `hmac::verify`), and a Slack
//! signature older or newer than five minutes is refused, so a captured request cannot be
//! replayed later.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::HeaderMap;
use ring::hmac;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a webhook checks its callers.
#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HookAuth {
    /// `none`, `bearer` (`Authorization: Bearer` the `secret`), `github`
    /// (`X-Hub-Signature-256`), `slack` (`X-Slack-Signature` with its timestamp, within five
    /// minutes) or `hmac` (the signature in `header`, by `algorithm`).
    #[serde(rename = "type")]
    pub kind: HookAuthKind,
    /// The bearer token or the signing secret (secret).
    #[schemars(extend("x-weir-secret" = true))]
    pub secret: String,
    /// For `hmac`: the header holding the signature, such as `X-Signature`.
    pub header: String,
    /// For `hmac`: `sha256`, `sha512` or `sha1`.
    pub algorithm: Algorithm,
    /// For `hmac`: what comes before the signature in the header, such as `sha256=`.
    pub prefix: String,
    /// For `hmac`: how the signature is written, `hex` or `base64`.
    pub encoding: SignatureEncoding,
}

impl std::fmt::Debug for HookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookAuth")
            .field("kind", &self.kind)
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A way of checking callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookAuthKind {
    /// Anyone who reaches the listener.
    #[default]
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github,
    /// Slack's `X-Slack-Signature: v0=<hex HMAC-SHA256 of v0:<timestamp>:<body>>`.
    Slack,
    /// Any HMAC of the body in a header.
    Hmac,
}

/// An HMAC's hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256.
    #[default]
    Sha256,
    /// SHA-512.
    Sha512,
    /// SHA-1, for senders that know nothing better.
    Sha1,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal, either case.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// How far a Slack timestamp may be from now.
pub const SLACK_WINDOW: Duration = Duration::from_secs(300);

/// A checker built from [`HookAuth`].
pub struct Checker {
    check: Check,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checker(<secret>)")
    }
}

enum Check {
    None,
    /// The token's HMAC under a key of this process: a given token is compared by its HMAC
    /// under the same key, so neither its length nor its bytes show in the time taken.
    Bearer {
        key: hmac::Key,
        tag: hmac::Tag,
    },
    Github(hmac::Key),
    Slack(hmac::Key),
    Hmac {
        key: hmac::Key,
        header: String,
        prefix: String,
        encoding: SignatureEncoding,
    },
}

/// Why a caller was refused; it names what was missing or wrong, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header the check needs is missing or not text.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// The credential or signature does not match.
    #[error("the {0} does not match")]
    Mismatch(&'static str),
    /// The Slack timestamp is outside the window.
    #[error("the request's timestamp is more than five minutes from now")]
    Stale,
}

impl Checker {
    /// A checker for `auth`; the error names the settings field.
    pub fn new(auth: &HookAuth) -> Result<Self, String> {
        let needs_secret = auth.kind != HookAuthKind::None;
        if needs_secret && auth.secret.is_empty() {
            return Err("settings.auth.secret: this type of auth needs a secret".to_owned());
        }
        let key = |algorithm| hmac::Key::new(algorithm, auth.secret.as_bytes());
        let check = match auth.kind {
            HookAuthKind::None => Check::None,
            HookAuthKind::Bearer => {
                let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                    .map_err(|_| "cannot make a random key".to_owned())?;
                let tag = hmac::sign(&key, auth.secret.as_bytes());
                Check::Bearer { key, tag }
            }
            HookAuthKind::Github => Check::Github(key(hmac::HMAC_SHA256)),
            HookAuthKind::Slack => Check::Slack(key(hmac::HMAC_SHA256)),
            HookAuthKind::Hmac => {
                if reqwest::header::HeaderName::from_bytes(auth.header.as_bytes()).is_err() {
                    return Err(format!(
                        "settings.auth.header: {:?} is not a header name",
                        auth.header
                    ));
                }
                let algorithm = match auth.algorithm {
                    Algorithm::Sha256 => hmac::HMAC_SHA256,
                    Algorithm::Sha512 => hmac::HMAC_SHA512,
                    Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                };
                Check::Hmac {
                    key: key(algorithm),
                    header: auth.header.clone(),
                    prefix: auth.prefix.clone(),
                    encoding: auth.encoding,
                }
            }
        };
        Ok(Self { check })
    }

    /// Checks a request's headers and body; `now` is seconds since the epoch.
    pub fn check(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        let text = |name: &'static str| {
            headers.get(name).and_then(|v| v.to_str().ok()).ok_or(Refusal::Missing(name))
        };
        match &self.check {
            Check::None => Ok(()),
            Check::Bearer { key, tag } => {
                let given = text("authorization")?;
                let token = given
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .ok_or(Refusal::Mismatch("bearer token"))?;
                hmac::verify(key, token.as_bytes(), tag.as_ref())
                    .map_err(|_| Refusal::Mismatch("bearer token"))
            }
            Check::Github(key) => {
                let signature = text("x-hub-signature-256")?;
                let hex =
                    signature.strip_prefix("sha256=").ok_or(Refusal::Mismatch("signature"))?;
                verify(key, body, &decode_hex(hex))
            }
            Check::Slack(key) => {
                let timestamp = text("x-slack-request-timestamp")?;
                let signature = text("x-slack-signature")?;
                let sent: i64 = timestamp.trim().parse().map_err(|_| Refusal::Stale)?;
                // Any number a caller sends, however far from now, is only stale.
                if now.abs_diff(sent) > SLACK_WINDOW.as_secs() {
                    return Err(Refusal::Stale);
                }
                let hex = signature.strip_prefix("v0=").ok_or(Refusal::Mismatch("signature"))?;
                let mut signed = format!("v0:{timestamp}:").into_bytes();
                signed.extend_from_slice(body);
                verify(key, &signed, &decode_hex(hex))
            }
            Check::Hmac { key, header, prefix, encoding } => {
                let signature = headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .ok_or(Refusal::Missing("signature"))?;
                let written = signature
                    .strip_prefix(prefix.as_str())
                    .ok_or(Refusal::Mismatch("signature"))?;
                let bytes = match encoding {
                    SignatureEncoding::Hex => decode_hex(written),
                    SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                        .decode(written.trim())
                        .unwrap_or_default(),
                };
                verify(key, body, &bytes)
            }
        }
    }
}

fn verify(key: &hmac::Key, signed: &[u8], signature: &[u8]) -> Result<(), Refusal> {
    hmac::verify(key, signed, signature).map_err(|_| Refusal::Mismatch("signature"))
}

/// Hex as bytes; text that is not hex gives no bytes, which no signature matches.
fn decode_hex(text: &str) -> Vec<u8> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(2) {
        return Vec::new();
    }
    let digit = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default()
}

/// The hex HMAC of `data` under `secret` by `algorithm`, as senders compute signatures; for
/// tests and for callers of flows.
pub fn sign_hex(algorithm: Algorithm, secret: &[u8], data: &[u8]) -> String {
    let algorithm = match algorithm {
        Algorithm::Sha256 => hmac::HMAC_SHA256,
        Algorithm::Sha512 => hmac::HMAC_SHA512,
        Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    let tag = hmac::sign(&hmac::Key::new(algorithm, secret), data);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn checker(auth: serde_json::Value) -> Checker {
        Checker::new(&serde_json::from_value(auth).unwrap()).unwrap()
    }

    #[test]
    fn github_signatures_are_checked_against_the_body() {
        let github = checker(
            serde_json::json!({ "type": "github", "secret": "It's a Secret to Everybody" }),
        );
        // GitHub's own example (docs: validating webhook deliveries).
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let body = b"Hello, World!";
        assert_eq!(github.check(&headers(&[("x-hub-signature-256", good)]), body, 0), Ok(()));
        assert_eq!(
            github.check(&headers(&[("x-hub-signature-256", good)]), b"Hello, World?", 0),
            Err(Refusal::Mismatch("signature"))
        );
        assert_eq!(
            github.check(&headers(&[("x-hub-signature-256", "sha256=zz")]), body, 0),
            Err(Refusal::Mismatch("signature"))
        );
        assert_eq!(
            github.check(&HeaderMap::new(), body, 0),
            Err(Refusal::Missing("x-hub-signature-256"))
        );
    }

    #[test]
    fn slack_signatures_hold_for_five_minutes_only() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let slack = checker(serde_json::json!({ "type": "slack", "secret": secret }));
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fweather";
        let at = 1_531_420_618;
        let mut signed_text = format!("v0:{at}:").into_bytes();
        signed_text.extend_from_slice(body);
        let signature =
            format!("v0={}", sign_hex(Algorithm::Sha256, secret.as_bytes(), &signed_text));
        let signed = headers(&[
            ("x-slack-request-timestamp", &at.to_string()),
            ("x-slack-signature", &signature),
        ]);
        assert_eq!(slack.check(&signed, body, at + 299), Ok(()));
        assert_eq!(slack.check(&signed, body, at + 301), Err(Refusal::Stale), "a replay");
        assert_eq!(slack.check(&signed, body, at - 301), Err(Refusal::Stale));
        assert_eq!(slack.check(&signed, b"token=other", at), Err(Refusal::Mismatch("signature")));
        for far in [i64::MIN, i64::MAX] {
            let far = headers(&[
                ("x-slack-request-timestamp", &far.to_string()),
                ("x-slack-signature", &signature),
            ]);
            assert_eq!(slack.check(&far, body, at), Err(Refusal::Stale), "{far:?}");
        }
    }

    #[test]
    fn bearer_tokens_and_generic_hmacs() {
        let bearer = checker(serde_json::json!({ "type": "bearer", "secret": "s3cret-token" }));
        assert_eq!(
            bearer.check(&headers(&[("authorization", "Bearer s3cret-token")]), b"", 0),
            Ok(())
        );
        assert_eq!(
            bearer.check(&headers(&[("authorization", "bearer s3cret-token")]), b"", 0),
            Ok(())
        );
        for wrong in ["Bearer s3cret", "Basic s3cret-token", "s3cret-token"] {
            assert_eq!(
                bearer.check(&headers(&[("authorization", wrong)]), b"", 0),
                Err(Refusal::Mismatch("bearer token")),
                "{wrong}"
            );
        }
        let generic = checker(serde_json::json!({
            "type": "hmac", "secret": "k", "header": "X-Signature", "algorithm": "sha512",
            "prefix": "sha512=",
        }));
        let signature = format!("sha512={}", sign_hex(Algorithm::Sha512, b"k", b"{}"));
        assert_eq!(generic.check(&headers(&[("x-signature", &signature)]), b"{}", 0), Ok(()));
        assert_eq!(
            generic.check(&headers(&[("x-signature", &signature)]), b"[]", 0),
            Err(Refusal::Mismatch("signature"))
        );
        let base64 = checker(serde_json::json!({
            "type": "hmac", "secret": "k", "header": "X-Signature", "encoding": "base64",
        }));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), b"{}");
        let written = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        assert_eq!(base64.check(&headers(&[("x-signature", &written)]), b"{}", 0), Ok(()));
    }

    #[test]
    fn auth_without_its_secret_or_with_a_bad_header_is_refused() {
        let err =
            Checker::new(&serde_json::from_value(serde_json::json!({ "type": "github" })).unwrap())
                .unwrap_err();
        assert_eq!(err, "settings.auth.secret: this type of auth needs a secret");
        let err = Checker::new(
            &serde_json::from_value(
                serde_json::json!({ "type": "hmac", "secret": "k", "header": "bad header" }),
            )
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(err, "settings.auth.header: \"bad header\" is not a header name");
    }
}
