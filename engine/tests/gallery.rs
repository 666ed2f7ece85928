//! The gallery's solutions end to end, in the cluster shape: the module processes they use
//! (`weir module NAME`) against a real kube-apiserver, each solution installed with `kubectl
//! apply -f` and its account given exactly the rules `weir rbac` derives, and the services they
//! talk to (a chat webhook) played by HTTP servers of the test's own on loopback. Scheduled
//! moments are fired with `weir send` to the cron node's `control` input.
//!
//! The measurements are ignored by default (`cargo test -p weir-engine --test gallery --
//! --ignored --nocapture`); their numbers are recorded in docs/benchmarks.md.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use chrono::Datelike;
use k8s_openapi::api::{core::v1::Secret, networking::v1::Ingress};
use serde::Deserialize as _;
use serde_json::{Value, json};
use weir_testenv::{
    ControlPlane, Process, eventually,
    solution::{Weir, succeeded, wait_ready},
};

/// How long something that should happen soon may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a solution's nodes may take to be ready: a node reading a Secret may build before
/// its account has its rules, and its host tries it again within seconds.
const READY_PATIENCE: Duration = Duration::from_secs(60);
/// The ServiceAccount the module processes and `weir send` sign in as.
const ACCOUNT: &str = "weir";

fn solutions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../solutions")
}

/// The test's `weir`, its module processes and the namespace they run flows in.
struct Installed {
    weir: Weir,
    flows: String,
    _modules: Vec<Process>,
}

impl Installed {
    /// A fresh namespace for `solution`, where the test sets the scene (Secrets), then the
    /// solution installed there with `sets` and `modules` started for it, ready.
    async fn new(
        plane: &ControlPlane,
        solution: &str,
        modules: &[&str],
        sets: &[(&str, String)],
        scene: impl AsyncFnOnce(&str) -> Result<()>,
    ) -> Result<Self> {
        let flows = plane.namespace(solution).await?;
        let weir =
            Weir::new(env!("CARGO_BIN_EXE_weir"), &plane.admin_account(&flows, ACCOUNT).await?.0);
        scene(&flows).await?;
        weir.install(plane, &flows, &solutions_dir().join(solution), sets)?;
        let modules = weir.start_modules(plane, &flows, modules, ACCOUNT)?;
        wait_ready(&plane.client().await?, &flows, solution, READY_PATIENCE).await?;
        Ok(Self { weir, flows, _modules: modules })
    }

    /// Sends `message` to `target` (`NODE:PORT`) until a replica takes it.
    async fn send(&self, target: &str, message: Value) -> Result<Value> {
        eventually(&format!("weir send {target}"), PATIENCE, || async {
            Ok(Some(self.weir.send(&self.flows, target, &message, "2m")?))
        })
        .await
    }

    /// Why installing `solution` again with `sets` is refused; empty when it is not.
    fn refused(&self, plane: &ControlPlane, solution: &str, sets: &[(&str, String)]) -> String {
        match self.weir.install(plane, &self.flows, &solutions_dir().join(solution), sets) {
            Ok(()) => String::new(),
            Err(err) => format!("{err:#}"),
        }
    }

    /// The rules `weir rbac` derives for `solution`: each with where it holds (`ClusterRole`,
    /// or `Role NAMESPACE`).
    fn rules(&self, solution: &str) -> Result<Vec<(String, Value)>> {
        let printed =
            succeeded(&mut self.weir.command(&["rbac", solution, "-n", &self.flows]), "weir rbac")?;
        let mut granted = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&printed) {
            let document = Value::deserialize(document)?;
            let place = match document["kind"].as_str() {
                Some("ClusterRole") => "ClusterRole".to_owned(),
                Some("Role") => format!(
                    "Role {}",
                    document["metadata"]["namespace"].as_str().unwrap_or_default()
                ),
                _ => continue,
            };
            for rule in document["rules"].as_array().into_iter().flatten() {
                granted.push((place.clone(), rule.clone()));
            }
        }
        Ok(granted)
    }
}

/// A chat webhook of the test's own on loopback: answers every POST with 200 and keeps the
/// JSON bodies.
#[derive(Clone)]
struct Chat {
    received: Arc<Mutex<Vec<Value>>>,
    url: String,
}

impl Chat {
    async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let chat = Self {
            received: Arc::default(),
            url: format!("http://{}/services/T0/B0/x", listener.local_addr()?),
        };
        let keeping = Arc::clone(&chat.received);
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let keeping = Arc::clone(&keeping);
            async move {
                if let Ok(json) = serde_json::from_slice::<Value>(&body) {
                    keeping.lock().unwrap_or_else(PoisonError::into_inner).push(json);
                }
                "ok"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(chat)
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

// ---------------------------------------------------------------------------------------------
// tls-expiry-watcher

/// A PEM certificate (and its key) for `host`, expiring `days` days from now: at the midnight
/// (UTC) that ends the day `days` days from today, so it has `days` whole days left.
fn certificate(host: &str, days: i64) -> Result<(String, String)> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
    let end = (chrono::Utc::now() + chrono::Duration::days(days + 1)).date_naive();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after =
        rcgen::date_time_ymd(end.year(), u8::try_from(end.month())?, u8::try_from(end.day())?);
    params.distinguished_name.push(rcgen::DnType::CommonName, host);
    let key = rcgen::KeyPair::generate()?;
    Ok((params.self_signed(&key)?.pem(), key.serialize_pem()))
}

/// A Secret of `kind` with `crt` as tls.crt and a key.
fn tls_secret(name: &str, kind: &str, crt: &str, key: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "type": kind,
        "stringData": { "tls.crt": crt, "tls.key": key },
    })
}

/// The lines of the posts that name `namespace`.
fn lines_naming(posts: &[Value], namespace: &str) -> Vec<String> {
    posts
        .iter()
        .filter_map(|post| post["text"].as_str())
        .flat_map(str::lines)
        .filter(|line| line.contains(&format!("{namespace}/")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_watcher_posts_soon_expiring_and_unreadable_certificates_once_a_day() -> Result<()>
{
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let chat = Chat::start().await?;
    let certs = plane.namespace("certs").await?;
    let (_, key) = certificate("unused.example.com", 1)?;
    for (name, days) in [("soon", 3), ("later", 20), ("far", 400)] {
        let (crt, key) = certificate(&format!("{name}.example.com"), days)?;
        let secret = tls_secret(name, "kubernetes.io/tls", &crt, &key);
        weir_testenv::create::<Secret>(&client, &certs, secret).await?;
    }
    let garbage = tls_secret("garbage", "kubernetes.io/tls", "not a certificate", &key);
    weir_testenv::create::<Secret>(&client, &certs, garbage).await?;
    // An Opaque Secret is read because an Ingress names it.
    let (crt, ingress_key) = certificate("shop.example.com", 7)?;
    let opaque = tls_secret("shop-tls", "Opaque", &crt, &ingress_key);
    weir_testenv::create::<Secret>(&client, &certs, opaque).await?;
    let ingress = json!({
        "metadata": { "name": "shop" },
        "spec": {
            "defaultBackend": { "service": { "name": "shop", "port": { "number": 80 } } },
            "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
        },
    });
    weir_testenv::create::<Ingress>(&client, &certs, ingress).await?;

    let url = chat.url.clone();
    let watcher = Installed::new(
        plane,
        "tls-expiry-watcher",
        &["common", "http", "js", "kubernetes"],
        &[("webhookSecret", "chat".to_owned())],
        async |flows| {
            let secret =
                json!({ "metadata": { "name": "chat" }, "stringData": { "webhookUrl": url } });
            weir_testenv::create::<Secret>(&client, flows, secret).await?;
            Ok(())
        },
    )
    .await?;

    // Exactly the rules its nodes need: read Secrets and list Ingresses, cluster-wide, and
    // read its own webhook Secret.
    let mut rules = watcher.rules("tls-expiry-watcher")?;
    rules.sort_by_key(|(place, rule)| format!("{place} {rule}"));
    ensure!(
        rules
            == [
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"] })
                ),
                (
                    "ClusterRole".to_owned(),
                    json!({ "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list"] })
                ),
                (
                    format!("Role {}", watcher.flows),
                    json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["chat"], "verbs": ["get"] })
                ),
            ],
        "{rules:?}"
    );

    // A run: the 3- and 7-day ones are posted, soonest first, and the garbage is named.
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let posts = chat.received();
    let lines = lines_naming(&posts, &certs);
    ensure!(lines.len() == 3, "{lines:#?}");
    ensure!(
        lines[0].starts_with(&format!(
            "• {certs}/soon: CN=soon.example.com (soon.example.com) expires in 3 days"
        )),
        "{lines:#?}"
    );
    ensure!(
        lines[1].starts_with(&format!("• {certs}/shop-tls: CN=shop.example.com")),
        "{lines:#?}"
    );
    ensure!(
        lines[2] == format!("• {certs}/garbage: tls.crt holds no PEM certificate"),
        "{lines:#?}"
    );
    let text = posts.iter().map(|post| post.to_string()).collect::<String>();
    ensure!(!text.contains("PRIVATE KEY") && !text.contains("later.example.com"), "{text}");

    // The same day again: nothing of it is posted a second time.
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let again = chat.received();
    ensure!(lines_naming(&again[posts.len()..], &certs).is_empty(), "{again:#?}");

    // Bad settings are refused at install, naming the setting.
    let refused =
        watcher.refused(plane, "tls-expiry-watcher", &[("withinDays", "soon".to_owned())]);
    ensure!(refused.contains("withinDays"), "{refused}");
    let refused = watcher.refused(plane, "tls-expiry-watcher", &[("format", "email".to_owned())]);
    ensure!(
        refused.contains("setting format: \"email\" is not one of slack, teams, json"),
        "{refused}"
    );
    Ok(())
}

/// Runs over 500 TLS Secrets of one namespace, each expiring within the window: from the fire
/// to the run's answer, for the day's first run (which posts them all) and five later ones
/// (which post nothing new).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p weir-engine --test gallery -- --ignored --nocapture"]
async fn measure_a_tls_watcher_run_over_500_secrets() -> Result<()> {
    const SECRETS: usize = 500;
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let chat = Chat::start().await?;
    let certs = plane.namespace("many-certs").await?;
    let (crt, key) = certificate("many.example.com", 5)?;
    for n in 0..SECRETS {
        let secret = tls_secret(&format!("cert-{n}"), "kubernetes.io/tls", &crt, &key);
        weir_testenv::create::<Secret>(&client, &certs, secret).await?;
    }
    let url = chat.url.clone();
    let watcher = Installed::new(
        plane,
        "tls-expiry-watcher",
        &["common", "http", "js", "kubernetes"],
        &[("webhookSecret", "chat".to_owned())],
        async |flows| {
            let secret =
                json!({ "metadata": { "name": "chat" }, "stringData": { "webhookUrl": url } });
            weir_testenv::create::<Secret>(&client, flows, secret).await?;
            Ok(())
        },
    )
    .await?;
    let started = Instant::now();
    watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
    let first = started.elapsed().as_secs_f64();
    let mut seconds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        watcher.send("tls-daily:control", json!({ "action": "fire" })).await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let posted = lines_naming(&chat.received(), &certs).len();
    ensure!(posted == SECRETS, "{posted} posted");
    println!(
        "a run over {SECRETS} TLS Secrets (and what else the cluster holds), weir send included: \
         the day's first, posting all {SECRETS}, {first:.2} s; later ones, posting nothing new, \
         median {:.2} s of {seconds:.2?}",
        seconds[seconds.len() / 2]
    );
    Ok(())
}
