//! Requests about the broker itself: GET_BROKER_RUNTIME_INFO (28), GET_BROKER_CONFIG,
//! UPDATE_BROKER_CONFIG, GET_ALL_DELAY_OFFSET, GET_ALL_CONSUMER_OFFSET, DELETE_EXPIRED_COMMITLOG.

use std::sync::Arc;

use apogee_remoting::body::namesrv::KVTable;
use apogee_remoting::reply::{body_response, Failure, Outcome};
use apogee_remoting::{response_code, RemotingCommand};

use crate::core::admin::broker;
use crate::BrokerState;

/// GET_BROKER_RUNTIME_INFO (28): the runtime figures as a `KVTable`.
pub(super) async fn runtime_info(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let table = broker::runtime_info(state).await?;
    body_response(request, &KVTable { table })
}

/// GET_ALL_DELAY_OFFSET: `delayOffset.json` as the body.
pub(super) fn delay_offsets(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    Ok(RemotingCommand::success_for(request).with_body(broker::delay_offsets(state)?))
}

/// GET_ALL_CONSUMER_OFFSET (43): `consumerOffset.json` as the body (what slaves copy).
pub(super) fn consumer_offsets(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    Ok(RemotingCommand::success_for(request).with_body(broker::consumer_offsets(state)?))
}

/// DELETE_EXPIRED_COMMITLOG (`mqadmin deleteExpiredCommitLog`).
pub(super) async fn delete_expired_commit_log(
    state: &Arc<BrokerState>,
    request: &RemotingCommand,
) -> Outcome {
    broker::delete_expired_commit_log(state).await?;
    Ok(RemotingCommand::success_for(request))
}

/// GET_BROKER_CONFIG: the effective configuration as `key=value` lines.
pub(super) fn config(state: &BrokerState, request: &RemotingCommand) -> RemotingCommand {
    let text = apogee_common::properties::render(broker::effective_config_properties(state));
    RemotingCommand::success_for(request).with_body(text.into_bytes())
}

/// UPDATE_BROKER_CONFIG (25): the body is Java properties text, `key=value` per line.
pub(super) async fn update_config(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let text = std::str::from_utf8(&request.body)
        .map_err(|_| Failure::new(response_code::SYSTEM_ERROR, "string2Properties error"))?;
    let properties = apogee_common::properties::parse(text).map_err(|error| {
        Failure::new(response_code::SYSTEM_ERROR, format!("string2Properties error: {error}"))
    })?;
    broker::update_config(state, &properties).await?;
    Ok(RemotingCommand::success_for(request))
}
