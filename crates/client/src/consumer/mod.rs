//! Consumers: push, lite pull and simple (POP), with their rebalance, allocation and offset stores.
//!
//! The pieces both consumers share are public here: [`allocate`] (queue allocation
//! strategies), [`offset_store`] (broker and local-file offsets), [`process_queue`] (the
//! per-queue cache with flow control and the commit-offset rule) and [`subscription`]
//! (expressions and the client-side tag check).

pub mod allocate;
pub mod lite_pull;
pub mod offset_store;
pub mod process_queue;
pub mod push;
pub mod simple;
pub mod subscription;

use apogee_remoting::body::enums::{ConsumeType, MessageModel};
use apogee_remoting::body::ConsumerData;

/// What a heartbeat says of a consumer that was dropped but whose registration the client
/// instance still holds for a moment: its group and kind, nothing to subscribe.
pub(crate) fn departed_consumer(group: &str, consume_type: ConsumeType) -> ConsumerData {
    ConsumerData {
        group_name: group.to_owned(),
        consume_type: Some(consume_type),
        message_model: Some(MessageModel::Clustering),
        ..ConsumerData::default()
    }
}

/// The setters both consumer builders share (`group`, `consume_from_where`,
/// `consume_timestamp_ms`): who consumes, and where a queue without a committed offset starts.
/// They mean the same for push and lite pull consumers (as for Java's two consumers), so they
/// are defined once; each builder has the fields of the same names.
macro_rules! consumer_setters {
    () => {
        /// The consumer group (required): offsets are kept per group, and a clustering push
        /// group or a subscribing lite pull group shares its queues among its members.
        pub fn group(mut self, group: impl Into<String>) -> Self {
            self.group = group.into();
            self
        }

        /// Where a queue without a committed offset starts (default CONSUME_FROM_LAST_OFFSET).
        pub fn consume_from_where(mut self, from: apogee_remoting::body::enums::ConsumeFromWhere) -> Self {
            self.consume_from_where = from;
            self
        }

        /// The store time (epoch ms) CONSUME_FROM_TIMESTAMP starts at (default: 30 minutes
        /// before start).
        pub fn consume_timestamp_ms(mut self, epoch_ms: i64) -> Self {
            self.consume_timestamp_ms = Some(epoch_ms);
            self
        }
    };
}
pub(crate) use consumer_setters;
