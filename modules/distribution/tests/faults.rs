//! Copies through a fault proxy of ours in front of a real registry: throttling with
//! Retry-After, server errors and a blob stream cut off half-way are ridden out and the digests
//! still match; a registry that keeps throttling ends in a transient error, not a hang.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::{Result, ensure};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use futures::StreamExt as _;
use weir_distribution::{
    client::Registry,
    copy::{Copier, Side},
};
use weir_testregistry::{push_image, push_index, random_bytes, start_registry};

/// A fault to inject into the requests whose path holds `path` and whose method is `method`,
/// the next `times` times.
#[derive(Debug, Clone)]
struct Fault {
    method: &'static str,
    path: &'static str,
    times: usize,
    kind: FaultKind,
}

#[derive(Debug, Clone)]
enum FaultKind {
    /// 429 with `Retry-After: 1`.
    Throttle,
    /// 503.
    Unavailable,
    /// Forward, but end the body after this many bytes.
    CutAfter(usize),
    /// Answer `307` to the same path on another proxy (blob storage on another host).
    Redirect(String),
    /// Forward, adding Docker Hub's pull budget headers: this many pulls left of 100, in a
    /// window of this many seconds.
    Budget(u64, u64),
    /// 404, as for a manifest the registry lost.
    NotFound,
    /// 401, as for a token the registry no longer takes.
    Unauthorized,
    /// 413 for a body over this many bytes (read whole first), as from a proxy with a body
    /// size limit in front of the registry; smaller bodies are forwarded.
    BodyOver(usize),
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<Mutex<Vec<Fault>>>,
    fired: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<String>>>,
    /// Sent upstream in place of the caller's Authorization, when set.
    login: Option<String>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (method, path) = (request.method().to_string(), request.uri().to_string());
    let headers = request.headers().clone();
    let signed = if headers.contains_key("authorization") { "signed" } else { "unsigned" };
    proxy
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{method} {path} {signed}"));
    let fault = {
        let mut faults = proxy.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let found =
            faults.iter_mut().find(|f| f.times > 0 && f.method == method && path.contains(f.path));
        found.map(|fault| {
            fault.times -= 1;
            fault.kind.clone()
        })
    };
    let mut body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    if let Some(FaultKind::BodyOver(limit)) = fault {
        let Ok(bytes) = axum::body::to_bytes(Body::new(body), usize::MAX).await else {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(Body::empty())
                .unwrap_or_default();
        };
        if bytes.len() <= limit {
            body = reqwest::Body::from(bytes);
        } else {
            proxy
                .fired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("BodyOver {method} {path} {}", bytes.len()));
            return Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body(Body::from("<html>413 Request Entity Too Large</html>"))
                .unwrap_or_default();
        }
    }
    if let Some(kind) = fault.as_ref().filter(|k| !matches!(k, FaultKind::BodyOver(_))) {
        proxy
            .fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{kind:?} {method} {path}"));
    }
    match fault {
        Some(FaultKind::Throttle) => {
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", "1")
                .body(Body::from("{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}"))
                .unwrap_or_default();
        }
        Some(FaultKind::Redirect(host)) => {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", format!("http://{host}{path}"))
                .body(Body::empty())
                .unwrap_or_default();
        }
        Some(FaultKind::Unauthorized) => {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Body::from("{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}"))
                .unwrap_or_default();
        }
        Some(FaultKind::NotFound) => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::empty())
                .unwrap_or_default();
        }
        Some(FaultKind::Unavailable) => {
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(Body::empty())
                .unwrap_or_default();
        }
        _ => {}
    }
    let mut headers: HeaderMap = headers;
    if let Some(login) = proxy.login.as_deref().and_then(|l| l.parse().ok()) {
        headers.insert("authorization", login);
    }
    let upstream = proxy
        .http
        .request(
            method.parse().unwrap_or(reqwest::Method::GET),
            format!("{}{path}", proxy.upstream),
        )
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(upstream) = upstream else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        response = response.header(name.as_str(), value.as_bytes());
    }
    if let Some(FaultKind::Budget(left, window)) = &fault {
        response = response
            .header("ratelimit-limit", format!("100;w={window}"))
            .header("ratelimit-remaining", format!("{left};w={window}"));
    }
    let stream = upstream.bytes_stream();
    let body = match fault {
        Some(FaultKind::CutAfter(limit)) => {
            let mut sent = 0;
            Body::from_stream(stream.map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                if sent + chunk.len() > limit {
                    return Err(std::io::Error::other("the fault proxy cut the body"));
                }
                sent += chunk.len();
                Ok(chunk)
            }))
        }
        _ => Body::from_stream(stream),
    };
    response.body(body).unwrap_or_default()
}

async fn start_proxy(upstream: &str, faults: Vec<Fault>) -> Result<(String, Proxy)> {
    start_proxy_with(upstream, faults, None).await
}

async fn start_proxy_with(
    upstream: &str,
    faults: Vec<Fault>,
    login: Option<String>,
) -> Result<(String, Proxy)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let proxy = Proxy {
        upstream: format!("http://{upstream}"),
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?,
        faults: Arc::new(Mutex::new(faults)),
        fired: Arc::default(),
        seen: Arc::default(),
        login,
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((address.to_string(), proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_a_cut_stream_are_ridden_out() -> Result<()> {
    let copier = Copier::default();
    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(
        &source,
        "acme/app",
        &[random_bytes(400_000), random_bytes(300_000)],
        false,
        "amd64",
    )
    .await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    let faults = vec![
        Fault { method: "HEAD", path: "/manifests/1.0", times: 1, kind: FaultKind::Throttle },
        Fault { method: "GET", path: "/manifests/", times: 1, kind: FaultKind::Unavailable },
        Fault {
            method: "GET",
            path: "/blobs/sha256:",
            times: 1,
            kind: FaultKind::CutAfter(100_000),
        },
    ];
    let (proxied, proxy) = start_proxy(&source_registry.host, faults).await?;
    let through_proxy = Registry::new(&proxied, true)?;
    let target = Registry::new(&target_registry.host, true)?;
    let report = copier
        .copy(
            Side { registry: &through_proxy, repository: "acme/app" },
            "1.0",
            Side { registry: &target, repository: "mirror/acme/app" },
            "1.0",
        )
        .await?;
    let fired = proxy.fired.lock().unwrap_or_else(PoisonError::into_inner).clone();
    ensure!(fired.len() == 3, "every fault fired: {fired:?}");
    ensure!(report.digest == image.digest && report.blobs_uploaded == 3, "{report:?}");
    let copied = target.manifest("mirror/acme/app", "1.0").await?;
    ensure!(copied.bytes == image.bytes, "byte-exact after the faults");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_keeps_throttling_ends_in_a_transient_error() -> Result<()> {
    let copier = Copier::default();
    let registry = start_registry().await?;
    let faults =
        vec![Fault { method: "HEAD", path: "/manifests/", times: 100, kind: FaultKind::Throttle }];
    let (proxied, proxy) = start_proxy(&registry.host, faults).await?;
    let client = Registry::new(&proxied, true)?;
    let side = Side { registry: &client, repository: "acme/app" };
    let err = copier.copy(side, "1.0", side, "1.0").await.expect_err("throttled for good");
    ensure!(err.is_transient(), "{err}");
    ensure!(err.to_string().contains("429 Too Many Requests"), "{err}");
    let fired = proxy.fired.lock().unwrap_or_else(PoisonError::into_inner).len();
    ensure!(fired == 4, "four attempts, then it gives up: {fired}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_cancels_its_session_and_the_blob_is_sent_again() -> Result<()> {
    let copier = Copier::default();
    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(200_000)], false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    let faults = vec![Fault {
        method: "PUT",
        path: "/blobs/uploads/",
        times: 1,
        kind: FaultKind::Unavailable,
    }];
    let (proxied, proxy) = start_proxy(&target_registry.host, faults).await?;
    let target = Registry::new(&proxied, true)?;
    let report = copier
        .copy(
            Side { registry: &source, repository: "acme/app" },
            "1.0",
            Side { registry: &target, repository: "mirror/acme/app" },
            "1.0",
        )
        .await?;
    ensure!(report.digest == image.digest && report.blobs_uploaded == 2, "{report:?}");
    let seen = proxy.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let cancelled =
        seen.iter().filter(|r| r.starts_with("DELETE /v2/mirror/acme/app/blobs/uploads/")).count();
    ensure!(cancelled == 1, "the failed upload's session was cancelled: {seen:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_registry_fails_instead_of_hanging() -> Result<()> {
    use weir_distribution::client::Options;

    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = Options {
        plain_http: true,
        read_timeout: std::time::Duration::from_millis(300),
        ..Options::default()
    };
    let client = Registry::with_options(&address, &options)?;
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        client.manifest_digest("acme/app", "1.0"),
    )
    .await;
    let err = outcome.map_err(|_| anyhow::anyhow!("the request hung"))?.expect_err("no answer");
    ensure!(err.is_transient(), "{err}");
    ensure!(
        err.to_string()
            == format!(
                "HEAD manifest acme/app:1.0 on {address}: the registry did not answer within 300 ms, 4 times"
            ),
        "{err}"
    );
    ensure!(client.requests() == 4, "it tried four times: {}", client.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_host() -> Result<()> {
    use weir_distribution::auth::Credentials;

    let copier = Copier::default();
    let registry = weir_testregistry::start_registry_with_password().await?;
    let tester = Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() };
    let direct = Registry::new(&registry.host, true)?.with_credentials(Some(tester.clone()));
    let image = push_image(&direct, "acme/app", &[random_bytes(80_000)], false, "amd64").await?;
    direct.put_manifest("acme/app", "1.0", &image).await?;

    // "Blob storage" on another host: it signs in to the registry itself and notes whether the
    // caller sent credentials along.
    let storage_login = "Basic dGVzdGVyOnMzY3JldA==".to_owned();
    let (storage, storage_proxy) =
        start_proxy_with(&registry.host, Vec::new(), Some(storage_login)).await?;
    let faults = vec![Fault {
        method: "GET",
        path: "/blobs/sha256:",
        times: 10,
        kind: FaultKind::Redirect(storage),
    }];
    let (front, _) = start_proxy(&registry.host, faults).await?;
    let through_front = Registry::new(&front, true)?.with_credentials(Some(tester));
    let target_registry = start_registry().await?;
    let target = Registry::new(&target_registry.host, true)?;
    let report = copier
        .copy(
            Side { registry: &through_front, repository: "acme/app" },
            "1.0",
            Side { registry: &target, repository: "mirror/acme/app" },
            "1.0",
        )
        .await?;
    ensure!(report.digest == image.digest && report.blobs_uploaded == 2, "{report:?}");
    let seen = storage_proxy.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    ensure!(seen.len() == 2, "both blobs came from the storage host: {seen:?}");
    ensure!(
        seen.iter().all(|request| request.ends_with(" unsigned")),
        "credentials followed a redirect: {seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_stop_pulling_from_a_registry_under_its_budget_floor() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::{ErrorKind, json, testing::Harness};

    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    for tag in ["1.27", "1.28", "1.29"] {
        let image =
            push_image(&source, "library/nginx", &[random_bytes(10_000)], true, "amd64").await?;
        source.put_manifest("library/nginx", tag, &image).await?;
    }
    let head = |times, kind| Fault { method: "HEAD", path: "/manifests/", times, kind };
    let faults = vec![
        head(3, FaultKind::Budget(7, 21600)),
        head(1, FaultKind::Budget(50, 21600)),
        head(1, FaultKind::Budget(3, 1)),
    ];
    let (hub, proxy) = start_proxy(&source_registry.host, faults).await?;
    let request = |tag: &str| {
        json!({
            "source": format!("{hub}/library/nginx:{tag}"),
            "target": format!("{}/mirror/nginx:{tag}", target_registry.host),
            "sourcePlainHttp": true,
            "targetPlainHttp": true,
        })
    };
    let pulls = || {
        let seen = proxy.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().filter(|r| r.starts_with("GET ") && r.contains("/manifests/")).count()
    };
    let careful = Harness::build::<RegistryCopy>(&json!({}))?;
    careful.answer_with(|_, copied| Ok(copied.clone()));
    let unbounded = Harness::build::<RegistryCopy>(&json!({ "minPullsLeft": 0 }))?;
    unbounded.answer_with(|_, copied| Ok(copied.clone()));

    // The free HEAD reports 7 left: the default floor of 10 stops the copy before its GET.
    let err = careful.send("in", request("1.27")).await.expect_err("under the floor");
    ensure!(err.kind() == ErrorKind::Transient, "{err}");
    ensure!(
        err.message()
            == format!(
                "{hub} has 7 pulls left of 100 in its 21600 s window; copying from it stops below 10 so running clusters keep theirs"
            ),
        "{err}"
    );
    ensure!(pulls() == 0, "no pull was spent");

    // Without a floor the copy goes on, and reports what is left.
    let copied = unbounded.send("in", request("1.27")).await?;
    ensure!(
        copied["sourcePullsLeft"]
            == json!({ "remaining": 7, "limit": 100, "windowSeconds": 21600 }),
        "{copied}"
    );
    ensure!(pulls() == 1, "one manifest GET");
    let left =
        unbounded.gauges().into_iter().find(|(gauge, _)| gauge.name == "weir_registry_pulls_left");
    ensure!(
        left.as_ref()
            .is_some_and(|(_, series)| series == &[(vec![("registry", hub.clone())], 7.0)]),
        "{left:?}"
    );

    // An image the mirror has unchanged is still checked and answered: HEADs only.
    let again = careful.send("in", request("1.27")).await?;
    ensure!(again["changed"] == false, "{again}");
    ensure!(pulls() == 1, "no pull for an unchanged image");

    // An answer reporting more lets copies pull again.
    let copied = careful.send("in", request("1.28")).await?;
    ensure!(copied["changed"] == true, "{copied}");

    // A budget under the floor holds for its window even when later answers say nothing,
    // then lapses.
    let err = careful.send("in", request("1.29")).await.expect_err("3 left");
    ensure!(
        err.message().starts_with(&format!("{hub} has 3 pulls left of 100 in its 1 s")),
        "{err}"
    );
    let err = careful.send("in", request("1.29")).await.expect_err("the window holds");
    ensure!(err.message().contains("has 3 pulls left"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let copied = careful.send("in", request("1.29")).await?;
    ensure!(copied["changed"] == true, "{copied}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_mid_copy_are_fetched_again() -> Result<()> {
    use std::sync::atomic::Ordering;

    let copier = Copier::default();
    use weir_distribution::auth::Credentials;
    use weir_testregistry::{
        TokenLifetime, push_index, start_registry_with_tokens, start_token_service_with,
    };

    // The service says its tokens last an hour; the registry takes them for two seconds at
    // most, so only a client that fetches again when refused gets through.
    let tokens =
        start_token_service_with(TokenLifetime { claimed_secs: 3600, at_registry_secs: 2 }).await?;
    let (source_registry, target_registry) =
        (start_registry().await?, start_registry_with_tokens(&tokens).await?);
    let source = Registry::new(&source_registry.host, true)?;
    let amd = push_image(&source, "acme/app", &[random_bytes(60_000)], false, "amd64").await?;
    let arm = push_image(&source, "acme/app", &[random_bytes(60_000)], false, "arm64").await?;
    let index =
        push_index(&source, "acme/app", "1.0", &[(&amd, "amd64"), (&arm, "arm64")], false).await?;
    // Between the two platforms the source throttles three times (three seconds), and the
    // first upload is refused after its session opened, as for a token revoked mid-way.
    let arm_manifest: &'static str = Box::leak(format!("/manifests/{}", arm.digest).into());
    let source_faults =
        vec![Fault { method: "GET", path: arm_manifest, times: 3, kind: FaultKind::Throttle }];
    let (slow_source, source_proxy) = start_proxy(&source_registry.host, source_faults).await?;
    let target_faults = vec![Fault {
        method: "PUT",
        path: "/blobs/uploads/",
        times: 1,
        kind: FaultKind::Unauthorized,
    }];
    let (target_front, target_proxy) = start_proxy(&target_registry.host, target_faults).await?;
    let tester = Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() };
    let source = Registry::new(&slow_source, true)?;
    let target = Registry::new(&target_front, true)?.with_credentials(Some(tester.clone()));
    let report = copier
        .copy(
            Side { registry: &source, repository: "acme/app" },
            "1.0",
            Side { registry: &target, repository: "mirror/acme/app" },
            "1.0",
        )
        .await?;
    ensure!(report.digest == index.digest && report.manifests_written == 3, "{report:?}");
    let fired = (
        source_proxy.fired.lock().unwrap_or_else(PoisonError::into_inner).len(),
        target_proxy.fired.lock().unwrap_or_else(PoisonError::into_inner).len(),
    );
    ensure!(fired == (3, 1), "every fault fired: {fired:?}");
    // Pull and push at the start and push again after the refused upload make three. Every
    // token the second platform uses was fetched before the three-second pause, so the copy
    // succeeding at all shows that refused tokens were fetched again; at least one more fetch
    // must show in the count (how many depends on timing: concurrent requests share a fetch,
    // and a slow machine may outlive a token within the first platform).
    let issued = tokens.issued.load(Ordering::Relaxed);
    ensure!(issued >= 4, "the refused tokens were fetched again mid-copy: {issued} fetched");
    let seen = target_proxy.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    ensure!(
        seen.iter().any(|r| r.starts_with("DELETE /v2/mirror/acme/app/blobs/uploads/")),
        "the refused upload's session was cancelled: {seen:#?}"
    );
    let copied = Registry::new(&target_registry.host, true)?
        .with_credentials(Some(tester))
        .manifest("mirror/acme/app", "1.0")
        .await?;
    ensure!(copied.bytes == index.bytes, "byte-exact after the refusals");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_refusing_large_bodies_gets_the_blobs_in_chunks() -> Result<()> {
    let copier = Copier::default();
    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(
        &source,
        "acme/app",
        &[random_bytes(300_000), random_bytes(150_000), random_bytes(1_000)],
        false,
        "amd64",
    )
    .await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    // A proxy taking at most 100 kB per request, as nginx with a client_max_body_size.
    let limit = 100_000;
    let faults = ["PUT", "PATCH"]
        .map(|method| Fault {
            method,
            path: "/blobs/uploads/",
            times: usize::MAX,
            kind: FaultKind::BodyOver(limit),
        })
        .to_vec();
    let (proxied, proxy) = start_proxy(&target_registry.host, faults).await?;
    let target = Registry::new(&proxied, true)?;
    let report = copier
        .copy(
            Side { registry: &source, repository: "acme/app" },
            "1.0",
            Side { registry: &target, repository: "mirror/acme/app" },
            "1.0",
        )
        .await?;
    ensure!(report.digest == image.digest && report.blobs_uploaded == 4, "{report:?}");
    ensure!(report.bytes_moved >= 451_000, "every byte counted: {report:?}");
    let copied =
        Registry::new(&target_registry.host, true)?.manifest("mirror/acme/app", "1.0").await?;
    ensure!(copied.bytes == image.bytes, "byte-exact in chunks");
    let seen = proxy.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let patches = seen.iter().filter(|r| r.starts_with("PATCH ")).count();
    ensure!(patches >= 5, "450 kB in chunks of at most 100 kB: {patches} PATCHes");
    let fired = proxy.fired.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let refused_puts = fired.iter().filter(|f| f.starts_with("BodyOver PUT")).count();
    ensure!(refused_puts <= 4, "at most one monolithic try per blob in flight: {fired:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_hash_to_its_digest_is_never_committed() -> Result<()> {
    use weir_distribution::client::{RegistryError, sha256};

    let registry = start_registry().await?;
    let (proxied, _) = start_proxy(
        &registry.host,
        vec![Fault {
            method: "PUT",
            path: "/blobs/uploads/",
            times: usize::MAX,
            kind: FaultKind::BodyOver(50_000),
        }],
    )
    .await?;
    let (whole, chunked) = (Registry::new(&registry.host, true)?, Registry::new(&proxied, true)?);
    // The proxy's refusal of a monolithic upload switches that client to chunks.
    let big = random_bytes(80_000);
    let body = futures::stream::once({
        let big = big.clone();
        async move { Ok(big) }
    });
    let err = chunked.put_blob("acme/app", &sha256(&big), Some(80_000), body).await;
    ensure!(
        matches!(err, Err(RegistryError::TooLargeForOnePut { .. })),
        "the first blob is refused whole: {err:?}"
    );
    for client in [&whole, &chunked] {
        let (claimed, sent) = (sha256(b"what the manifest says"), random_bytes(120_000));
        let body = futures::stream::iter(
            [sent.slice(..70_000), sent.slice(70_000..)].map(Ok::<_, RegistryError>),
        );
        let err = client
            .put_blob("acme/app", &claimed, Some(120_000), body)
            .await
            .expect_err("a blob that is not what its digest says");
        ensure!(
            err.to_string()
                .ends_with(&format!("the bytes hash to {}, not {claimed}", sha256(&sent))),
            "{err}"
        );
        ensure!(!whole.has_blob("acme/app", &claimed).await?, "nothing committed: {err}");
        ensure!(!whole.has_blob("acme/app", &sha256(&sent)).await?, "nothing committed: {err}");
    }
    Ok(())
}

/// A registry of the test's own that answers as a broken or hostile one would, by repository:
/// `huge` serves a manifest past the limit (streamed, with no length), `endless` an error with
/// a body of 128 MiB, `greedy` a token service answer past the limit, `forever` a token said to
/// last `u64::MAX` seconds, `misnamed` a Docker-Content-Digest that is a path, and `evil` a
/// manifest whose layer digest is a path. It counts the bytes of the long bodies it sent.
#[derive(Clone)]
struct Hostile {
    address: String,
    sent: Arc<std::sync::atomic::AtomicUsize>,
}

/// The size of the long bodies: a client reading them whole is caught by what it read.
const LONG_BODY: usize = 128 << 20;

async fn hostile(State(registry): State<Hostile>, request: Request) -> Response {
    let (method, path) = (request.method().as_str().to_owned(), request.uri().path().to_owned());
    let signed = request.headers().get("authorization").and_then(|v| v.to_str().ok()).is_some();
    let answer = |status: StatusCode, body: Body| {
        Response::builder()
            .status(status)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .unwrap_or_default()
    };
    let long = || {
        let sent = Arc::clone(&registry.sent);
        let chunk = 64 * 1024;
        Body::from_stream(futures::stream::iter(0..LONG_BODY / chunk).map(move |_| {
            sent.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; chunk]))
        }))
    };
    let challenge = |repository: &str| {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                "www-authenticate",
                format!(
                    "Bearer realm=\"http://{}/token/{repository}\",service=\"hostile\"",
                    registry.address
                ),
            )
            .body(Body::empty())
            .unwrap_or_default()
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/v2/huge/manifests/1.0") => answer(StatusCode::OK, long()),
        ("GET", "/v2/endless/manifests/1.0") => answer(StatusCode::BAD_REQUEST, long()),
        ("HEAD", "/v2/greedy/manifests/1.0" | "/v2/forever/manifests/1.0") if !signed => {
            challenge(path.split('/').nth(2).unwrap_or_default())
        }
        ("GET", "/token/greedy") => {
            let padding = "x".repeat(200 * 1024);
            answer(
                StatusCode::OK,
                Body::from(format!("{{\"token\":\"t\",\"padding\":\"{padding}\"}}")),
            )
        }
        ("GET", "/token/forever") => answer(
            StatusCode::OK,
            Body::from(format!("{{\"token\":\"t\",\"expires_in\":{}}}", u64::MAX)),
        ),
        ("HEAD", "/v2/forever/manifests/1.0") => Response::builder()
            .header("docker-content-digest", weir_distribution::client::sha256(b"forever"))
            .body(Body::empty())
            .unwrap_or_default(),
        ("HEAD", "/v2/misnamed/manifests/1.0") => Response::builder()
            .header("docker-content-digest", "sha256:../../../v2/other/blobs/x")
            .body(Body::empty())
            .unwrap_or_default(),
        ("GET", "/v2/evil/manifests/1.0") => answer(
            StatusCode::OK,
            Body::from(
                serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": weir_distribution::client::sha256(b"{}"),
                        "size": 2,
                    },
                    "layers": [{
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": "sha256:../../../other/blobs/uploads/?mount=x",
                        "size": 1,
                    }],
                })
                .to_string(),
            ),
        ),
        _ => answer(StatusCode::NOT_FOUND, Body::empty()),
    }
}

async fn start_hostile() -> Result<Hostile> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let registry = Hostile { address: listener.local_addr()?.to_string(), sent: Arc::default() };
    let app = axum::Router::new().fallback(hostile).with_state(registry.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(registry)
}

/// Waits for `work`, failing the test rather than hanging.
async fn bounded<T>(work: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(std::time::Duration::from_secs(30), work)
        .await
        .map_err(|_| anyhow::anyhow!("the client kept reading"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_their_limits_are_refused_naming_the_registry() -> Result<()> {
    use weir_distribution::client::{MANIFEST_LIMIT, TOKEN_ANSWER_LIMIT};

    let registry = start_hostile().await?;
    let host = registry.address.clone();
    let client = Registry::new(&host, true)?;
    let read_since = |before: &mut usize| {
        let now = registry.sent.load(std::sync::atomic::Ordering::Relaxed);
        let sent = now - *before;
        *before = now;
        sent
    };
    let mut before = 0;
    let err = bounded(client.manifest("huge", "1.0")).await?.expect_err("too large");
    ensure!(
        err.to_string()
            == format!(
                "GET manifest huge:1.0 from {host}: the manifest is larger than {MANIFEST_LIMIT} bytes"
            ),
        "{err}"
    );
    ensure!(!err.is_transient(), "the same manifest is as large next time: {err}");
    // What the sockets hold besides: far from all of it.
    let sent = read_since(&mut before);
    ensure!(sent < LONG_BODY / 4, "the client stopped reading: {sent} bytes sent");

    let err = bounded(client.manifest_digest("greedy", "1.0")).await?.expect_err("too large");
    ensure!(
        err.to_string()
            == format!(
                "HEAD manifest greedy:1.0 on {host}: fetch a token from http://{host}/token/greedy: \
                 the token answer is larger than {TOKEN_ANSWER_LIMIT} bytes"
            ),
        "{err}"
    );

    // An error with a long body is reported with the start of it.
    let err = bounded(client.manifest("endless", "1.0")).await?.expect_err("an error status");
    let shown = err.to_string();
    ensure!(
        shown.starts_with(&format!(
            "GET manifest endless:1.0 from {host}: the registry answered 400 Bad Request: xxx"
        )) && shown.len() < 500,
        "{shown}"
    );
    let sent = read_since(&mut before);
    ensure!(sent < LONG_BODY / 4, "the client stopped reading: {sent} bytes sent");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_said_to_last_forever_is_taken_without_overflow() -> Result<()> {
    let client = Registry::new(&start_hostile().await?.address, true)?;
    for _ in 0..2 {
        let digest = bounded(client.manifest_digest("forever", "1.0")).await??;
        ensure!(digest == Some(weir_distribution::client::sha256(b"forever")), "{digest:?}");
    }
    ensure!(client.requests() == 4, "the token was kept: {} requests", client.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_from_a_registry_are_checked_before_they_go_into_a_url() -> Result<()> {
    let copier = Copier::default();
    let host = start_hostile().await?.address;
    let client = Registry::new(&host, true)?;
    let err = bounded(client.manifest_digest("misnamed", "1.0")).await?.expect_err("a path");
    ensure!(
        err.to_string()
            == format!(
                "HEAD manifest misnamed:1.0 on {host}: its Docker-Content-Digest: digest \
                 \"sha256:../../../v2/other/blobs/x\" is not algorithm:hex with lowercase hex of \
                 the algorithm's length"
            ),
        "{err}"
    );
    let target_registry = start_registry().await?;
    let target = Registry::new(&target_registry.host, true)?;
    let err = bounded(copier.copy(
        Side { registry: &client, repository: "evil" },
        "1.0",
        Side { registry: &target, repository: "mirror/evil" },
        "1.0",
    ))
    .await?
    .expect_err("a layer digest that is a path");
    let shown = err.to_string();
    ensure!(
        shown.starts_with("read manifest evil@sha256:")
            && shown.contains(&format!(" from {host}: layers[0]: digest \"sha256:../../../other")),
        "{shown}"
    );
    ensure!(target.requests() == 0, "nothing reached the target: {}", target.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_the_mirror_cannot_confirm_fails_naming_what_is_missing() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::{ErrorKind, json, testing::Harness};

    let (source_registry, mirror_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let amd = push_image(&source, "acme/multi", &[random_bytes(20_000)], false, "amd64").await?;
    let arm = push_image(&source, "acme/multi", &[random_bytes(20_000)], false, "arm64").await?;
    let index =
        push_index(&source, "acme/multi", "2.0", &[(&amd, "amd64"), (&arm, "arm64")], false)
            .await?;
    // The mirror takes the arm64 manifest, then answers that it does not have it.
    let lost: &'static str = Box::leak(format!("/manifests/{}", arm.digest).into_boxed_str());
    let faults = vec![Fault { method: "HEAD", path: lost, times: 100, kind: FaultKind::NotFound }];
    let (mirror, _) = start_proxy(&mirror_registry.host, faults).await?;
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    let request = json!({
        "source": format!("{}/acme/multi:2.0", source_registry.host),
        "target": format!("{mirror}/mirror/multi:2.0"),
        "sourcePlainHttp": true,
        "targetPlainHttp": true,
    });
    let expected = format!(
        "{mirror}/mirror/multi:2.0@{}: the registry does not have its manifest {} (linux/arm64)",
        index.digest, arm.digest
    );
    let err = node.send("in", request.clone()).await.expect_err("unconfirmed");
    ensure!(err.kind() == ErrorKind::Transient && err.message() == expected, "{err}");
    // Found under its tag later, it is copied again and still not confirmed.
    let err = node.send("in", request).await.expect_err("still unconfirmed");
    ensure!(err.message() == expected, "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_mirror_fails_the_copy_saying_it_did_not_answer() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::{ErrorKind, json, testing::Harness};

    let source_registry = start_registry().await?;
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(10_000)], false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    // Takes connections and never answers; it stops by itself after a minute.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mirror = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let accepting = async {
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), accepting).await;
    });
    let node = Harness::build::<RegistryCopy>(&json!({ "answerTimeout": "500ms" }))?;
    let copying = node.send(
        "in",
        json!({
            "source": format!("{}/acme/app:1.0", source_registry.host),
            "target": format!("{mirror}/mirror/app:1.0"),
            "sourcePlainHttp": true,
            "targetPlainHttp": true,
        }),
    );
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), copying)
        .await
        .map_err(|_| anyhow::anyhow!("the copy hung on the black hole"))?
        .expect_err("no answer");
    ensure!(err.kind() == ErrorKind::Transient, "{err}");
    ensure!(
        err.message()
            == format!(
                "HEAD manifest mirror/app:1.0 on {mirror}: the registry did not answer within 500 ms, 4 times"
            ),
        "{err}"
    );

    for (timeout, why) in
        [("0s", "0s is not between 1ms and 1h"), ("2h", "2h is not between 1ms and 1h")]
    {
        let err = Harness::build::<RegistryCopy>(&json!({ "answerTimeout": timeout }))
            .expect_err("out of range");
        ensure!(err.message() == format!("settings.answerTimeout: {why}"), "{err}");
    }
    Ok(())
}

/// A registry check lets the run through while the registry answers (a sign-in request is an
/// answer), and stops it at once, saying since when and why, when the registry refuses
/// connections or takes them and never answers; it is well again once the registry answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_check_stops_runs_while_the_registry_is_down_or_silent() -> Result<()> {
    use weir_distribution::registry_check::RegistryCheck;
    use weir_sdk::{ErrorKind, json, testing::Harness};

    let up = start_registry().await?;
    let node = Harness::build::<RegistryCheck>(
        &json!({ "registry": up.host, "plainHttp": true, "timeout": "500ms" }),
    )?;
    node.answer_with(|_, message| Ok(json!({ "passed": message })));
    let answer = node.send("in", json!({ "tick": 1 })).await?;
    ensure!(answer == json!({ "passed": { "tick": 1 } }), "{answer}");
    ensure!(node.degraded().is_none());

    // Refused: nothing listens there any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.to_string()
    };
    let node = Harness::build::<RegistryCheck>(
        &json!({ "registry": closed, "plainHttp": true, "timeout": "500ms" }),
    )?;
    let err = node.send("in", json!({})).await.expect_err("refused");
    ensure!(err.kind() == ErrorKind::Transient, "{err}");
    ensure!(
        err.message().starts_with(&format!(
            "registry {closed} has not answered for 0 s: GET /v2/ on {closed}: "
        )) && err.message().ends_with("; nothing that relies on it runs"),
        "{err}"
    );
    ensure!(node.emitted().is_empty(), "nothing went on");
    ensure!(
        node.degraded()
            .is_some_and(|d| d.starts_with(&format!("registry {closed} has not answered")))
    );

    // Silent: takes connections, never answers; it stops by itself after a minute.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let accepting = async {
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), accepting).await;
    });
    let node = Harness::build::<RegistryCheck>(
        &json!({ "registry": silent, "plainHttp": true, "timeout": "500ms" }),
    )?;
    let err = node.send("in", json!({})).await.expect_err("silent");
    ensure!(
        err.message()
            == format!(
                "registry {silent} has not answered for 0 s: GET /v2/ on {silent}: the registry did not answer within 500 ms, 1 times; nothing that relies on it runs"
            ),
        "{err}"
    );
    // Since when is kept: a later failure counts from the first.
    ensure!(node.kept_state()["silentSince"].is_u64(), "{}", node.kept_state());
    ensure!(node.emitted().is_empty(), "not announced unless asked");

    // Announced on `down` once per outage, when asked, after downAfter.
    let node = Harness::build::<RegistryCheck>(&json!({
        "registry": closed, "plainHttp": true, "timeout": "500ms",
        "announceDown": true, "downAfter": "0s",
    }))?;
    for _ in 0..2 {
        node.send("in", json!({})).await.expect_err("refused");
    }
    let announced = node.emitted();
    ensure!(
        announced.len() == 1
            && announced[0].port == "down"
            && announced[0].message["registry"] == closed.as_str(),
        "{announced:?}"
    );
    Ok(())
}
