//! `webhook` on a real listener on loopback, in a runtime that does not lead (webhooks serve on
//! every replica), with real HTTP callers: GitHub's signed deliveries and a wrong signature,
//! Slack's signed commands and a replayed timestamp, a bearer token, oversized and slow
//! bodies, methods, failures answered without internals, `respond: immediately` and the
//! concurrency limit.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;
use weir_http::signature::{Algorithm, sign_hex};
use weir_runtime::Runtime;

const SECRET: &str = "webhook-signing-secret";

/// A follower's runtime with the http and common modules, and the webhook listener's base URL.
struct Served {
    runtime: Runtime,
    base: String,
    client: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn served() -> Served {
    // Never leading: a webhook serves on every replica anyway.
    let (_, follower) = tokio::sync::watch::channel(false);
    let runtime =
        Runtime::with_leadership(vec![weir_http::module(), weir_common::module()], follower);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let base = format!("http://{}/hooks/test/f", listener.local_addr().expect("its address"));
    let stop = CancellationToken::new();
    tokio::spawn(weir_http::hooks::serve(listener, stop.clone()));
    Served { runtime, base, client: reqwest::Client::new(), stop }
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
    .expect("a FlowNode")
}

impl Served {
    /// A webhook node `name` with `settings`, whose runs go to a `respond` node through
    /// `mapping`; returns once the webhook answers.
    async fn hook(&self, name: &str, settings: Value, mapping: Value) {
        let reply = format!("{name}-reply");
        let edges =
            json!([{ "port": "out", "to": { "node": reply, "port": "in" }, "mapping": mapping }]);
        self.runtime
            .apply(&flow_node(&reply, "http", "respond", json!({}), json!([])))
            .await
            .expect("respond");
        self.runtime
            .apply(&flow_node(name, "http", "webhook", settings, edges))
            .await
            .expect("webhook");
        self.ready(name).await;
    }

    /// Waits until the webhook `name` is routed (its trigger started).
    async fn ready(&self, name: &str) {
        for _ in 0..1000 {
            let status = self
                .client
                .head(format!("{}/{name}", self.base))
                .send()
                .await
                .expect("a request")
                .status();
            if status != 404 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("webhook {name} never started");
    }

    fn url(&self, node: &str) -> String {
        format!("{}/{node}", self.base)
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn github_deliveries_are_taken_when_signed_and_refused_when_not() {
    let served = served().await;
    let mapping = json!({ "status": 201, "headers": { "x-seen": "{{ .headers[\"x-github-event\"] }}" },
        "body": { "action": "{{ .body.action }}", "repo": "{{ .params.repo }}", "credentials": "{{ .headers | has(\"authorization\") }}" } });
    let settings =
        json!({ "path": "{repo}/events", "auth": { "type": "github", "secret": SECRET } });
    served.hook("github", settings, mapping).await;
    let body = br#"{"action":"opened","number":7}"#;
    let signature = format!("sha256={}", sign_hex(Algorithm::Sha256, SECRET.as_bytes(), body));
    let url = format!("{}/acme/events?delivery=1", served.url("github"));
    let delivered = served
        .client
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-hub-signature-256", &signature)
        .header("authorization", "token ghp_never_kept")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.headers()["x-seen"], "pull_request");
    assert_eq!(
        json_of(delivered).await,
        (201, json!({ "action": "opened", "repo": "acme", "credentials": false }))
    );

    let forged = format!("sha256={}", sign_hex(Algorithm::Sha256, b"another secret", body));
    let refused = served
        .client
        .post(&url)
        .header("x-hub-signature-256", forged)
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(refused).await,
        (401, json!({ "error": "unauthorized: the signature does not match" }))
    );
    let unsigned = served.client.post(&url).body(&body[..]).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let elsewhere =
        served.client.post(format!("{}/acme/other", served.url("github"))).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404, "a sub-path the pattern does not match");
}

#[tokio::test]
async fn slack_commands_are_taken_within_five_minutes_and_replays_refused() {
    let served = served().await;
    let mapping = json!({ "body": "ran {{ .body.command }} {{ .body.text }}" });
    served.hook("slack", json!({ "auth": { "type": "slack", "secret": SECRET } }), mapping).await;
    let body = "command=%2Fdeploy&text=web+v2&team_id=T1";
    let send = |at: i64| {
        let mut signed = format!("v0:{at}:").into_bytes();
        signed.extend_from_slice(body.as_bytes());
        served
            .client
            .post(served.url("slack"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", at.to_string())
            .header(
                "x-slack-signature",
                format!("v0={}", sign_hex(Algorithm::Sha256, SECRET.as_bytes(), &signed)),
            )
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let answered = send(now).await.unwrap();
    assert_eq!(answered.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(json_of(answered).await, (200, json!("ran /deploy web v2")));
    let replayed = send(now - 600).await.unwrap();
    assert_eq!(
        json_of(replayed).await,
        (
            401,
            json!({ "error": "unauthorized: the request's timestamp is more than five minutes from now" })
        )
    );
}

#[tokio::test]
async fn bearer_tokens_methods_and_bodies_are_checked() {
    let served = served().await;
    let settings = json!({ "methods": ["POST", "PUT"], "auth": { "type": "bearer", "secret": SECRET }, "maxBodyBytes": 1024 });
    served.hook("bearer", settings, json!({ "body": { "got": "{{ .body }}", "as": "{{ .bodyEncoding }}", "query": "{{ .query }}" } })).await;
    let url = served.url("bearer");
    let with_token = |request: reqwest::RequestBuilder| request.bearer_auth(SECRET);
    let answered = with_token(served.client.put(format!("{url}?tag=a&tag=b")))
        .body("plain words")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(answered).await,
        (200, json!({ "got": "plain words", "as": "text", "query": { "tag": ["a", "b"] } }))
    );
    let binary = with_token(served.client.post(&url)).body(vec![0_u8, 1, 2]).send().await.unwrap();
    assert_eq!(json_of(binary).await.1["got"], "AAEC");

    let wrong = served.client.post(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let get = with_token(served.client.get(&url)).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST, PUT");
    let bad_json = with_token(served.client.post(&url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(bad_json).await,
        (400, json!({ "error": "the body is not JSON (key must be a string at line 1 column 2)" }))
    );

    let oversized =
        with_token(served.client.post(&url)).body(vec![b'x'; 2048]).send().await.unwrap();
    assert_eq!(
        json_of(oversized).await,
        (413, json!({ "error": "the body is larger than 1024 bytes" }))
    );
    // Streamed without a length: counted as it arrives.
    let chunks = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 512])));
    let streamed = with_token(served.client.post(&url))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let unknown = served.client.post(format!("{}/nobody", served.base)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    let served = served().await;
    served.hook("slow", json!({ "readTimeout": "300ms" }), json!({ "body": "{{ .body }}" })).await;
    let address = served.base.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = "POST /hooks/test/f/slow HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nten bytes.";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_caller_that_stalls_in_its_headers_is_cut_off() {
    let served = served().await;
    let address = served.base.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(b"POST /hooks/test/f/any HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the connection is still held after 20 s");
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_failed_run_is_answered_with_a_correlation_id_and_no_internals() {
    let served = served().await;
    let edges = json!([{ "port": "out", "to": { "node": "call", "port": "in" }, "mapping": { "body": "{{ .body }}" }, "retry": { "attempts": 1 } }]);
    served.runtime.apply(&flow_node("call", "http", "request", json!({ "url": "http://127.0.0.1:1/private-path", "auth": { "type": "bearer", "token": SECRET } }), json!([]))).await.unwrap();
    served.runtime.apply(&flow_node("failing", "http", "webhook", json!({}), edges)).await.unwrap();
    served.ready("failing").await;
    let (status, body) =
        json_of(served.client.post(served.url("failing")).send().await.unwrap()).await;
    assert_eq!(status, 503, "a transient failure: try again later");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["error"], "the flow failed");
    let id = body["id"].as_str().unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert!(!body.to_string().contains("private-path"));
    let key = weir_runtime::NodeKey { namespace: "test".to_owned(), name: "failing".to_owned() };
    let counters = served.runtime.counters(&key).unwrap();
    assert_eq!(counters.errors, 1, "the failure itself goes to the node's status");
}

#[tokio::test]
async fn immediately_answers_202_and_the_limit_answers_429() {
    let served = served().await;
    let wait = json!([{ "port": "out", "to": { "node": "wait", "port": "in" } }]);
    served
        .runtime
        .apply(&flow_node("wait", "common", "delay", json!({ "duration": "400ms" }), json!([])))
        .await
        .unwrap();
    served
        .runtime
        .apply(&flow_node(
            "early",
            "http",
            "webhook",
            json!({ "respond": "immediately" }),
            wait.clone(),
        ))
        .await
        .unwrap();
    served
        .runtime
        .apply(&flow_node("one", "http", "webhook", json!({ "concurrency": 1 }), wait))
        .await
        .unwrap();
    served.ready("early").await;
    served.ready("one").await;

    let started = std::time::Instant::now();
    let (status, body) =
        json_of(served.client.post(served.url("early")).send().await.unwrap()).await;
    assert_eq!(status, 202);
    assert_eq!(body["id"].as_str().map(str::len), Some(32));
    assert!(started.elapsed() < Duration::from_millis(400), "answered before the run ended");

    let first = served.client.post(served.url("one")).send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        served.client.post(served.url("one")).send().await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().status(), 204, "the delay answers null: no content");
    let second = second.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
}

#[tokio::test]
async fn immediately_answers_with_the_status_and_body_it_is_given() {
    let served = served().await;
    let wait = json!([{ "port": "out", "to": { "node": "wait", "port": "in" } }]);
    served
        .runtime
        .apply(&flow_node("wait", "common", "delay", json!({ "duration": "400ms" }), json!([])))
        .await
        .unwrap();
    let ephemeral = json!({ "response_type": "ephemeral", "text": "Working on it…" });
    for (name, body) in [("slack", ephemeral.clone()), ("text", json!("on it"))] {
        let settings =
            json!({ "respond": "immediately", "immediateStatus": 200, "immediateBody": body });
        served
            .runtime
            .apply(&flow_node(name, "http", "webhook", settings, wait.clone()))
            .await
            .unwrap();
        served.ready(name).await;
    }

    let started = std::time::Instant::now();
    let response = served.client.post(served.url("slack")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(json_of(response).await, (200, ephemeral));
    assert!(started.elapsed() < Duration::from_millis(400), "answered before the run ended");
    let response = served.client.post(served.url("text")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(json_of(response).await, (200, json!("on it")));
}

/// The service a webhook's flow calls: its first call fails (503), and a call to `/hold` waits
/// until `release` is notified; it counts every call.
#[derive(Default)]
struct Service {
    calls: std::sync::atomic::AtomicUsize,
    held: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

async fn service() -> (String, std::sync::Arc<Service>) {
    use axum::{extract::State, http::StatusCode, routing::post};
    use std::sync::{Arc, atomic::Ordering};
    let state = Arc::new(Service::default());
    let call = |State(service): State<Arc<Service>>| async move {
        let first = service.calls.fetch_add(1, Ordering::SeqCst) == 0;
        if first { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
    };
    let hold = |State(service): State<Arc<Service>>| async move {
        service.calls.fetch_add(1, Ordering::SeqCst);
        let released = service.release.notified();
        service.held.notify_one();
        released.await;
        StatusCode::OK
    };
    let app = axum::Router::new()
        .route("/call", post(call))
        .route("/hold", post(hold))
        .with_state(Arc::clone(&state));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), state)
}

#[tokio::test]
async fn a_github_delivery_accepted_before_is_not_run_again_unless_its_run_failed() {
    use std::sync::atomic::Ordering;
    let served = served().await;
    let (service, calls) = service().await;
    served
        .runtime
        .apply(&flow_node(
            "forward",
            "http",
            "request",
            json!({ "url": format!("{service}/call"), "method": "POST" }),
            json!([]),
        ))
        .await
        .unwrap();
    let edges = json!([{ "port": "out", "to": { "node": "forward", "port": "in" }, "mapping": { "body": "{{ .body }}" }, "retry": { "attempts": 1 } }]);
    let settings = json!({ "auth": { "type": "github", "secret": SECRET } });
    served
        .runtime
        .apply(&flow_node("deliveries", "http", "webhook", settings, edges))
        .await
        .unwrap();
    served.ready("deliveries").await;
    // GitHub's way: the body signed with the secret, an id per delivery, the same id again on
    // a redelivery.
    let body = br#"{"action":"published","package":{"name":"web"}}"#;
    let signature = format!("sha256={}", sign_hex(Algorithm::Sha256, SECRET.as_bytes(), body));
    let deliver = |id: &str| {
        served
            .client
            .post(served.url("deliveries"))
            .header("content-type", "application/json")
            .header("x-github-event", "registry_package")
            .header("x-github-delivery", id)
            .header("x-hub-signature-256", &signature)
            .body(&body[..])
            .send()
    };
    let first = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let failed = deliver(first).await.unwrap();
    assert_eq!(failed.status(), 503, "the service failed the first run");
    let redelivered = deliver(first).await.unwrap();
    // The flow ends at the request, so its run answers nothing: 204.
    assert_eq!(redelivered.status(), 204, "a failed delivery is run again when redelivered");
    assert_eq!(calls.calls.load(Ordering::SeqCst), 2);
    let again = json_of(deliver(first).await.unwrap()).await;
    assert_eq!(
        again,
        (
            200,
            json!({ "duplicate": true, "delivery": first,
            "note": "this delivery was accepted before; it is not run again" })
        )
    );
    assert_eq!(calls.calls.load(Ordering::SeqCst), 2, "not run again");
    let forged = served
        .client
        .post(served.url("deliveries"))
        .header("x-github-delivery", first)
        .header(
            "x-hub-signature-256",
            format!("sha256={}", sign_hex(Algorithm::Sha256, b"not the secret", body)),
        )
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401, "the signature is checked before the id");
    assert_eq!(deliver("another-delivery").await.unwrap().status(), 204, "a new id runs");
    assert_eq!(calls.calls.load(Ordering::SeqCst), 3);
    let long = "x".repeat(129);
    assert_eq!(deliver(&long).await.unwrap().status(), 400);

    // A delivery whose run is under way is not run twice at once.
    let held_edges = json!([{ "port": "out", "to": { "node": "forward-held", "port": "in" }, "mapping": { "body": "{{ .body }}" } }]);
    served
        .runtime
        .apply(&flow_node(
            "forward-held",
            "http",
            "request",
            json!({ "url": format!("{service}/hold"), "method": "POST" }),
            json!([]),
        ))
        .await
        .unwrap();
    let settings = json!({ "auth": { "type": "github", "secret": SECRET } });
    served
        .runtime
        .apply(&flow_node("held", "http", "webhook", settings, held_edges))
        .await
        .unwrap();
    served.ready("held").await;
    let send_held = || {
        served
            .client
            .post(served.url("held"))
            .header("content-type", "application/json")
            .header("x-github-delivery", "held-delivery")
            .header("x-hub-signature-256", &signature)
            .body(&body[..])
            .send()
    };
    let held = calls.held.notified();
    let running = tokio::spawn(send_held());
    held.await;
    let (status, answer) = json_of(send_held().await.unwrap()).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["delivery"], "held-delivery");
    calls.release.notify_one();
    assert_eq!(running.await.unwrap().unwrap().status(), 204);
    assert_eq!(send_held().await.unwrap().status(), 200, "a duplicate once it ran");
    assert_eq!(calls.calls.load(Ordering::SeqCst), 4, "the held delivery ran once");
}

#[tokio::test]
async fn a_delivery_window_of_zero_runs_every_delivery() {
    let served = served().await;
    let settings = json!({ "deliveryWindow": "0s" });
    served.hook("every", settings, json!({ "body": "ran" })).await;
    for _ in 0..2 {
        let answered = served
            .client
            .post(served.url("every"))
            .header("x-github-delivery", "same")
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(answered).await, (200, json!("ran")));
    }
}
