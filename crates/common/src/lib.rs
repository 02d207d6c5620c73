//! apogee-common: the vocabulary every other Apogee crate shares.
//!
//! Nothing here touches the network; the disk only through [`fs`], for small state files. The types mirror Apache RocketMQ's
//! model (topics, queues, permissions, data versions) so the wire crates can serialize
//! them exactly the way the Java reference does.

pub mod fs;
pub mod hash;
pub mod message;
pub mod perm;
pub mod properties;
pub mod queue;
pub mod spare;
pub mod time;
pub mod topic;
pub mod version;

pub use hash::java_string_hash;
pub use queue::MessageQueue;
pub use topic::{TopicConfig, TopicFilterType};
pub use version::DataVersion;
