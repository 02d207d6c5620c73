//! Recalling a timer message before it is due (RECALL_MESSAGE, 5.3; Java
//! `RecallMessageProcessor`): the producer hands back the recall handle of the send, and the
//! broker stores a delete marker, itself a timer message due at the handle's time, so it
//! lands in the same slot; when the slot fires, the timer of the same topic and unique key
//! is dropped. Any front calls [`recall`]; the checks, codes and remarks are Java's.

use std::sync::Arc;

use apogee_common::message::property::{self, Properties};
use apogee_common::time::now_ms;
use apogee_remoting::code::response_code;
use apogee_remoting::recall::RecallHandle;
use bytes::Bytes;

use super::{apply_on_send, delete_key, Ingress};
use crate::core::caller::Caller;
use crate::core::error::{CoreResult, Error};
use crate::message::{self, InnerMessage};
use crate::BrokerState;

/// Tag of the delete markers (Java's).
pub const RECALL_MESSAGE_TAG: &str = "_RECALL_TAG_";

/// A recall as the producer asks it.
#[derive(Debug, Clone, Copy)]
pub struct RecallRequest<'a> {
    /// The producer's group, if it gave one.
    pub producer_group: Option<&'a str>,
    /// The topic the timer message was sent to.
    pub topic: &'a str,
    /// The send result's recall handle.
    pub recall_handle: &'a str,
}

/// A recall stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallResult {
    /// The recalled message's `UNIQ_KEY`.
    pub msg_id: String,
}

fn illegal(remark: &str) -> Error {
    Error::new(response_code::ILLEGAL_OPERATION, remark)
}

fn execute_error() -> Error {
    Error::system("recall failed, execute error")
}

/// Stores the delete marker for the timer the handle names.
pub async fn recall(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &RecallRequest<'_>,
) -> CoreResult<RecallResult> {
    if !state.timer.config.recall_enable {
        return Err(Error::new(response_code::NO_PERMISSION, "recall failed, operation is forbidden"));
    }
    if state.topics.lookup(request.topic).is_none() {
        return Err(Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("recall failed, the topic[{}] not exist", request.topic),
        ));
    }
    let handle = RecallHandle::decode(request.recall_handle).map_err(|error| illegal(&error.to_string()))?;
    if handle.topic != request.topic {
        return Err(illegal("recall failed, topic not match"));
    }
    if handle.broker_name != state.config.broker_name {
        return Err(illegal("recall failed, broker service not available"));
    }
    let now = now_ms();
    let timestamp = handle.timestamp.parse::<i64>().unwrap_or(-1);
    let time_left_ms = timestamp.saturating_sub(now);
    if time_left_ms <= 0 || time_left_ms >= state.timer.config.max_delay_sec.saturating_mul(1000) {
        return Err(illegal("recall failed, timestamp invalid"));
    }

    let mut properties = Properties::new();
    properties.insert(property::TAGS, RECALL_MESSAGE_TAG);
    properties.insert(property::TIMER_DEL_UNIQKEY, delete_key(&handle.topic, &handle.message_id));
    properties.insert(property::UNIQ_KEY, handle.message_id.as_str());
    properties.insert(property::TIMER_DELIVER_MS, handle.timestamp.as_str());
    properties.insert(property::BORN_TIMESTAMP, now.to_string());
    properties.insert(property::TRACE_CONTEXT, "");
    if let Some(group) = request.producer_group {
        properties.insert(property::PGROUP, group);
    }
    let (mut topic, mut queue_id) = (handle.topic.clone(), 0);
    match apply_on_send(&state.timer, &mut topic, &mut queue_id, &mut properties, now) {
        Ok(Ingress::Parked { .. }) => {}
        Ok(Ingress::Unchanged) | Err(_) => return Err(execute_error()),
    }
    let marker = InnerMessage {
        topic,
        queue_id,
        flag: 0,
        body: Bytes::from_static(b"0"),
        properties,
        sys_flag: 0,
        born_timestamp: now,
        born_host: caller.remote_addr,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    let result = message::put_message(state, &marker, true).await;
    if !result.status.is_stored() {
        tracing::warn!(status = ?result.status, topic = %handle.topic, "recall not stored");
        return Err(execute_error());
    }
    Ok(RecallResult { msg_id: handle.message_id })
}
