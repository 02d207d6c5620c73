//! Consumer requests other than pulls over remoting (spec §3.4), answered by
//! [`core::clients`](crate::core::clients) and [`core::offsets`](crate::core::offsets): client heartbeats and unregistration,
//! subscription checks, group membership for rebalancing, committed offsets, and queue locks for
//! ordered consumption. Also forgets a client's registrations and wakes its held pulls when its
//! connection ends.

use std::sync::Arc;

use apogee_remoting::body::consumer::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, LockBatchRequestBody, LockBatchResponseBody,
    UnlockBatchRequestBody,
};
use apogee_remoting::body::heartbeat::HeartbeatData;
use apogee_remoting::connection::Connection;
use apogee_remoting::header::consumer::{
    GetConsumerListByGroupRequestHeader, HeartbeatRequestHeader, LockBatchMqRequestHeader,
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, UnlockBatchMqRequestHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use apogee_remoting::reply::{self, body_response, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;

use crate::client_manager::ClientChannel;
use crate::core::clients;
use crate::core::offsets::{self, Commit, QueueRef};
use crate::BrokerState;

/// extFields key of the heartbeat reply telling 5.x clients HeartbeatV2 is understood.
pub const IS_SUPPORT_HEART_BEAT_V2: &str = "IS_SUPPORT_HEART_BEAT_V2";
/// extFields key of the heartbeat reply telling a V2 client to send its subscriptions again.
pub const IS_SUB_CHANGE: &str = "IS_SUB_CHANGE";

/// Adds the consumer request codes to `router`, and the disconnect hook that forgets a closed
/// connection's registrations and wakes its held pulls.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    routes!(router, state, |state, connection, request| {
        HEART_BEAT => heart_beat(&state, &connection, &request).await;
        UNREGISTER_CLIENT => unregister_client(&state, &connection, &request);
        CHECK_CLIENT_CONFIG => check_client_config(&state, &request);
        GET_CONSUMER_LIST_BY_GROUP => consumer_list_by_group(&state, &connection, &request);
        QUERY_CONSUMER_OFFSET => query_consumer_offset(&state, &request).await;
        UPDATE_CONSUMER_OFFSET => update_consumer_offset(&state, &connection, &request);
        LOCK_BATCH_MQ => lock_batch_mq(&state, &request);
        UNLOCK_BATCH_MQ => unlock_batch_mq(&state, &request);
    });
    let owner = Arc::downgrade(state);
    router.on_disconnect(move |connection| {
        if let Some(state) = owner.upgrade() {
            state.clients.remove_connection(connection);
            state.pulls.wake_connection(connection.id());
        }
    });
}

/// HEART_BEAT (34): registers the client's producer and consumer groups on this connection.
async fn heart_beat(state: &Arc<BrokerState>, connection: &Connection, request: &RemotingCommand) -> Outcome {
    // 4.9 clients send no header at all; 5.x an empty one. Neither carries anything needed.
    let _: HeartbeatRequestHeader = reply::header(request)?;
    let heartbeat: HeartbeatData = reply::decode_body(request, "HeartbeatData")?;
    let channel =
        || ClientChannel::new(&heartbeat.client_id, connection.clone(), request.language, request.version);
    let registered = clients::heartbeat(state, &heartbeat, channel).await;
    Ok(RemotingCommand::success_for(request)
        .with_ext(IS_SUPPORT_HEART_BEAT_V2, "true")
        .with_ext(IS_SUB_CHANGE, registered.sub_changed.to_string()))
}

/// UNREGISTER_CLIENT (35): a client leaving a producer and/or consumer group at shutdown.
fn unregister_client(state: &BrokerState, connection: &Connection, request: &RemotingCommand) -> Outcome {
    let header: UnregisterClientRequestHeader = reply::header(request)?;
    let caller = super::caller(connection, request);
    clients::unregister(state, &caller, header.producer_group.as_deref(), header.consumer_group.as_deref());
    Ok(RemotingCommand::success_for(request))
}

/// CHECK_CLIENT_CONFIG (46): validates a subscription before a consumer starts.
fn check_client_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    if request.body.is_empty() {
        return Ok(RemotingCommand::success_for(request));
    }
    let body: CheckClientRequestBody = reply::decode_body(request, "CheckClientRequestBody")?;
    let Some(subscription) = body.subscription_data else {
        return Ok(RemotingCommand::success_for(request));
    };
    clients::check_subscription(state, &subscription).inspect_err(|error| {
        tracing::debug!(client = %body.client_id, group = %body.group, reason = %error.remark, "subscription expression refused");
    })?;
    Ok(RemotingCommand::success_for(request))
}

/// GET_CONSUMER_LIST_BY_GROUP (38): the client ids of a group's live members.
fn consumer_list_by_group(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    let header: GetConsumerListByGroupRequestHeader = reply::header(request)?;
    let caller = super::caller(connection, request);
    let ids = clients::consumer_ids(state, &caller, &header.consumer_group)?;
    body_response(request, &GetConsumerListByGroupResponseBody { consumer_id_list: ids })
}

/// QUERY_CONSUMER_OFFSET (14): a group's committed offset of one queue (see
/// [`offsets::committed_offset`]).
async fn query_consumer_offset(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let header: QueryConsumerOffsetRequestHeader = reply::header(request)?;
    let queue = QueueRef { topic: &header.topic, queue_id: header.queue_id };
    let zero_if_not_found = header.set_zero_if_not_found != Some(false);
    let offset = offsets::committed_offset(state, &header.consumer_group, queue, zero_if_not_found).await?;
    Ok(RemotingCommand::success_for(request).with_header(&QueryConsumerOffsetResponseHeader { offset }))
}

/// UPDATE_CONSUMER_OFFSET (15, usually oneway): commits a group's offset of one queue.
fn update_consumer_offset(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    let header: UpdateConsumerOffsetRequestHeader = reply::header(request)?;
    let caller = super::caller(connection, request);
    let queue = QueueRef { topic: &header.topic, queue_id: header.queue_id };
    Ok(match offsets::commit(state, &caller, &header.consumer_group, queue, header.commit_offset)? {
        Commit::Committed => RemotingCommand::success_for(request),
        Commit::ResetPending => {
            RemotingCommand::success_for(request).with_remark("Offset has been previously reset")
        }
    })
}

/// LOCK_BATCH_MQ (41): locks queues for an orderly consumer; answers the queues it now holds.
fn lock_batch_mq(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let _: LockBatchMqRequestHeader = reply::header(request)?;
    let body: LockBatchRequestBody = reply::decode_body(request, "LockBatchRequestBody")?;
    let locked = clients::lock_queues(state, &body.consumer_group, &body.mq_set, &body.client_id);
    body_response(request, &LockBatchResponseBody { lock_ok_mq_set: locked })
}

/// UNLOCK_BATCH_MQ (42): releases queues an orderly consumer holds.
fn unlock_batch_mq(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let _: UnlockBatchMqRequestHeader = reply::header(request)?;
    let body: UnlockBatchRequestBody = reply::decode_body(request, "UnlockBatchRequestBody")?;
    clients::unlock_queues(state, &body.consumer_group, &body.mq_set, &body.client_id);
    Ok(RemotingCommand::success_for(request))
}
