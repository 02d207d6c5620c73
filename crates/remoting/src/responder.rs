//! `Responder`: the right to answer one inbound request, used once, from any thread.
//!
//! It carries what the response needs from its request (opaque, serialization, oneway), the
//! request's share of the connection's in-flight limit and of the graceful-shutdown wait, and
//! it guarantees an answer: a responder dropped unused (a panicking handler, a store shut down
//! with the append still queued) answers SYSTEM_ERROR, so no caller waits for its timeout.

use std::fmt;
use std::time::Instant;

use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::code::response_code;
use crate::command::{RemotingCommand, SerializeType, CURRENT_VERSION, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::connection::outbound::Outgoing;
use crate::connection::{Connection, InFlightSlot};
use crate::router::RequestOutcome;

/// Remark of the SYSTEM_ERROR a responder dropped without an answer sends.
pub const DROPPED_REMARK: &str = "the request was dropped before it was answered";

/// What the response needs from its request once the request itself has been handed over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestKey {
    pub code: i32,
    pub opaque: i32,
    pub oneway: bool,
    pub serialize_type: SerializeType,
    /// When dispatch began, if the server's router times requests.
    pub started: Option<Instant>,
}

impl RequestKey {
    /// The key of `request`; `timed` when the server observes its requests.
    pub fn of(request: &RemotingCommand, timed: bool) -> Self {
        Self {
            code: request.code,
            opaque: request.opaque,
            oneway: request.is_oneway(),
            serialize_type: request.serialize_type,
            started: timed.then(Instant::now),
        }
    }

    /// [`Self::dress`], and the request's outcome told to `connection`'s observer when it is
    /// timed.
    pub fn dress_observed(self, connection: &Connection, answer: RemotingCommand) -> Option<RemotingCommand> {
        let outcome =
            if self.oneway { RequestOutcome::Oneway } else { RequestOutcome::Answered(answer.code) };
        if let (Some(started), Some(observer)) = (self.started, connection.endpoint().router.observer()) {
            observer.observe(self.code, outcome, started.elapsed());
        }
        self.dress(answer)
    }

    /// `answer` made the response to this request; `None` for a oneway request, which gets
    /// no response.
    pub fn dress(self, mut answer: RemotingCommand) -> Option<RemotingCommand> {
        if self.oneway {
            tracing::trace!(code = self.code, "oneway request; response dropped");
            return None;
        }
        answer.opaque = self.opaque;
        answer.flag = (answer.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
        answer.serialize_type = self.serialize_type;
        if answer.version == 0 {
            // Peers read the responder's version from here (spec §1.5); never announce 0.
            answer.version = CURRENT_VERSION;
        }
        Some(answer)
    }
}

/// The answer to one request, still to be given.
pub struct Responder {
    pending: Option<Pending>,
}

/// Everything a responder holds until it answers; dropped once the answer is queued.
struct Pending {
    connection: Connection,
    key: RequestKey,
    _slot: InFlightSlot,
    _shutdown_wait: TaskTrackerToken,
}

impl Responder {
    pub(crate) fn new(connection: Connection, key: RequestKey, slot: InFlightSlot) -> Self {
        let shutdown_wait = connection.endpoint().handler_tasks.token();
        Self { pending: Some(Pending { connection, key, _slot: slot, _shutdown_wait: shutdown_wait }) }
    }

    /// Sends `answer` as the response (nothing for a oneway request). Never blocks: when the
    /// connection's writer queue is full, a task waits for room, still holding the request's
    /// in-flight slot.
    pub fn respond(mut self, answer: RemotingCommand) {
        if let Some(pending) = self.pending.take() {
            pending.send(answer);
        }
    }

    /// Like [`Self::respond`], but the answer is built by the connection's writer task: for
    /// callers that must stay short, such as an append round answering many sends. The box is
    /// usually one the caller allocated anyway, to carry its own state.
    pub fn respond_deferred(mut self, answer: Box<dyn DeferredAnswer>) {
        let Some(pending) = self.pending.take() else { return };
        if pending.key.oneway {
            return;
        }
        let item = Outgoing::Deferred { key: pending.key, build: answer };
        let connection = pending.connection.clone();
        connection.enqueue_response_now(item, pending);
    }

    /// Sends `answer`, waiting for room in the writer queue (async handlers, which give
    /// back-pressure to their connection this way).
    pub(crate) async fn respond_waiting(mut self, answer: RemotingCommand) {
        let Some(pending) = self.pending.take() else { return };
        let Some(response) = pending.key.dress_observed(&pending.connection, answer) else { return };
        if pending.connection.enqueue(Outgoing::Response(response)).await.is_err() {
            tracing::debug!(
                connection = pending.connection.id(),
                code = pending.key.code,
                "connection closed before the response"
            );
        }
    }

    /// Gives up the answer without sending one: the handler answered by other means, or
    /// the request was oneway.
    pub(crate) fn discard(mut self) {
        self.pending = None;
    }
}

impl Pending {
    fn send(self, answer: RemotingCommand) {
        let Some(response) = self.key.dress_observed(&self.connection, answer) else { return };
        let connection = self.connection.clone();
        connection.enqueue_response_now(Outgoing::Response(response), self);
    }
}

/// An answer the connection's writer task builds (see [`Responder::respond_deferred`]).
/// Closures implement it.
pub trait DeferredAnswer: Send + 'static {
    /// The response, without opaque and flags (the responder adds them).
    fn build(self: Box<Self>) -> RemotingCommand;
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            if pending.connection.is_closed() {
                return;
            }
            tracing::warn!(
                connection = pending.connection.id(),
                code = pending.key.code,
                "request dropped without an answer; answering SYSTEM_ERROR"
            );
            pending.send(RemotingCommand::response(response_code::SYSTEM_ERROR, Some(DROPPED_REMARK.into())));
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pending {
            Some(pending) => f
                .debug_struct("Responder")
                .field("connection", &pending.connection.id())
                .field("key", &pending.key)
                .finish(),
            None => f.write_str("Responder(answered)"),
        }
    }
}
