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
use apogee_remoting::reply::finish;
use apogee_remoting::request_code;
use apogee_remoting::router::Router;

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
    route(router, request_code::UPDATE_AND_CREATE_TOPIC, state, |state, _, request| async move {
        let outcome = topics::update_and_create_topic(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::UPDATE_AND_CREATE_TOPIC_LIST, state, |state, _, request| async move {
        let outcome = topics::update_and_create_topic_list(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::DELETE_TOPIC_IN_BROKER, state, |state, _, request| async move {
        let outcome = topics::delete_topic(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_ALL_TOPIC_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, topics::all_topic_config(&state, &request)))
    });
    route(router, request_code::GET_TOPIC_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, topics::topic_config(&state, &request)))
    });
    route(router, request_code::GET_TOPIC_STATS_INFO, state, |state, _, request| async move {
        let outcome = stats::topic_stats(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_CONSUME_STATS, state, |state, _, request| async move {
        let outcome = stats::consume_stats(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_CONSUMER_CONNECTION_LIST, state, |state, _, request| async move {
        Some(finish(&request, stats::consumer_connections(&state, &request)))
    });
    route(router, request_code::GET_PRODUCER_CONNECTION_LIST, state, |state, _, request| async move {
        Some(finish(&request, stats::producer_connections(&state, &request)))
    });
    route(router, request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, state, |state, _, request| async move {
        let outcome = groups::update_and_create_group(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(
        router,
        request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST,
        state,
        |state, _, request| async move {
            let outcome = groups::update_and_create_group_list(&state, &request).await;
            Some(finish(&request, outcome))
        },
    );
    route(router, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, groups::all_group_config(&state, &request)))
    });
    route(router, request_code::GET_SUBSCRIPTIONGROUP_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, groups::group_config(&state, &request)))
    });
    route(router, request_code::DELETE_SUBSCRIPTIONGROUP, state, |state, _, request| async move {
        let outcome = groups::delete_group(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_BROKER_RUNTIME_INFO, state, |state, _, request| async move {
        let outcome = broker::runtime_info(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::QUERY_TOPIC_CONSUME_BY_WHO, state, |state, _, request| async move {
        Some(finish(&request, stats::topic_consumed_by(&state, &request)))
    });
    route(router, request_code::QUERY_TOPICS_BY_CONSUMER, state, |state, _, request| async move {
        Some(finish(&request, stats::topics_of_consumer(&state, &request)))
    });
    route(router, request_code::GET_ALL_DELAY_OFFSET, state, |state, _, request| async move {
        Some(finish(&request, broker::delay_offsets(&state, &request)))
    });
    route(router, request_code::DELETE_EXPIRED_COMMITLOG, state, |state, _, request| async move {
        let outcome = broker::delete_expired_commit_log(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(
        router,
        request_code::INVOKE_BROKER_TO_RESET_OFFSET,
        state,
        |state, connection, request| async move {
            let outcome = reset::reset_offset(&state, &connection, &request).await;
            Some(finish(&request, outcome))
        },
    );
    route(router, request_code::GET_BROKER_CONFIG, state, |state, _, request| async move {
        Some(broker::config(&state, &request))
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
