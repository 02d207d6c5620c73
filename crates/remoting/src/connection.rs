//! `Connection`: one TCP connection of the remoting protocol, as seen by either side.
//!
//! Both a server and a client hold their connections as this handle: either side can send
//! requests on it (brokers call back producers and consumers over the client's own
//! connection), and either side answers the requests it receives through its router.
//! Responses are matched to requests by `opaque`, through a table of pending calls.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::acl;
use crate::command::{RemotingCommand, SerializeType, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::frame;

mod driver;
pub(crate) mod endpoint;
pub(crate) mod outbound;
mod stream;

pub use stream::Stream;

use endpoint::Endpoint;
use outbound::{Outgoing, TryQueueError};

pub use crate::error::RemotingError;

/// The process-wide request id counter (spec §1.5: Java starts at 0 and lets it wrap).
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

/// Connection ids, unique within the process, for logs and for owners' per-connection maps.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// The next request id; wraps to negative values after `i32::MAX`, as Java's does.
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// A cheap, cloneable handle on one live (or closed) connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    endpoint: Arc<Endpoint>,
    /// Frames and responses for the writer task; bounded by the endpoint's writer queue
    /// limits.
    outbound: outbound::OutboundSender,
    /// The runtime the connection's tasks run on: answers given on threads outside it that
    /// find the writer queue full wait for room in a task spawned here.
    runtime: tokio::runtime::Handle,
    /// Our requests awaiting their response, by opaque.
    pending: Mutex<HashMap<i32, Waiter>>,
    /// Notified when a call is registered in an empty table: the timeout reaper sleeps on it.
    pending_added: Notify,
    /// Cancelled when the connection ends; a child of the endpoint's hard stop.
    closed: CancellationToken,
    /// Set once the pending table has been failed, so late registrations see the close.
    torn_down: AtomicBool,
    last_serialize_type: AtomicU8,
    /// Reference point of `last_activity_ms`.
    started: Instant,
    /// `started` on the coarse clock.
    started_coarse_ms: u64,
    /// Milliseconds after `started` of the last frame read or written (coarse clock: a few
    /// milliseconds of error against an idle timeout of minutes).
    last_activity_ms: AtomicU64,
    /// Inbound requests whose handler is running.
    in_flight: AtomicUsize,
    /// Set while requests are being refused for the in-flight limit, so only the first
    /// refusal of an overload episode is logged as a warning.
    overloaded: AtomicBool,
    /// Whether the connection is encrypted.
    tls: bool,
}

impl Connection {
    /// Wraps an established stream and starts its reader and writer tasks. `keep_alive` is
    /// dropped when the connection has ended (the server counts connections with it).
    pub(crate) fn spawn(
        stream: Stream,
        endpoint: Arc<Endpoint>,
        keep_alive: impl Send + 'static,
    ) -> std::io::Result<Self> {
        let remote_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let tls = stream.is_tls();
        // Small request/response frames: latency matters more than packet count.
        stream.set_nodelay()?;
        let (outbound, outbound_rx) =
            outbound::channel(endpoint.limits.writer_queue_frames, endpoint.limits.writer_queue_bytes);
        let connection = Self {
            inner: Arc::new(Inner {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                remote_addr,
                local_addr,
                closed: endpoint.hard_stop.child_token(),
                endpoint,
                outbound,
                runtime: tokio::runtime::Handle::current(),
                pending: Mutex::new(HashMap::new()),
                pending_added: Notify::new(),
                torn_down: AtomicBool::new(false),
                last_serialize_type: AtomicU8::new(SerializeType::Json.code()),
                started: Instant::now(),
                started_coarse_ms: coarse_monotonic_ms(),
                last_activity_ms: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                overloaded: AtomicBool::new(false),
                tls,
            }),
        };
        let (read_half, write_half) = stream.split();
        driver::start(connection.clone(), read_half, write_half, outbound_rx, keep_alive);
        Ok(connection)
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.inner.tls
    }

    /// Process-unique id of this connection; stable for its whole life.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_addr
    }

    /// Our end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sends `request` and waits up to `timeout` for its response. The request's opaque is
    /// replaced by a fresh one and its response/oneway flags cleared; its serialization type
    /// is kept (server-initiated requests should use [`Self::last_serialize_type`]). On a
    /// client connection with credentials the request is signed just before encoding.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        if self.is_closed() {
            return Err(RemotingError::Closed);
        }
        let opaque = next_opaque();
        request.opaque = opaque;
        request.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let frame = self.encode_request(&mut request)?;
        let (sender, mut receiver) = oneshot::channel();
        let _entry = PendingEntry::register(self, opaque, sender, timeout);
        if self.inner.torn_down.load(Ordering::Acquire) {
            return Err(RemotingError::Closed);
        }
        // No timer per call: the connection's reaper answers calls past their deadline, even
        // one whose frame still waits for room in the writer queue.
        tokio::select! {
            biased;
            answer = &mut receiver => return answer.unwrap_or(Err(RemotingError::Closed)),
            queued = self.enqueue(Outgoing::Frame(frame)) => queued?,
        }
        receiver.await.unwrap_or(Err(RemotingError::Closed))
    }

    /// Sends `request` with the oneway flag; returns once it is queued for the socket. The
    /// peer sends no response.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(RemotingError::Closed);
        }
        request.opaque = next_opaque();
        request.flag = (request.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        let frame = self.encode_request(&mut request)?;
        self.enqueue(Outgoing::Frame(frame)).await
    }

    /// Closes the connection: pending calls fail with [`RemotingError::Closed`], queued
    /// frames are flushed (for a bounded time), then the socket is closed and the router's
    /// disconnect hooks run.
    pub fn close(&self) {
        self.inner.closed.cancel();
        self.fail_pending();
    }

    /// True once the connection has ended or started closing.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// The serialization type of the last request received on this connection, JSON if
    /// none: the type to use for requests sent to this peer (spec §1.8).
    pub fn last_serialize_type(&self) -> SerializeType {
        SerializeType::from_code(self.inner.last_serialize_type.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// Our requests on this connection still waiting for a response.
    pub fn pending_requests(&self) -> usize {
        self.inner.pending.lock().len()
    }

    /// Requests from the peer whose handler is still running.
    pub fn in_flight_requests(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    // ----- crate-internal plumbing used by the driver and the dispatcher -----

    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.inner.endpoint
    }

    pub(crate) fn closed_token(&self) -> &CancellationToken {
        &self.inner.closed
    }

    /// Queues a frame or response for the writer, waiting while the queue is full.
    pub(crate) async fn enqueue(&self, item: Outgoing) -> Result<(), RemotingError> {
        tokio::select! {
            biased;
            _ = self.inner.closed.cancelled() => Err(RemotingError::Closed),
            sent = self.inner.outbound.send(item) => sent.map_err(|_| RemotingError::Closed),
        }
    }

    /// Queues a response from any thread without waiting: when the writer queue is full, a
    /// task on the connection's runtime waits for room instead, holding `hold` (the request's
    /// in-flight slot) until then.
    pub(crate) fn enqueue_response_now(&self, response: Outgoing, hold: impl Send + 'static) {
        match self.inner.outbound.try_send(response) {
            Ok(()) => {}
            Err(TryQueueError::Closed) => {
                tracing::debug!(connection = self.id(), "connection closed before the response");
            }
            Err(TryQueueError::Full(item)) => {
                let connection = self.clone();
                self.inner.runtime.spawn(async move {
                    let _hold = hold;
                    if connection.enqueue(item).await.is_err() {
                        tracing::debug!(
                            connection = connection.id(),
                            "connection closed before the response"
                        );
                    }
                });
            }
        }
    }

    /// The largest frame this connection reads or writes.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        self.inner.endpoint.limits.max_frame_bytes
    }

    /// Encodes one command into a whole frame, within this connection's frame limit.
    pub(crate) fn encode(&self, command: &RemotingCommand) -> Result<Bytes, RemotingError> {
        let mut buffer = Vec::with_capacity(512 + command.body.len());
        frame::encode_head(command, self.max_frame_bytes(), &mut buffer)?;
        buffer.extend_from_slice(&command.body);
        Ok(Bytes::from(buffer))
    }

    fn encode_request(&self, request: &mut RemotingCommand) -> Result<Bytes, RemotingError> {
        if let Some(credentials) = &self.inner.endpoint.credentials {
            acl::sign(request, credentials);
        }
        self.encode(request)
    }

    /// Delivers a response to the call waiting for it; unmatched responses are dropped.
    pub(crate) fn complete(&self, response: RemotingCommand) {
        let waiter = self.inner.pending.lock().remove(&response.opaque);
        match waiter {
            Some(waiter) => {
                // The caller may have given up in the meantime; nothing to do then.
                let _ = waiter.sender.send(Ok(response));
            }
            None => tracing::warn!(
                connection = self.id(),
                remote = %self.remote_addr(),
                opaque = response.opaque,
                code = response.code,
                "response matches no pending request (timed out?); dropped"
            ),
        }
    }

    pub(crate) fn record_serialize_type(&self, serialize_type: SerializeType) {
        self.inner.last_serialize_type.store(serialize_type.code(), Ordering::Relaxed);
    }

    /// Notes that a frame was read or written now.
    pub(crate) fn touch(&self) {
        let now_ms = coarse_monotonic_ms().saturating_sub(self.inner.started_coarse_ms);
        self.inner.last_activity_ms.store(now_ms, Ordering::Relaxed);
    }

    /// When the connection becomes idle if nothing is read or written until then; `None`
    /// when the idle check is disabled.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        let idle_timeout_ms = self.inner.endpoint.limits.idle_timeout_ms;
        if idle_timeout_ms == 0 {
            return None;
        }
        let last_ms = self.inner.last_activity_ms.load(Ordering::Relaxed);
        self.inner.started.checked_add(Duration::from_millis(last_ms.saturating_add(idle_timeout_ms)))
    }

    /// Takes one in-flight slot, or `None` when the connection is at its limit.
    pub(crate) fn try_begin_request(&self) -> Option<InFlightSlot> {
        let limit = self.inner.endpoint.limits.max_in_flight;
        let taken = self
            .inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| (count < limit).then_some(count + 1))
            .is_ok();
        if taken {
            self.inner.overloaded.store(false, Ordering::Relaxed);
            Some(InFlightSlot { connection: self.clone() })
        } else {
            None
        }
    }

    /// Records a refusal for the in-flight limit; true for the first one of an episode.
    pub(crate) fn note_overload(&self) -> bool {
        !self.inner.overloaded.swap(true, Ordering::Relaxed)
    }

    /// Fails the pending calls past their deadline with [`RemotingError::Timeout`].
    pub(crate) fn fail_expired(&self) {
        let now = Instant::now();
        let expired: Vec<Waiter> = {
            let mut pending = self.inner.pending.lock();
            let expired = |waiter: &mut Waiter| waiter.deadline.is_some_and(|deadline| deadline <= now);
            pending.extract_if(|_, waiter| expired(waiter)).map(|(_, waiter)| waiter).collect()
        };
        for waiter in expired {
            let timeout_ms = waiter.timeout_ms;
            let _ = waiter
                .sender
                .send(Err(RemotingError::Timeout { addr: self.remote_addr().to_string(), timeout_ms }));
        }
    }

    /// Returns once a call is pending (at once if one is).
    pub(crate) async fn wait_for_pending(&self) {
        loop {
            let added = self.inner.pending_added.notified();
            if !self.inner.pending.lock().is_empty() {
                return;
            }
            added.await;
        }
    }

    /// Fails every pending call; later registrations fail at once.
    pub(crate) fn fail_pending(&self) {
        self.inner.torn_down.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut *self.inner.pending.lock());
        // Dropping the senders wakes every waiting call with `Closed`.
        drop(waiters);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("side", &self.inner.endpoint.side)
            .field("remote_addr", &self.inner.remote_addr)
            .field("local_addr", &self.inner.local_addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Milliseconds of the monotonic clock at its coarse resolution: a read of a value the kernel
/// keeps, without touching the clock source, for the activity stamp taken on every frame.
fn coarse_monotonic_ms() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes only the timespec it is given, which lives on our stack.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    if result != 0 {
        return 0;
    }
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000).saturating_add(nanos / 1_000_000)
}

/// One running handler's share of the in-flight limit; released on drop, even on panic.
#[derive(Debug)]
pub(crate) struct InFlightSlot {
    connection: Connection,
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.connection.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call waiting for its response.
struct Waiter {
    sender: oneshot::Sender<Result<RemotingCommand, RemotingError>>,
    /// Registration time plus the caller's timeout; `None` for a timeout past the clock's
    /// range, which never expires.
    deadline: Option<Instant>,
    /// What the caller asked for, for the error.
    timeout_ms: u64,
}

/// A registered pending call; removes itself from the table when the call ends for any
/// reason (response, timeout, cancellation of the caller).
struct PendingEntry<'a> {
    connection: &'a Connection,
    opaque: i32,
}

impl<'a> PendingEntry<'a> {
    fn register(
        connection: &'a Connection,
        opaque: i32,
        sender: oneshot::Sender<Result<RemotingCommand, RemotingError>>,
        timeout: Duration,
    ) -> Self {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline = Instant::now().checked_add(timeout);
        let waiter = Waiter { sender, deadline, timeout_ms };
        let was_empty = {
            let mut pending = connection.inner.pending.lock();
            let was_empty = pending.is_empty();
            pending.insert(opaque, waiter);
            was_empty
        };
        if was_empty {
            connection.inner.pending_added.notify_one();
        }
        Self { connection, opaque }
    }
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.connection.inner.pending.lock().remove(&self.opaque);
    }
}
