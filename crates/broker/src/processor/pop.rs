//! POP over remoting (5.x): POP_MESSAGE, ACK_MESSAGE, BATCH_ACK_MESSAGE,
//! CHANGE_MESSAGE_INVISIBLETIME, NOTIFICATION and POLLING_INFO, each decoded, handed to
//! [`core::pop`](crate::core::pop) and answered with Java's codes, header fields and body
//! (the popped records back to back, as PULL sends them).

use std::sync::Arc;

use apogee_remoting::body::pop::BatchAckMessageRequestBody;
use apogee_remoting::connection::Connection;
use apogee_remoting::fastjson;
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    NotificationRequestHeader, NotificationResponseHeader, PollingInfoRequestHeader,
    PollingInfoResponseHeader, PopMessageRequestHeader, PopMessageResponseHeader,
};
use apogee_remoting::reply::{header, Failure, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{response_code, RemotingCommand};
use bytes::BytesMut;

use crate::core::pop::ack::{self, AckRequest};
use crate::core::pop::notify::{self, NotificationRequest};
use crate::core::pop::pop_message::{self as pop, PopRequest, PopResult, PopStatus};
use crate::BrokerState;

/// How late a pop may arrive (its `bornTime` plus `pollTime`) before it is answered
/// POLLING_TIMEOUT unread: the client has given up on it (Java's `isTimeoutTooMuch`).
pub const TOO_LATE_MS: i64 = 500;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        POP_MESSAGE => pop_message(&state, &connection, &request).await;
        ACK_MESSAGE => ack_message(&state, &request).await;
        BATCH_ACK_MESSAGE => batch_ack_message(&state, &request).await;
        CHANGE_MESSAGE_INVISIBLETIME => change_invisible_time(&state, &request).await;
        NOTIFICATION => notification(&state, &request).await;
        POLLING_INFO => polling_info(&state, &request);
    });
}

async fn pop_message(
    state: &Arc<BrokerState>,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    let popped: PopMessageRequestHeader = header(request)?;
    let born_ms = if popped.born_time > 0 { popped.born_time } else { apogee_common::time::now_ms() };
    if apogee_common::time::now_ms().saturating_sub(born_ms).saturating_sub(popped.poll_time) > TOO_LATE_MS {
        return Err(Failure::new(
            response_code::POLLING_TIMEOUT,
            format!("the broker[{}] pop message is timeout too much", state.config.broker_ip1),
        ));
    }
    let pop_request = PopRequest {
        group: &popped.consumer_group,
        topic: &popped.topic,
        queue_id: popped.queue_id,
        max_msg_nums: popped.max_msg_nums,
        invisible_ms: popped.invisible_time,
        poll_ms: popped.poll_time,
        init_mode: popped.init_mode,
        expression_type: popped.exp_type.as_deref(),
        expression: popped.exp.as_deref(),
        order: popped.order.unwrap_or(false),
        attempt_id: popped.attempt_id.as_deref(),
    };
    let caller = super::caller(connection, request);
    let result = pop::pop(state, &caller, &pop_request).await?;
    Ok(pop_response(request, result, pop_request.order))
}

/// The answer to a pop: the code of its status, the header every client reads, the records.
fn pop_response(request: &RemotingCommand, result: PopResult, order: bool) -> RemotingCommand {
    let code = match result.status {
        PopStatus::Found => response_code::SUCCESS,
        PopStatus::PollingTimeout => response_code::POLLING_TIMEOUT,
        PopStatus::PollingFull => response_code::POLLING_FULL,
    };
    let response_header = PopMessageResponseHeader {
        pop_time: result.pop_time_ms,
        invisible_time: result.invisible_ms,
        revive_qid: result.revive_qid,
        rest_num: result.rest_num,
        start_offset_info: Some(result.info.start.clone()),
        msg_offset_info: Some(result.info.messages.clone()),
        order_count_info: order.then(|| result.info.order_count.clone()),
    };
    let mut response = RemotingCommand::respond_to(request, code, Some(result.remark().to_owned()))
        .with_header(&response_header);
    if code == response_code::SUCCESS {
        let size = result.records.iter().map(|record| record.len()).sum();
        let mut body = BytesMut::with_capacity(size);
        for record in &result.records {
            body.extend_from_slice(record);
        }
        response.body = body.freeze();
    }
    response
}

/// The [`AckRequest`] of an ACK_MESSAGE or CHANGE_INVISIBLE_TIME header: both name the
/// message by the same five fields.
macro_rules! ack_request {
    ($header:expr) => {
        AckRequest {
            group: &$header.consumer_group,
            topic: &$header.topic,
            queue_id: $header.queue_id,
            extra_info: &$header.extra_info,
            offset: $header.offset,
        }
    };
}

async fn ack_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let acked: AckMessageRequestHeader = header(request)?;
    let ack_request = ack_request!(acked);
    ack::ack(state, &ack_request).await?;
    Ok(RemotingCommand::success_for(request))
}

async fn batch_ack_message(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let body: BatchAckMessageRequestBody = if request.body.is_empty() {
        BatchAckMessageRequestBody::default()
    } else {
        fastjson::from_slice(&request.body).map_err(|error| {
            Failure::new(response_code::MESSAGE_ILLEGAL, format!("batch ack body unreadable: {error}"))
        })?
    };
    ack::batch_ack(state, &body.acks, &body.broker_name).await?;
    Ok(RemotingCommand::success_for(request))
}

async fn change_invisible_time(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let changed: ChangeInvisibleTimeRequestHeader = header(request)?;
    let ack_request = ack_request!(changed);
    let result = ack::change_invisible(state, &ack_request, changed.invisible_time).await?;
    let response_header = ChangeInvisibleTimeResponseHeader {
        pop_time: result.pop_time_ms,
        invisible_time: result.invisible_ms,
        revive_qid: result.revive_qid,
    };
    Ok(RemotingCommand::success_for(request).with_header(&response_header))
}

async fn notification(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let asked: NotificationRequestHeader = header(request)?;
    let notification_request = NotificationRequest {
        group: &asked.consumer_group,
        topic: &asked.topic,
        queue_id: asked.queue_id,
        poll_ms: asked.poll_time,
        order: asked.order.unwrap_or(false),
        attempt_id: asked.attempt_id.as_deref(),
    };
    let answer = notify::notification(state, &notification_request).await?;
    let response_header = NotificationResponseHeader {
        has_msg: answer.has_msg,
        polling_full: answer.polling_full.then_some(true),
    };
    Ok(RemotingCommand::success_for(request).with_header(&response_header))
}

fn polling_info(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let asked: PollingInfoRequestHeader = header(request)?;
    let polling_num = notify::polling_info(state, &asked.consumer_group, &asked.topic, asked.queue_id)?;
    Ok(RemotingCommand::success_for(request).with_header(&PollingInfoResponseHeader { polling_num }))
}
