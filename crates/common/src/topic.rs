//! Topic configuration and the reserved topic names of RocketMQ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::perm;

/// The auto-create template topic producers name in `defaultTopic`.
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
/// Delay-level messages wait here, one queue per level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Prefix of a consumer group's retry topic.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic.
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Prefix of every internal system topic.
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
/// Transaction half messages.
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Transaction op messages.
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Half messages checked too often end here.
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Broker self test.
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Legacy offset-moved events.
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
/// Topics clients may never send to (Java `TopicValidator.isNotAllowedSendTopic`): the
/// broker writes them itself. The producer refuses them before sending, the broker with
/// NO_PERMISSION.
pub const NOT_ALLOWED_SEND_TOPICS: [&str; 6] = [
    SCHEDULE_TOPIC,
    TRANS_HALF_TOPIC,
    TRANS_OP_HALF_TOPIC,
    TRANS_CHECK_MAX_TIME_TOPIC,
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT,
];

/// True for the topics no client may send to ([`NOT_ALLOWED_SEND_TOPICS`]).
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    NOT_ALLOWED_SEND_TOPICS.contains(&topic)
}

/// Benchmark topic created at broker start.
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
/// Message trace topic.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Timer wheel topic.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Longest topic name clients and admin tools accept.
pub const TOPIC_MAX_LENGTH: usize = 127;
/// Longest retry/DLQ topic name.
pub const RETRY_TOPIC_MAX_LENGTH: usize = 255;
/// Longest group name.
pub const GROUP_MAX_LENGTH: usize = 120;

/// Whether a topic's tags are one tag or several (cosmetic in practice, kept for the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TopicFilterType {
    /// One tag per message.
    #[default]
    SingleTag,
    /// Several tags per message.
    MultiTag,
}

impl TopicFilterType {
    /// The Java constant name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleTag => "SINGLE_TAG",
            Self::MultiTag => "MULTI_TAG",
        }
    }

    /// Parses the Java constant name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SINGLE_TAG" => Some(Self::SingleTag),
            "MULTI_TAG" => Some(Self::MultiTag),
            _ => None,
        }
    }
}

/// Per-broker configuration of one topic (Java `TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// Free-form attributes (`queue.type`, `message.type`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Ordered topic.
    pub order: bool,
    /// Permission bits, see [`crate::perm`].
    pub perm: i32,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Tag filter type.
    pub topic_filter_type: TopicFilterType,
    /// Topic name.
    pub topic_name: String,
    /// Unit flags: bit0 unit, bit1 unit-sub.
    pub topic_sys_flag: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl TopicConfig {
    /// Java's `new TopicConfig(name)`: 16 read and 16 write queues, read-write.
    pub fn new(topic_name: impl Into<String>) -> Self {
        Self::with_queues(topic_name, 16, 16, perm::READ_WRITE)
    }

    /// A topic with explicit queue counts and permission.
    pub fn with_queues(topic_name: impl Into<String>, read: i32, write: i32, perm: i32) -> Self {
        Self {
            attributes: BTreeMap::new(),
            order: false,
            perm,
            read_queue_nums: read,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: topic_name.into(),
            topic_sys_flag: 0,
            write_queue_nums: write,
        }
    }
}

/// The name of a consumer group's retry topic.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// The name of a consumer group's dead-letter topic.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// True for retry topics.
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
}

/// True for the topics the broker itself owns.
pub fn is_system_topic(topic: &str) -> bool {
    topic.starts_with(SYSTEM_TOPIC_PREFIX)
        || matches!(
            topic,
            AUTO_CREATE_TOPIC_KEY
                | SCHEDULE_TOPIC
                | TRANS_HALF_TOPIC
                | TRANS_OP_HALF_TOPIC
                | TRANS_CHECK_MAX_TIME_TOPIC
                | SELF_TEST_TOPIC
                | OFFSET_MOVED_EVENT
                | BENCHMARK_TOPIC
                | TRACE_TOPIC
        )
}

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicNameError {
    /// Empty or blank.
    Blank,
    /// Longer than allowed.
    TooLong {
        /// Length of the name given.
        length: usize,
        /// Limit for this kind of topic.
        limit: usize,
    },
    /// A character outside `[%|a-zA-Z0-9_-]`.
    IllegalCharacter,
}

impl std::fmt::Display for TopicNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blank => f.write_str("the specified topic is blank"),
            Self::TooLong { length, limit } => {
                write!(f, "the specified topic is longer than topic max length {limit} (got {length})")
            }
            Self::IllegalCharacter => f.write_str(
                "the specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
            ),
        }
    }
}

impl std::error::Error for TopicNameError {}

/// Checks a topic name against RocketMQ's rules (§0.3 of the behaviour spec).
pub fn validate_topic_name(topic: &str) -> Result<(), TopicNameError> {
    if topic.trim().is_empty() {
        return Err(TopicNameError::Blank);
    }
    let limit = if is_retry_topic(topic) || topic.starts_with(DLQ_GROUP_TOPIC_PREFIX) {
        RETRY_TOPIC_MAX_LENGTH
    } else {
        TOPIC_MAX_LENGTH
    };
    if topic.len() > limit {
        return Err(TopicNameError::TooLong { length: topic.len(), limit });
    }
    let legal = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    if !topic.bytes().all(legal) {
        return Err(TopicNameError::IllegalCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("TopicTest").is_ok());
        assert!(validate_topic_name("%RETRY%group-1").is_ok());
        assert_eq!(validate_topic_name(" "), Err(TopicNameError::Blank));
        assert_eq!(validate_topic_name("a b"), Err(TopicNameError::IllegalCharacter));
        assert!(matches!(validate_topic_name(&"a".repeat(128)), Err(TopicNameError::TooLong { .. })));
        assert!(validate_topic_name(&format!("%RETRY%{}", "a".repeat(200))).is_ok());
    }

    #[test]
    fn topic_config_json_uses_java_names() {
        let config = TopicConfig::with_queues("T", 4, 4, perm::READ_WRITE);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":4}"#
        );
    }
}
