//! Lookups clients and admin tools make (remoting spec §3.4, behaviour spec §2.7): a queue's
//! bounds and first store time, the offset stored at a time, one message by commit-log offset
//! (VIEW_MESSAGE_BY_ID, what `queryMsgById` resolves an offset id to) and messages by key or
//! unique key through the index (QUERY_MESSAGE). Answers and remarks are Java's.

use std::sync::Arc;

use apogee_remoting::header::consumer::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader, GetMaxOffsetRequestHeader,
    GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader, GetMinOffsetResponseHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, SearchOffsetRequestHeader,
    SearchOffsetResponseHeader, ViewMessageRequestHeader,
};
use apogee_remoting::reply::{header, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{response_code, RemotingCommand};

use crate::core::messages::{self, KeyQuery};
use crate::core::offsets::{self, Boundary, QueueRef};
use crate::BrokerState;

/// Ext field marking a QUERY_MESSAGE whose key is a `UNIQ_KEY` (Java
/// `MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_KEY_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// Most bytes of records one QUERY_MESSAGE answer carries (the first record always goes), so
/// the response fits the 16 MiB frame every client accepts.
pub const MAX_QUERY_BODY_BYTES: usize = 12 * 1024 * 1024;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        GET_MAX_OFFSET => max_offset(&state, &request);
        GET_MIN_OFFSET => min_offset(&state, &request);
        GET_EARLIEST_MSG_STORETIME => earliest_store_time(&state, &request).await;
        SEARCH_OFFSET_BY_TIMESTAMP => search_offset(&state, &request).await;
        VIEW_MESSAGE_BY_ID => view_message(&state, &request).await;
        QUERY_MESSAGE => query_message(&state, &request).await;
    });
}

/// GET_MAX_OFFSET (30): the next offset to be written; 0 for an unknown queue.
fn max_offset(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetMaxOffsetRequestHeader = header(request)?;
    let queue = QueueRef { topic: &request_header.topic, queue_id: request_header.queue_id };
    let offset = offsets::max_offset(state, queue);
    Ok(RemotingCommand::success_for(request).with_header(&GetMaxOffsetResponseHeader { offset }))
}

/// GET_MIN_OFFSET (31): the first stored offset; 0 for an unknown queue.
fn min_offset(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetMinOffsetRequestHeader = header(request)?;
    let queue = QueueRef { topic: &request_header.topic, queue_id: request_header.queue_id };
    let offset = offsets::min_offset(state, queue);
    Ok(RemotingCommand::success_for(request).with_header(&GetMinOffsetResponseHeader { offset }))
}

/// GET_EARLIEST_MSG_STORETIME (32): store time of the queue's first message; -1 when empty.
async fn earliest_store_time(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetEarliestMsgStoretimeRequestHeader = header(request)?;
    let queue = QueueRef { topic: &request_header.topic, queue_id: request_header.queue_id };
    let timestamp = offsets::earliest_store_time_ms(state, queue).await?;
    Ok(RemotingCommand::success_for(request)
        .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp }))
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29): the offset of the first message stored at or after the
/// time (`LOWER`, the default) or of the last one stored at or before it (`UPPER`, any case).
async fn search_offset(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: SearchOffsetRequestHeader = header(request)?;
    let boundary = match request_header.boundary_type.as_deref() {
        Some(kind) if kind.trim().eq_ignore_ascii_case("upper") => Boundary::Upper,
        _ => Boundary::Lower,
    };
    let queue = QueueRef { topic: &request_header.topic, queue_id: request_header.queue_id };
    let offset = offsets::offset_by_time(state, queue, request_header.timestamp, boundary).await?;
    Ok(RemotingCommand::success_for(request).with_header(&SearchOffsetResponseHeader { offset }))
}

/// VIEW_MESSAGE_BY_ID (33): the stored record at a commit-log offset, as the body.
async fn view_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: ViewMessageRequestHeader = header(request)?;
    let record = messages::at_offset(state, request_header.offset).await?;
    Ok(RemotingCommand::success_for(request).with_body(record.into_bytes()))
}

/// QUERY_MESSAGE (12): messages of a topic whose key (or `UNIQ_KEY`, with the
/// `_UNIQUE_KEY_QUERY` flag) matches, stored within the time range; the records back to back
/// as the body, with the index's freshness in the header (also on QUERY_NOT_FOUND).
async fn query_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: QueryMessageRequestHeader = header(request)?;
    let query = KeyQuery {
        topic: &request_header.topic,
        key: &request_header.key,
        unique_key: request.ext(UNIQUE_KEY_QUERY_FLAG) == Some("true"),
        max_num: request_header.max_num,
        begin_timestamp_ms: request_header.begin_timestamp,
        end_timestamp_ms: request_header.end_timestamp,
    };
    let result = messages::by_key(state, &query).await?;
    let response_header = QueryMessageResponseHeader {
        index_last_update_timestamp: result.index_last_update_timestamp_ms,
        index_last_update_phyoffset: result.index_last_update_phy_offset,
    };
    if result.messages.is_empty() {
        return Ok(RemotingCommand::respond_to(
            request,
            response_code::QUERY_NOT_FOUND,
            Some("can not find message, maybe time range not correct".to_owned()),
        )
        .with_header(&response_header));
    }
    let mut body = Vec::new();
    for record in &result.messages {
        let bytes = record.as_slice();
        if !body.is_empty() && body.len() + bytes.len() > MAX_QUERY_BODY_BYTES {
            break;
        }
        body.extend_from_slice(bytes);
    }
    Ok(RemotingCommand::success_for(request).with_header(&response_header).with_body(body))
}
