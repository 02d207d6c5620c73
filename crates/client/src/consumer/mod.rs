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

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use apogee_common::{topic, MessageQueue};
use apogee_remoting::body::enums::{ConsumeType, MessageModel};
use apogee_remoting::body::ConsumerData;

use crate::instance::ConsumerHandle;
use crate::{ClientError, MessageExt};

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

/// The group-name check of the lite pull and simple consumers' builders: a group is required
/// and must fit the broker's limit.
pub(crate) fn check_group_name(group: &str) -> Result<(), ClientError> {
    if group.trim().is_empty() {
        return Err(ClientError::IllegalArgument("a consumer group is required".into()));
    }
    if group.len() > topic::GROUP_MAX_LENGTH {
        return Err(ClientError::IllegalArgument(format!(
            "consumer group is longer than {} characters",
            topic::GROUP_MAX_LENGTH
        )));
    }
    Ok(())
}

/// What a lite pull or simple consumer's shared state answers the client instance while the
/// consumer is alive; [`Registration`] holds it weakly and answers for a dropped one.
pub(crate) trait LiveConsumer: Send + Sync + 'static {
    /// The consumer's kind, also reported for it once it is dropped.
    const CONSUME_TYPE: ConsumeType;
    /// Heartbeat data of this consumer.
    fn consumer_data(&self) -> ConsumerData;
    /// See [`ConsumerHandle::subscribed_topics`].
    fn subscribed_topics(&self) -> Vec<String>;
    /// See [`ConsumerHandle::rebalance_now`]; nothing by default.
    fn rebalance_now(&self) {}
    /// See [`ConsumerHandle::reset_offsets`] (restarting a queue starts a task holding the
    /// state); nothing by default.
    fn reset_offsets(self: &Arc<Self>, _topic: &str, _offsets: HashMap<MessageQueue, i64>) {}
    /// See [`ConsumerHandle::running_info`].
    fn running_info(&self) -> serde_json::Value;
    /// The remark of the refusal [`ConsumerHandle::consume_directly`] answers: neither
    /// consumer has a listener to run on the message, so both refuse the same way.
    const NO_DIRECT_CONSUME_REMARK: &'static str;
}

/// What the client instance holds of a lite pull or simple consumer (heartbeats, broker
/// callbacks): weak, so a dropped consumer goes away.
pub(crate) struct Registration<S> {
    /// Consumer group, still known once the consumer is dropped.
    pub(crate) group: String,
    /// The consumer's shared state.
    pub(crate) shared: Weak<S>,
}

impl<S: LiveConsumer> ConsumerHandle for Registration<S> {
    fn group(&self) -> &str {
        &self.group
    }

    fn consumer_data(&self) -> ConsumerData {
        match self.shared.upgrade() {
            Some(shared) => shared.consumer_data(),
            None => departed_consumer(&self.group, S::CONSUME_TYPE),
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.shared.upgrade().map(|shared| shared.subscribed_topics()).unwrap_or_default()
    }

    fn rebalance_now(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.rebalance_now();
        }
    }

    fn reset_offsets(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.reset_offsets(topic, offsets);
        }
    }

    fn running_info(&self) -> serde_json::Value {
        match self.shared.upgrade() {
            Some(shared) => shared.running_info(),
            None => serde_json::json!({}),
        }
    }

    fn consume_directly(&self, _message: MessageExt) -> serde_json::Value {
        // Java's `ConsumeMessageDirectlyResult` of a consumer that threw: nothing consumed.
        serde_json::json!({
            "order": false,
            "autoCommit": true,
            "consumeResult": "CR_THROW_EXCEPTION",
            "remark": S::NO_DIRECT_CONSUME_REMARK,
            "spentTimeMills": 0,
        })
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
