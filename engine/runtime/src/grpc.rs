//! The gRPC side of a module process: other modules deliver messages along edges to the nodes
//! this runtime hosts (on `weir.v1.Module/DeliverAlongEdges` streams), `weir send` and the
//! editor send messages from outside any flow (`weir.v1.Module/Deliver`), the editor watches the
//! nodes (`weir.v1.Module/Inspect`), and probes ask `grpc.health.v1.Health`. A delivery's
//! deadline, its cancellation on the stream, or a caller's disconnect drops the delivery, which
//! cancels everything under it.
//!
//! Who may call: a delivery that names its source must follow an edge the store holds (always);
//! with a [`Gate`] (in a cluster) every call and stream must carry a bearer token, streams of
//! deliveries and `Inspect` come only from the release's own processes (each delivery on a
//! stream is admitted again with the stream's token), and a message from outside any flow only
//! from someone who may update the node.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::Poll,
    time::{Duration, Instant, UNIX_EPOCH},
};

use futures::Stream;
use serde_json::Value;
use tokio::{
    net::TcpListener,
    sync::{broadcast::error::RecvError, mpsc},
    task::AbortHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Request, Response, Status, Streaming, transport::server::TcpIncoming};
use weir_proto::{
    DeliverRequest, DeliverResponse, EdgeAnswer, EdgeDelivery, EventKind, Failure, InspectRequest,
    NodeEvent, Refusal,
    deliver_response::Outcome,
    edge_answer,
    module_server::{Module, ModuleServer},
};
use weir_sdk::{NodeError, Run, TraceContext, Trigger};

use crate::{
    client::TRACEPARENT,
    inspect::{Event, Observed},
    key::NodeKey,
    runtime::Runtime,
    trust::{Caller, Gate, bearer_of},
};

/// How long deliveries under way may go on once the server stops taking calls; then they are
/// cancelled (a Kubernetes pod has 30 s between SIGTERM and SIGKILL by default).
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `runtime`'s nodes on `listener` until `stop` is cancelled, to the callers `gate`
/// admits (to anyone who reaches the listener without one: `weir up`, on loopback). Once
/// stopped it takes no new call and lets the deliveries under way finish for up to [`DRAIN`],
/// then cancels them (their callers hear `UNAVAILABLE`, which they retry).
pub async fn serve(
    runtime: Runtime,
    listener: TcpListener,
    gate: Option<Arc<dyn Gate>>,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ModuleServer<Deliveries>>().await;
    let drained = CancellationToken::new();
    let draining = {
        let (stop, drained) = (stop.clone(), drained.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            tokio::time::sleep(DRAIN).await;
            drained.cancel();
        })
    };
    let deliveries = Deliveries { runtime, gate, stop: stop.clone(), drained };
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ModuleServer::new(deliveries))
        // Without TCP_NODELAY an answer's last frame can wait for the caller's delayed ACK.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop.clone().cancelled_owned(),
        );
    let served = server.await;
    draining.abort();
    served
}

/// Refuses a caller who is not one of the release's processes.
fn peer_only(caller: Option<&Caller>, what: &str) -> Result<(), Status> {
    match caller {
        Some(caller) if !caller.peer => Err(Status::permission_denied(format!(
            "{} is not a process of this Weir release, which alone {what}",
            caller.user
        ))),
        _ => Ok(()),
    }
}

/// How many deliveries one stream may have under way at once; more are refused
/// (`RESOURCE_EXHAUSTED`, which the sender's edge retries). Twice what a sender keeps under way
/// on a link, so that a well-behaved sender is never refused.
pub const STREAM_IN_FLIGHT: usize = 2 * crate::link::IN_FLIGHT;

/// A delivery whose first poll, made on the stream's own task, takes longer than this (a node
/// that computes before it waits) holds up the frames behind it; the stream then gives every
/// delivery a task of its own for [`INLINE_PAUSE`], so that they share the workers again.
const INLINE_POLL_LIMIT: Duration = Duration::from_micros(100);
const INLINE_PAUSE: Duration = Duration::from_millis(10);

#[derive(Clone)]
struct Deliveries {
    runtime: Runtime,
    gate: Option<Arc<dyn Gate>>,
    /// Ends the inspect streams, which would otherwise hold a graceful shutdown open for good.
    stop: CancellationToken,
    /// Cancelled [`DRAIN`] after `stop`: deliveries still under way are cancelled then.
    drained: CancellationToken,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<NodeEvent, Status>> + Send>>;

impl Deliveries {
    /// The caller and their token, when there is a gate; `UNAUTHENTICATED` without a token the
    /// cluster takes.
    async fn admit(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Option<(Caller, String)>, Status> {
        self.admit_token(bearer_of(metadata)).await
    }

    /// [`Self::admit`] for the bearer token given, if any.
    async fn admit_token(&self, token: Option<&str>) -> Result<Option<(Caller, String)>, Status> {
        let Some(gate) = &self.gate else { return Ok(None) };
        let token = token.ok_or_else(|| {
            Status::unauthenticated(
                "this module answers only callers with a Kubernetes bearer token",
            )
        })?;
        Ok(Some((gate.caller(token).await?, token.to_owned())))
    }

    /// One delivery, by a call or on a stream, from `caller` (with their token, where there is
    /// a gate), in the trace `traceparent` names: refused with the status the call fails with,
    /// or answered.
    async fn deliver_one(
        &self,
        caller: Option<&(Caller, String)>,
        traceparent: Option<&str>,
        request: DeliverRequest,
    ) -> Result<DeliverResponse, Status> {
        // Without a trace of its own, a message starts one.
        let trace = traceparent.and_then(TraceContext::from_traceparent).map_or_else(
            || TraceContext::default().child(),
            |trace| TraceContext { parent_id: request.parent_span_id, ..trace },
        );
        let message = json(&request.message_json, "message_json")?;
        // Checked here, parsed where something reads it.
        let trigger = if request.trigger_json.is_empty() {
            Trigger::default()
        } else {
            Trigger::from_json(request.trigger_json).map_err(|err| {
                Status::invalid_argument(format!("trigger_json is not JSON: {err}"))
            })?
        };
        let target = NodeKey { namespace: request.namespace, name: request.node };
        if request.source_node.is_empty() {
            if let (Some(gate), Some((caller, token))) = (&self.gate, caller) {
                gate.may_send(caller, token, &target).await?;
            }
            if let Err(refused) = self.runtime.may_start_run(&target) {
                let failure = Outcome::Failure(Failure::from(&refused));
                return Ok(DeliverResponse { outcome: Some(failure) });
            }
        } else {
            peer_only(caller.map(|(c, _)| c), "deliver along edges")?;
            let source = NodeKey { namespace: target.namespace.clone(), name: request.source_node };
            self.runtime
                .check_edge(&source, &request.source_port, &target, &request.port)
                .await
                .map_err(|err| Status::permission_denied(format!("not along an edge: {err}")))?;
        }
        let run = Run { trigger, hops: request.hops, cancel: CancellationToken::new(), trace };
        let attempt = request.attempt.max(1);
        let received = self.runtime.receive(&target, &request.port, message, run, attempt);
        let received = tokio::select! {
            received = received => received,
            // Dropping the delivery cancels its run; the sender's edge may try another replica.
            () = self.drained.cancelled() => {
                return Err(Status::unavailable(format!(
                    "the module stopped before the delivery to {target} finished"
                )));
            }
        };
        let outcome = match received {
            Ok(answer) => Outcome::AnswerJson(
                serde_json::to_vec(&answer).map_err(|err| Status::internal(err.to_string()))?,
            ),
            Err(error) => Outcome::Failure(Failure::from(&error)),
        };
        Ok(DeliverResponse { outcome: Some(outcome) })
    }

    /// Takes the deliveries of one stream until it ends or the server stops, answering each on
    /// `answers`: one that finishes in its first poll here is answered at once, any other goes
    /// on as a task of its own, which its cancellation frame aborts, and so does the answers'
    /// stream going (`gone`) before they end. Whoever opened the stream
    /// presented `token`, which every delivery is admitted with again: the gate keeps its
    /// answer for a while, and a token it no longer takes stops the stream's deliveries as it
    /// would stop calls.
    async fn carry(
        self,
        mut inbound: Streaming<EdgeDelivery>,
        token: Option<String>,
        answers: mpsc::Sender<Result<EdgeAnswer, Status>>,
        gone: CancellationToken,
    ) {
        let under_way: Arc<Mutex<HashMap<u64, AbortHandle>>> = Arc::default();
        let this = Arc::new(self);
        let token: Option<Arc<str>> = token.map(Arc::from);
        let mut inline_paused: Option<Instant> = None;
        loop {
            let frame = tokio::select! {
                frame = inbound.message() => frame,
                // Deliveries under way finish (or are cut off at the drain); unread ones are
                // left to the sender, who hears the stream end.
                () = this.stop.cancelled() => break,
            };
            let Ok(Some(frame)) = frame else { break };
            let id = frame.id;
            if frame.cancel {
                if let Some(task) = lock(&under_way).remove(&id) {
                    task.abort();
                }
                // Acknowledged, so the sender can tell a module that reads from one that does
                // not (it gives up a stream whose cancellations go unanswered).
                if answers.send(Ok(EdgeAnswer { id, outcome: None })).await.is_err() {
                    break;
                }
                continue;
            }
            // Whether nothing else is under way, unless the delivery is refused.
            let idle = {
                let tasks = lock(&under_way);
                if tasks.len() >= STREAM_IN_FLIGHT {
                    Err(Status::resource_exhausted(format!(
                        "the module takes at most {STREAM_IN_FLIGHT} deliveries under way on one stream"
                    )))
                } else if tasks.contains_key(&id) {
                    Err(Status::invalid_argument(format!("delivery {id} is already under way")))
                } else {
                    Ok(tasks.is_empty())
                }
            };
            let idle = match idle {
                Ok(idle) => idle,
                Err(status) => {
                    let refusal = edge_answer::Outcome::Refusal(Refusal::from(&status));
                    let refused = EdgeAnswer { id, outcome: Some(refusal) };
                    if answers.send(Ok(refused)).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let mut answer = Box::pin({
                let (this, token) = (Arc::clone(&this), token.clone());
                async move {
                    let outcome = match this.deliver_framed(token.as_deref(), frame).await {
                        Ok(response) => edge_answer::Outcome::Response(response),
                        Err(status) => edge_answer::Outcome::Refusal(Refusal::from(&status)),
                    };
                    EdgeAnswer { id, outcome: Some(outcome) }
                }
            });
            // With nothing else under way the delivery's first poll is made here, where most
            // finish (a node of this module that answers at once): that spares a round trip a
            // task and the wake-up of a worker to run it. With others under way, or after a
            // slow first poll, it is a task from the start, so that deliveries share the workers.
            if idle && inline_paused.is_none_or(|until| Instant::now() >= until) {
                let began = Instant::now();
                let polled = futures::poll!(answer.as_mut());
                let took = began.elapsed();
                if took > INLINE_POLL_LIMIT {
                    inline_paused = Some(began + took + INLINE_PAUSE);
                }
                if let Poll::Ready(answered) = polled {
                    if answers.send(Ok(answered)).await.is_err() {
                        break;
                    }
                    continue;
                }
            }
            let mut tasks = lock(&under_way);
            let task = tokio::spawn({
                let (answers, under_way) = (answers.clone(), Arc::clone(&under_way));
                async move {
                    let _ = answers.send(Ok(answer.await)).await;
                    lock(&under_way).remove(&id);
                }
            });
            tasks.insert(id, task.abort_handle());
        }
        // The stream ends once the deliveries under way have answered; should the sender go
        // first (its connection broke), nobody waits for them any more.
        drop(answers);
        gone.cancelled().await;
        for (_, task) in lock(&under_way).drain() {
            task.abort();
        }
    }

    /// One delivery of a stream opened with `token`: admitted as a call with that token would
    /// be, then delivered within its deadline.
    async fn deliver_framed(
        &self,
        token: Option<&str>,
        frame: EdgeDelivery,
    ) -> Result<DeliverResponse, Status> {
        let request = frame.request.unwrap_or_default();
        if request.source_node.is_empty() {
            return Err(Status::invalid_argument(
                "a delivery on the stream must name the edge it follows (source_node)",
            ));
        }
        let caller = self.admit_token(token).await?;
        let delivered = self.deliver_one(caller.as_ref(), Some(&frame.traceparent), request);
        if frame.timeout_micros == 0 {
            return delivered.await;
        }
        let timeout = Duration::from_micros(frame.timeout_micros);
        tokio::time::timeout(timeout, delivered).await.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!("no answer within {timeout:?}")))
        })
    }
}

/// The answers of one stream; dropped (the stream ended, or its connection broke), it cancels
/// what it guards.
struct Answers {
    out: ReceiverStream<Result<EdgeAnswer, Status>>,
    _gone: DropGuard,
}

impl Stream for Answers {
    type Item = Result<EdgeAnswer, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.out).poll_next(cx)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[tonic::async_trait]
impl Module for Deliveries {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        let caller = self.admit(request.metadata()).await?;
        let traceparent =
            request.metadata().get(TRACEPARENT).and_then(|header| header.to_str().ok());
        let traceparent = traceparent.map(str::to_owned);
        let response =
            self.deliver_one(caller.as_ref(), traceparent.as_deref(), request.into_inner()).await?;
        Ok(Response::new(response))
    }

    type DeliverAlongEdgesStream = Answers;

    async fn deliver_along_edges(
        &self,
        request: Request<Streaming<EdgeDelivery>>,
    ) -> Result<Response<Self::DeliverAlongEdgesStream>, Status> {
        let caller = self.admit(request.metadata()).await?;
        peer_only(caller.as_ref().map(|(c, _)| c), "deliver along edges")?;
        let (answers, out) = mpsc::channel(STREAM_IN_FLIGHT);
        let token = caller.map(|(_, token)| token);
        let gone = CancellationToken::new();
        tokio::spawn(self.clone().carry(request.into_inner(), token, answers, gone.clone()));
        let out = Answers { out: ReceiverStream::new(out), _gone: gone.drop_guard() };
        Ok(Response::new(out))
    }

    type InspectStream = EventStream;

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<Self::InspectStream>, Status> {
        let caller = self.admit(request.metadata()).await?;
        peer_only(caller.as_ref().map(|(c, _)| c), "watches nodes")?;
        let filter = request.into_inner();
        let mut events = self.runtime.inspect();
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    // The watcher left: stop watching, so the nodes stop making events.
                    () = sender.closed() => return,
                    () = stop.cancelled() => return,
                };
                let wire = match event {
                    Ok(event) if wanted(&filter, &event) => wire_event(&event),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => {
                        NodeEvent { kind: EventKind::Missed.into(), missed, ..NodeEvent::default() }
                    }
                    Err(RecvError::Closed) => return,
                };
                if sender.send(Ok(wire)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

fn wanted(filter: &InspectRequest, event: &Event) -> bool {
    (filter.namespace.is_empty() || filter.namespace == event.node.namespace)
        && (filter.flow.is_empty() || filter.flow == event.node.flow)
        && (filter.nodes.is_empty() || filter.nodes.contains(&event.node.node))
}

fn wire_event(event: &Event) -> NodeEvent {
    let at_unix_nanos = event
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX));
    let nanos =
        |elapsed: std::time::Duration| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let mut wire = NodeEvent {
        at_unix_nanos,
        namespace: event.node.namespace.clone(),
        flow: event.node.flow.clone(),
        node: event.node.node.clone(),
        port: event.port.clone(),
        trace_id: event.trace.trace_hex().to_string(),
        ..NodeEvent::default()
    };
    match &event.what {
        Observed::Received(message) | Observed::Emitted(message) => {
            wire.kind = if matches!(event.what, Observed::Received(_)) {
                EventKind::Received
            } else {
                EventKind::Emitted
            }
            .into();
            wire.message_json = crate::inspect::message_json(message);
        }
        Observed::Logged(line) => {
            wire.kind = EventKind::Logged.into();
            wire.line.clone_from(line);
        }
        Observed::Answered { elapsed } => {
            wire.kind = EventKind::Answered.into();
            wire.elapsed_nanos = nanos(*elapsed);
        }
        Observed::Failed { kind, message, elapsed } => {
            wire.kind = EventKind::Failed.into();
            wire.failure = Some(Failure::from(&NodeError::new(*kind, message.clone())));
            wire.elapsed_nanos = nanos(*elapsed);
        }
    }
    wire
}

/// What a module's `Inspect` stream told a watcher.
#[derive(Debug, Clone)]
pub enum Inspected {
    /// Something happened at one of its nodes.
    Event(Event),
    /// The watcher read too slowly and missed this many events.
    Missed(u64),
}

/// Reads an event off the `Inspect` wire, as [`wire_event`] put it there; `None` for a kind
/// this side does not know (a newer module).
pub fn read_event(wire: NodeEvent) -> Option<Inspected> {
    let at = UNIX_EPOCH
        + std::time::Duration::from_nanos(u64::try_from(wire.at_unix_nanos).unwrap_or_default());
    let elapsed = std::time::Duration::from_nanos(wire.elapsed_nanos);
    let message = || serde_json::from_slice(&wire.message_json).unwrap_or(Value::Null);
    let what = match EventKind::try_from(wire.kind).ok()? {
        EventKind::Received => Observed::Received(message()),
        EventKind::Emitted => Observed::Emitted(message()),
        EventKind::Answered => Observed::Answered { elapsed },
        EventKind::Logged => Observed::Logged(wire.line.clone()),
        EventKind::Failed => {
            let error = NodeError::from(wire.failure.clone().unwrap_or_default());
            Observed::Failed { kind: error.kind(), message: error.message().to_owned(), elapsed }
        }
        EventKind::Missed => return Some(Inspected::Missed(wire.missed)),
        EventKind::Unspecified => return None,
    };
    // The wire carries the run's trace, not the delivery's span: any span id will do.
    let trace = match u128::from_str_radix(&wire.trace_id, 16) {
        Ok(trace_id) if trace_id != 0 => TraceContext { trace_id, span_id: 1, parent_id: 0 },
        _ => TraceContext::default(),
    };
    let node =
        weir_sdk::NodeIdentity { namespace: wire.namespace, flow: wire.flow, node: wire.node };
    Some(Inspected::Event(Event { at, node: Arc::new(node), port: wire.port, trace, what }))
}

fn json(bytes: &[u8], field: &str) -> Result<Value, Status> {
    serde_json::from_slice(bytes)
        .map_err(|err| Status::invalid_argument(format!("{field} is not JSON: {err}")))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use serde_json::json;
    use weir_sdk::{ErrorKind, NodeIdentity};

    use super::*;

    fn event(what: Observed) -> Event {
        let node = NodeIdentity { namespace: "ns".into(), flow: "f".into(), node: "n".into() };
        Event {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            node: Arc::new(node),
            port: "in".into(),
            trace: TraceContext { trace_id: 0xabc, span_id: 7, parent_id: 0 },
            what,
        }
    }

    #[test]
    fn events_read_off_the_wire_are_what_was_put_on_it() {
        let elapsed = Duration::from_micros(1500);
        let cases = [
            Observed::Received(json!({ "a": 1 })),
            Observed::Emitted(json!([1, 2])),
            Observed::Answered { elapsed },
            Observed::Logged("hello".into()),
            Observed::Failed { kind: ErrorKind::Transient, message: "busy".into(), elapsed },
        ];
        for what in cases {
            let sent = event(what);
            let Some(Inspected::Event(read)) = read_event(wire_event(&sent)) else {
                panic!("{sent:?} did not come back as an event");
            };
            assert_eq!(format!("{:?}", read.what), format!("{:?}", sent.what));
            assert_eq!((read.at, &*read.node, &read.port), (sent.at, &*sent.node, &sent.port));
            assert_eq!(read.trace.trace_id, sent.trace.trace_id);
        }
        let missed =
            NodeEvent { kind: EventKind::Missed.into(), missed: 9, ..NodeEvent::default() };
        assert!(matches!(read_event(missed), Some(Inspected::Missed(9))));
        assert!(read_event(NodeEvent { kind: 99, ..NodeEvent::default() }).is_none());
    }
}
