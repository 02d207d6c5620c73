//! What the admin commands compute from the cluster, as data rather than printed tables, so
//! that `apogee admin` and the web dashboard ([`crate::dashboard`]) read the cluster through
//! the same functions: the broker members of the cluster table, runtime figures, the consumer
//! groups and their summaries, a message found by id, its consumption track, and bounded reads
//! of a queue over an offset range. Every function takes the [`Admin`] client and nothing of a
//! broker's internals; failures name the request and where it went (see [`call`]).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use apogee_client::admin::{PulledMessages, PulledStatus, MAX_PULL_BATCH};
use apogee_client::{Admin, ClientError, MessageExt, MessageQueue};
use apogee_common::topic;
use apogee_remoting::body::enums::{ConsumeType, MessageModel};
use apogee_remoting::body::namesrv::TopicList;
use apogee_remoting::body::route::ClusterInfo;

use super::table::version_desc;
use super::{call, describe};

/// Most messages a unique-key query asks each broker for (Java's `-a` shows up to 32).
pub(crate) const UNIQUE_KEY_MAX: i32 = 32;

/// Every topic the NameServers know, or an error naming GET_ALL_TOPIC_LIST_FROM_NAMESERVER and
/// `namesrv`.
pub(crate) async fn topic_list(admin: &Admin, namesrv: &str) -> Result<TopicList> {
    call(admin.topic_list(), format!("GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206) from {namesrv}")).await
}

/// The cluster table, or an error naming GET_BROKER_CLUSTER_INFO and `namesrv`.
pub(crate) async fn cluster_info(admin: &Admin, namesrv: &str) -> Result<ClusterInfo> {
    call(admin.cluster_info(), format!("GET_BROKER_CLUSTER_INFO (106) from {namesrv}")).await
}

/// One member of a broker group as the NameServer's cluster table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerMember {
    /// The cluster the group belongs to.
    pub cluster: String,
    /// The broker group's name.
    pub broker_name: String,
    /// 0 for the master.
    pub broker_id: i64,
    /// `host:port` of the member.
    pub addr: String,
}

/// Every member of every broker group in `info`, of `cluster` only when given, in the
/// table's order (cluster, broker name, broker id).
pub(crate) fn members(info: &ClusterInfo, cluster: Option<&str>) -> Vec<BrokerMember> {
    let mut found = Vec::new();
    for (cluster_name, names) in &info.cluster_addr_table {
        if cluster.is_some_and(|wanted| wanted != cluster_name) {
            continue;
        }
        for name in names {
            let Some(broker) = info.broker_addr_table.get(name) else { continue };
            for (id, addr) in &broker.broker_addrs {
                found.push(BrokerMember {
                    cluster: cluster_name.clone(),
                    broker_name: name.clone(),
                    broker_id: *id,
                    addr: addr.clone(),
                });
            }
        }
    }
    found
}

/// The first number of a space-separated runtime figure (`putTps` is `"12.5 11.0 10.2"`:
/// the last 10 s, 60 s and 600 s), 0 when absent.
pub(crate) fn first_number(runtime: &BTreeMap<String, String>, key: &str) -> f64 {
    runtime
        .get(key)
        .and_then(|value| value.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0.0)
}

/// A runtime figure as text, `default` when the broker does not report it.
pub(crate) fn figure<'a>(runtime: &'a BTreeMap<String, String>, key: &str, default: &'a str) -> &'a str {
    runtime.get(key).map_or(default, String::as_str)
}

/// A whole-number runtime figure (`msgPutTotalTodayNow`), 0 when absent or not a number.
pub(crate) fn count(runtime: &BTreeMap<String, String>, key: &str) -> i64 {
    runtime.get(key).and_then(|value| value.parse().ok()).unwrap_or(0)
}

/// Hours since the broker's oldest stored message (`earliestMessageTimeStamp`), 0 without one:
/// clusterList's `#Hour`.
pub(crate) fn hours_kept(runtime: &BTreeMap<String, String>, now_ms: i64) -> f64 {
    let earliest = count(runtime, "earliestMessageTimeStamp");
    if earliest > 0 {
        now_ms.saturating_sub(earliest) as f64 / 3_600_000.0
    } else {
        0.0
    }
}

/// The consumer groups the NameServer knows of: those with a retry topic, sorted.
pub(crate) fn consumer_groups(list: &TopicList) -> Vec<String> {
    let mut groups: Vec<String> = list
        .topic_list
        .iter()
        .filter_map(|name| name.strip_prefix(topic::RETRY_GROUP_TOPIC_PREFIX).map(str::to_owned))
        .collect();
    groups.sort();
    groups
}

/// One consumer group at a glance: consumerProgress's line without `-g`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupSummary {
    /// The group.
    pub group: String,
    /// Live clients.
    pub count: usize,
    /// The first client's version, `OFFLINE` without clients.
    pub version: String,
    /// `PULL`, `PUSH`, `POP`, or empty when unknown.
    pub consume_type: &'static str,
    /// `CLUSTERING`, `BROADCASTING`, or empty when unknown.
    pub message_model: &'static str,
    /// Messages consumed per second.
    pub consume_tps: f64,
    /// Messages not yet consumed, all queues together.
    pub diff_total: i64,
    /// What could not be read (the statistics), when something failed.
    pub error: Option<String>,
}

/// The summary of `group`: its statistics (GET_CONSUME_STATS) and connections
/// (GET_CONSUMER_CONNECTION_LIST). A group nobody runs is OFFLINE, not an error; a failed
/// statistics request leaves its figures 0 and says why in `error`.
pub(crate) async fn group_summary(admin: &Admin, group: &str) -> GroupSummary {
    let (consume_tps, diff_total, error) = match admin.consumer_progress(group, None).await {
        Ok(progress) => (progress.consume_tps, progress.total_lag(), None),
        Err(error) => {
            (0.0, 0, Some(format!("GET_CONSUME_STATS (208) of group {group} failed: {}", describe(&error))))
        }
    };
    let (count, version, consume_type, message_model) = match admin.consumer_connections(group).await {
        Ok(connection) => (
            connection.connection_set.len(),
            connection
                .connection_set
                .first()
                .map_or_else(|| "OFFLINE".to_owned(), |client| version_desc(client.version)),
            match connection.consume_type {
                Some(ConsumeType::ConsumeActively) => "PULL",
                Some(ConsumeType::ConsumePassively) => "PUSH",
                Some(ConsumeType::ConsumePop) => "POP",
                None => "",
            },
            match connection.message_model {
                Some(MessageModel::Broadcasting) => "BROADCASTING",
                Some(MessageModel::Clustering) => "CLUSTERING",
                None => "",
            },
        ),
        Err(_) => (0, "OFFLINE".to_owned(), "", ""),
    };
    GroupSummary {
        group: group.to_owned(),
        count,
        version,
        consume_type,
        message_model,
        consume_tps,
        diff_total,
        error,
    }
}

/// The message of `topic` with id `id`: an offset id is read with VIEW_MESSAGE_BY_ID from the
/// broker it names; anything else (or an offset id that does not decode) is looked up as the
/// client's unique key with QUERY_MESSAGE, as mqadmin's queryMsgById does.
pub(crate) async fn message_by_id(admin: &Admin, topic_name: &str, id: &str) -> Result<MessageExt> {
    match admin.view_message(id).await {
        Ok(message) => Ok(message),
        Err(ClientError::IllegalArgument(_)) => {
            let found = call(
                admin.query_messages_by_unique_key(topic_name, id, UNIQUE_KEY_MAX),
                format!("QUERY_MESSAGE (12) of unique key {id} in {topic_name}"),
            )
            .await?;
            found.into_iter().next().ok_or_else(|| anyhow!("no message of {topic_name} has id {id}"))
        }
        Err(error) => bail!("VIEW_MESSAGE_BY_ID (33) of {id} failed: {}", describe(&error)),
    }
}

/// What a consumer group did with one message (Java `TrackType`, as far as offsets tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Track {
    /// The group's committed offset is past the message.
    Consumed,
    /// The group has not committed past it yet.
    NotConsumeYet,
    /// The group's statistics could not be read.
    Unknown,
}

impl Track {
    /// Java's name of the track type.
    pub(crate) fn java_name(self) -> &'static str {
        match self {
            Track::Consumed => "CONSUMED",
            Track::NotConsumeYet => "NOT_CONSUME_YET",
            Track::Unknown => "UNKNOWN",
        }
    }
}

/// The consumption track of `message`: each group consuming its topic
/// (QUERY_TOPIC_CONSUME_BY_WHO) with what its offsets (GET_CONSUME_STATS) say. Empty when no
/// group consumes the topic (mqadmin's `WARN: No Consumer`).
pub(crate) async fn message_track(admin: &Admin, message: &MessageExt) -> Result<Vec<(String, Track)>> {
    let name = message.message.topic.as_str();
    let groups =
        call(admin.topic_consumed_by(name), format!("QUERY_TOPIC_CONSUME_BY_WHO (300) of {name}")).await?;
    let mut tracks = Vec::with_capacity(groups.len());
    for group in groups {
        let track = match admin.consume_stats(&group, Some(name)).await {
            Ok(stats) => {
                let consumed = stats
                    .offset_table
                    .iter()
                    .find(|(queue, _)| queue.queue_id == message.queue_id && queue.topic == name);
                match consumed {
                    Some((_, offsets)) if offsets.consumer_offset > message.queue_offset => Track::Consumed,
                    _ => Track::NotConsumeYet,
                }
            }
            Err(_) => Track::Unknown,
        };
        tracks.push((group, track));
    }
    Ok(tracks)
}

/// One admin pull, failures naming the queue and request.
pub(crate) async fn pull(
    admin: &Admin,
    group: &str,
    queue: &MessageQueue,
    expression: &str,
    offset: i64,
    max: i32,
) -> Result<PulledMessages> {
    call(
        admin.pull(group, queue, expression, offset, max),
        format!(
            "PULL_MESSAGE (11) of {}@{}:{} at offset {offset}",
            queue.topic, queue.broker_name, queue.queue_id
        ),
    )
    .await
}

/// The `[from, to)` offsets of `queue` between two optional store times (the whole queue
/// without), found with SEARCH_OFFSET_BY_TIMESTAMP, GET_MIN_OFFSET and GET_MAX_OFFSET.
pub(crate) async fn offset_range(
    admin: &Admin,
    queue: &MessageQueue,
    begin_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<(i64, i64)> {
    let what =
        |request: &str| format!("{request} of {}@{}:{}", queue.topic, queue.broker_name, queue.queue_id);
    let min = match begin_ms {
        Some(time) => call(admin.search_offset(queue, time), what("SEARCH_OFFSET_BY_TIMESTAMP (29)")).await?,
        None => call(admin.min_offset(queue), what("GET_MIN_OFFSET (31)")).await?,
    };
    let max = match end_ms {
        Some(time) => call(admin.search_offset(queue, time), what("SEARCH_OFFSET_BY_TIMESTAMP (29)")).await?,
        None => call(admin.max_offset(queue), what("GET_MAX_OFFSET (30)")).await?,
    };
    Ok((min, max))
}

/// How a bounded read of one queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueRead {
    /// Messages handed to the visitor.
    pub visited: usize,
    /// The last pull's status.
    pub status: PulledStatus,
    /// Where a next read would start.
    pub next_offset: i64,
}

/// Reads `queue` from `range.0` up to `range.1` (exclusive) or `limit` messages, whichever
/// comes first, in pulls of at most [`MAX_PULL_BATCH`], handing each message to `visit`.
pub(crate) async fn read_queue(
    admin: &Admin,
    group: &str,
    queue: &MessageQueue,
    expression: &str,
    range: (i64, i64),
    limit: usize,
    mut visit: impl FnMut(&MessageExt),
) -> Result<QueueRead> {
    let (mut offset, to) = range;
    let mut visited = 0;
    let mut status = PulledStatus::NoNewMsg;
    while offset < to && visited < limit {
        let want =
            i32::try_from(to.saturating_sub(offset).min(i64::from(MAX_PULL_BATCH))).unwrap_or(MAX_PULL_BATCH);
        let pulled = pull(admin, group, queue, expression, offset, want).await?;
        status = pulled.status;
        for message in pulled.messages.iter().filter(|message| message.queue_offset < to) {
            if visited >= limit {
                break;
            }
            visit(message);
            visited += 1;
        }
        match pulled.status {
            PulledStatus::Found | PulledStatus::NoMatchedMsg if pulled.next_begin_offset > offset => {
                offset = pulled.next_begin_offset;
            }
            _ => break,
        }
    }
    Ok(QueueRead { visited, status, next_offset: offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_figures_read_as_the_tools_read_them() {
        let runtime: BTreeMap<String, String> = [
            ("putTps", "12.5 11.0 10.2"),
            ("msgPutTotalTodayNow", "42"),
            ("earliestMessageTimeStamp", "1000"),
            ("bad", "x"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(first_number(&runtime, "putTps"), 12.5);
        assert_eq!(first_number(&runtime, "absent"), 0.0);
        assert_eq!(count(&runtime, "msgPutTotalTodayNow"), 42);
        assert_eq!(count(&runtime, "bad"), 0);
        assert_eq!(figure(&runtime, "absent", "-"), "-");
        assert_eq!(hours_kept(&runtime, 1000 + 7_200_000), 2.0);
    }

    #[test]
    fn groups_are_those_with_a_retry_topic() {
        let list = TopicList {
            topic_list: ["%RETRY%b", "T", "%DLQ%b", "%RETRY%a"].into_iter().map(str::to_owned).collect(),
            ..TopicList::default()
        };
        assert_eq!(consumer_groups(&list), ["a", "b"]);
    }
}
