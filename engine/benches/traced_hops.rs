//! What exporting traces costs: the pass-through chain of `weir-runtime`'s `chain` bench (13
//! nodes, 12 hops, one runtime) and the cross-module hop of its `grpc_hop` bench (two runtimes
//! of two workers each, over gRPC on loopback), each with the OTLP exporter of
//! `weir_engine::traces` on and off in alternating rounds of the same run. The exporter sends
//! to an OTLP/HTTP receiver of the bench's own on loopback, which decodes every request and
//! counts its spans and bytes; a case whose receiver got no spans did not measure exporting
//! and fails the run. Run with `cargo bench -p weir-engine --bench traced_hops`; results are
//! recorded in docs/benchmarks.md.

#[path = "../runtime/tests/support/mod.rs"]
mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use support::{
    far_module, hops_timed, key, near_module, node, runtime, serve_on_loopback, two_workers,
};
use tokio_util::sync::CancellationToken;
use weir_engine::traces::Traces;
use weir_runtime::{
    Runtime,
    spans::{DeliverySpan, Spans},
};
use weir_sdk::json;

const ROUNDS: usize = 5;
const CHAIN_NODES: usize = 13;
const CHAIN_WARMUP: u32 = 2_000;
const CHAIN_PER_ROUND: u32 = 20_000;
const HOP_WARMUP: usize = 1_000;
const HOP_PER_ROUND: usize = 4_000;

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn main() {
    let stop = CancellationToken::new();
    let (receiver, received) = otlp_receiver(&stop);
    println!("load average at the start: {}", load_average());

    let chain = std::thread::Builder::new()
        .stack_size(weir_model::mapping::THREAD_STACK)
        .spawn({
            let receiver = receiver.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(chain(&receiver))
            }
        })
        .expect("a thread")
        .join()
        .expect("the chain ran");
    report_exported("chain", &chain, &received);

    let hop = grpc_hop(&receiver, &stop);
    report_exported("gRPC hop", &hop, &received);

    println!("load average at the end: {}", load_average());
    stop.cancel();
}

/// What the receiver was sent: spans, bytes of protobuf and export requests.
#[derive(Debug, Default)]
struct Received {
    spans: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
}

impl Received {
    fn take(&self) -> (u64, u64, u64) {
        (
            self.spans.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
            self.requests.swap(0, Ordering::Relaxed),
        )
    }
}

/// An OTLP/HTTP (protobuf) trace receiver on loopback, on a thread and runtime of its own (as
/// a collector beside the modules would be), until `stop`: its traces URL, and what it counts.
fn otlp_receiver(stop: &CancellationToken) -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    let counted = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let size = body.len() as u64;
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
            };
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .map(|scope| scope.spans.len())
                .sum();
            counted.spans.fetch_add(spans as u64, Ordering::Relaxed);
            counted.bytes.fetch_add(size, Ordering::Relaxed);
            counted.requests.fetch_add(1, Ordering::Relaxed);
            (axum::http::StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("address"));
    listener.set_nonblocking(true).expect("a non-blocking listener");
    let stop = stop.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("the listener");
                let _ =
                    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
            });
    });
    (url, received)
}

/// The engine's exporter sending to `receiver`, with a count of the spans handed to it.
#[derive(Debug)]
struct Exported {
    traces: Traces,
    recorded: AtomicU64,
}

impl Exported {
    fn to(receiver: &str, service: &str) -> Arc<Self> {
        let traces = Traces::to_endpoint(service, receiver).expect("an exporter");
        Arc::new(Self { traces, recorded: AtomicU64::new(0) })
    }
}

impl Spans for Exported {
    fn record(&self, span: &DeliverySpan) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        self.traces.record(span);
    }
}

/// One case's rounds, off and on, and its exporters (stopped, so all they kept was sent).
struct Measured {
    rounds: Vec<(f64, f64)>,
    unit: &'static str,
    exporters: Vec<Arc<Exported>>,
}

/// The pass-through chain, µs per hop, without and with the exporter.
async fn chain(receiver: &str) -> Measured {
    let exporter = Exported::to(receiver, "weir-chain");
    let (off, on) = (runtime(), runtime());
    on.export_spans(Arc::clone(&exporter) as Arc<dyn Spans>);
    for rt in [&off, &on] {
        for i in 0..CHAIN_NODES {
            let (component, edges) = if i + 1 < CHAIN_NODES {
                (
                    "relay",
                    json!([{ "port": "out", "to": { "node": format!("n{}", i + 1), "port": "in" } }]),
                )
            } else {
                ("sink", json!([]))
            };
            rt.apply(&node(&format!("n{i}"), component, json!({}), edges))
                .await
                .expect("node builds");
        }
        chain_round(rt, CHAIN_WARMUP).await;
    }
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        rounds.push((
            chain_round(&off, CHAIN_PER_ROUND).await,
            chain_round(&on, CHAIN_PER_ROUND).await,
        ));
    }
    off.shutdown().await;
    on.shutdown().await;
    let stopping = Arc::clone(&exporter);
    tokio::task::spawn_blocking(move || stopping.traces.shutdown())
        .await
        .expect("the exporter stops");
    Measured { rounds, unit: "µs per hop", exporters: vec![exporter] }
}

/// `messages` through the chain; µs per hop.
async fn chain_round(rt: &Runtime, messages: u32) -> f64 {
    let message = json!({ "value": 1, "name": "web" });
    let started = Instant::now();
    for _ in 0..messages {
        rt.send(&key("n0"), "in", message.clone()).await.expect("delivery");
    }
    started.elapsed().as_secs_f64() * 1e6 / ((CHAIN_NODES - 1) as f64 * f64::from(messages))
}

/// The cross-module hop, p50 in µs, without and with the exporter on both sides: the receiving
/// runtimes on a tokio runtime of their own, the sending ones on another, as two module
/// processes would be.
fn grpc_hop(receiver: &str, stop: &CancellationToken) -> Measured {
    let exporters: Vec<Arc<Exported>> =
        ["weir-left", "weir-right"].iter().map(|service| Exported::to(receiver, service)).collect();
    let (endpoints_tx, endpoints_rx) = std::sync::mpsc::channel();
    let right = exporters[1].clone();
    let serving = std::thread::spawn({
        let stop = stop.clone();
        move || {
            two_workers().block_on(async move {
                let off = serve_sink(None, &stop).await;
                let on = serve_sink(Some(right), &stop).await;
                let _ = endpoints_tx.send((off, on));
                stop.cancelled().await;
            });
        }
    });
    let (off_at, on_at) = endpoints_rx.recv().expect("the receiving side starts");
    let left = exporters[0].clone();
    let rounds = two_workers().block_on(async move {
        let off = sender(&off_at, None).await;
        let on = sender(&on_at, Some(left)).await;
        for rt in [&off, &on] {
            deliveries(rt, HOP_WARMUP).await;
        }
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            rounds.push((
                deliveries(&off, HOP_PER_ROUND).await,
                deliveries(&on, HOP_PER_ROUND).await,
            ));
        }
        rounds
    });
    for exporter in &exporters {
        exporter.traces.shutdown();
    }
    stop.cancel();
    let _ = serving.join();
    Measured { rounds, unit: "µs p50", exporters }
}

/// A receiving module serving `far` on loopback, exporting its spans to `exporter` when given;
/// its endpoint.
async fn serve_sink(exporter: Option<Arc<Exported>>, stop: &CancellationToken) -> String {
    let right = far_module().await;
    if let Some(exporter) = exporter {
        right.export_spans(exporter);
    }
    serve_on_loopback(right, None, stop).await
}

/// The sending module, delivering to the one at `endpoint`, exporting its spans to `exporter`
/// when given.
async fn sender(endpoint: &str, exporter: Option<Arc<Exported>>) -> Runtime {
    let left = near_module(endpoint).await;
    if let Some(exporter) = exporter {
        left.export_spans(exporter);
    }
    left
}

/// `count` deliveries across the hop, one at a time; the p50 in µs.
async fn deliveries(left: &Runtime, count: usize) -> f64 {
    let mut took = hops_timed(left, count).await;
    took.sort();
    took[took.len() / 2].as_secs_f64() * 1e6
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn report_exported(case: &str, measured: &Measured, received: &Received) {
    // What is still in flight to the receiver when the exporters stop has been answered by
    // then; the short wait covers the receiver's own counting.
    std::thread::sleep(Duration::from_millis(200));
    let (spans, bytes, requests) = received.take();
    let recorded: u64 =
        measured.exporters.iter().map(|exporter| exporter.recorded.load(Ordering::Relaxed)).sum();
    for (round, (off, on)) in measured.rounds.iter().enumerate() {
        println!(
            "{case}, round {}: exporter off {off:.2} {unit}, on {on:.2} {unit}, ratio {:.2}",
            round + 1,
            on / off,
            unit = measured.unit
        );
    }
    let mean = |pick: fn(&(f64, f64)) -> f64| {
        measured.rounds.iter().map(pick).sum::<f64>() / measured.rounds.len() as f64
    };
    let (off, on) = (mean(|round| round.0), mean(|round| round.1));
    println!(
        "{case}, mean: off {off:.2}, on {on:.2} {}, ratio {:.2}; the receiver got {spans} of {recorded} spans recorded ({} % dropped by the exporter's queue), {requests} requests, {bytes} bytes ({:.0} bytes a span)",
        measured.unit,
        on / off,
        recorded.saturating_sub(spans) * 100 / recorded.max(1),
        bytes as f64 / spans.max(1) as f64,
    );
    assert!(
        spans > 0,
        "the receiver got no spans in the {case} case: nothing was exported, so nothing was measured"
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|err| format!("unknown ({err})"), |text| text.trim().to_owned())
}
