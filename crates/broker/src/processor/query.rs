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
use apogee_remoting::reply::{finish, header, Failure, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_store::BoundaryType;

use super::{blocking, route};
use crate::BrokerState;

/// Ext field marking a QUERY_MESSAGE whose key is a `UNIQ_KEY` (Java
/// `MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_KEY_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// Messages a unique-key query returns at most (Java `defaultQueryMaxNum`); the client's
/// `maxNum` is ignored for those.
pub const DEFAULT_QUERY_MAX_NUM: i32 = 32;

/// Most bytes of records one QUERY_MESSAGE answer carries (the first record always goes), so
/// the response fits the 16 MiB frame every client accepts.
pub const MAX_QUERY_BODY_BYTES: usize = 12 * 1024 * 1024;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::GET_MAX_OFFSET, state, |state, _, request| async move {
        Some(finish(&request, max_offset(&state, &request)))
    });
    route(router, request_code::GET_MIN_OFFSET, state, |state, _, request| async move {
        Some(finish(&request, min_offset(&state, &request)))
    });
    route(router, request_code::GET_EARLIEST_MSG_STORETIME, state, |state, _, request| async move {
        let outcome = earliest_store_time(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::SEARCH_OFFSET_BY_TIMESTAMP, state, |state, _, request| async move {
        let outcome = search_offset(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::VIEW_MESSAGE_BY_ID, state, |state, _, request| async move {
        let outcome = view_message(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::QUERY_MESSAGE, state, |state, _, request| async move {
        let outcome = query_message(&state, &request).await;
        Some(finish(&request, outcome))
    });
}

/// GET_MAX_OFFSET (30): the next offset to be written; 0 for an unknown queue.
fn max_offset(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetMaxOffsetRequestHeader = header(request)?;
    let offset = state.store.max_offset(&request_header.topic, request_header.queue_id);
    Ok(RemotingCommand::success_for(request).with_header(&GetMaxOffsetResponseHeader { offset }))
}

/// GET_MIN_OFFSET (31): the first stored offset; 0 for an unknown queue.
fn min_offset(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetMinOffsetRequestHeader = header(request)?;
    let offset = state.store.min_offset(&request_header.topic, request_header.queue_id);
    Ok(RemotingCommand::success_for(request).with_header(&GetMinOffsetResponseHeader { offset }))
}

/// GET_EARLIEST_MSG_STORETIME (32): store time of the queue's first message; -1 when empty.
async fn earliest_store_time(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetEarliestMsgStoretimeRequestHeader = header(request)?;
    let timestamp = blocking(state, move |state| {
        state.store.earliest_store_timestamp(&request_header.topic, request_header.queue_id)
    })
    .await?;
    Ok(RemotingCommand::success_for(request)
        .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp }))
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29): the offset of the first message stored at or after the
/// time (`LOWER`, the default) or of the last one stored at or before it (`UPPER`, any case).
async fn search_offset(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: SearchOffsetRequestHeader = header(request)?;
    let boundary = match request_header.boundary_type.as_deref() {
        Some(kind) if kind.trim().eq_ignore_ascii_case("upper") => BoundaryType::Upper,
        _ => BoundaryType::Lower,
    };
    let offset = blocking(state, move |state| {
        state.store.offset_by_time(
            &request_header.topic,
            request_header.queue_id,
            request_header.timestamp,
            boundary,
        )
    })
    .await?;
    Ok(RemotingCommand::success_for(request).with_header(&SearchOffsetResponseHeader { offset }))
}

/// VIEW_MESSAGE_BY_ID (33): the stored record at a commit-log offset, as the body.
async fn view_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: ViewMessageRequestHeader = header(request)?;
    let offset = request_header.offset;
    let not_found = || Failure::system(format!("can not find message by the offset, {offset}"));
    let position = u64::try_from(offset).map_err(|_| not_found())?;
    let record =
        blocking(state, move |state| state.store.message_at(position)).await?.ok_or_else(not_found)?;
    Ok(RemotingCommand::success_for(request).with_body(record.into_bytes()))
}

/// QUERY_MESSAGE (12): messages of a topic whose key (or `UNIQ_KEY`, with the
/// `_UNIQUE_KEY_QUERY` flag) matches, stored within the time range; the records back to back
/// as the body, with the index's freshness in the header (also on QUERY_NOT_FOUND).
async fn query_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: QueryMessageRequestHeader = header(request)?;
    let max_num = if request.ext(UNIQUE_KEY_QUERY_FLAG) == Some("true") {
        DEFAULT_QUERY_MAX_NUM
    } else {
        request_header.max_num
    };
    let max_count = usize::try_from(max_num).unwrap_or(0);
    let result = blocking(state, move |state| {
        state.store.query_by_key(
            &request_header.topic,
            &request_header.key,
            max_count,
            request_header.begin_timestamp,
            request_header.end_timestamp,
        )
    })
    .await?;
    let response_header = QueryMessageResponseHeader {
        index_last_update_timestamp: result.index_last_update_timestamp,
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
