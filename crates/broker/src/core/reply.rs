//! Request–reply (RocketMQ 4.6+): a requester sends a message carrying `CORRELATION_ID` and
//! `REPLY_TO_CLIENT` (its client id) and waits; the consumer that handles it sends a reply to
//! `<cluster>_REPLY_TOPIC` with SEND_REPLY_MESSAGE. The broker hands the reply straight to the
//! requester's connection (PUSH_REPLY_MESSAGE_TO_CLIENT), found by client id among the live
//! producers, and stores it too when `storeReplyMessageEnable` is set.
//!
//! As in Java, the reply's answer follows the push: SUCCESS once the requester took it (the
//! message id and offset are the stored copy's, or `"0"` and 0 when it was not stored), and
//! SYSTEM_ERROR naming the requester when it could not be reached. The copy is stored either
//! way, so a requester that was gone can still find it by key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::{property, IdText};
use apogee_common::time::now_ms;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::header::send::ReplyMessageRequestHeader;
use apogee_remoting::RemotingCommand;

use super::caller::Caller;
use super::error::{CoreResult, Error};
use super::send::{self, SendRequest, SendResult, SendStatus};
use crate::client_manager::ClientChannel;
use crate::{message, BrokerState};

/// How long the broker waits for the requester to take a reply (Java's `callClient`).
pub const PUSH_REPLY_TIMEOUT_MS: u64 = 10_000;

/// Delivers a reply to its requester and, with `storeReplyMessageEnable`, stores it.
pub async fn reply(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<SendResult> {
    // The send's checks come first (topic, permissions, sizes), as Java's msgCheck does.
    let prepared = send::prepare(state, caller, request).await?;
    let (put, receipt) = prepared.into_parts();
    let queue_id = receipt.queue_id();
    let pushed = push_to_requester(state, caller, request).await;
    let stored = if state.config.store_reply_message_enable {
        let result = message::put_records(state, put.records, put.wait_store_ok).await;
        match receipt.result(state, result) {
            Ok(stored) => Some(stored),
            Err(error) => {
                tracing::warn!(code = error.code, remark = %error.remark, "reply not stored");
                None
            }
        }
    } else {
        None
    };
    pushed.map_err(Error::system)?;
    Ok(stored.unwrap_or(SendResult {
        status: SendStatus::Ok,
        // Java answers "0" so that clients, which parse the id, do not fail on an empty one.
        msg_id: IdText::from("0"),
        queue_id,
        queue_offset: 0,
        transaction_id: None,
        recall_handle: None,
    }))
}

/// Pushes the reply to the connection of the client named by its `REPLY_TO_CLIENT`; the
/// error is the remark the replier gets.
async fn push_to_requester(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> Result<(), String> {
    let mut properties = request.properties.map(property::decode).unwrap_or_default();
    let Some(requester) = properties.get(property::REPLY_TO_CLIENT).map(str::to_owned) else {
        return Err(format!("reply message properties[{}] is null", property::REPLY_TO_CLIENT));
    };
    let Some(channel) = state.clients.find_producer_channel(&requester) else {
        return Err(format!("push reply message fail, channel of <{requester}> not found."));
    };
    properties.insert(property::PUSH_REPLY_TIME, now_ms().to_string());
    let header = ReplyMessageRequestHeader {
        producer_group: request.producer_group.to_owned(),
        topic: request.topic.to_owned(),
        default_topic: request.default_topic.to_owned(),
        default_topic_queue_nums: request.default_topic_queue_nums,
        queue_id: request.queue_id,
        sys_flag: request.sys_flag,
        born_timestamp: request.born_timestamp_ms,
        flag: request.flag,
        properties: Some(property::encode(&properties)),
        reconsume_times: request.reconsume_times,
        unit_mode: Some(request.unit_mode),
        born_host: host_text(caller.remote_addr),
        store_host: host_text(state.store_host),
        store_timestamp: now_ms(),
    };
    invoke_requester(&channel, header, request.body.clone()).await
}

/// Calls the requester and reads its answer.
async fn invoke_requester(
    channel: &ClientChannel,
    header: ReplyMessageRequestHeader,
    body: bytes::Bytes,
) -> Result<(), String> {
    let requester = &channel.client_id;
    let mut push = RemotingCommand::request(request_code::PUSH_REPLY_MESSAGE_TO_CLIENT)
        .with_header(&header)
        .with_body(body);
    push.serialize_type = channel.connection.last_serialize_type();
    match channel.connection.invoke(push, Duration::from_millis(PUSH_REPLY_TIMEOUT_MS)).await {
        Ok(answer) if answer.code == response_code::SUCCESS => Ok(()),
        Ok(answer) => {
            tracing::warn!(%requester, code = answer.code, remark = ?answer.remark, "requester refused a reply");
            Err(format!("push reply message to {requester}fail."))
        }
        Err(error) => {
            tracing::warn!(%requester, %error, "reply not pushed");
            Err(format!("push reply message to {requester}fail."))
        }
    }
}

/// `ip:port`, as Java writes a socket address in these headers.
fn host_text(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}
