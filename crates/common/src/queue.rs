//! The message queue: the unit of ordering, offsets and load balancing.

use serde::{Deserialize, Serialize};

/// One queue of one topic on one broker group. The derived ordering (topic, then broker
/// name, then queue id) is the total order every RocketMQ component sorts queues by.
/// Missing JSON members read as empty / 0, as a Java peer's fields would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    /// Topic name.
    pub topic: String,
    /// Broker group name.
    pub broker_name: String,
    /// Queue index within the broker group, `0..queue_nums`.
    pub queue_id: i32,
}

impl MessageQueue {
    /// A queue of `topic` on `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self { topic: topic.into(), broker_name: broker_name.into(), queue_id }
    }
}
