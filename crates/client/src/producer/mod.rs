//! (stub, owned by the core/producer work) The producer.

use crate::{ClientError, Message, MessageQueue};

/// Outcome of a stored send (Java `SendStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored.
    SendOk,
    /// Stored, not flushed in time (SYNC_FLUSH broker).
    FlushDiskTimeout,
    /// Stored, not replicated in time.
    FlushSlaveTimeout,
    /// Stored, no slave available.
    SlaveNotAvailable,
}

/// What a send returns.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// Status.
    pub status: SendStatus,
    /// The client message id (UNIQ_KEY); comma-joined for batches.
    pub msg_id: String,
    /// The broker's offset id(s).
    pub offset_msg_id: String,
    /// Queue used.
    pub queue: MessageQueue,
    /// Queue offset of the (first) message.
    pub queue_offset: i64,
}

/// A producer.
#[derive(Debug)]
pub struct Producer {}

impl Producer {
    /// Sends and waits for the broker's answer.
    pub async fn send(&self, _message: Message) -> Result<SendResult, ClientError> {
        unimplemented!()
    }
}
