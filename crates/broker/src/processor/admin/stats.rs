//! Statistics and connection requests: GET_TOPIC_STATS_INFO (202), GET_CONSUME_STATS (208),
//! GET_CONSUMER_CONNECTION_LIST (203), GET_PRODUCER_CONNECTION_LIST (204),
//! QUERY_TOPIC_CONSUME_BY_WHO (300), QUERY_TOPICS_BY_CONSUMER (343).

use std::collections::BTreeSet;
use std::sync::Arc;

use apogee_remoting::body::admin::GroupList;
use apogee_remoting::body::namesrv::TopicList;
use apogee_remoting::header::admin::{
    GetConsumeStatsRequestHeader, GetConsumerConnectionListRequestHeader,
    GetProducerConnectionListRequestHeader, GetTopicStatsInfoRequestHeader,
    QueryTopicConsumeByWhoRequestHeader,
};
use apogee_remoting::reply::{body_response, header, Outcome};
use apogee_remoting::RemotingCommand;

use super::GroupRequestHeader;
use crate::core::admin::stats::{self, ConsumeStatsRequest};
use crate::BrokerState;

/// Separator of the 5.x `topicList` header of GET_CONSUME_STATS.
const TOPIC_LIST_SEPARATOR: char = ';';

/// GET_TOPIC_STATS_INFO (202): min, max and last store time of every queue of the topic.
pub(super) async fn topic_stats(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetTopicStatsInfoRequestHeader = header(request)?;
    let table = stats::topic_stats(state, &request_header.topic).await?;
    body_response(request, &table)
}

/// GET_CONSUME_STATS (208): a group's progress on the 5.x `topicList`, or on `topic`, or on
/// every topic it has offsets for.
pub(super) async fn consume_stats(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetConsumeStatsRequestHeader = header(request)?;
    let listed: BTreeSet<String> = request_header
        .topic_list
        .as_deref()
        .unwrap_or("")
        .split(TOPIC_LIST_SEPARATOR)
        .map(str::trim)
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect();
    let asked = ConsumeStatsRequest {
        group: &request_header.consumer_group,
        topic: request_header.topic.as_deref(),
        topics: &listed,
    };
    let consume_stats = stats::consume_stats(state, &asked).await?;
    body_response(request, &consume_stats)
}

/// GET_CONSUMER_CONNECTION_LIST (203).
pub(super) fn consumer_connections(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetConsumerConnectionListRequestHeader = header(request)?;
    body_response(request, &stats::consumer_connections(state, &request_header.consumer_group)?)
}

/// GET_PRODUCER_CONNECTION_LIST (204).
pub(super) fn producer_connections(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetProducerConnectionListRequestHeader = header(request)?;
    body_response(request, &stats::producer_connections(state, &request_header.producer_group)?)
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300): groups online on the topic plus groups with offsets on it.
pub(super) fn topic_consumed_by(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: QueryTopicConsumeByWhoRequestHeader = header(request)?;
    body_response(request, &GroupList { group_list: stats::groups_consuming(state, &request_header.topic) })
}

/// QUERY_TOPICS_BY_CONSUMER (343): topics a group has offsets for, with this broker's address.
pub(super) fn topics_of_consumer(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GroupRequestHeader = header(request)?;
    let topic_list = stats::topics_of_group(state, &request_header.group).into_iter().collect();
    body_response(request, &TopicList { broker_addr: Some(state.store_host.to_string()), topic_list })
}
