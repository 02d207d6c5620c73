//! The broker's operations as plain functions over typed requests and typed results, for
//! every wire front to call: the remoting adapter in [`crate::processor`] today, a gRPC front
//! next. Nothing here sees a wire type (no command, header, extFields or connection); what a
//! front knows about its peer comes in as a [`Caller`], and every failure is an [`Error`]: a
//! RocketMQ response code and a remark.
//!
//! One module per concern: [`send`] (single and batch), [`pull`] (reading a queue, and the
//! wait for arrival behind long polling), [`offsets`] (consumer offsets and queue bounds),
//! [`messages`] (lookups by offset and key), [`clients`] (the client registry and queue locks)
//! and [`admin`] (topics, groups, statistics, broker information and maintenance).

pub mod caller;
pub mod error;
pub mod pull;
pub mod send;

pub use caller::Caller;
pub use error::{CoreResult, Error};
