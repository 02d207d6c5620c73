//! INVOKE_BROKER_TO_RESET_OFFSET (222): an admin moves a consumer group's offsets on a topic
//! (`mqadmin resetOffsetByTime`, `skipAccumulatedMessage`).

use std::sync::Arc;

use apogee_remoting::connection::Connection;
use apogee_remoting::header::consumer::ResetOffsetRequestHeader;
use apogee_remoting::reply::{body_response, header, Outcome};
use apogee_remoting::RemotingCommand;

use crate::core::offset_reset::{self, ResetRequest};
use crate::BrokerState;

/// Resets the offsets and answers the new offset of every queue moved (`ResetOffsetBody`).
pub(super) async fn reset_offset(
    state: &Arc<BrokerState>,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    let asked: ResetOffsetRequestHeader = header(request)?;
    let caller = crate::processor::caller(connection, request);
    let reset = ResetRequest {
        group: &asked.group,
        topic: &asked.topic,
        queue_id: asked.queue_id,
        offset: asked.offset,
        timestamp_ms: asked.timestamp,
        force: asked.is_force,
    };
    let body = offset_reset::reset(state, &caller, reset).await?;
    body_response(request, &body)
}
