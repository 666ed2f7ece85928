//! Latency and throughput of one cross-module hop: a relay in one runtime delivers to a sink in
//! another over gRPC on loopback, the two sides on runtimes of their own with two workers each,
//! as two module processes would. In the same run, for scale: a raw TCP round trip (two threads
//! with blocking sockets, and two Tokio runtimes), a ping-pong on a plain HTTP/2 stream (`h2`,
//! no gRPC), the same stream carrying the hop's gRPC frames with their JSON parsed and written
//! on each side but no runtime (the least any gRPC hop with JSON messages does), a plain tonic
//! unary ping-pong (`grpc.health.v1.Health/Check`), and Weir's unary
//! `Deliver` (a message from outside any flow, `weir send`'s way). The hop is measured twice
//! on the same stream, and once more in runs that a Pod started (`bench/pod.json`, the run's
//! trigger, while the edge maps the message down to the Pod's image), as a resource watch's
//! runs are.
//!
//! Where the threads run decides the figures on a VM: a round trip within one CPU costs a
//! third of one between two (no idle CPU to wake), and left to the scheduler the hop's tasks
//! drift between the two after the first tens of thousands of rounds. So every thread is pinned
//! (`HOP_PLACEMENT`): `apart`, the default, puts the sending side on CPU 0 and the serving side
//! on CPU 1, as two module processes on two cores run; `together` puts both on CPU 0; `free`
//! leaves them to the scheduler. Each comparison in a run shares its placement. Each row of
//! round trips one at a time also says what they cost besides time: the CPU of both sides per
//! round trip, and how often the threads slept (two is the least: each side once, woken by the
//! other's frame), so a slower row shows whether it does more work or more hand-overs. Run with
//! `cargo bench -p weir-runtime --bench grpc_hop`; results are recorded in docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    future::Future,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Buf as _, BufMut as _};
use prost::Message as _;
use support::{far_module, key, near_module};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use weir_proto::{
    DeliverRequest, DeliverResponse, EdgeAnswer, EdgeDelivery, deliver_response::Outcome,
    edge_answer, module_client::ModuleClient,
};
use weir_runtime::client::{self, Delivery};
use weir_sdk::{Value, json};

const WARMUP: usize = 1_000;
const ROUNDS: usize = 20_000;
/// Deliveries under way at once in the throughput runs, and how many each run sends.
const IN_FLIGHT: usize = 64;
const THROUGHPUT_MESSAGES: usize = 64_000;
/// The size of a raw TCP ping: about what a small delivery's frame is.
const PING: usize = 64;

/// Where the serving side listens.
struct Endpoints {
    weir: String,
    tonic: String,
    tcp: String,
    http2: String,
}

// Printing the placement is part of the figures.
#[allow(clippy::print_stdout)]
fn main() {
    let placement = Placement::from_env();
    println!("{placement}");
    let (sending, serving) = (placement.cpu(Side::Sending), placement.cpu(Side::Serving));
    pin(sending);
    let blocking = blocking_tcp(serving);
    let stop = CancellationToken::new();
    let (endpoints_tx, endpoints_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn({
        let stop = stop.clone();
        move || {
            pin(serving);
            side_runtime(serving).block_on(serve(endpoints_tx, stop));
        }
    });
    let endpoints = endpoints_rx.recv().expect("the serving side starts");
    // On a worker of the sending side, as a node's emit is: `block_on` would poll it on this
    // thread, which every answer would have to wake besides the worker that reads it.
    side_runtime(sending).block_on(async {
        tokio::spawn(async move { measure(blocking, &endpoints).await }).await.expect("no panic");
    });
    stop.cancel();
    let _ = server.join();
}

/// Where the two sides' threads run.
#[derive(Clone, Copy, Debug)]
enum Placement {
    /// The sending side on CPU 0, the serving side on CPU 1.
    Apart,
    /// Both sides on CPU 0.
    Together,
    /// Wherever the scheduler puts them.
    Free,
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Sending,
    Serving,
}

impl Placement {
    fn from_env() -> Self {
        match std::env::var("HOP_PLACEMENT").as_deref() {
            Err(_) | Ok("apart") => Self::Apart,
            Ok("together") => Self::Together,
            Ok("free") => Self::Free,
            Ok(other) => panic!("HOP_PLACEMENT is apart, together or free, not {other:?}"),
        }
    }

    /// The CPU `side`'s threads are pinned to, if any.
    fn cpu(self, side: Side) -> Option<usize> {
        match (self, side) {
            (Self::Apart, Side::Serving) => Some(1),
            (Self::Apart | Self::Together, _) => Some(0),
            (Self::Free, _) => None,
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Apart => {
                write!(f, "placement: apart (sending side on CPU 0, serving side on CPU 1)")
            }
            Self::Together => write!(f, "placement: together (both sides on CPU 0)"),
            Self::Free => write!(f, "placement: free (the scheduler's choice)"),
        }
    }
}

/// Pins the calling thread to `cpu`, if one is given.
fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).expect("pin a thread to its CPU");
    }
}

/// A side's runtime, its threads on `cpu`: two workers, as a module process on this machine
/// has, unless `HOP_WORKERS` says otherwise (0: a current-thread runtime).
fn side_runtime(cpu: Option<usize>) -> tokio::runtime::Runtime {
    let workers = std::env::var("HOP_WORKERS")
        .map_or(2, |workers| workers.parse::<usize>().expect("HOP_WORKERS is a number of workers"));
    let mut builder = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().on_thread_start(move || pin(cpu)).build().expect("a tokio runtime")
}

/// Serves the sink over Weir's gRPC, a plain tonic health service, and a TCP echo.
async fn serve(endpoints: std::sync::mpsc::Sender<Endpoints>, stop: CancellationToken) {
    let right = far_module().await;
    let address = |listener: &tokio::net::TcpListener| {
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let weir = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let tonic = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let http2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let _ = endpoints.send(Endpoints {
        weir: address(&weir),
        tonic: address(&tonic),
        tcp: tcp.local_addr().expect("address").to_string(),
        http2: http2.local_addr().expect("address").to_string(),
    });
    tokio::spawn(http2_echo(http2));
    let (_, health) = tonic_health::server::health_reporter();
    let plain =
        tonic::transport::Server::builder().add_service(health).serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(tonic).with_nodelay(Some(true)),
            stop.clone().cancelled_owned(),
        );
    tokio::spawn(plain);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = tcp.accept().await {
            socket.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut ping = [0; PING];
                while socket.read_exact(&mut ping).await.is_ok() {
                    if socket.write_all(&ping).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    weir_runtime::grpc::serve(right, weir, None, stop).await.expect("the sink side serves");
}

/// Serves HTTP/2 with nothing above it: a stream to `/` echoes every DATA frame back; a stream
/// to `/json` answers each gRPC frame of an `EdgeDelivery` with the `EdgeAnswer` a sink gives
/// (its message's JSON parsed and written again), which is the least any gRPC hop with JSON
/// messages does.
async fn http2_echo(listener: tokio::net::TcpListener) {
    while let Ok((socket, _)) = listener.accept().await {
        socket.set_nodelay(true).expect("nodelay");
        tokio::spawn(async move {
            let Ok(mut connection) = h2::server::handshake(socket).await else { return };
            while let Some(Ok((request, mut respond))) = connection.accept().await {
                tokio::spawn(async move {
                    let json = request.uri().path() == "/json";
                    let mut inbound = request.into_body();
                    let Ok(mut outbound) = respond.send_response(http::Response::new(()), false)
                    else {
                        return;
                    };
                    let mut unread = bytes::BytesMut::new();
                    while let Some(Ok(data)) = inbound.data().await {
                        let _ = inbound.flow_control().release_capacity(data.len());
                        if !json {
                            if outbound.send_data(data, false).is_err() {
                                return;
                            }
                            continue;
                        }
                        unread.extend_from_slice(&data);
                        while let Some(frame) = grpc_frame(&mut unread) {
                            let delivery = EdgeDelivery::decode(frame).expect("a delivery");
                            let message: Value = serde_json::from_slice(
                                &delivery.request.unwrap_or_default().message_json,
                            )
                            .expect("JSON");
                            let answer = serde_json::to_vec(&message).expect("JSON");
                            let response =
                                DeliverResponse { outcome: Some(Outcome::AnswerJson(answer)) };
                            let answer = EdgeAnswer {
                                id: delivery.id,
                                outcome: Some(edge_answer::Outcome::Response(response)),
                            };
                            if outbound.send_data(grpc_framed(&answer), false).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    }
}

/// A message with gRPC's five-byte prefix (uncompressed, its length).
fn grpc_framed(message: &impl prost::Message) -> bytes::Bytes {
    let length = u32::try_from(message.encoded_len()).expect("a small message");
    let mut wire = bytes::BytesMut::with_capacity(5 + message.encoded_len());
    wire.put_u8(0);
    wire.put_u32(length);
    message.encode(&mut wire).expect("room for the message");
    wire.freeze()
}

/// The first whole gRPC message in `unread`, taken out of it.
fn grpc_frame(unread: &mut bytes::BytesMut) -> Option<bytes::Bytes> {
    let length = usize::try_from(u32::from_be_bytes(unread.get(1..5)?.try_into().ok()?)).ok()?;
    if unread.len() < 5 + length {
        return None;
    }
    unread.advance(5);
    Some(unread.split_to(length).freeze())
}

/// An HTTP/2 stream to `path` on the bench's plain HTTP/2 server at `address`.
async fn http2_stream(address: &str, path: &str) -> (h2::SendStream<bytes::Bytes>, h2::RecvStream) {
    let socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let (requests, connection) = h2::client::handshake(socket).await.expect("HTTP/2");
    tokio::spawn(connection);
    let request =
        http::Request::post(format!("http://{address}{path}")).body(()).expect("a request");
    let (answers, sending) =
        requests.ready().await.expect("ready").send_request(request, false).expect("a stream");
    (sending, answers.await.expect("an answer").into_body())
}

/// Round trips of a ping between two threads with blocking sockets, the echoing one on
/// `echo_cpu`: the machine's floor.
fn blocking_tcp(echo_cpu: Option<usize>) -> Rounds {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let echo = std::thread::spawn(move || {
        pin(echo_cpu);
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let mut ping = [0; PING];
        while socket.read_exact(&mut ping).is_ok() {
            if socket.write_all(&ping).is_err() {
                return;
            }
        }
    });
    let mut socket = TcpStream::connect(address).expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let mut ping = [7; PING];
    // The one loop that times rounds, on a runtime of this thread only: each round is ready at
    // its first poll, so nothing but the blocking sockets runs.
    let here = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let rounds = here.block_on(one_at_a_time(|| {
        socket.write_all(&ping).expect("write");
        socket.read_exact(&mut ping).expect("read");
        std::future::ready(())
    }));
    drop(socket);
    let _ = echo.join();
    rounds
}

/// `ROUNDS` round trips one at a time, after `WARMUP`, each timed; the CPU time they took and
/// how often the process's threads went to sleep in them.
struct Rounds {
    took: Vec<Duration>,
    /// CPU time of both sides together per round trip: one at a time, each side's work lies on
    /// the round trip's path, as the other side waits for it.
    cpu: Duration,
    /// Voluntary context switches of all the process's threads, per round trip. A round trip
    /// between two sides that wait for each other cannot take fewer than two (each side sleeps
    /// once until the other's frame wakes it); more would be hand-overs between threads of one
    /// side, each a wake-up on the way.
    sleeps: f64,
}

impl Rounds {
    /// The rounds `took`, with the CPU time and sleeps of the process before them.
    fn new(took: Vec<Duration>, (cpu, slept): (Duration, u64)) -> Self {
        let rounds = u32::try_from(WARMUP + ROUNDS).expect("a count");
        // A thread that ended during the rounds takes its count along: never below zero.
        let slept = sleeps().saturating_sub(slept);
        Self {
            took,
            cpu: (cpu_time() - cpu) / rounds,
            sleeps: f64::from(u32::try_from(slept).unwrap_or(u32::MAX)) / f64::from(rounds),
        }
    }
}

/// [`Rounds`] of `call`, each awaited.
async fn one_at_a_time<F: Future<Output = ()>>(mut call: impl FnMut() -> F) -> Rounds {
    let mut took = Vec::with_capacity(ROUNDS);
    let before = (cpu_time(), sleeps());
    for round in 0..WARMUP + ROUNDS {
        let started = Instant::now();
        call().await;
        if round >= WARMUP {
            took.push(started.elapsed());
        }
    }
    Rounds::new(took, before)
}

/// Voluntary context switches of all this process's threads so far.
fn sleeps() -> u64 {
    let threads = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    threads
        .filter_map(|thread| std::fs::read_to_string(thread.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|line| line.starts_with("voluntary_ctxt_switches"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// CPU time this process (both sides) has used so far, from `/proc/self/stat` (in ticks of
/// 10 ms, `USER_HZ`).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse().expect("a number of ticks"))
        .collect();
    Duration::from_millis(10 * fields.iter().sum::<u64>())
}

/// Round trips per second of `call` with `IN_FLIGHT` under way at once, and the CPU time each
/// took on both sides together.
async fn per_second<F>(call: impl Fn() -> F + Send + Sync + 'static) -> (f64, Duration)
where
    F: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let cpu = cpu_time();
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let call = Arc::clone(&call);
            tokio::spawn(async move {
                for _ in 0..THROUGHPUT_MESSAGES / IN_FLIGHT {
                    call().await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("no panic");
    }
    let rate = THROUGHPUT_MESSAGES as f64 / started.elapsed().as_secs_f64();
    (rate, (cpu_time() - cpu) / u32::try_from(THROUGHPUT_MESSAGES).expect("a count"))
}

/// p50, p99 and max in µs.
fn summary(took: &mut [Duration]) -> (f64, f64, f64) {
    took.sort();
    let at = |p: f64| took[((took.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), at(1.0))
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn report(what: &str, rounds: &mut Rounds) -> f64 {
    let (p50, p99, max) = summary(&mut rounds.took);
    let (cpu, sleeps) = (rounds.cpu.as_secs_f64() * 1e6, rounds.sleeps);
    println!(
        "{what:<44} p50 {p50:>6.0} µs  p99 {p99:>6.0} µs  max {max:>7.0} µs  CPU {cpu:>5.1} µs  sleeps {sleeps:.2}"
    );
    p50
}

#[allow(clippy::print_stdout)]
async fn measure(mut blocking: Rounds, endpoints: &Endpoints) {
    println!(
        "one at a time, {ROUNDS} round trips after {WARMUP} to warm up (CPU: both sides' per round trip; sleeps: the threads' voluntary context switches per round trip):"
    );
    let raw = report("raw TCP, two threads, blocking sockets", &mut blocking);

    let socket = tokio::net::TcpStream::connect(&endpoints.tcp).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let socket = Arc::new(tokio::sync::Mutex::new(socket));
    let mut tokio_tcp = one_at_a_time(|| {
        let socket = Arc::clone(&socket);
        async move {
            let mut ping = [7; PING];
            let mut socket = socket.lock().await;
            socket.write_all(&ping).await.expect("write");
            socket.read_exact(&mut ping).await.expect("read");
        }
    })
    .await;
    let raw_tokio = report("raw TCP, two Tokio runtimes", &mut tokio_tcp);

    let stream = Arc::new(tokio::sync::Mutex::new(http2_stream(&endpoints.http2, "/").await));
    let mut http2 = one_at_a_time(|| {
        let stream = Arc::clone(&stream);
        async move {
            let mut stream = stream.lock().await;
            let (pings, pongs) = &mut *stream;
            pings.send_data(bytes::Bytes::from_static(&[7; PING]), false).expect("a ping");
            let pong = pongs.data().await.expect("a pong").expect("a pong");
            let _ = pongs.flow_control().release_capacity(pong.len());
        }
    })
    .await;
    let raw_http2 = report("HTTP/2 stream (h2, nothing above it)", &mut http2);

    let message = json!({ "image": "docker.io/library/nginx:1.27", "namespace": "web" });
    let stream = http2_stream(&endpoints.http2, "/json").await;
    let stream = Arc::new(tokio::sync::Mutex::new((stream, bytes::BytesMut::new(), 0)));
    let mut framed = one_at_a_time(|| {
        let (stream, message) = (Arc::clone(&stream), &message);
        async move {
            let mut stream = stream.lock().await;
            let ((deliveries, answers), unread, id) = &mut *stream;
            *id += 1;
            deliveries.send_data(grpc_framed(&edge_delivery(*id, message)), false).expect("sent");
            let answer = loop {
                if let Some(frame) = grpc_frame(unread) {
                    break EdgeAnswer::decode(frame).expect("an answer");
                }
                let data = answers.data().await.expect("an answer").expect("an answer");
                let _ = answers.flow_control().release_capacity(data.len());
                unread.extend_from_slice(&data);
            };
            let Some(edge_answer::Outcome::Response(DeliverResponse {
                outcome: Some(Outcome::AnswerJson(answer)),
            })) = answer.outcome
            else {
                panic!("not an answer: {answer:?}");
            };
            let _: Value = serde_json::from_slice(&answer).expect("JSON");
        }
    })
    .await;
    let grpc_json = report("gRPC frames of JSON on that (no runtime)", &mut framed);

    let health = HealthClient::new(
        tonic::transport::Endpoint::from_shared(endpoints.tonic.clone())
            .expect("a URL")
            .connect()
            .await
            .expect("connect"),
    );
    let check = move || {
        let mut health = health.clone();
        async move {
            health.check(HealthCheckRequest::default()).await.expect("a health check");
        }
    };
    let tonic_unary = report("plain tonic unary (Health/Check)", &mut one_at_a_time(&check).await);

    let module = ModuleClient::connect(endpoints.weir.clone()).await.expect("connect");
    let send = {
        let message = message.clone();
        move || {
            let (mut module, message) = (module.clone(), message.clone());
            async move { unary_send(&mut module, &message).await }
        }
    };
    let weir_unary =
        report("Weir unary Deliver (weir send's way)", &mut one_at_a_time(&send).await);

    let left = near_module(&endpoints.weir).await;
    let hop = {
        let (left, message) = (left.clone(), message.clone());
        move || {
            let (left, message) = (left.clone(), message.clone());
            async move {
                left.send(&key("near"), "in", message).await.expect("delivery");
            }
        }
    };
    let weir_hop = report("Weir hop along an edge (stream)", &mut one_at_a_time(&hop).await);
    // Left to the scheduler (`HOP_PLACEMENT=free`), the threads drift onto one CPU over the
    // first rounds, and the next rounds on the same stream are faster; pinned, the two agree.
    let weir_hop_later =
        report("Weir hop, the next rounds on that stream", &mut one_at_a_time(&hop).await);
    let pod: Value =
        serde_json::from_str(include_str!("../../../bench/pod.json")).expect("bench/pod.json");
    let pod_hop = {
        let left = left.clone();
        move || {
            let (left, pod) = (left.clone(), pod.clone());
            async move {
                left.send(&key("near-pod"), "in", pod).await.expect("delivery");
            }
        }
    };
    report("Weir hop, a Pod the run's trigger", &mut one_at_a_time(&pod_hop).await);
    println!(
        "Weir hop p50 / raw TCP p50: {:.2} (blocking), {:.2} (Tokio); the next rounds: {:.2}, {:.2}; HTTP/2 / raw TCP: {:.2}; gRPC frames of JSON / raw TCP: {:.2}; tonic unary / raw TCP: {:.2}; Weir unary / raw TCP: {:.2}",
        weir_hop / raw,
        weir_hop / raw_tokio,
        weir_hop_later / raw,
        weir_hop_later / raw_tokio,
        raw_http2 / raw,
        grpc_json / raw,
        tonic_unary / raw,
        weir_unary / raw,
    );

    println!("{IN_FLIGHT} under way at once, {THROUGHPUT_MESSAGES} round trips:");
    for (what, rate) in [
        ("plain tonic unary (Health/Check)", per_second(check).await),
        ("Weir unary Deliver (weir send's way)", per_second(send).await),
        ("Weir hop along an edge (stream)", per_second(hop).await),
    ] {
        let (rate, cpu) = rate;
        let cpu = cpu.as_secs_f64() * 1e6;
        println!("{what:<44} {rate:>8.0} per second, {cpu:>5.1} µs of CPU each (both sides)");
    }
}

/// Delivery `id` of `message` along the hop's edge, as the sending side frames it.
fn edge_delivery(id: u64, message: &Value) -> EdgeDelivery {
    let request = DeliverRequest {
        namespace: "test".to_owned(),
        node: "far".to_owned(),
        port: "in".to_owned(),
        message_json: serde_json::to_vec(message).expect("JSON"),
        hops: 1,
        source_node: "near".to_owned(),
        source_port: "out".to_owned(),
        attempt: 1,
        ..DeliverRequest::default()
    };
    EdgeDelivery {
        id,
        request: Some(request),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        timeout_micros: 5_000_000,
        ..EdgeDelivery::default()
    }
}

/// A message from outside any flow to the sink in one `Deliver` call.
async fn unary_send(module: &mut ModuleClient<tonic::transport::Channel>, message: &Value) {
    let target = key("far");
    let delivery = Delivery::starting_run(&target, "in", message);
    client::deliver(module, "right", delivery, Duration::from_secs(5), None)
        .await
        .expect("an answer");
}
