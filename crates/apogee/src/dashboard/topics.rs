//! The topics page: every topic the NameServers know, by kind, and one topic's queues with
//! their offsets (mqadmin topicStatus: GET_TOPIC_STATS_INFO), its route and the groups that
//! consume it (QUERY_TOPIC_CONSUME_BY_WHO).

use std::sync::Arc;

use anyhow::Result;
use apogee_common::topic;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::api::{answer, topic_param, Answer};
use super::Ctx;
use crate::admin::inspect;
use crate::admin::{call, describe};

/// Most topics listed; a NameServer with more says so (`truncated`).
const MAX_TOPICS: usize = 10_000;

/// The end of a cluster's request–reply topic, `<cluster>_REPLY_TOPIC`.
const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";

/// One topic of the list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicEntry {
    name: String,
    /// `NORMAL`, `RETRY`, `DLQ` or `SYSTEM` (the brokers' own topics, and the cluster and
    /// broker names brokers register as topics, and each cluster's reply topic).
    kind: &'static str,
}

/// The topic list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicList {
    topics: Vec<TopicEntry>,
    /// True when the NameServer knows more than [`MAX_TOPICS`] topics.
    truncated: bool,
}

/// `GET /api/topics`.
pub(super) async fn list(State(ctx): State<Arc<Ctx>>) -> Answer {
    answer(&ctx, "topic list", read_list(&ctx)).await
}

async fn read_list(ctx: &Ctx) -> Result<TopicList> {
    let names = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
    let info = inspect::cluster_info(&ctx.admin, &ctx.namesrv).await?;
    let truncated = names.topic_list.len() > MAX_TOPICS;
    let topics = names
        .topic_list
        .into_iter()
        .take(MAX_TOPICS)
        .map(|name| {
            let kind = if topic::is_retry_topic(&name) {
                "RETRY"
            } else if name.starts_with(topic::DLQ_GROUP_TOPIC_PREFIX) {
                "DLQ"
            } else if topic::is_system_topic(&name)
                || info.cluster_addr_table.contains_key(&name)
                || info.broker_addr_table.contains_key(&name)
                || name
                    .strip_suffix(REPLY_TOPIC_SUFFIX)
                    .is_some_and(|cluster| info.cluster_addr_table.contains_key(cluster))
            {
                "SYSTEM"
            } else {
                "NORMAL"
            };
            TopicEntry { name, kind }
        })
        .collect();
    Ok(TopicList { topics, truncated })
}

/// `?topic=…`.
#[derive(Debug, Deserialize)]
pub(super) struct TopicQuery {
    topic: Option<String>,
}

/// One queue's offsets (a line of topicStatus).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueView {
    broker_name: String,
    queue_id: i32,
    min_offset: i64,
    max_offset: i64,
    /// Store time of the queue's last message, epoch ms; 0 when empty.
    last_update_timestamp: i64,
}

/// One broker group of the topic's route (a line of topicRoute -l).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteView {
    broker_name: String,
    /// `id=host:port` of each member.
    addrs: Vec<String>,
    read_queues: i32,
    write_queues: i32,
    perm: i32,
}

/// The topic page's data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicStatus {
    topic: String,
    put_tps: f64,
    queues: Vec<QueueView>,
    route: Vec<RouteView>,
    consumer_groups: Vec<String>,
    /// Why the consumer groups are missing, when QUERY_TOPIC_CONSUME_BY_WHO failed.
    consumer_groups_error: Option<String>,
}

/// `GET /api/topic?topic=…`.
pub(super) async fn status(State(ctx): State<Arc<Ctx>>, Query(query): Query<TopicQuery>) -> Answer {
    answer(&ctx, "topic status", read_status(&ctx, &query)).await
}

async fn read_status(ctx: &Ctx, query: &TopicQuery) -> Result<TopicStatus> {
    let name = topic_param(&query.topic)?;
    let route = call(ctx.admin.topic_route(name), format!("GET_ROUTEINFO_BY_TOPIC (105) of {name}")).await?;
    let stats = call(ctx.admin.topic_stats(name), format!("GET_TOPIC_STATS_INFO (202) of {name}")).await?;
    let (consumer_groups, consumer_groups_error) = match ctx.admin.topic_consumed_by(name).await {
        Ok(groups) => (groups.into_iter().collect(), None),
        Err(error) => (
            Vec::new(),
            Some(format!("QUERY_TOPIC_CONSUME_BY_WHO (300) of {name} failed: {}", describe(&error))),
        ),
    };
    let mut route_view: Vec<RouteView> = route
        .broker_datas
        .iter()
        .map(|broker| {
            let queues = route.queue_datas.iter().find(|queue| queue.broker_name == broker.broker_name);
            RouteView {
                broker_name: broker.broker_name.clone(),
                addrs: broker.broker_addrs.iter().map(|(id, addr)| format!("{id}={addr}")).collect(),
                read_queues: queues.map_or(0, |queue| queue.read_queue_nums),
                write_queues: queues.map_or(0, |queue| queue.write_queue_nums),
                perm: queues.map_or(0, |queue| queue.perm),
            }
        })
        .collect();
    route_view.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    Ok(TopicStatus {
        topic: name.to_owned(),
        put_tps: stats.topic_put_tps,
        queues: stats
            .offset_table
            .iter()
            .map(|(queue, offsets)| QueueView {
                broker_name: queue.broker_name.clone(),
                queue_id: queue.queue_id,
                min_offset: offsets.min_offset,
                max_offset: offsets.max_offset,
                last_update_timestamp: offsets.last_update_timestamp,
            })
            .collect(),
        route: route_view,
        consumer_groups,
        consumer_groups_error,
    })
}
