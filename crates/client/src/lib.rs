//! apogee-client: the Rust SDK for Apogee (and Apache RocketMQ) over the remoting protocol.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apogee_client::ClientError> {
//! use apogee_client::{ConsumeResult, Message, Producer, PushConsumer};
//! let producer = Producer::builder().group("test-group").namesrv("127.0.0.1:9876").start().await?;
//! let receipt = producer.send(Message::new("test-topic", &b"Hello Apogee"[..]).with_tags("TagA")).await?;
//! let consumer = PushConsumer::builder()
//!     .group("g")
//!     .namesrv("127.0.0.1:9876")
//!     .subscribe("test-topic", "TagA || TagB")
//!     .start(|messages| async move { ConsumeResult::Success })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! - [`instance`]: the client instance shared per process and NameServer set (routes,
//!   heartbeats, requests brokers send to clients);
//! - [`producer`]: [`Producer`], with its builder, selectors and send results, and
//!   [`TransactionProducer`] for transactional messages;
//! - [`consumer`]: [`PushConsumer`], [`LitePullConsumer`], [`SimpleConsumer`] (POP), allocation
//!   strategies, offset stores;
//! - [`admin`]: [`Admin`], what an mqadmin-style tool needs;
//! - [`relay`]: [`Relay`], requests to a named broker group for relays that choose brokers
//!   and queues themselves (the gRPC proxy in cluster mode);
//! - [`error`]: [`ClientError`], the one error type.

pub mod admin;
pub mod config;
pub mod consumer;
pub mod error;
pub mod instance;
pub mod producer;
pub mod relay;
#[cfg(test)]
mod test_data;

pub use admin::Admin;
pub use apogee_common::message::{Message, MessageExt};
pub use apogee_common::MessageQueue;
pub use config::ClientConfig;
pub use consumer::lite_pull::LitePullConsumer;
pub use consumer::push::{ConsumeResult, PushConsumer};
pub use consumer::simple::{FilterExpression, ReceivedMessage, SimpleConsumer};
pub use error::ClientError;
pub use producer::{
    create_reply_message, LocalTransactionState, Producer, SendResult, SendStatus, TransactionCheck,
    TransactionCheckForwarder, TransactionListener, TransactionProducer, TransactionSendResult,
};
pub use relay::Relay;
