//! Topic maintenance requests: UPDATE_AND_CREATE_TOPIC (17) and its list form (18),
//! DELETE_TOPIC_IN_BROKER (215), GET_ALL_TOPIC_CONFIG (21), GET_TOPIC_CONFIG (351).

use std::sync::Arc;

use apogee_common::TopicConfig;
use apogee_remoting::header::admin::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetAllTopicConfigRequestHeader,
    GetAllTopicConfigResponseHeader, GetTopicConfigRequestHeader,
};
use apogee_remoting::reply::{body_response, decode_body, header, Outcome};
use apogee_remoting::RemotingCommand;
use serde::{Deserialize, Serialize};

use super::{page_request, saturating_i32};
use crate::core::admin::topics::{self, TopicRequest};
use crate::BrokerState;

/// UPDATE_AND_CREATE_TOPIC (17).
pub(super) async fn update_and_create_topic(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: CreateTopicRequestHeader = header(request)?;
    let topic = TopicRequest {
        topic: &request_header.topic,
        read_queue_nums: request_header.read_queue_nums,
        write_queue_nums: request_header.write_queue_nums,
        perm: request_header.perm,
        topic_sys_flag: request_header.topic_sys_flag,
        order: request_header.order,
        topic_filter_type: &request_header.topic_filter_type,
        attributes: request_header.attributes.as_deref(),
    };
    topics::create_or_update_topic(state, &topic).await?;
    Ok(RemotingCommand::success_for(request))
}

/// The body of UPDATE_AND_CREATE_TOPIC_LIST (Java `CreateTopicListRequestBody`): topic configs
/// whose attributes are changes (`+key` → value).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateTopicListRequestBody {
    topic_config_list: Vec<TopicConfig>,
}

/// UPDATE_AND_CREATE_TOPIC_LIST (18).
pub(super) async fn update_and_create_topic_list(
    state: &Arc<BrokerState>,
    request: &RemotingCommand,
) -> Outcome {
    let body: CreateTopicListRequestBody = decode_body(request, "CreateTopicListRequestBody")?;
    topics::create_or_update_topics(state, &body.topic_config_list).await?;
    Ok(RemotingCommand::success_for(request))
}

/// DELETE_TOPIC_IN_BROKER (215).
pub(super) async fn delete_topic(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: DeleteTopicRequestHeader = header(request)?;
    topics::delete_topic(state, &request_header.topic).await?;
    Ok(RemotingCommand::success_for(request))
}

/// GET_ALL_TOPIC_CONFIG (21): the topic table (whole, or a page for 5.x peers that ask).
pub(super) fn all_topic_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetAllTopicConfigRequestHeader = header(request)?;
    let page = page_request(
        request_header.topic_seq,
        request_header.data_version.as_deref(),
        request_header.max_topic_num,
    );
    let table = topics::topic_table(state, page.as_ref())?;
    let response_header =
        GetAllTopicConfigResponseHeader { total_topic_num: Some(saturating_i32(table.total)) };
    Ok(body_response(request, &table.table)?.with_header(&response_header))
}

/// GET_TOPIC_CONFIG (351): one topic's config.
pub(super) fn topic_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetTopicConfigRequestHeader = header(request)?;
    body_response(request, &topics::topic(state, &request_header.topic)?)
}
