//! `request` against real HTTP servers of the test's own on loopback: an echo, Slack's
//! incoming webhook throttling, a flaky service, a connection reset, a black hole, oversized
//! answers, redirects to another origin and a server that quotes the credentials it got.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};
use tokio::{io::AsyncReadExt as _, net::TcpListener};
use weir_http::request::Request;
use weir_runtime::{NodeKey, Runtime};
use weir_sdk::{ErrorKind, testing::Harness};

const TOKEN: &str = "xoxb-very-secret-token";

#[derive(Default)]
struct Calls {
    slack: AtomicU32,
    flaky: AtomicU32,
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

/// Slack's incoming webhook under load: 429 with `Retry-After: 1`, then `ok` as text.
async fn slack(State(calls): State<Arc<Calls>>) -> Response {
    if calls.slack.fetch_add(1, Ordering::SeqCst) == 0 {
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "rate_limited")
            .into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
}

async fn flaky(State(calls): State<Arc<Calls>>) -> Response {
    if calls.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream is restarting").into_response();
    }
    axum::Json(json!({ "healthy": true })).into_response()
}

async fn redirect(Query(to): Query<BTreeMap<String, String>>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to["to"].clone())]).into_response()
}

/// A server that quotes the credentials it was given in its refusal.
/// Refuses every call, quoting back the credentials it was given: the authorization header and
/// the path (a webhook's URL is its credential).
async fn refuse(uri: Uri, headers: HeaderMap) -> Response {
    let given =
        headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default().to_owned());
    (StatusCode::UNAUTHORIZED, format!("invalid_auth: you sent {given:?} to {uri}")).into_response()
}

async fn big() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], "x".repeat(2 << 20)).into_response()
}

async fn big_chunked() -> Response {
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 << 10])));
    Body::from_stream(futures::stream::iter(chunks)).into_response()
}

/// Serves the routes above on a free loopback port.
async fn serve() -> (SocketAddr, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo))
        .route("/slack", any(slack))
        .route("/flaky", any(flaky))
        .route("/redirect", any(redirect))
        .route("/loop", any(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }))
        .route("/refuse", any(refuse))
        .route("/refuse/{*rest}", any(refuse))
        .route("/big", any(big))
        .route("/big-chunked", any(big_chunked))
        .with_state(Arc::clone(&calls));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("the test's own parts work");
    let address = listener.local_addr().expect("the test's own parts work");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, calls)
}

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
fn request(settings: Value) -> Harness {
    Harness::build::<Request>(&settings).expect("the test's own parts work")
}

#[tokio::test]
async fn sends_method_headers_query_credentials_and_each_body_type() {
    let (server, _) = serve().await;
    let node = request(json!({
        "url": format!("http://{server}/echo/{{x}}"),
        "method": "POST",
        "headers": { "X-Team": "platform" },
        "query": { "api": "v2" },
        "auth": { "type": "bearer", "token": TOKEN },
    }));
    node.answer_with(|_, answer| Ok(answer.clone()));
    let answer = node
        .send("in", json!({ "query": { "q": "a b" }, "headers": { "x-request": "7" }, "body": { "text": "deployed" } }))
        .await
        .unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["bodyEncoding"], "json");
    let echoed = &answer["body"];
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo/%7Bx%7D");
    assert_eq!(echoed["query"], "q=a+b&api=v2");
    assert_eq!(echoed["headers"]["x-team"], "platform");
    assert_eq!(echoed["headers"]["x-request"], "7");
    assert_eq!(echoed["headers"]["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(echoed["headers"]["content-type"], "application/json");
    assert_eq!(echoed["body"], r#"{"text":"deployed"}"#);
    assert_eq!(answer["url"], format!("http://{server}/echo/%7Bx%7D"), "shown without its query");

    let form = request(json!({
        "url": format!("http://{server}/echo"),
        "method": "PUT",
        "bodyType": "form",
        "auth": { "type": "basic", "username": "ada", "password": "hunter2" },
    }));
    form.answer_with(|_, answer| Ok(answer.clone()));
    let answer = form
        .send("in", json!({ "body": { "a": "1 2", "n": 3, "tag": ["x", "y"] } }))
        .await
        .unwrap();
    assert_eq!(answer["body"]["body"], "a=1+2&n=3&tag=x&tag=y");
    assert_eq!(answer["body"]["headers"]["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(answer["body"]["headers"]["authorization"], "Basic YWRhOmh1bnRlcjI=");

    let text = request(json!({
        "url": format!("http://{server}/echo"),
        "bodyType": "text",
        "auth": { "type": "header", "headerName": "X-Api-Key", "token": TOKEN },
    }));
    text.answer_with(|_, answer| Ok(answer.clone()));
    let answer = text.send("in", json!({ "method": "PATCH", "body": "plain" })).await.unwrap();
    assert_eq!(answer["body"]["method"], "PATCH");
    assert_eq!(answer["body"]["body"], "plain");
    assert_eq!(answer["body"]["headers"]["x-api-key"], TOKEN);
    let err = text.send("in", json!({ "body": { "not": "text" } })).await.unwrap_err();
    assert_eq!(err.message(), "in.body: a text body is a string, not an object");
}

#[tokio::test]
async fn slack_throttling_is_transient_and_the_edge_waits_its_retry_after() {
    let (server, calls) = serve().await;
    let node = request(json!({ "url": format!("http://{server}/slack"), "method": "POST" }));
    let err = node.send("in", json!({ "body": { "text": "hi" } })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(
        err.message(),
        format!("POST http://{server}/slack: answered 429 Too Many Requests: rate_limited")
    );

    // In a flow: the edge retries after the server's second, not its own millisecond.
    calls.slack.store(0, Ordering::SeqCst);
    let runtime = Runtime::new(vec![weir_common::module(), weir_http::module()]);
    let edge = json!([{ "port": "out", "to": { "node": "notify", "port": "in" },
        "mapping": { "body": { "text": "{{ .text }}" } },
        "retry": { "attempts": 2, "initialBackoff": "1ms", "maxBackoff": "2ms" } }]);
    runtime
        .apply(&flow_node("hold", "common", "delay", json!({ "duration": "1ms" }), edge))
        .await
        .unwrap();
    let settings = json!({ "url": format!("http://{server}/slack"), "method": "POST" });
    runtime.apply(&flow_node("notify", "http", "request", settings, json!([]))).await.unwrap();
    let started = Instant::now();
    let hold = NodeKey { namespace: "test".to_owned(), name: "hold".to_owned() };
    runtime.send(&hold, "in", json!({ "text": "deployed" })).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    assert_eq!(calls.slack.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retry_after_past_the_cap_is_cut_to_it() {
    let app = Router::new().route(
        "/",
        any(|| async { (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "86400")]) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let node = request(json!({ "url": format!("http://{server}/"), "maxRetryAfter": "5s" }));
    let err = node.send("in", json!({})).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_flaky_service_fails_transiently_then_answers_and_other_4xx_are_invalid() {
    let (server, _) = serve().await;
    let node = request(json!({ "url": format!("http://{server}/flaky") }));
    let err = node.send("in", json!({})).await.unwrap_err();
    assert_eq!((err.kind(), err.retry_after()), (ErrorKind::Transient, None));
    assert!(
        err.message().ends_with("answered 503 Service Unavailable: upstream is restarting"),
        "{err}"
    );
    node.answer_with(|_, answer| Ok(answer.clone()));
    assert_eq!(node.send("in", json!({})).await.unwrap()["body"], json!({ "healthy": true }));

    let missing = request(json!({ "url": format!("http://{server}/nowhere") }));
    let err = missing.send("in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(err.message(), format!("GET http://{server}/nowhere: answered 404 Not Found"));

    // Accepting any status, both come out as answers, at once, for the flow to pass on.
    let (server, _) = serve().await;
    for (path, status) in [("flaky", 503), ("nowhere", 404)] {
        let node =
            request(json!({ "url": format!("http://{server}/{path}"), "acceptAnyStatus": true }));
        node.answer_with(|_, answer| Ok(answer.clone()));
        let answer = node.send("in", json!({})).await.unwrap();
        assert_eq!(answer["status"], status, "{answer}");
        assert!(answer["elapsedMs"].is_u64(), "{answer}");
    }
}

#[tokio::test]
async fn a_reset_connection_is_transient_and_a_black_hole_times_out() {
    let resetting = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_at = resetting.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = resetting.accept().await {
            let _ = stream.read(&mut [0; 1024]).await;
            // Linger zero: closing sends RST instead of FIN (the drop cannot block: nothing
            // is left unsent).
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
        }
    });
    let node = request(json!({ "url": format!("http://{reset_at}/") }));
    let err = node.send("in", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.message().starts_with(&format!("GET http://{reset_at}/: ")), "{err}");

    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_at = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hole.accept().await {
            held.push(stream);
        }
    });
    let node = request(json!({ "url": format!("http://{hole_at}/"), "timeout": "300ms" }));
    let started = Instant::now();
    let err = node.send("in", json!({})).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Transient, "no complete answer within 300ms")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn answers_past_the_size_limit_are_refused_whether_announced_or_streamed() {
    let (server, _) = serve().await;
    for path in ["big", "big-chunked"] {
        let node = request(
            json!({ "url": format!("http://{server}/{path}"), "maxResponseBytes": 1_048_576 }),
        );
        let err = node.send("in", json!({})).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(
            err.message(),
            format!(
                "GET http://{server}/{path}: the answer's body is larger than settings.maxResponseBytes (1048576 bytes)"
            )
        );
    }
    let node = request(json!({ "url": format!("http://{server}/big-chunked") }));
    node.answer_with(|_, answer| Ok(answer.clone()));
    let answer = node.send("in", json!({})).await.unwrap();
    assert_eq!(answer["bodyEncoding"], "base64", "no content type: bytes");
}

#[tokio::test]
async fn redirects_are_bounded_and_credentials_stay_with_their_origin() {
    let (first, _) = serve().await;
    let (other, _) = serve().await;
    let node = request(json!({
        "auth": { "type": "bearer", "token": TOKEN },
        "headers": { "Cookie": "session=1", "X-Team": "platform" },
    }));
    node.answer_with(|_, answer| Ok(answer.clone()));
    let same = format!("http://{first}/redirect?to=/echo");
    let answer = node.send("in", json!({ "url": same })).await.unwrap();
    assert_eq!(answer["body"]["headers"]["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(answer["url"], format!("http://{first}/echo"));

    let away = format!("http://{first}/redirect?to=http://{other}/echo");
    let answer = node.send("in", json!({ "url": away })).await.unwrap();
    let headers = &answer["body"]["headers"];
    assert_eq!(headers["authorization"], Value::Null, "no credentials to another origin");
    assert_eq!(headers["cookie"], Value::Null);
    assert_eq!(headers["x-team"], "platform");

    let err = node.send("in", json!({ "url": format!("http://{first}/loop") })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.message(),
        format!(
            "GET http://{first}/loop: answered 302 Found, and settings.maxRedirects (5) are followed already"
        )
    );
}

#[tokio::test]
async fn metadata_addresses_are_refused_even_through_a_redirect_unless_allowed() {
    let (server, _) = serve().await;
    let node = request(json!({}));
    let err = node
        .send("in", json!({ "url": "http://169.254.169.254/latest/meta-data/" }))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().contains("a link-local or cloud metadata address"), "{err}");
    let through = format!("http://{server}/redirect?to=http://[fd00:ec2::254]/latest");
    let err = node.send("in", json!({ "url": through })).await.unwrap_err();
    assert!(
        err.message()
            .starts_with("GET http://[fd00:ec2::254]/latest: [fd00:ec2::254] is fd00:ec2::254"),
        "{err}"
    );

    // Allowed, it is tried: whatever happens then (nothing there, or a sandbox answering),
    // the guard did not refuse it.
    let allowed = request(
        json!({ "allowAddresses": ["169.254.169.254/32"], "timeout": "200ms", "connectTimeout": "100ms" }),
    );
    let tried = allowed.send("in", json!({ "url": "http://169.254.169.254/" })).await;
    if let Err(err) = tried {
        assert!(!err.message().contains("link-local or cloud metadata"), "{err}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_errors() {
    let (server, _) = serve().await;
    let node = request(json!({
        "url": format!("http://{server}/refuse"),
        "query": { "key": TOKEN },
        "auth": { "type": "bearer", "token": TOKEN },
        "errorPort": true,
    }));
    node.answer_with(|_, failure| Ok(failure.clone()));
    let failure = node.send("in", json!({})).await.unwrap();
    let message = failure["error"]["message"].as_str().unwrap();
    assert_eq!(failure["error"]["kind"], "invalid");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(message.contains("<redacted>"), "{message}");
    assert!(message.starts_with(&format!("GET http://{server}/refuse: answered 401")), "{message}");
}

/// What the debug panel, the node's status and the settings' `Debug` show of a failing
/// request: no token, no password, no secret URL, even from a server that quotes them back.
#[tokio::test]
async fn secrets_never_reach_the_debug_panel_or_the_status() {
    let (server, _) = serve().await;
    let runtime = Runtime::new(vec![weir_common::module(), weir_http::module()]);
    let mut events = runtime.inspect();
    let edge = json!([{ "port": "out", "to": { "node": "call", "port": "in" }, "retry": { "attempts": 1 } }]);
    runtime
        .apply(&flow_node("start", "common", "delay", json!({ "duration": "1ms" }), edge))
        .await
        .unwrap();
    let hook = "services/T1/B2/hooksecretpart";
    let settings = json!({
        "secretUrl": format!("http://{server}/refuse/{hook}"),
        "auth": { "type": "basic", "username": "ada", "password": "pw-very-secret" },
    });
    runtime
        .apply(&flow_node("call", "http", "request", settings.clone(), json!([])))
        .await
        .unwrap();
    let start = NodeKey { namespace: "test".to_owned(), name: "start".to_owned() };
    let err = runtime.send(&start, "in", json!({})).await.unwrap_err();
    let call = NodeKey { namespace: "test".to_owned(), name: "call".to_owned() };
    let (_, status, _) = runtime.last_error(&call).expect("the failure is the node's last error");
    let mut seen = vec![err.to_string(), status];
    while let Ok(event) = events.try_recv() {
        seen.push(format!("{event:?}"));
    }
    assert!(seen.len() > 3, "{seen:?}");
    let settings: weir_http::request::RequestSettings = serde_json::from_value(settings).unwrap();
    seen.push(format!("{settings:?}"));
    for text in &seen {
        for secret in ["pw-very-secret", "YWRhOnB3LXZlcnktc2VjcmV0", "hooksecretpart"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // The server quoted both back, and the failure says what it answered.
    assert!(seen[0].contains("answered 401"), "{}", seen[0]);
}

#[tokio::test]
async fn a_url_that_is_a_credential_is_shown_by_its_origin_only() {
    let (server, _) = serve().await;
    // A Slack incoming webhook's URL is its credential.
    let hook = "services/T0001/B0002/XXXXsecretXXXX";
    let node =
        request(json!({ "secretUrl": format!("http://{server}/echo/{hook}"), "method": "POST" }));
    node.answer_with(|_, answer| Ok(answer.clone()));
    let answer = node.send("in", json!({ "body": { "text": "deployed" } })).await.unwrap();
    assert_eq!(answer["body"]["path"], format!("/echo/{hook}"));
    assert_eq!(answer["url"], format!("http://{server}/…"));
    let missing =
        request(json!({ "secretUrl": format!("http://{server}/{hook}"), "method": "POST" }));
    let err = missing.send("in", json!({ "body": {} })).await.unwrap_err();
    assert_eq!(err.message(), format!("POST http://{server}/…: answered 404 Not Found"));
    // A short path and an empty query hold no credential: the server's answer reads as it is.
    let short =
        request(json!({ "secretUrl": format!("http://{server}/refuse?"), "method": "POST" }));
    let err = short.send("in", json!({ "body": {} })).await.unwrap_err();
    assert_eq!(
        err.message(),
        format!(
            "POST http://{server}/…: answered 401 Unauthorized: invalid_auth: you sent None to /refuse?"
        )
    );
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let refused = |settings: Value| Harness::build::<Request>(&settings).unwrap_err().to_string();
    assert_eq!(
        refused(json!({ "url": "ftp://x/" })),
        "settings.url: the scheme \"ftp\" is not http or https"
    );
    assert_eq!(
        refused(json!({ "url": "https://ada:pw@example.com/" })),
        "settings.url: a URL may not hold credentials; give them in settings.auth"
    );
    assert_eq!(
        refused(json!({ "auth": { "type": "bearer" } })),
        "settings.auth: a bearer credential needs a token"
    );
    assert_eq!(
        refused(json!({ "auth": { "type": "basic", "username": "ada" } })),
        "settings.auth: basic credentials need a username and a password"
    );
    assert_eq!(
        refused(json!({ "tls": { "ca": "not pem" } })),
        "settings.tls.ca: holds no PEM certificate"
    );
    assert_eq!(refused(json!({ "maxRedirects": 50 })), "settings.maxRedirects: 50 is more than 20");
    assert!(
        refused(json!({ "allowAddresses": ["metadata"] }))
            .starts_with("settings.allowAddresses[0]: \"metadata\" is not a CIDR")
    );
    assert_eq!(
        refused(json!({ "headers": { "bad header": "x" } })),
        "settings.headers: \"bad header\" is not a header name"
    );
}

#[tokio::test]
async fn a_message_without_a_url_or_with_a_bad_one_is_invalid() {
    let node = request(json!({}));
    let err = node.send("in", json!({})).await.unwrap_err();
    assert_eq!(
        err.message(),
        "in.url: no URL; give one in the message, settings.url or settings.secretUrl"
    );
    let err = node.send("in", json!({ "url": "not a url" })).await.unwrap_err();
    assert!(err.message().starts_with("in.url: not a URL"), "{err}");
    let err = node
        .send("in", json!({ "url": "http://127.0.0.1:1/", "headers": { "x-token": "a\nb" } }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "in.headers.x-token: the value has characters a header cannot carry");
}

// Owned arguments read better with json! literals at the call sites.
#[allow(clippy::needless_pass_by_value)]
fn flow_node(
    name: &str,
    module: &str,
    component: &str,
    settings: Value,
    edges: Value,
) -> weir_model::FlowNode {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "FlowNode",
        "metadata": { "name": name, "namespace": "test", "generation": 1 },
        "spec": { "flow": "f", "module": module, "component": component, "settings": settings, "edges": edges },
    }))
    .expect("the test's own parts work")
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM: (CA, certificate, key).
fn tls_files() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("the test's own parts work");
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("the test's own parts work");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "weir-test-ca");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("the test's own parts work");
    let key = rcgen::KeyPair::generate().expect("the test's own parts work");
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("the test's own parts work");
    params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let certificate = params.signed_by(&key, &ca).expect("the test's own parts work");
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

/// An HTTPS server answering `ok` to every request, with a certificate of a private CA.
async fn serve_tls(certificate: &str, key: &str) -> SocketAddr {
    use tokio::io::AsyncWriteExt as _;
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    };
    let chain = vec![
        CertificateDer::from_pem_slice(certificate.as_bytes()).expect("the test's own parts work"),
    ];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("the test's own parts work");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the test's own parts work")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the test's own parts work");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("the test's own parts work");
    let address = listener.local_addr().expect("the test's own parts work");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else { return };
                let mut request = Vec::new();
                let mut buffer = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_private_ca_is_trusted_when_given_and_insecure_is_an_opt_in() {
    let (ca, certificate, key) = tls_files();
    let server = serve_tls(&certificate, &key).await;
    let url = format!("https://{server}/");
    let untrusting = request(json!({ "url": url }));
    let err = untrusting.send("in", json!({})).await.unwrap_err();
    assert!(err.message().starts_with(&format!("GET {url}: cannot connect")), "{err}");
    assert!(err.message().contains("certificate"), "{err}");
    for settings in [
        json!({ "url": url, "tls": { "ca": ca } }),
        json!({ "url": url, "tls": { "insecure": true } }),
    ] {
        let node = request(settings);
        node.answer_with(|_, answer| Ok(answer.clone()));
        let answer = node.send("in", json!({})).await.unwrap();
        assert_eq!((answer["status"].clone(), answer["body"].clone()), (json!(200), json!("ok")));
    }
}
