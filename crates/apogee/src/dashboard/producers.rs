//! The producers page: the live producers of a group, found through a topic they send to
//! (GET_ROUTEINFO_BY_TOPIC, then GET_PRODUCER_CONNECTION_LIST, as mqadmin producerConnection).

use std::sync::Arc;

use anyhow::Result;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::api::{answer, required, topic_param, Answer};
use super::groups::ClientView;
use super::Ctx;
use crate::admin::call;

/// `?group=…&topic=…`.
#[derive(Debug, Deserialize)]
pub(super) struct ProducerQuery {
    group: Option<String>,
    topic: Option<String>,
}

/// The producers page's data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProducersView {
    group: String,
    topic: String,
    clients: Vec<ClientView>,
}

/// `GET /api/producers?group=…&topic=…`.
pub(super) async fn connections(State(ctx): State<Arc<Ctx>>, Query(query): Query<ProducerQuery>) -> Answer {
    answer(&ctx, "producers", read(&ctx, &query)).await
}

async fn read(ctx: &Ctx, query: &ProducerQuery) -> Result<ProducersView> {
    let group = required(&query.group, "producer group")?;
    let topic = topic_param(&query.topic)?;
    let connection = call(
        ctx.admin.producer_connections(group, topic),
        format!("GET_PRODUCER_CONNECTION_LIST (204) of {group} via topic {topic}"),
    )
    .await?;
    Ok(ProducersView {
        group: group.to_owned(),
        topic: topic.to_owned(),
        clients: connection.connection_set.iter().map(ClientView::from).collect(),
    })
}
