//! The scrape: the broker's counters and, read from its state at that moment, its gauges, in
//! the descriptors and labels of spec §1.3–§1.5.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

use apogee_common::topic;
use apogee_metrics::prometheus_client::collector::Collector;
use apogee_metrics::prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use apogee_metrics::prometheus_client::metrics::exemplar::Exemplar;
use apogee_metrics::prometheus_client::metrics::MetricType;
use apogee_metrics::prometheus_client::registry::Unit;
use apogee_remoting::body::ConsumeType;

use super::{is_system_group, is_system_topic, BrokerMetrics, Inbound, MessageType};
use crate::client_manager::{ClientChannel, ConsumerGroupInfo};
use crate::BrokerState;

/// Encodes the broker's metrics on each scrape; holds the state weakly so a stopped broker is
/// not kept alive by its endpoint.
#[derive(Debug)]
pub struct BrokerCollector {
    state: Weak<BrokerState>,
}

impl BrokerCollector {
    /// A collector of `state`.
    pub fn new(state: Weak<BrokerState>) -> Self {
        Self { state }
    }
}

fn flag(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

fn counter(metric: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: u64) -> fmt::Result {
    metric
        .encode_family(labels)?
        .encode_counter::<NoLabelSet, _, f64>(&value, None::<&Exemplar<NoLabelSet, f64>>)
}

/// A counter family `name` with one counter per `(labels, value)` of `values`.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in values {
        counter(&mut metric, &labels, value)?;
    }
    Ok(())
}

fn gauge(metric: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: i64) -> fmt::Result {
    metric.encode_family(labels)?.encode_gauge(&value)
}

/// Opens a gauge family without a unit, the kind most of the scrape's gauges are.
fn gauge_family<'s>(
    encoder: &'s mut DescriptorEncoder,
    name: &'s str,
    help: &str,
) -> Result<MetricEncoder<'s>, fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)
}

fn load(value: &AtomicU64) -> u64 {
    value.load(Ordering::Relaxed)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(state) = self.state.upgrade() else { return Ok(()) };
        encode_traffic(&state.metrics, &mut encoder)?;
        state.metrics.rpc.encode(&mut encoder)?;
        encode_broker(&state, &mut encoder)?;
        encode_connections(&state, &mut encoder)?;
        encode_lag(&state, &mut encoder)?;
        encode_store(&state, &mut encoder)
    }
}

/// Counters of what came in and went out.
fn encode_traffic(metrics: &BrokerMetrics, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let inbound = metrics.inbound.snapshot();
    // Every (topic, message type) that stored something, with its labels, read once for the
    // three inbound families.
    let series: Vec<([(&str, &str); 3], &Inbound)> = inbound
        .iter()
        .flat_map(|(topic, counters)| {
            let is_system = flag(is_system_topic(topic));
            MessageType::ALL.iter().zip(&counters.by_type).map(move |(kind, inbound)| {
                ([("topic", &**topic), ("message_type", kind.label()), ("is_system", is_system)], inbound)
            })
        })
        .filter(|(_, inbound)| load(&inbound.messages) > 0)
        .collect();
    counters(
        encoder,
        "rocketmq_messages_in",
        "Messages stored by producers' puts.",
        series.iter().map(|(labels, inbound)| (*labels, load(&inbound.messages))),
    )?;
    counters(
        encoder,
        "rocketmq_throughput_in",
        "Bytes stored by producers' puts.",
        series.iter().map(|(labels, inbound)| (*labels, load(&inbound.bytes))),
    )?;
    let mut metric = encoder.encode_descriptor(
        "rocketmq_message_size",
        "Mean message size of each put, in bytes.",
        None,
        MetricType::Histogram,
    )?;
    for (labels, inbound) in &series {
        inbound.size_bytes.encode(metric.encode_family(labels)?)?;
    }

    let outbound: Vec<_> = metrics
        .outbound
        .snapshot()
        .into_iter()
        .flat_map(|(group, topics)| {
            topics.snapshot().into_iter().map(move |(topic, counters)| (group.clone(), topic, counters))
        })
        .collect();
    let out_labels = |group: &str, topic: &str| {
        [
            ("topic", topic.to_owned()),
            ("consumer_group", group.to_owned()),
            ("is_system", flag(is_system_topic(topic) || is_system_group(group)).to_owned()),
        ]
    };
    counters(
        encoder,
        "rocketmq_messages_out",
        "Messages handed to consumers.",
        outbound.iter().map(|(group, topic, counters)| (out_labels(group, topic), load(&counters.messages))),
    )?;
    counters(
        encoder,
        "rocketmq_throughput_out",
        "Bytes handed to consumers.",
        outbound.iter().map(|(group, topic, counters)| (out_labels(group, topic), load(&counters.bytes))),
    )?;

    counters(
        encoder,
        "rocketmq_send_to_dlq_messages",
        "Messages diverted to a group's dead-letter queue.",
        metrics.dead_lettered.snapshot().into_iter().flat_map(|(group, topics)| {
            topics
                .snapshot()
                .into_iter()
                .map(move |(topic, count)| (out_labels(&group, &topic), load(&count)))
        }),
    )?;
    for (name, help, table) in [
        ("rocketmq_commit_messages", "Transactions committed.", &metrics.commits),
        ("rocketmq_rollback_messages", "Transactions rolled back.", &metrics.rollbacks),
    ] {
        counters(
            encoder,
            name,
            help,
            table.snapshot().into_iter().map(|(topic, count)| ([("topic", topic)], load(&count))),
        )?;
    }
    Ok(())
}

/// Gauges of the broker's tables and permission.
fn encode_broker(state: &BrokerState, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let topics = state.topics.all().len() as i64;
    let groups = state.groups.all().len() as i64;
    for (name, help, value) in [
        (
            "rocketmq_broker_permission",
            "The broker's permission (2 read, 4 write, 6 both).",
            i64::from(state.broker_permission()),
        ),
        ("rocketmq_topic_number", "Topics in the topic table.", topics),
        ("rocketmq_consumer_group_number", "Groups in the subscription-group table.", groups),
    ] {
        gauge_family(encoder, name, help)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// The `version` label: the client's version ordinal as it announced it.
fn version_label(version: i32) -> String {
    version.to_string()
}

fn consume_mode(kind: Option<ConsumeType>) -> &'static str {
    match kind {
        Some(ConsumeType::ConsumeActively) => "pull",
        Some(ConsumeType::ConsumePassively) => "push",
        Some(ConsumeType::ConsumePop) => "pop",
        None => "",
    }
}

/// Connections counted by (client language, version label): the labels every connection
/// gauge carries.
fn count_by_language_and_version<'a>(
    channels: impl IntoIterator<Item = &'a ClientChannel>,
) -> BTreeMap<(String, String), i64> {
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for channel in channels {
        let key = (channel.language.name().to_ascii_lowercase(), version_label(channel.version));
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// The consumer groups with live members, by name, with what their members registered.
fn online_consumer_groups(state: &BrokerState) -> impl Iterator<Item = (String, ConsumerGroupInfo)> + '_ {
    state
        .clients
        .consumer_groups()
        .into_iter()
        .filter_map(|group| state.clients.consumer_group(&group).map(|info| (group, info)))
}

/// Producer and consumer connections.
fn encode_connections(state: &BrokerState, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let producers = count_by_language_and_version(state.clients.producer_groups().values().flatten());
    let mut metric = gauge_family(
        encoder,
        "rocketmq_producer_connections",
        "Producer connections by client language and version.",
    )?;
    for ((language, version), count) in &producers {
        let labels =
            [("language", language.as_str()), ("version", version.as_str()), ("protocol_type", "remoting")];
        gauge(&mut metric, &labels, *count)?;
    }

    let mut metric = gauge_family(
        encoder,
        "rocketmq_consumer_connections",
        "Consumer connections by group, client language and version.",
    )?;
    for (group, info) in online_consumer_groups(state) {
        for ((language, version), count) in count_by_language_and_version(info.channels.values()) {
            let labels = [
                ("consumer_group", group.as_str()),
                ("language", language.as_str()),
                ("version", version.as_str()),
                ("consume_mode", consume_mode(info.consume_type)),
                ("protocol_type", "remoting"),
                ("is_system", flag(is_system_group(&group))),
            ];
            gauge(&mut metric, &labels, count)?;
        }
    }
    Ok(())
}

/// Backlog of each online group on each topic it subscribes (Java `ConsumerLagCalculator`).
fn encode_lag(state: &BrokerState, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let mut metric = gauge_family(
        encoder,
        "rocketmq_consumer_lag_messages",
        "Messages stored and not yet acknowledged by the group.",
    )?;
    for (group, info) in online_consumer_groups(state) {
        for topic_name in info.subscriptions.keys().filter(|name| !topic::is_retry_topic(name)) {
            let Some(config) = state.topics.lookup(topic_name) else { continue };
            let mut lag = 0i64;
            for queue_id in 0..config.read_queue_nums.max(0) {
                let max_offset = state.store.max_offset(topic_name, queue_id);
                let min_offset = state.store.min_offset(topic_name, queue_id);
                let committed =
                    state.offsets.query(&group, topic_name, queue_id).unwrap_or(-1).max(min_offset);
                lag += (max_offset - committed).max(0);
            }
            let labels = [
                ("consumer_group", group.as_str()),
                ("topic", topic_name.as_str()),
                ("is_retry", "false"),
                ("is_system", flag(is_system_group(&group) || is_system_topic(topic_name))),
            ];
            gauge(&mut metric, &labels, lag)?;
        }
    }
    Ok(())
}

/// The store's disk and flush backlog.
fn encode_store(state: &BrokerState, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let store_labels = [("storage_type", "local"), ("storage_medium", "disk")];
    let root = &state.store.config().store_path_root_dir;
    if let Some(space) = crate::core::admin::broker::disk_space(root) {
        let mut metric = encoder.encode_descriptor(
            "rocketmq_storage_size",
            "Used bytes of the file system holding the store.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        gauge(
            &mut metric,
            &store_labels,
            i64::try_from(space.total.saturating_sub(space.free)).unwrap_or(i64::MAX),
        )?;
    }
    let behind = state.store.commit_log_max_offset().saturating_sub(state.store.commit_log_flushed_offset());
    let mut metric = gauge_family(
        encoder,
        "rocketmq_storage_flush_behind_bytes",
        "Commit-log bytes written and not yet flushed.",
    )?;
    gauge(&mut metric, &store_labels, i64::try_from(behind).unwrap_or(i64::MAX))
}
