//! Admin requests over remoting (remoting spec §3.5, behaviour spec §9), one adapter module
//! per concern of [`core::admin`](crate::core::admin): [`topics`], [`groups`], [`stats`],
//! [`reset`] and [`broker`]. Each decodes the header or body, calls the core and encodes the answer.
//!
//! Bodies are written in the fastjson dialect: `MessageQueue` map keys as bare objects, the
//! only form Java admin tools read.

mod broker;
mod groups;
mod reset;
mod stats;
mod topics;

use std::sync::Arc;

use apogee_common::DataVersion;
use apogee_remoting::command_header;
use apogee_remoting::fastjson;
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};

use super::route;
use crate::core::admin::paging::PageRequest;
use crate::BrokerState;

command_header! {
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): 5.x peers page through the groups; older ones
    /// send nothing and get the whole table.
    pub struct GetAllSubscriptionGroupRequestHeader {
        /// Index of the first group of the page.
        group_seq: Option<i32> => "groupSeq",
        /// DataVersion JSON of the caller's copy.
        data_version: Option<String> => "dataVersion",
        /// Page size.
        max_group_num: Option<i32> => "maxGroupNum",
    }
}

command_header! {
    /// Answer to GET_ALL_SUBSCRIPTIONGROUP_CONFIG: the number of groups, for paging.
    pub struct GetAllSubscriptionGroupResponseHeader {
        /// Groups on the broker.
        total_group_num: Option<i32> => "totalGroupNum",
    }
}

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352) and QUERY_TOPICS_BY_CONSUMER (343): one group.
    pub struct GroupRequestHeader {
        /// Consumer group.
        group: String => "group",
    }
}

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        UPDATE_AND_CREATE_TOPIC => topics::update_and_create_topic(&state, &request).await;
        UPDATE_AND_CREATE_TOPIC_LIST => topics::update_and_create_topic_list(&state, &request).await;
        DELETE_TOPIC_IN_BROKER => topics::delete_topic(&state, &request).await;
        GET_ALL_TOPIC_CONFIG => topics::all_topic_config(&state, &request);
        GET_TOPIC_CONFIG => topics::topic_config(&state, &request);
        GET_TOPIC_STATS_INFO => stats::topic_stats(&state, &request).await;
        GET_CONSUME_STATS => stats::consume_stats(&state, &request).await;
        GET_CONSUMER_CONNECTION_LIST => stats::consumer_connections(&state, &request);
        GET_PRODUCER_CONNECTION_LIST => stats::producer_connections(&state, &request);
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => groups::update_and_create_group(&state, &request).await;
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST =>
            groups::update_and_create_group_list(&state, &request).await;
        GET_ALL_SUBSCRIPTIONGROUP_CONFIG => groups::all_group_config(&state, &request);
        GET_SUBSCRIPTIONGROUP_CONFIG => groups::group_config(&state, &request);
        DELETE_SUBSCRIPTIONGROUP => groups::delete_group(&state, &request).await;
        GET_BROKER_RUNTIME_INFO => broker::runtime_info(&state, &request).await;
        UPDATE_BROKER_CONFIG => broker::update_config(&state, &request).await;
        QUERY_TOPIC_CONSUME_BY_WHO => stats::topic_consumed_by(&state, &request);
        QUERY_TOPICS_BY_CONSUMER => stats::topics_of_consumer(&state, &request);
        GET_ALL_DELAY_OFFSET => broker::delay_offsets(&state, &request);
        GET_ALL_CONSUMER_OFFSET => broker::consumer_offsets(&state, &request);
        DELETE_EXPIRED_COMMITLOG => broker::delete_expired_commit_log(&state, &request).await;
        INVOKE_BROKER_TO_RESET_OFFSET => reset::reset_offset(&state, &connection, &request).await;
    });
    route(router, request_code::GET_BROKER_CONFIG, state, |state, _, request| async move {
        Some(broker::config(&state, &request))
    });
    // A controller's push that the role changed: the broker asks the controllers now rather
    // than at its next poll, and applies what they say (the push itself is not trusted).
    route(router, request_code::NOTIFY_BROKER_ROLE_CHANGED, state, |state, _, _| async move {
        if !state.replication.is_controller_mode() {
            return Some(RemotingCommand::response(
                response_code::REQUEST_CODE_NOT_SUPPORTED,
                Some("the broker does not run in controller mode (enableControllerMode)".to_owned()),
            ));
        }
        state.controller_notified.notify_one();
        Some(RemotingCommand::response(response_code::SUCCESS, None))
    });
}

/// The page a paging request asks for, or `None` when the peer sent nothing paging-related
/// (older peers), which means the whole table.
fn page_request(seq: Option<i32>, version: Option<&str>, max: Option<i32>) -> Option<PageRequest> {
    if seq.is_none() && version.is_none() && max.is_none() {
        return None;
    }
    Some(PageRequest { first_index: seq, caller_version: version.and_then(data_version), max_entries: max })
}

/// A paging request's data version; `None` when blank or unreadable (paging then restarts).
fn data_version(text: &str) -> Option<DataVersion> {
    if text.trim().is_empty() {
        return None;
    }
    fastjson::from_slice::<DataVersion>(text.as_bytes()).ok()
}

/// A count as the `i32` a header carries.
fn saturating_i32(count: usize) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_requests() {
        assert_eq!(page_request(None, None, None), None);
        let text = r#"{"counter":2,"stateVersion":0,"timestamp":5}"#;
        let version = DataVersion { counter: 2, state_version: 0, timestamp: 5 };
        let asked = page_request(Some(10), Some(text), Some(50)).unwrap();
        assert_eq!(
            asked,
            PageRequest { first_index: Some(10), caller_version: Some(version), max_entries: Some(50) }
        );
        assert_eq!(page_request(None, Some(" "), None).unwrap().caller_version, None);
        assert_eq!(page_request(None, Some("{"), None).unwrap().caller_version, None);
    }
}
