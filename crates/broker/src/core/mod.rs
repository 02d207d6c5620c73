//! The broker's operations as plain functions over typed requests and typed results, for
//! every wire front to call: the remoting adapter in [`crate::processor`] today, a gRPC front
//! next. Nothing here sees a wire type (no command, header, extFields or connection); what a
//! front knows about its peer comes in as a [`Caller`], and every failure is an [`Error`]: a
//! RocketMQ response code and a remark.
//!
//! One module per concern: [`send`] (single and batch), [`pull`] (reading a queue, and the
//! wait for arrival behind long polling), [`offsets`] (consumer offsets and queue bounds), [`offset_reset`] (an admin's reset of a
//! group's offsets),
//! [`messages`] (lookups by offset and key), [`clients`] (the client registry and queue locks),
//! [`transaction`] (half messages, their end and the check-back service), [`reply`] (replies
//! handed to their requester), [`pop`] (POP consumption: pops, acks, check points and their
//! revive service), [`timer`] (timer messages: the send-side rewrite, the timer store and its
//! service, recalls)
//! and [`admin`] (topics, groups, statistics, broker information and maintenance).

pub mod admin;
pub mod caller;
pub mod clients;
pub mod error;
pub mod fronts;
pub mod messages;
pub mod offset_reset;
pub mod offsets;
pub mod pop;
pub mod pull;
pub mod reply;
pub mod send;
pub mod send_back;
pub mod timer;
pub mod transaction;

pub use caller::Caller;
pub use error::{CoreResult, Error};

/// Runs `work` on a blocking thread (reads that touch the mapped commit log or index, state
/// file writes), turning a failed task into SYSTEM_ERROR.
pub(crate) async fn blocking<T, F>(state: &std::sync::Arc<crate::BrokerState>, work: F) -> CoreResult<T>
where
    F: FnOnce(&crate::BrokerState) -> T + Send + 'static,
    T: Send + 'static,
{
    let owner = std::sync::Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&owner))
        .await
        .map_err(|error| Error::system(format!("broker task failed: {error}")))
}
