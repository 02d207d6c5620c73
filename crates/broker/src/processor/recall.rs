//! RECALL_MESSAGE (370) over remoting: a producer cancels a timer message by the recall
//! handle of its send; [`core::timer::recall`](crate::core::timer::recall) does the work. The
//! answer carries `MSG_REGION` and the recalled message's id, as Java's.

use std::sync::Arc;

use apogee_common::message::property;
use apogee_remoting::connection::Connection;
use apogee_remoting::header::send::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use apogee_remoting::reply::{header, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;

use super::caller;
use crate::core::timer::recall::{self, RecallRequest};
use crate::BrokerState;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        RECALL_MESSAGE => recall_message(&state, &connection, &request).await;
    });
}

async fn recall_message(
    state: &Arc<BrokerState>,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    let request_header: RecallMessageRequestHeader = header(request)?;
    let recall_request = RecallRequest {
        producer_group: request_header.producer_group.as_deref(),
        topic: &request_header.topic,
        recall_handle: &request_header.recall_handle,
    };
    let recalled = recall::recall(state, &caller(connection, request), &recall_request).await?;
    Ok(RemotingCommand::success_for(request)
        .with_header(&RecallMessageResponseHeader { msg_id: recalled.msg_id })
        .with_ext(property::MSG_REGION, state.config.region_id.as_str()))
}
