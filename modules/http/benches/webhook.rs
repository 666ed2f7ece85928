//! A webhook's round trip: POST a small JSON body to a webhook, one node shapes the reply
//! (`respond`, through a jq mapping), the caller gets it. Requests per second and p50/p99 at 1,
//! 2, 4 and 8 connections, each connection sending its next request when the answer came.
//! The server runs in this process on a runtime of its own (2 workers, as the `weir` binary on
//! this machine); the callers on another thread. With `PEER_URL` set (bench/webhook.sh starts
//! Node-RED's http in → function → http response and sets it) the same callers measure that
//! URL too, in turns with Weir. Run with `cargo bench -p weir-http --bench webhook`; results
//! are recorded in docs/benchmarks.md.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;

const CONNECTIONS: [usize; 4] = [1, 2, 4, 8];
const WARMUP: usize = 500;
const MEASURED: usize = 8_000;
const ROUNDS: usize = 3;

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn main() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let weir = server.block_on(start_weir());
    let callers = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let peer = std::env::var("PEER_URL").ok().filter(|url| !url.is_empty());
    for round in 1..=ROUNDS {
        for connections in CONNECTIONS {
            let measured = callers.block_on(measure(&weir, connections));
            println!("round {round} weir      {connections} connections: {measured}");
            if let Some(peer) = &peer {
                let measured = callers.block_on(measure(peer, connections));
                println!("round {round} node-red  {connections} connections: {measured}");
            }
        }
    }
}

/// A webhook → respond flow in a runtime serving the webhook listener; the webhook's URL.
async fn start_weir() -> String {
    let runtime = Runtime::new(vec![weir_http::module()]);
    let node = |name: &str, component: &str, edges: serde_json::Value| {
        serde_json::from_value::<weir_model::FlowNode>(json!({
            "apiVersion": "weir.dev/v1alpha1",
            "kind": "FlowNode",
            "metadata": { "name": name, "namespace": "bench", "generation": 1 },
            "spec": { "flow": "f", "module": "http", "component": component, "settings": {}, "edges": edges },
        }))
        .expect("a FlowNode")
    };
    let edges = json!([{ "port": "out", "to": { "node": "reply", "port": "in" },
        "mapping": { "body": { "n": "{{ .body.n }}", "seen": true } } }]);
    runtime.apply(&node("reply", "respond", json!([]))).await.expect("respond");
    runtime.apply(&node("hook", "webhook", edges)).await.expect("webhook");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}/hooks/bench/f/hook", listener.local_addr().expect("address"));
    tokio::spawn(weir_http::hooks::serve(listener, CancellationToken::new()));
    // Keep the runtime (and so the node) for the whole run.
    std::mem::forget(runtime);
    // The trigger registers its route a moment after the node starts.
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        let sent =
            client.post(&url).header("content-type", "application/json").body("{}").send().await;
        if sent.is_ok_and(|answer| answer.status() == 200) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the webhook never answered");
}

/// What one level of load gave.
struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>7.0} requests/s, p50 {:>6.0} µs, p99 {:>6.0} µs",
            self.per_second,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6
        )
    }
}

/// `connections` callers, each on a connection of its own, each sending its next request when
/// the answer came.
async fn measure(url: &str, connections: usize) -> Measured {
    let url: Arc<str> = Arc::from(url);
    let per_connection = MEASURED / connections;
    let callers = (0..connections).map(|_| {
        let url = Arc::clone(&url);
        tokio::spawn(async move {
            // One connection: one idle connection kept, and requests one after another.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .expect("a client");
            for n in 0..WARMUP {
                call(&client, &url, n).await;
            }
            let mut latencies = Vec::with_capacity(per_connection);
            let began = Instant::now();
            for n in 0..per_connection {
                let sent = Instant::now();
                call(&client, &url, n).await;
                latencies.push(sent.elapsed());
            }
            (latencies, began.elapsed())
        })
    });
    let mut all = Vec::with_capacity(MEASURED);
    let mut busiest = Duration::ZERO;
    for caller in futures::future::join_all(callers).await {
        let (latencies, took) = caller.expect("a caller");
        all.extend(latencies);
        busiest = busiest.max(took);
    }
    all.sort_unstable();
    let at = |share: f64| all[((all.len() as f64 * share) as usize).min(all.len() - 1)];
    Measured { per_second: all.len() as f64 / busiest.as_secs_f64(), p50: at(0.50), p99: at(0.99) }
}

async fn call(client: &reqwest::Client, url: &str, n: usize) {
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"n":{n}}}"#))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200, "{url}");
    let bytes = answer.bytes().await.expect("a body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    assert_eq!(body["n"], n, "{url}: {body}");
}
