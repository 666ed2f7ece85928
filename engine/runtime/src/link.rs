//! One long-lived `weir.v1.Module/DeliverAlongEdges` stream to a peer module, which carries
//! the deliveries along edges from this process to that one: each framed with an id, its
//! deadline and its trace context, its answer matched back by the id. A delivery costs one
//! frame each way rather than a call's HEADERS and DATA, and many share a write when they are
//! under way at once.
//!
//! The stream is gRPC on the wire (tonic serves it), but this side speaks it through `h2`
//! directly, on a connection of its own: the delivering task hands its frame to the connection
//! itself and one task reads the answers, where tonic's channel put a body task and its codec
//! between them (a hop 4–18 µs slower with two workers a side, docs/benchmarks.md).
//!
//! A delivery dropped before its answer (its edge's timeout, a cancelled run) is taken back
//! from the frames not yet sent, or else cancelled on the receiver by a frame of its own. At
//! most [`IN_FLIGHT`] deliveries are under way on a link; more wait for room, so a slow
//! receiver holds senders back rather than filling memory. A stream that ends or breaks fails
//! its unanswered deliveries as transient, as a call on a broken connection fails, and the
//! next delivery opens a new one.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use http::{HeaderValue, Uri, header};
use prost::Message as _;
use tokio::{
    net::TcpStream,
    sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot},
};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use weir_proto::{
    DeliverRequest, DeliverResponse, EdgeAnswer, EdgeDelivery, edge_answer::Outcome,
    failure_of_status,
};
use weir_sdk::NodeError;

use crate::client::Undelivered;

/// How many deliveries a link keeps under way at once. A receiver takes twice as many on a
/// stream (`grpc`), so that one answered but not yet counted off there never has this side
/// refused.
pub(crate) const IN_FLIGHT: usize = 256;

/// The largest frame either way, as tonic's default for what it decodes: a delivery over it
/// is refused here, before it would end the stream that others share.
const LARGEST_FRAME: usize = 4 * 1024 * 1024;

/// How long connecting to a peer may take before its deliveries count as failed (transiently).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an HTTP/2 ping checks a peer connection, and how long its answer may take: a peer
/// that died without closing the connection is found out in seconds, not at the edge's timeout
/// (up to hours).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Flow-control windows of the connection and of the stream: room for many deliveries under
/// way before the receiver must read (hyper's defaults, which tonic's channel used).
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// The most bytes one write hands the connection when the writer sends the outbox.
const LARGEST_WRITE: usize = 1024 * 1024;

/// The most header bytes a peer's answer may carry (hyper's default).
const LARGEST_HEADERS: u32 = 16 * 1024;

const PATH: &str = "/weir.v1.Module/DeliverAlongEdges";

/// A stream of deliveries to one peer, opened with one token.
pub(crate) struct Link {
    /// The token the stream was opened with: a link serves the deliveries that present it.
    token: Option<String>,
    who: String,
    next_id: AtomicU64,
    room: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
    /// Wakes the stream's writer when frames wait in the outbox.
    writer: Arc<Notify>,
}

/// A frame on its way, as it goes on the wire.
struct Queued {
    /// The delivery it carries or cancels.
    id: u64,
    wire: Bytes,
    /// The room of a delivery whose cancellation this is: held, never read, and given up
    /// when the frame is sent (or taken back).
    _room: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct State {
    /// The stream's sending half, once it is open.
    sender: Option<SendStream<Bytes>>,
    /// Frames not yet handed to the connection (made before the stream was open, or while
    /// other deliveries were under way, for the writer to send together), in order: a
    /// cancelled delivery frees its room only once its cancellation is sent, so the outbox
    /// never holds more than two frames for each unit of room.
    outbox: VecDeque<Queued>,
    waiting: HashMap<u64, oneshot::Sender<Result<DeliverResponse, Undelivered>>>,
    /// Cancellations sent since the module last answered (it acknowledges each): frames handed
    /// to the connection cannot be taken back, so a module that reads none (its window full)
    /// while deliveries time out would have them pile up there; past [`IN_FLIGHT`] the stream
    /// is given up. A module that reads would have to be sent more than that within one round
    /// trip, as no more than [`IN_FLIGHT`] deliveries are under way at once.
    cancelled_unanswered: usize,
    /// Why the stream ended; set once, and then the link takes no more deliveries.
    broken: Option<NodeError>,
    /// Nobody delivers on the link any more: the stream ends.
    closed: bool,
}

impl State {
    /// Sends `frame` now if the stream is open and this is the only delivery under way;
    /// otherwise keeps it in the outbox, for the stream's writer to send with the others
    /// there in one piece (or for when the stream is open).
    fn send(&mut self, frame: Queued, writer: &Notify) {
        match &mut self.sender {
            Some(sender) if self.outbox.is_empty() && self.waiting.len() <= 1 => {
                // A frame the connection refuses (it broke) is lost with the stream, whose
                // reader fails every delivery still waiting.
                let _ = sender.send_data(frame.wire, false);
            }
            _ => {
                if self.outbox.is_empty() {
                    writer.notify_one();
                }
                self.outbox.push_back(frame);
            }
        }
    }

    /// Sends the frames in the outbox, in pieces of about [`LARGEST_WRITE`], if the stream is
    /// open.
    fn flush(&mut self) {
        let Some(sender) = &mut self.sender else { return };
        let mut piece = BytesMut::new();
        for frame in std::mem::take(&mut self.outbox) {
            piece.extend_from_slice(&frame.wire);
            if piece.len() >= LARGEST_WRITE {
                let _ = sender.send_data(piece.split().freeze(), false);
            }
        }
        if !piece.is_empty() {
            let _ = sender.send_data(piece.freeze(), false);
        }
    }

    /// Gives the stream up for `why`: the module drops what it took, and every delivery still
    /// waiting fails.
    fn give_up(&mut self, why: NodeError) {
        // The link's own state first: should `h2` fail below, nothing is left waiting.
        self.outbox.clear();
        for (_, waiter) in self.waiting.drain() {
            let _ = waiter.send(Err(Undelivered::Failed(why.clone())));
        }
        self.broken.get_or_insert(why);
        if let Some(mut sender) = self.sender.take() {
            sender.send_reset(h2::Reason::CANCEL);
        }
    }

    /// Ends the stream, after the frames still in the outbox (cancellations, say): the
    /// receiver finishes what it took and ends its answers.
    fn close(&mut self) {
        self.closed = true;
        self.flush();
        if let Some(sender) = &mut self.sender {
            let _ = sender.send_data(Bytes::new(), true);
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Opens a stream to the module at `endpoint` (`http://HOST:PORT`), presenting `token` as
    /// `authorization` (`Bearer TOKEN`) where the module answers only authenticated callers.
    /// The stream opens in the background: the first deliveries go out with it.
    pub(crate) fn open(
        endpoint: Uri,
        who: String,
        token: Option<String>,
        authorization: Option<MetadataValue<Ascii>>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let writer = Arc::new(Notify::new());
        tokio::spawn({
            let (state, writer, who) = (Arc::clone(&state), Arc::clone(&writer), who.clone());
            async move {
                let mut ended = Ended { state: Arc::clone(&state), who: who.clone(), why: None };
                ended.why = Some(match open_stream(&endpoint, authorization, &state, &who).await {
                    Ok(answers) => tokio::select! {
                        broken = read(answers, &state, &who) => broken,
                        never = write(&state, &writer) => match never {},
                    },
                    Err(Opening::Refused(status)) => failure_of_status(&status, &who),
                    Err(Opening::Failed(why)) => {
                        NodeError::transient(format!("module {who}: {why}"))
                    }
                });
            }
        });
        Self {
            token,
            who,
            next_id: AtomicU64::new(0),
            room: Arc::new(Semaphore::new(IN_FLIGHT)),
            state,
            writer,
        }
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout_micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        let frame =
            EdgeDelivery { id, cancel: false, request: Some(request), traceparent, timeout_micros };
        let wire = wire_frame(&frame);
        let size = wire.len() - 5;
        if size > LARGEST_FRAME {
            return Err(Undelivered::Failed(NodeError::invalid(format!(
                "module {}: the delivery is {size} bytes, over the {LARGEST_FRAME} a module takes",
                self.who
            ))));
        }
        let room = Arc::clone(&self.room).acquire_owned().await.ok();
        let (answer, answered) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            if let Some(broken) = &state.broken {
                return Err(Undelivered::Failed(broken.clone()));
            }
            state.waiting.insert(id, answer);
            state.send(Queued { id, wire, _room: None }, &self.writer);
        }
        let mut pending = Pending { link: self, id, room, answered: false };
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
        lock(&self.state).close();
    }
}

/// The end of a link's stream, however its task ends (a panic included): what still waits on
/// the link fails, and the link takes no more deliveries.
struct Ended {
    state: Arc<Mutex<State>>,
    who: String,
    why: Option<NodeError>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let why = self.why.take().unwrap_or_else(|| {
            NodeError::internal(format!("module {}: the stream's reader stopped", self.who))
        });
        lock(&self.state).give_up(why);
    }
}

/// A delivery waiting for its answer; dropped before it came, it is taken back or cancelled.
struct Pending<'a> {
    link: &'a Link,
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
        let mut state = lock(&self.link.state);
        if state.waiting.remove(&id).is_none() || state.broken.is_some() {
            // Answered meanwhile, or the stream is gone: nothing to cancel.
            return;
        }
        if let Some(unsent) = state.outbox.iter().position(|frame| frame.id == id) {
            state.outbox.remove(unsent);
            return;
        }
        state.cancelled_unanswered += 1;
        if state.cancelled_unanswered > IN_FLIGHT {
            state.give_up(NodeError::transient(format!(
                "module {}: no answer on the stream while more than {IN_FLIGHT} deliveries were cancelled, so the stream was given up",
                self.link.who
            )));
            return;
        }
        let wire = wire_frame(&EdgeDelivery { id, cancel: true, ..EdgeDelivery::default() });
        state.send(Queued { id, wire, _room: self.room.take() }, &self.link.writer);
    }
}

/// Why a stream did not open.
enum Opening {
    /// The module answered the call with a failure (no token, not a peer).
    Refused(tonic::Status),
    /// The module could not be reached, or did not speak HTTP/2.
    Failed(String),
}

/// Connects to `endpoint`, opens the stream, sends what waited in the outbox and leaves the
/// stream's sending half in `state`; the answers' half once the module took the call.
async fn open_stream(
    endpoint: &Uri,
    authorization: Option<MetadataValue<Ascii>>,
    state: &Arc<Mutex<State>>,
    who: &str,
) -> Result<RecvStream, Opening> {
    let (requests, mut connection) = connect(endpoint).await?;
    let pings = connection.ping_pong();
    tokio::spawn({
        let (state, who) = (Arc::clone(state), who.to_owned());
        async move {
            tokio::select! {
                _ = connection => {}
                () = keep_alive(pings) => {
                    // Dropping the connection fails its stream; this says why first.
                    lock(&state).give_up(NodeError::transient(format!(
                        "module {who}: no answer to a ping within {KEEPALIVE_TIMEOUT:?}, so the connection was dropped"
                    )));
                }
            }
        }
    });
    let mut requests = requests
        .ready()
        .await
        .map_err(|err| Opening::Failed(format!("the connection broke ({err})")))?;
    let mut request = http::Request::post(endpoint_path(endpoint))
        .body(())
        .map_err(|err| Opening::Failed(format!("cannot make the stream's request ({err})")))?;
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(authorization) = authorization {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", authorization);
        headers.extend(metadata.into_headers());
    }
    let (response, sender) = requests
        .send_request(request, false)
        .map_err(|err| Opening::Failed(format!("cannot open the stream of deliveries ({err})")))?;
    {
        let mut state = lock(state);
        state.sender = Some(sender);
        state.flush();
        if state.closed {
            state.close();
        }
    }
    let response = response.await.map_err(|err| {
        Opening::Failed(format!("the module did not take the stream of deliveries ({err})"))
    })?;
    // A call refused at once answers with its status in the headers and no body.
    if let Some(status) = status_of(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(Opening::Refused(status));
    }
    if response.status() != http::StatusCode::OK {
        return Err(Opening::Failed(format!(
            "the module answered the stream with HTTP status {}",
            response.status()
        )));
    }
    Ok(response.into_body())
}

/// Sends what gathers in the outbox while other deliveries are under way, in one piece each
/// time it is woken.
async fn write(state: &Mutex<State>, writer: &Notify) -> std::convert::Infallible {
    loop {
        writer.notified().await;
        // The first frame woke the writer, but the tasks woken with its sender (by the same
        // answers, say) are about to add theirs: to the back of the queue first, so one piece
        // carries them all, instead of running next and sending the first frame alone.
        tokio::task::yield_now().await;
        lock(state).flush();
    }
}

/// `endpoint` with the stream's path.
fn endpoint_path(endpoint: &Uri) -> String {
    let authority = endpoint.authority().map_or("", http::uri::Authority::as_str);
    format!("http://{authority}{PATH}")
}

/// The gRPC status in `headers`, if any. Only `grpc-status` and `grpc-message` are read:
/// tonic panics on details that are not base64, which a peer's answer must not be able to do.
fn status_of(headers: &http::HeaderMap) -> Option<tonic::Status> {
    let mut status = http::HeaderMap::new();
    for name in ["grpc-status", "grpc-message"] {
        if let Some(value) = headers.get(name) {
            status.insert(name, value.clone());
        }
    }
    tonic::Status::from_header_map(&status)
}

/// An HTTP/2 connection to `endpoint`: the handle that opens streams, and the connection,
/// which must be polled for either to make progress.
async fn connect(
    endpoint: &Uri,
) -> Result<(h2::client::SendRequest<Bytes>, h2::client::Connection<TcpStream, Bytes>), Opening> {
    let authority = endpoint
        .authority()
        .ok_or_else(|| Opening::Failed("the endpoint names no host".to_owned()))?;
    let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
        .await
        .map_err(|_| Opening::Failed(format!("cannot connect within {CONNECT_TIMEOUT:?}")))?
        .map_err(|err| Opening::Failed(format!("cannot connect ({err})")))?;
    // Without TCP_NODELAY a frame can wait for the peer's delayed ACK.
    socket.set_nodelay(true).map_err(|err| Opening::Failed(format!("cannot connect ({err})")))?;
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(LARGEST_HEADERS)
        .handshake::<_, Bytes>(socket);
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| Opening::Failed(format!("no HTTP/2 handshake within {CONNECT_TIMEOUT:?}")))?
        .map_err(|err| Opening::Failed(format!("no HTTP/2 handshake ({err})")))
}

/// Pings the peer every [`KEEPALIVE_INTERVAL`]; returns when a ping goes unanswered.
async fn keep_alive(pings: Option<h2::PingPong>) {
    let Some(mut pings) = pings else { return std::future::pending().await };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        let pong = tokio::time::timeout(KEEPALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())).await;
        if !matches!(pong, Ok(Ok(_))) {
            return;
        }
    }
}

/// `frame` as gRPC puts a message on the wire: uncompressed, its length, its bytes.
fn wire_frame(frame: &EdgeDelivery) -> Bytes {
    let size = frame.encoded_len();
    let mut wire = BytesMut::with_capacity(5 + size);
    wire.put_u8(0);
    wire.put_u32(u32::try_from(size).unwrap_or(u32::MAX));
    frame.encode(&mut wire).expect("the buffer has room for the frame");
    wire.freeze()
}

/// Hands each answer on `answers` to the delivery it answers, until the stream ends; why it
/// ended, for the deliveries left unanswered.
async fn read(mut answers: RecvStream, state: &Mutex<State>, who: &str) -> NodeError {
    let mut unread = BytesMut::new();
    loop {
        match next_answer(&mut answers, &mut unread).await {
            Ok(Some(answer)) => {
                let waiter = {
                    let mut state = lock(state);
                    state.cancelled_unanswered = 0;
                    state.waiting.remove(&answer.id)
                };
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
            Err(why) => return NodeError::transient(format!("module {who}: {why}")),
        }
    }
}

/// The next answer on `answers`, reading into `unread` until one is whole (an acknowledged
/// cancellation is an answer with no outcome); none when the stream ended as it should.
async fn next_answer(
    answers: &mut RecvStream,
    unread: &mut BytesMut,
) -> Result<Option<EdgeAnswer>, String> {
    loop {
        if unread.len() >= 5 {
            if unread[0] != 0 {
                return Err("the module sent a compressed frame".to_owned());
            }
            let size =
                usize::try_from(u32::from_be_bytes([unread[1], unread[2], unread[3], unread[4]]))
                    .unwrap_or(usize::MAX);
            if size > LARGEST_FRAME {
                return Err(format!(
                    "the module sent a frame of {size} bytes, over {LARGEST_FRAME}"
                ));
            }
            if unread.len() >= 5 + size {
                unread.advance(5);
                let message = unread.split_to(size);
                return EdgeAnswer::decode(message).map(Some).map_err(|err| {
                    format!("the module sent a frame that is not an answer ({err})")
                });
            }
        }
        match answers.data().await {
            Some(Ok(data)) => {
                let _ = answers.flow_control().release_capacity(data.len());
                unread.extend_from_slice(&data);
            }
            Some(Err(err)) => return Err(format!("the connection broke ({err})")),
            None => break,
        }
    }
    if !unread.is_empty() {
        return Err("the stream ended inside a frame".to_owned());
    }
    let trailers =
        answers.trailers().await.map_err(|err| format!("the connection broke ({err})"))?;
    match trailers.as_ref().and_then(status_of) {
        Some(status) if status.code() != tonic::Code::Ok => {
            Err(format!("the module ended the stream with a failure ({})", status.message()))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::status_of;

    #[test]
    fn a_peers_status_is_read_without_its_details() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        headers.insert("grpc-message", HeaderValue::from_static("not%20a%20peer"));
        // Not base64: tonic's reader of the whole status panics on it.
        headers.insert("grpc-status-details-bin", HeaderValue::from_static("!!!"));
        let status = status_of(&headers).expect("a status");
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::PermissionDenied, "not a peer")
        );
        assert!(status_of(&HeaderMap::new()).is_none());
    }
}
