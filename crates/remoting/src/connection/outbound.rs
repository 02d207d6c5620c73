//! The queue between a connection's senders (callers, handlers) and its writer task,
//! bounded in frames and in bytes, so that a peer that stops reading costs at most that
//! much memory; senders wait for room.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// An encoded frame and its share of the byte budget, given back once it is written.
#[derive(Debug)]
pub(crate) struct QueuedFrame {
    pub bytes: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// The sending side of the queue.
#[derive(Debug)]
pub(crate) struct OutboundSender {
    frames: mpsc::Sender<QueuedFrame>,
    budget: Arc<Semaphore>,
    max_bytes: u32,
}

/// The queue was closed by its writer.
#[derive(Debug)]
pub(crate) struct QueueClosed;

/// A queue holding at most `max_frames` frames and `max_bytes` bytes (a single frame larger
/// than `max_bytes` is let through alone).
pub(crate) fn channel(max_frames: usize, max_bytes: u32) -> (OutboundSender, mpsc::Receiver<QueuedFrame>) {
    let max_bytes = max_bytes.max(1);
    let (frames, receiver) = mpsc::channel(max_frames.max(1));
    let budget = Arc::new(Semaphore::new(max_bytes as usize));
    (OutboundSender { frames, budget, max_bytes }, receiver)
}

impl OutboundSender {
    /// Queues `bytes`, waiting for room. Cancel-safe: nothing is queued if dropped early.
    pub async fn send(&self, bytes: Bytes) -> Result<(), QueueClosed> {
        let cost = u32::try_from(bytes.len()).unwrap_or(u32::MAX).min(self.max_bytes);
        let budget = self.budget.clone().acquire_many_owned(cost).await.map_err(|_| QueueClosed)?;
        self.frames.send(QueuedFrame { bytes, _budget: budget }).await.map_err(|_| QueueClosed)
    }
}
