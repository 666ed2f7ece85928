//! One long-lived `weir.v1.Module/DeliverAlongEdges` stream to a peer module, which carries
//! the deliveries along edges from this process to that one: each framed with an id, its
//! deadline and its trace context, its answer matched back by the id. A delivery costs one
//! frame each way rather than a call's HEADERS and DATA, and many share a write when they are
//! under way at once.
//!
//! A delivery dropped before its answer (its edge's timeout, a cancelled run) is taken back
//! from the frames not yet sent, or else cancelled on the receiver by a frame of its own. At
//! most [`IN_FLIGHT`] deliveries are under way on a link; more wait for room, so a slow
//! receiver holds senders back rather than filling memory. A stream that ends or breaks fails
//! its unanswered deliveries as transient, as a call on a broken connection fails, and the
//! next delivery opens a new one.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Poll, Waker},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use weir_proto::{
    DeliverRequest, DeliverResponse, EdgeAnswer, EdgeDelivery, edge_answer::Outcome,
    failure_of_status, module_client::ModuleClient,
};
use weir_sdk::NodeError;

use crate::client::Undelivered;

/// How many deliveries a link keeps under way at once. A receiver takes twice as many on a
/// stream (`grpc`), so that one answered but not yet counted off there never has this side
/// refused.
pub(crate) const IN_FLIGHT: usize = 256;

/// A stream of deliveries to one peer, opened with one token.
pub(crate) struct Link {
    /// The peer's client, for the link that follows this one.
    client: ModuleClient<Channel>,
    /// The token the stream was opened with: a link serves the deliveries that present it.
    token: Option<String>,
    room: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Frames for the stream, in order, each with the room its delivery held where that was
    /// given up: a cancelled delivery frees its room only once its cancellation is sent, so the
    /// outbox never holds more than two frames for each unit of room.
    outbox: VecDeque<(EdgeDelivery, Option<OwnedSemaphorePermit>)>,
    /// The stream's writer, waiting for a frame.
    writer: Option<Waker>,
    waiting: HashMap<u64, oneshot::Sender<Result<DeliverResponse, Undelivered>>>,
    /// Why the stream ended; set once, and then the link takes no more deliveries.
    broken: Option<NodeError>,
    /// Nobody delivers on the link any more: the stream ends.
    closed: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Opens a stream through `client` to the module `who` names, presenting `token` as
    /// `authorization` (`Bearer TOKEN`) where the module answers only authenticated callers.
    /// The stream opens in the background: the first deliveries go out with it.
    pub(crate) fn open(
        client: ModuleClient<Channel>,
        who: String,
        token: Option<String>,
        authorization: Option<MetadataValue<Ascii>>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let outbound = futures::stream::poll_fn({
            let state = Arc::clone(&state);
            move |cx| {
                let mut state = lock(&state);
                if let Some((frame, _room)) = state.outbox.pop_front() {
                    return Poll::Ready(Some(frame));
                }
                if state.closed {
                    return Poll::Ready(None);
                }
                if !state.writer.as_ref().is_some_and(|writer| writer.will_wake(cx.waker())) {
                    state.writer = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        });
        let mut request = tonic::Request::new(outbound);
        if let Some(authorization) = authorization {
            request.metadata_mut().insert("authorization", authorization);
        }
        let reader = Arc::clone(&state);
        let mut opener = client.clone();
        tokio::spawn(async move {
            let broken = match opener.deliver_along_edges(request).await {
                Ok(answers) => read(answers.into_inner(), &reader, &who).await,
                // Refused (no token, not a peer) or unreachable: as a call would have been.
                Err(status) => failure_of_status(&status, &who),
            };
            let waiting = {
                let mut state = lock(&reader);
                state.broken = Some(broken.clone());
                state.outbox.clear();
                std::mem::take(&mut state.waiting)
            };
            for waiter in waiting.into_values() {
                let _ = waiter.send(Err(Undelivered::Failed(broken.clone())));
            }
        });
        Self { client, token, room: Arc::new(Semaphore::new(IN_FLIGHT)), state }
    }

    /// The peer's client (its connection).
    pub(crate) fn client(&self) -> ModuleClient<Channel> {
        self.client.clone()
    }

    /// Whether the link still carries deliveries that present `token`.
    pub(crate) fn serves(&self, token: Option<&str>) -> bool {
        self.token.as_deref() == token && lock(&self.state).broken.is_none()
    }

    /// Delivers `request` with its trace context (`traceparent`) and deadline, and waits for
    /// the answer.
    pub(crate) async fn deliver(
        &self,
        request: DeliverRequest,
        traceparent: String,
        timeout: Duration,
    ) -> Result<DeliverResponse, Undelivered> {
        let room = Arc::clone(&self.room).acquire_owned().await.ok();
        let (answer, answered) = oneshot::channel();
        let (id, writer) = {
            let mut state = lock(&self.state);
            if let Some(broken) = &state.broken {
                return Err(Undelivered::Failed(broken.clone()));
            }
            let id = state.next_id;
            state.next_id += 1;
            state.waiting.insert(id, answer);
            let timeout_micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
            let frame = EdgeDelivery {
                id,
                cancel: false,
                request: Some(request),
                traceparent,
                timeout_micros,
            };
            state.outbox.push_back((frame, None));
            (id, state.writer.take())
        };
        if let Some(writer) = writer {
            writer.wake();
        }
        let mut pending = Pending { state: &self.state, id, room, answered: false };
        let answer = answered.await;
        pending.answered = true;
        // The reader fails every delivery it leaves unanswered, so a dropped sender is a bug.
        answer.unwrap_or_else(|_| {
            Err(Undelivered::Failed(NodeError::internal("the delivery stream lost an answer")))
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let writer = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.writer.take()
        };
        if let Some(writer) = writer {
            writer.wake();
        }
    }
}

/// A delivery waiting for its answer; dropped before it came, it is taken back or cancelled.
struct Pending<'a> {
    state: &'a Mutex<State>,
    id: u64,
    room: Option<OwnedSemaphorePermit>,
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let id = self.id;
        let writer = {
            let mut state = lock(self.state);
            if state.waiting.remove(&id).is_none() || state.broken.is_some() {
                // Answered meanwhile, or the stream is gone: nothing to cancel.
                return;
            }
            if let Some(unsent) = state.outbox.iter().position(|(frame, _)| frame.id == id) {
                state.outbox.remove(unsent);
                return;
            }
            let cancel = EdgeDelivery { id, cancel: true, ..EdgeDelivery::default() };
            state.outbox.push_back((cancel, self.room.take()));
            state.writer.take()
        };
        if let Some(writer) = writer {
            writer.wake();
        }
    }
}

/// Hands each answer on `answers` to the delivery it answers, until the stream ends; why it
/// ended, for the deliveries left unanswered.
async fn read(
    mut answers: tonic::Streaming<EdgeAnswer>,
    state: &Mutex<State>,
    who: &str,
) -> NodeError {
    loop {
        match answers.message().await {
            Ok(Some(answer)) => {
                let waiter = lock(state).waiting.remove(&answer.id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(match answer.outcome {
                        Some(Outcome::Response(response)) => Ok(response),
                        Some(Outcome::Refusal(refusal)) => {
                            Err(Undelivered::Failed(failure_of_status(&refusal.into(), who)))
                        }
                        None => Err(Undelivered::BadAnswer("neither an answer nor a refusal")),
                    });
                }
            }
            // The module stopped taking deliveries: it never took these, so another attempt
            // (at another replica) is safe.
            Ok(None) => {
                return NodeError::transient(format!(
                    "module {who}: the stream of deliveries ended before the module took the delivery"
                ));
            }
            // Whether the module acted on these is unknown, as with any broken connection.
            Err(status) => {
                return NodeError::transient(format!(
                    "module {who}: the connection broke ({})",
                    status.message()
                ));
            }
        }
    }
}
