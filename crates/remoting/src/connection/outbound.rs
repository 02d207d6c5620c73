//! The queue between a connection's senders (callers, handlers, store threads answering
//! sends) and its writer task, bounded in items and in bytes, so that a peer that stops
//! reading costs at most that much memory; async senders wait for room, senders on other
//! threads hand the wait to a task.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::command::RemotingCommand;
use crate::responder::{DeferredAnswer, RequestKey};

/// What the writer puts on the socket.
pub(crate) enum Outgoing {
    /// A frame already encoded (requests, which are signed and encoded by their caller).
    Frame(Bytes),
    /// A response, already dressed for its request, encoded by the writer straight into its
    /// socket buffer: no frame buffer of its own, and no encoding on the thread that answered.
    Response(RemotingCommand),
    /// A response the writer builds, then dresses for the request `key` describes: lets a
    /// thread that must stay short (an append round) hand over the work of the answer.
    Deferred { key: RequestKey, build: Box<dyn DeferredAnswer> },
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Frame(bytes) => f.debug_tuple("Frame").field(&bytes.len()).finish(),
            Self::Response(command) => f.debug_tuple("Response").field(&command.code).finish(),
            Self::Deferred { key, .. } => f.debug_struct("Deferred").field("key", key).finish(),
        }
    }
}

impl Outgoing {
    /// Bytes charged against the queue's budget: the frame, or for a response its body plus
    /// room for the header.
    fn cost_bytes(&self) -> usize {
        /// What a response header takes at most in practice (a send response is ~300 bytes).
        const RESPONSE_HEADER_ALLOWANCE_BYTES: usize = 1024;
        match self {
            Self::Frame(bytes) => bytes.len(),
            Self::Response(command) => command.body.len() + RESPONSE_HEADER_ALLOWANCE_BYTES,
            Self::Deferred { .. } => RESPONSE_HEADER_ALLOWANCE_BYTES,
        }
    }
}

/// An item and its share of the byte budget, given back once it is written.
#[derive(Debug)]
pub(crate) struct Queued {
    pub item: Outgoing,
    _budget: OwnedSemaphorePermit,
}

/// The sending side of the queue.
#[derive(Debug)]
pub(crate) struct OutboundSender {
    items: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    max_bytes: u32,
}

/// The queue was closed by its writer.
#[derive(Debug)]
pub(crate) struct QueueClosed;

/// Why [`OutboundSender::try_send`] did not queue an item.
#[derive(Debug)]
pub(crate) enum TryQueueError {
    /// No room now; the item is given back.
    Full(Outgoing),
    /// The writer has gone.
    Closed,
}

/// A queue holding at most `max_items` items and `max_bytes` bytes (a single item larger
/// than `max_bytes` is let through alone).
pub(crate) fn channel(max_items: usize, max_bytes: u32) -> (OutboundSender, mpsc::Receiver<Queued>) {
    let max_bytes = max_bytes.max(1);
    let (items, receiver) = mpsc::channel(max_items.max(1));
    let budget = Arc::new(Semaphore::new(max_bytes as usize));
    (OutboundSender { items, budget, max_bytes }, receiver)
}

impl OutboundSender {
    /// Queues `item`, waiting for room. Cancel-safe: nothing is queued if dropped early.
    pub async fn send(&self, item: Outgoing) -> Result<(), QueueClosed> {
        let cost = self.cost(&item);
        let budget = self.budget.clone().acquire_many_owned(cost).await.map_err(|_| QueueClosed)?;
        self.items.send(Queued { item, _budget: budget }).await.map_err(|_| QueueClosed)
    }

    /// Queues `item` if there is room now; never waits, so any thread may call it.
    // A full queue hands the item back by value, as tokio's `try_send` does: it is queued
    // another way at once, and boxing it would cost every full-queue answer an allocation.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, item: Outgoing) -> Result<(), TryQueueError> {
        let cost = self.cost(&item);
        let budget = match self.budget.clone().try_acquire_many_owned(cost) {
            Ok(budget) => budget,
            Err(TryAcquireError::NoPermits) => return Err(TryQueueError::Full(item)),
            Err(TryAcquireError::Closed) => return Err(TryQueueError::Closed),
        };
        match self.items.try_send(Queued { item, _budget: budget }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(queued)) => Err(TryQueueError::Full(queued.item)),
            Err(TrySendError::Closed(_)) => Err(TryQueueError::Closed),
        }
    }

    fn cost(&self, item: &Outgoing) -> u32 {
        u32::try_from(item.cost_bytes()).unwrap_or(u32::MAX).min(self.max_bytes)
    }
}
