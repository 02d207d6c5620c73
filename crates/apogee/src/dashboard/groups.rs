//! The consumer groups page: every group with a retry topic at a glance (consumerProgress
//! without `-g`), and one group's lag per queue (consumerProgress `-g`) with its live clients
//! and subscriptions (consumerConnection).

use std::sync::Arc;

use anyhow::Result;
use apogee_client::ClientError;
use apogee_remoting::body::admin::Connection;
use apogee_remoting::response_code;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::api::{answer, required, Answer};
use super::Ctx;
use crate::admin::inspect::{self, GroupSummary};
use crate::admin::table::version_desc;
use crate::admin::{call, describe};

/// Most groups summarized in one list (each costs two requests per broker).
const MAX_GROUPS: usize = 200;

/// One client channel, as the groups and producers pages show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClientView {
    client_id: String,
    client_addr: String,
    language: String,
    version: String,
}

impl From<&Connection> for ClientView {
    fn from(connection: &Connection) -> Self {
        ClientView {
            client_id: connection.client_id.clone(),
            client_addr: connection.client_addr.clone(),
            language: connection.language.map(|language| language.name().to_owned()).unwrap_or_default(),
            version: version_desc(connection.version),
        }
    }
}

/// The group list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupList {
    groups: Vec<GroupSummary>,
    /// Groups known but not summarized (past [`MAX_GROUPS`]).
    more: usize,
}

/// `GET /api/groups`.
pub(super) async fn list(State(ctx): State<Arc<Ctx>>) -> Answer {
    answer(&ctx, "consumer groups", read_list(&ctx)).await
}

async fn read_list(ctx: &Ctx) -> Result<GroupList> {
    let names = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
    let all = inspect::consumer_groups(&names);
    let more = all.len().saturating_sub(MAX_GROUPS);
    let mut groups = Vec::with_capacity(all.len().min(MAX_GROUPS));
    for group in all.iter().take(MAX_GROUPS) {
        groups.push(inspect::group_summary(&ctx.admin, group).await);
    }
    Ok(GroupList { groups, more })
}

/// `?group=…`.
#[derive(Debug, Deserialize)]
pub(super) struct GroupQuery {
    group: Option<String>,
}

/// One queue of the group's progress.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueLag {
    topic: String,
    broker_name: String,
    queue_id: i32,
    broker_offset: i64,
    consumer_offset: i64,
    lag: i64,
    /// Pulled but not yet committed.
    inflight: i64,
    /// Store time of the last consumed message, epoch ms; 0 when unknown.
    last_timestamp: i64,
}

/// One subscription of the group.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionView {
    topic: String,
    expression: String,
}

/// The group page's data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupProgress {
    group: String,
    consume_tps: f64,
    diff_total: i64,
    queues: Vec<QueueLag>,
    clients: Vec<ClientView>,
    subscriptions: Vec<SubscriptionView>,
    /// Why there are no clients (offline, or the request failed).
    clients_note: Option<String>,
}

/// `GET /api/group?group=…`.
pub(super) async fn progress(State(ctx): State<Arc<Ctx>>, Query(query): Query<GroupQuery>) -> Answer {
    answer(&ctx, "consumer group", read_progress(&ctx, &query)).await
}

async fn read_progress(ctx: &Ctx, query: &GroupQuery) -> Result<GroupProgress> {
    let group = required(&query.group, "group")?;
    let progress =
        call(ctx.admin.consumer_progress(group, None), format!("GET_CONSUME_STATS (208) of group {group}"))
            .await?;
    let (clients, subscriptions, clients_note) = match ctx.admin.consumer_connections(group).await {
        Ok(connection) => (
            connection.connection_set.iter().map(ClientView::from).collect(),
            connection
                .subscription_table
                .iter()
                .map(|(topic, data)| SubscriptionView {
                    topic: topic.clone(),
                    expression: data.sub_string.clone(),
                })
                .collect(),
            None,
        ),
        Err(ClientError::Broker { code: response_code::CONSUMER_NOT_ONLINE, .. }) => {
            (Vec::new(), Vec::new(), Some(format!("No client of {group} is online.")))
        }
        Err(error) => (
            Vec::new(),
            Vec::new(),
            Some(format!("GET_CONSUMER_CONNECTION_LIST (203) of {group} failed: {}", describe(&error))),
        ),
    };
    Ok(GroupProgress {
        group: group.to_owned(),
        consume_tps: progress.consume_tps,
        diff_total: progress.total_lag(),
        queues: progress
            .queues
            .iter()
            .map(|line| QueueLag {
                topic: line.queue.topic.clone(),
                broker_name: line.queue.broker_name.clone(),
                queue_id: line.queue.queue_id,
                broker_offset: line.broker_offset,
                consumer_offset: line.consumer_offset,
                lag: line.lag,
                inflight: line.pull_offset.saturating_sub(line.consumer_offset),
                last_timestamp: line.last_timestamp,
            })
            .collect(),
        clients,
        subscriptions,
        clients_note,
    })
}
