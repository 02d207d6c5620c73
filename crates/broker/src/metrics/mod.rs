//! The broker's metrics under RocketMQ 5.x's names (spec observability-admin.md §1.3–§1.5),
//! served as Prometheus text when `metricsExporterType=PROM`.
//!
//! Traffic is counted where it happens, into atomics found per label value ([`keyed`]): a
//! send keeps its topic's counters in its receipt and adds to them once stored, a pull adds
//! what it hands out. Everything else (connections, lag, permissions, disk) is read from the
//! broker's state when scraped ([`collector`]). With export off nothing is counted: the send
//! path carries `None` and pays nothing.

pub mod collector;
pub mod keyed;
pub mod rpc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use apogee_common::message::property;
use apogee_common::topic;
use apogee_metrics::{FixedHistogram, PromExporter};

use crate::BrokerState;
use keyed::Keyed;

/// `rocketmq_message_size` bucket bounds in bytes (Java's view: 1K, 4K, 512K, 1M, 2M, 4M).
pub static MESSAGE_SIZE_BOUNDS: [f64; 6] = [1024.0, 4096.0, 524_288.0, 1_048_576.0, 2_097_152.0, 4_194_304.0];

/// The `message_type` label (Java `TopicMessageType`, lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Plain messages.
    Normal,
    /// Messages with a sharding key (`__SHARDINGKEY`).
    Fifo,
    /// Delay-level or timer messages.
    Delay,
    /// Half messages of a transaction.
    Transaction,
}

impl MessageType {
    /// Every type, in label order.
    pub const ALL: [MessageType; 4] =
        [MessageType::Normal, MessageType::Fifo, MessageType::Delay, MessageType::Transaction];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Fifo => "fifo",
            Self::Delay => "delay",
            Self::Transaction => "transaction",
        }
    }

    /// Java's `BrokerMetricsManager.getMessageType`: from the send's properties string.
    pub fn of_properties(properties: Option<&str>) -> Self {
        let mut kind = Self::Normal;
        for pair in properties.unwrap_or("").split(property::PROPERTY_SEPARATOR) {
            let Some((key, value)) = pair.split_once(property::NAME_VALUE_SEPARATOR) else { continue };
            match key {
                property::TRAN_MSG if value == "true" => return Self::Transaction,
                property::SHARDING_KEY => kind = Self::Fifo,
                property::START_DELIVER_TIME
                | property::DELAY
                | property::TIMER_DELIVER_MS
                | property::TIMER_DELAY_SEC
                | property::TIMER_DELAY_MS
                    if kind == Self::Normal =>
                {
                    kind = Self::Delay
                }
                _ => {}
            }
        }
        kind
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `is_system` label of a topic (Java `TopicValidator.isSystemTopic`).
pub fn is_system_topic(name: &str) -> bool {
    topic::is_system_topic(name)
}

/// The `is_system` label of a group (`CID_RMQ_SYS_` prefix, any case).
pub fn is_system_group(group: &str) -> bool {
    group.len() >= SYSTEM_GROUP_PREFIX.len()
        && group.as_bytes()[..SYSTEM_GROUP_PREFIX.len()].eq_ignore_ascii_case(SYSTEM_GROUP_PREFIX.as_bytes())
}

const SYSTEM_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// Inbound traffic of one topic and message type.
#[derive(Debug)]
pub struct Inbound {
    messages: AtomicU64,
    bytes: AtomicU64,
    size_bytes: FixedHistogram,
}

impl Default for Inbound {
    fn default() -> Self {
        Self {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            size_bytes: FixedHistogram::new(&MESSAGE_SIZE_BOUNDS),
        }
    }
}

/// Inbound traffic of one topic, per message type.
#[derive(Debug, Default)]
pub struct TopicInbound {
    by_type: [Inbound; 4],
}

/// What a send adds to once stored: its topic's counters and its type.
#[derive(Debug, Clone)]
pub struct SendTally {
    topic: Arc<TopicInbound>,
    kind: MessageType,
}

impl SendTally {
    /// Counts a stored put of `messages` records taking `bytes`.
    pub fn stored(&self, messages: u32, bytes: u32) {
        let inbound = &self.topic.by_type[self.kind.index()];
        inbound.messages.fetch_add(u64::from(messages), Ordering::Relaxed);
        inbound.bytes.fetch_add(u64::from(bytes), Ordering::Relaxed);
        // Java observes the mean size per message of the put, once per put.
        inbound.size_bytes.observe(f64::from(bytes) / f64::from(messages.max(1)));
    }
}

/// Messages and bytes handed out.
#[derive(Debug, Default)]
pub struct Outbound {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// The broker's counters; `enabled` is false unless metrics are exported.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    enabled: bool,
    inbound: Keyed<TopicInbound>,
    /// Group, then topic.
    outbound: Keyed<Keyed<Outbound>>,
    /// Group, then topic.
    dead_lettered: Keyed<Keyed<AtomicU64>>,
    commits: Keyed<AtomicU64>,
    rollbacks: Keyed<AtomicU64>,
    /// Remoting request latencies, told by the transport.
    rpc: Arc<rpc::RpcLatency>,
}

impl BrokerMetrics {
    /// Counters that count when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, ..Self::default() }
    }

    /// What the remoting servers tell of each request, when metrics are on.
    pub fn request_observer(&self) -> Option<Arc<dyn apogee_remoting::router::RequestObserver>> {
        self.enabled.then(|| Arc::clone(&self.rpc) as Arc<dyn apogee_remoting::router::RequestObserver>)
    }

    /// Whether anything is counted.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The counters a send to `topic` adds to once stored; `None` when off, and for retry and
    /// dead-letter topics, which Java does not count as inbound.
    pub fn send_tally(&self, topic: &str, properties: Option<&str>) -> Option<SendTally> {
        if !self.enabled || topic::is_retry_topic(topic) || topic.starts_with(topic::DLQ_GROUP_TOPIC_PREFIX) {
            return None;
        }
        let counters = self.inbound.entry(topic)?;
        Some(SendTally { topic: counters, kind: MessageType::of_properties(properties) })
    }

    /// Counts messages handed to `group` from `topic` (pulls skip retry and DLQ topics, as
    /// Java's do).
    pub fn handed_out(&self, group: &str, topic: &str, messages: u64, bytes: u64) {
        if !self.enabled || messages == 0 {
            return;
        }
        if let Some(counters) = self.outbound.entry(group).and_then(|topics| topics.entry(topic)) {
            counters.messages.fetch_add(messages, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts a message of `group` diverted to its dead-letter queue.
    pub fn dead_lettered(&self, group: &str, topic: &str) {
        if !self.enabled {
            return;
        }
        if let Some(counter) = self.dead_lettered.entry(group).and_then(|topics| topics.entry(topic)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a transaction of `topic` committed (`true`) or rolled back.
    pub fn transaction_ended(&self, topic: &str, committed: bool) {
        if !self.enabled {
            return;
        }
        let table = if committed { &self.commits } else { &self.rollbacks };
        if let Some(counter) = table.entry(topic) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the Prometheus endpoint when `metricsExporterType=PROM`; `None` otherwise.
pub async fn start_exporter(state: &Arc<BrokerState>) -> std::io::Result<Option<PromExporter>> {
    let config = &state.config;
    let node = vec![
        ("cluster".to_owned(), config.broker_cluster_name.clone()),
        ("node_type".to_owned(), "broker".to_owned()),
        ("node_id".to_owned(), config.broker_name.clone()),
    ];
    let collector = Box::new(collector::BrokerCollector::new(Arc::downgrade(state)));
    apogee_metrics::exporter::start_configured(&config.metrics, config.broker_ip1, node, vec![collector])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(key, value)| format!("{key}{}{value}", property::NAME_VALUE_SEPARATOR))
            .collect::<Vec<_>>()
            .join(&property::PROPERTY_SEPARATOR.to_string())
    }

    #[test]
    fn message_type_as_java_decides_it() {
        assert_eq!(MessageType::of_properties(None), MessageType::Normal);
        let tagged = properties(&[("TAGS", "a"), ("KEYS", "k")]);
        assert_eq!(MessageType::of_properties(Some(&tagged)), MessageType::Normal);
        let timer = properties(&[("TIMER_DELAY_SEC", "5")]);
        assert_eq!(MessageType::of_properties(Some(&timer)), MessageType::Delay);
        let fifo_delay = properties(&[("DELAY", "3"), ("__SHARDINGKEY", "g")]);
        assert_eq!(MessageType::of_properties(Some(&fifo_delay)), MessageType::Fifo);
        let half = properties(&[("__SHARDINGKEY", "g"), ("TRAN_MSG", "true")]);
        assert_eq!(MessageType::of_properties(Some(&half)), MessageType::Transaction);
        let not_half = properties(&[("TRAN_MSG", "false")]);
        assert_eq!(MessageType::of_properties(Some(&not_half)), MessageType::Normal);
    }

    #[test]
    fn off_counts_nothing_and_retry_topics_are_not_inbound() {
        assert!(BrokerMetrics::new(false).send_tally("T", None).is_none());
        let metrics = BrokerMetrics::new(true);
        assert!(metrics.send_tally("%RETRY%g", None).is_none());
        assert!(metrics.send_tally("%DLQ%g", None).is_none());
        let tally = metrics.send_tally("T", None).unwrap();
        tally.stored(10, 1000);
        let inbound = &metrics.inbound.entry("T").unwrap().by_type[0];
        assert_eq!(inbound.messages.load(Ordering::Relaxed), 10);
        assert_eq!(inbound.bytes.load(Ordering::Relaxed), 1000);
        assert_eq!(inbound.size_bytes.count(), 1);
    }

    #[test]
    fn system_groups_in_any_case() {
        assert!(is_system_group("CID_RMQ_SYS_TRANS"));
        assert!(is_system_group("cid_rmq_sys_x"));
        assert!(!is_system_group("CID_RMQ"));
        assert!(is_system_topic("rmq_sys_wheel_timer"));
        assert!(!is_system_topic("orders"));
    }
}
