//! (stub, owned by the push-consumer work) The push consumer.

/// What a listener says about the messages it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed.
    Success,
    /// Failed: redeliver later (retry topic in clustering mode).
    ReconsumeLater,
}

/// A push consumer.
#[derive(Debug)]
pub struct PushConsumer {}
