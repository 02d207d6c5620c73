//! CONSUMER_SEND_MSG_BACK (36) over remoting: a push consumer hands back a message it failed
//! to consume; [`core::send_back`](crate::core::send_back) stores the retry or dead letter.

use std::sync::Arc;

use apogee_remoting::connection::Connection;
use apogee_remoting::header::consumer::ConsumerSendMsgBackRequestHeader;
use apogee_remoting::reply::{header, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;

use crate::core::send_back::{self, SendBackRequest};
use crate::BrokerState;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        CONSUMER_SEND_MSG_BACK => send_back(&state, &connection, &request).await;
    });
}

/// Both a stored copy and a dropped message (a group without retry queues) are SUCCESS.
async fn send_back(state: &Arc<BrokerState>, connection: &Connection, request: &RemotingCommand) -> Outcome {
    let request_header: ConsumerSendMsgBackRequestHeader = header(request)?;
    let caller = super::caller(connection, request);
    let handed_back = SendBackRequest {
        group: &request_header.group,
        commit_log_offset: request_header.offset,
        delay_level: request_header.delay_level,
        max_reconsume_times: request_header.max_reconsume_times,
        origin_topic: request_header.origin_topic.as_deref(),
    };
    send_back::send_back(state, &caller, &handed_back).await?;
    Ok(RemotingCommand::success_for(request))
}
