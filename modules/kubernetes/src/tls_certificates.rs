//! `tls_certificates`: reads the TLS certificates the cluster holds, the `kubernetes.io/tls`
//! Secrets and the Secrets Ingresses name in `spec.tls[].secretName`, and gives each one's
//! facts: subject, DNS names, issuer, serial, validity and days left, soonest expiry first.
//! The Secrets are read inside the node and only those facts leave it: `tls.key` is never
//! read into a message or a log, so a flow watching expiry never carries a private key. A
//! `tls.crt` that does not parse is listed among `unreadable`, named with why, and the rest
//! goes on.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{core::v1::Secret, networking::v1::Ingress};
use kube::{Api, api::ListParams};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value, read_message,
};
use x509_parser::{extensions::GeneralName, pem::Pem};

use crate::access::{Cluster, Connection, Session, scope};

/// Settings of a TLS certificates read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsCertificatesSettings {
    /// The namespace to read; empty for the message's, or every namespace when it names none.
    pub namespace: String,
    /// Also read the Secrets Ingresses name for TLS, whatever their type.
    pub ingresses: bool,
    /// The most Secrets one message reads (1 to 20000); beyond it the read fails rather than
    /// report on part of them.
    pub max_secrets: u32,
    /// Send failures (a denial, too many Secrets) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for TlsCertificatesSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            ingresses: true,
            max_secrets: 5000,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// Where to read.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The namespace, when the settings name none; empty for every namespace.
    #[serde(default)]
    pub namespace: String,
}

/// What was found.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    /// When it was read, RFC 3339 in UTC; `daysLeft` counts from it.
    pub checked_at: String,
    /// The certificates, soonest expiry first.
    pub certificates: Vec<CertificateFacts>,
    /// The Secrets whose certificate could not be read, with why.
    pub unreadable: Vec<Unreadable>,
}

/// The facts of the first certificate (the leaf) of one Secret's `tls.crt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateFacts {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// Its subject, such as `CN=shop.example.com`.
    pub subject: String,
    /// The DNS names of its subject alternative names.
    pub dns_names: Vec<String>,
    /// Its issuer.
    pub issuer: String,
    /// Its serial number in hexadecimal.
    pub serial: String,
    /// Valid from, RFC 3339.
    pub not_before: String,
    /// Valid until, RFC 3339.
    pub not_after: String,
    /// Whole days from `checkedAt` to `notAfter`; negative once expired.
    pub days_left: i64,
}

/// A Secret whose certificate could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Unreadable {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// Why, such as `tls.crt holds no PEM certificate`.
    pub why: String,
}

/// The most Secrets a message may read.
const MAX_SECRETS: u32 = 20_000;

/// A node of the TLS certificates component.
#[derive(Debug)]
pub struct TlsCertificates {
    settings: TlsCertificatesSettings,
    connection: Connection,
}

impl Component for TlsCertificates {
    const NAME: &'static str = "tls_certificates";
    type Settings = TlsCertificatesSettings;

    fn describe() -> Description {
        Description {
            label: "TLS certificates",
            description: "Reads the certificates of TLS Secrets and of the Secrets Ingresses name: subject, DNS names, issuer, serial, expiry and days left. Never the key.",
            tags: &["kubernetes", "tls", "certificate", "x509", "expiry"],
            trigger: false,
            permissions: &[
                Permission { api_group: "", resource: "secrets", verbs: &["get", "list"] },
                Permission {
                    api_group: "networking.k8s.io",
                    resource: "ingresses",
                    verbs: &["list"],
                },
            ],
        }
    }

    fn ports(settings: &TlsCertificatesSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Wanted>("in"), Port::output::<Certificates>("out")],
            settings.error_port,
        )
    }

    fn build(settings: TlsCertificatesSettings) -> Result<Self, NodeError> {
        if !(1..=MAX_SECRETS).contains(&settings.max_secrets) {
            return Err(NodeError::invalid(format!(
                "settings.maxSecrets: {} is not between 1 and {MAX_SECRETS}",
                settings.max_secrets
            )));
        }
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.read(cx, &wanted).await {
            Ok(found) => cx.emit("out", found).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl TlsCertificates {
    async fn read(&self, cx: &Context, wanted: &Wanted) -> Result<Certificates, NodeError> {
        let namespace = if self.settings.namespace.is_empty() {
            &wanted.namespace
        } else {
            &self.settings.namespace
        };
        let session = self.connection.session(cx).await?;
        let secrets: Api<Secret> = api(&session, namespace);
        let max = self.settings.max_secrets as usize;
        // The certificate of each Secret by namespace and name, so one an Ingress names and
        // that is of the TLS type is read and reported once.
        let mut crts: BTreeMap<(String, String), Result<Vec<u8>, String>> = BTreeMap::new();
        let tls_typed = ListParams::default().fields("type=kubernetes.io/tls");
        let doing = format!("list secrets {}", scope(namespace));
        for secret in list_all(&secrets, tls_typed, max, &session, &doing).await? {
            crts.insert(name_of(&secret), crt_of(secret));
        }
        if self.settings.ingresses {
            let ingresses: Api<Ingress> = api(&session, namespace);
            let doing = format!("list ingresses.networking.k8s.io {}", scope(namespace));
            let named: BTreeSet<(String, String)> =
                list_all(&ingresses, ListParams::default(), MAX_SECRETS as usize, &session, &doing)
                    .await?
                    .into_iter()
                    .flat_map(|ingress| tls_secrets_of(&ingress))
                    .filter(|key| !crts.contains_key(key))
                    .collect();
            for (namespace, name) in named {
                if crts.len() >= max {
                    return Err(too_many(max));
                }
                let secrets: Api<Secret> = Api::namespaced(session.client.clone(), &namespace);
                let doing = format!("get secrets {name} in namespace {namespace}");
                let secret =
                    secrets.get_opt(&name).await.map_err(|err| session.error(&doing, err))?;
                let crt = secret.map_or_else(
                    || Err("not found, though an Ingress names it".to_owned()),
                    crt_of,
                );
                crts.insert((namespace, name), crt);
            }
        }
        let now = chrono::Utc::now().timestamp();
        Ok(certificates(now, crts))
    }
}

/// The Secrets one Ingress names for TLS, by namespace and name.
fn tls_secrets_of(ingress: &Ingress) -> Vec<(String, String)> {
    let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
    let tls = ingress.spec.as_ref().and_then(|spec| spec.tls.as_ref());
    tls.into_iter()
        .flatten()
        .filter_map(|tls| tls.secret_name.clone())
        .filter(|name| !name.is_empty())
        .map(|name| (namespace.clone(), name))
        .collect()
}

fn api<K>(session: &Session, namespace: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    if namespace.is_empty() {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), namespace)
    }
}

/// Every object of a list, a page at a time, failing beyond `max`.
async fn list_all<K>(
    api: &Api<K>,
    params: ListParams,
    max: usize,
    session: &Session,
    doing: &str,
) -> Result<Vec<K>, NodeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = params.limit(500);
    let mut objects = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(|err| session.error(doing, err))?;
        objects.extend(page.items);
        if objects.len() > max {
            return Err(too_many(max));
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}

fn too_many(max: usize) -> NodeError {
    NodeError::invalid(format!(
        "more than {max} TLS Secrets (settings.maxSecrets): raise it or read one namespace at a time"
    ))
}

fn name_of(secret: &Secret) -> (String, String) {
    (
        secret.metadata.namespace.clone().unwrap_or_default(),
        secret.metadata.name.clone().unwrap_or_default(),
    )
}

/// The Secret's `tls.crt`; everything else of it, the key above all, is dropped here.
fn crt_of(secret: Secret) -> Result<Vec<u8>, String> {
    let crt = secret.data.and_then(|mut data| data.remove("tls.crt"));
    crt.map(|bytes| bytes.0).ok_or_else(|| "has no tls.crt".to_owned())
}

/// The facts of every certificate, soonest expiry first, and the Secrets whose certificate
/// could not be read, as of `now` (seconds since the epoch).
fn certificates(
    now: i64,
    crts: BTreeMap<(String, String), Result<Vec<u8>, String>>,
) -> Certificates {
    let mut found = Certificates { checked_at: rfc3339(now), ..Certificates::default() };
    for ((namespace, secret), crt) in crts {
        match crt.and_then(|crt| facts_of(now, &crt)) {
            Ok(facts) => found.certificates.push(CertificateFacts { namespace, secret, ..facts }),
            Err(why) => found.unreadable.push(Unreadable { namespace, secret, why }),
        }
    }
    found.certificates.sort_by(|a, b| {
        (&a.not_after, &a.namespace, &a.secret).cmp(&(&b.not_after, &b.namespace, &b.secret))
    });
    found
}

/// The facts of the first certificate of a PEM `tls.crt` (namespace and secret left empty).
fn facts_of(now: i64, crt: &[u8]) -> Result<CertificateFacts, String> {
    let pem = match Pem::iter_from_buffer(crt).next() {
        Some(Ok(pem)) => pem,
        Some(Err(err)) => return Err(format!("tls.crt is not PEM: {err}")),
        None => return Err("tls.crt holds no PEM certificate".to_owned()),
    };
    if pem.label != "CERTIFICATE" {
        return Err(format!("tls.crt begins with a {} block, not a CERTIFICATE", pem.label));
    }
    let (_, certificate) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|err| format!("tls.crt holds no X.509 certificate: {err}"))?;
    let dns_names = match certificate.subject_alternative_name() {
        Ok(Some(names)) => names
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(err) => return Err(format!("tls.crt: subject alternative names: {err}")),
    };
    let validity = certificate.validity();
    let not_after = validity.not_after.timestamp();
    Ok(CertificateFacts {
        namespace: String::new(),
        secret: String::new(),
        subject: certificate.subject().to_string(),
        dns_names,
        issuer: certificate.issuer().to_string(),
        serial: certificate.raw_serial_as_string().replace(':', ""),
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(not_after),
        days_left: (not_after - now).div_euclid(86_400),
    })
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;
    use weir_sdk::testing::Harness;

    use super::*;

    const DAY: i64 = 86_400;
    /// A midnight, UTC.
    const NOW: i64 = 1_800_000_000 - 1_800_000_000 % DAY;

    /// A PEM certificate for `names`, valid until `days` after `now`.
    fn certificate(now: i64, days: i64, names: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        // rcgen takes whole days: `now` is a midnight in these tests.
        let date = chrono::DateTime::from_timestamp(now + days * DAY, 0).unwrap().date_naive();
        let (month, day) = (u8::try_from(date.month()).unwrap(), u8::try_from(date.day()).unwrap());
        params.not_after = rcgen::date_time_ymd(date.year(), month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem().into_bytes()
    }

    #[test]
    fn facts_come_from_the_leaf_sorted_by_expiry_and_bad_ones_are_named() {
        let now = NOW;
        let mut chain = certificate(now, 20, &["shop.example.com", "www.example.com"]);
        chain.extend(certificate(now, 900, &["ca.example.com"]));
        let crts = BTreeMap::from([
            (("web".to_owned(), "shop".to_owned()), Ok(chain)),
            (("api".to_owned(), "soon".to_owned()), Ok(certificate(now, 3, &["api.example.com"]))),
            (("api".to_owned(), "garbage".to_owned()), Ok(b"not a certificate".to_vec())),
            (("api".to_owned(), "empty".to_owned()), Err("has no tls.crt".to_owned())),
        ]);
        let found = certificates(now, crts);
        let names: Vec<_> = found.certificates.iter().map(|c| c.secret.as_str()).collect();
        assert_eq!(names, ["soon", "shop"]);
        let shop = &found.certificates[1];
        assert_eq!(shop.dns_names, ["shop.example.com", "www.example.com"]);
        assert_eq!(shop.days_left, 20);
        assert_eq!(found.certificates[0].days_left, 3);
        assert!(!shop.serial.is_empty() && shop.serial.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            found.unreadable,
            [
                Unreadable {
                    namespace: "api".into(),
                    secret: "empty".into(),
                    why: "has no tls.crt".into()
                },
                Unreadable {
                    namespace: "api".into(),
                    secret: "garbage".into(),
                    why: "tls.crt holds no PEM certificate".into()
                },
            ]
        );
    }

    #[test]
    fn an_expired_certificate_has_negative_days_left() {
        let now = NOW;
        let facts = facts_of(now, &certificate(now, -2, &["old.example.com"])).unwrap();
        assert_eq!(facts.days_left, -2);
    }

    #[test]
    fn a_key_where_the_certificate_belongs_is_refused_without_quoting_it() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let why = facts_of(0, key.as_bytes()).unwrap_err();
        assert_eq!(why, "tls.crt begins with a PRIVATE KEY block, not a CERTIFICATE");
    }

    #[test]
    fn bad_settings_are_refused() {
        let err =
            Harness::build::<TlsCertificates>(&weir_sdk::json!({ "maxSecrets": 0 })).unwrap_err();
        assert_eq!(err.message(), "settings.maxSecrets: 0 is not between 1 and 20000");
    }
}
