//! Consumer requests other than pulls (spec §3.4): client heartbeats and unregistration,
//! subscription checks, group membership for rebalancing, committed offsets, and queue locks for
//! ordered consumption. Also forgets a client's registrations and wakes its held pulls when its
//! connection ends.

use std::sync::{Arc, OnceLock};

use apogee_common::{perm, topic};
use apogee_remoting::body::consumer::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, LockBatchRequestBody, LockBatchResponseBody,
    UnlockBatchRequestBody,
};
use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::body::heartbeat::HeartbeatData;
use apogee_remoting::connection::Connection;
use apogee_remoting::header::consumer::{
    GetConsumerListByGroupRequestHeader, HeartbeatRequestHeader, LockBatchMqRequestHeader,
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, UnlockBatchMqRequestHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use apogee_remoting::reply::{self, body_response, finish, Failure, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_store::{AcceptAll, GetMessageStatus};

use super::route;
use crate::client_manager::{ClientChannel, ConsumerRegistration};
use crate::core::pull::PullFilter;
use crate::BrokerState;

/// extFields key of the heartbeat reply telling 5.x clients HeartbeatV2 is understood.
pub const IS_SUPPORT_HEART_BEAT_V2: &str = "IS_SUPPORT_HEART_BEAT_V2";
/// extFields key of the heartbeat reply telling a V2 client to send its subscriptions again.
pub const IS_SUB_CHANGE: &str = "IS_SUB_CHANGE";

/// Share of physical memory behind the commit log's end that counts as "still in the page
/// cache" for QUERY_CONSUMER_OFFSET (Java 4.x `accessMessageInMemoryMaxRatio`), in percent.
pub const IN_MEMORY_MAX_RATIO_PERCENT: u64 = 40;

/// Adds the consumer request codes to `router`, and the disconnect hook that forgets a closed
/// connection's registrations and wakes its held pulls.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::HEART_BEAT, state, heart_beat);
    route(router, request_code::UNREGISTER_CLIENT, state, unregister_client);
    route(router, request_code::CHECK_CLIENT_CONFIG, state, check_client_config);
    route(router, request_code::GET_CONSUMER_LIST_BY_GROUP, state, consumer_list_by_group);
    route(router, request_code::QUERY_CONSUMER_OFFSET, state, query_consumer_offset);
    route(router, request_code::UPDATE_CONSUMER_OFFSET, state, update_consumer_offset);
    route(router, request_code::LOCK_BATCH_MQ, state, lock_batch_mq);
    route(router, request_code::UNLOCK_BATCH_MQ, state, unlock_batch_mq);
    let owner = Arc::downgrade(state);
    router.on_disconnect(move |connection| {
        if let Some(state) = owner.upgrade() {
            state.clients.remove_connection(connection);
            state.pulls.wake_connection(connection.id());
        }
    });
}

/// HEART_BEAT (34): registers the client's producer and consumer groups on this connection,
/// creating each consumer group's subscription group and retry topic as needed.
async fn heart_beat(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = heart_beat_outcome(&state, &connection, &request).await;
    Some(finish(&request, outcome))
}

async fn heart_beat_outcome(
    state: &Arc<BrokerState>,
    connection: &Connection,
    request: &RemotingCommand,
) -> Outcome {
    // 4.9 clients send no header at all; 5.x an empty one. Neither carries anything needed.
    let _: HeartbeatRequestHeader = reply::header(request)?;
    let heartbeat: HeartbeatData = reply::decode_body(request, "HeartbeatData")?;
    let fingerprint = heartbeat.heartbeat_fingerprint;
    let channel =
        || ClientChannel::new(&heartbeat.client_id, connection.clone(), request.language, request.version);
    let mut sub_changed = false;
    for consumer in &heartbeat.consumer_data_set {
        let group = consumer.group_name.as_str();
        // Classic heartbeats record fingerprint 0, so a client switching to V2 resends.
        if state.clients.swap_fingerprint(group, fingerprint) && fingerprint != 0 {
            sub_changed = true;
        }
        let Some(group_config) = state.groups.get_or_create(group) else {
            tracing::debug!(group, client = %heartbeat.client_id, "heartbeat for a group that cannot be created; skipped");
            continue;
        };
        ensure_retry_topic(state, group, group_config.retry_queue_nums).await;
        let without_sub = fingerprint != 0 && heartbeat.without_sub;
        let registration = ConsumerRegistration {
            group,
            consume_type: consumer.consume_type,
            message_model: consumer.message_model,
            consume_from_where: consumer.consume_from_where,
            subscriptions: (!without_sub).then_some(consumer.subscription_data_set.as_slice()),
            notify: group_config.notify_consumer_ids_changed_enable,
        };
        if state.clients.register_consumer(registration, channel()) {
            tracing::debug!(group, client = %heartbeat.client_id, "consumer group membership or subscriptions changed");
        }
    }
    for producer in &heartbeat.producer_data_set {
        state.clients.register_producer(&producer.group_name, channel());
    }
    // A classic heartbeat always says "changed", so a V2 client sends full data next time.
    let sub_changed = fingerprint == 0 || sub_changed;
    Ok(RemotingCommand::success_for(request)
        .with_ext(IS_SUPPORT_HEART_BEAT_V2, "true")
        .with_ext(IS_SUB_CHANGE, sub_changed.to_string()))
}

/// Creates `%RETRY%<group>` with the group's retry queue count unless it exists (on the blocking
/// pool: creating a topic writes the topic file).
async fn ensure_retry_topic(state: &Arc<BrokerState>, group: &str, queue_nums: i32) {
    let retry_topic = topic::retry_topic(group);
    if queue_nums <= 0 || state.topics.get(&retry_topic).is_some() {
        return;
    }
    let owner = Arc::clone(state);
    let created = tokio::task::spawn_blocking(move || {
        owner.topics.get_or_create_system(&retry_topic, queue_nums, perm::READ_WRITE)
    })
    .await;
    match created {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, group, "retry topic not created"),
        Err(error) => tracing::error!(%error, group, "retry topic creation failed"),
    }
}

/// UNREGISTER_CLIENT (35): a client leaving a producer and/or consumer group at shutdown.
async fn unregister_client(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        let header: UnregisterClientRequestHeader = reply::header(&request)?;
        if let Some(group) = header.producer_group.as_deref() {
            state.clients.unregister_producer(group, connection.id());
        }
        if let Some(group) = header.consumer_group.as_deref() {
            let notify =
                state.groups.get(group).is_none_or(|config| config.notify_consumer_ids_changed_enable);
            state.clients.unregister_consumer(group, connection.id(), notify);
        }
        Ok(RemotingCommand::success_for(&request))
    })();
    Some(finish(&request, outcome))
}

/// CHECK_CLIENT_CONFIG (46): validates a subscription before a consumer starts.
async fn check_client_config(
    state: Arc<BrokerState>,
    _connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        if request.body.is_empty() {
            return Ok(RemotingCommand::success_for(&request));
        }
        let body: CheckClientRequestBody = reply::decode_body(&request, "CheckClientRequestBody")?;
        let Some(subscription) = body.subscription_data else {
            return Ok(RemotingCommand::success_for(&request));
        };
        if subscription.expression_type == ExpressionType::Tag {
            return Ok(RemotingCommand::success_for(&request));
        }
        let type_name = subscription.expression_type.name();
        if !state.config.enable_property_filter {
            return Err(Failure::system(format!(
                "The broker does not support consumer to filter message by {type_name}"
            )));
        }
        match PullFilter::compile(&subscription.expression_type, &subscription.sub_string) {
            Ok(_) => Ok(RemotingCommand::success_for(&request)),
            Err(reason) => {
                tracing::debug!(client = %body.client_id, group = %body.group, %reason, "subscription expression refused");
                Err(Failure::new(response_code::SUBSCRIPTION_PARSE_FAILED, reason))
            }
        }
    })();
    Some(finish(&request, outcome))
}

/// GET_CONSUMER_LIST_BY_GROUP (38): the client ids of a group's live members.
async fn consumer_list_by_group(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        let header: GetConsumerListByGroupRequestHeader = reply::header(&request)?;
        let ids = state.clients.consumer_ids(&header.consumer_group);
        if ids.is_empty() {
            tracing::debug!(group = %header.consumer_group, remote = %connection.remote_addr(), "consumer list of a group without members");
            return Err(Failure::system(format!("no consumer for this group, {}", header.consumer_group)));
        }
        body_response(&request, &GetConsumerListByGroupResponseBody { consumer_id_list: ids })
    })();
    Some(finish(&request, outcome))
}

/// QUERY_CONSUMER_OFFSET (14): a group's committed offset of one queue; without one, 0 for a
/// young queue whose first message is still cached (so a new group reads it), else
/// QUERY_NOT_FOUND (the client applies its consume-from-where policy).
async fn query_consumer_offset(
    state: Arc<BrokerState>,
    _connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = async {
        let header: QueryConsumerOffsetRequestHeader = reply::header(&request)?;
        let (group, topic, queue_id) = (&header.consumer_group, &header.topic, header.queue_id);
        let offset = match state.offsets.query(group, topic, queue_id).filter(|offset| *offset >= 0) {
            Some(offset) => Some(offset),
            None if header.set_zero_if_not_found == Some(false) => {
                return Err(Failure::new(
                    response_code::QUERY_NOT_FOUND,
                    "Not found, do not set to zero, maybe this group boot first",
                ));
            }
            None => {
                let young = state.store.min_offset(topic, queue_id) <= 0
                    && first_message_in_memory(&state, topic, queue_id).await;
                young.then_some(0)
            }
        };
        match offset {
            Some(offset) => Ok(RemotingCommand::success_for(&request)
                .with_header(&QueryConsumerOffsetResponseHeader { offset })),
            None => Err(Failure::new(
                response_code::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            )),
        }
    }
    .await;
    Some(finish(&request, outcome))
}

/// Whether the queue's message at offset 0 is recent enough to be in the page cache: within
/// [`IN_MEMORY_MAX_RATIO_PERCENT`] of physical memory from the commit log's end.
async fn first_message_in_memory(state: &Arc<BrokerState>, topic: &str, queue_id: i32) -> bool {
    let store = Arc::clone(&state.store);
    let topic = topic.to_owned();
    let probe = tokio::task::spawn_blocking(move || {
        let result = store.get_messages(&topic, queue_id, 0, 1, u64::MAX, &AcceptAll);
        if result.status != GetMessageStatus::Found {
            return false;
        }
        let Some(first) = result.messages.first() else { return false };
        let behind = store.commit_log_max_offset().saturating_sub(first.offset());
        behind <= physical_memory_bytes() / 100 * IN_MEMORY_MAX_RATIO_PERCENT
    });
    probe.await.unwrap_or(false)
}

/// Physical memory of the machine, read once (all of the address space if unknown).
fn physical_memory_bytes() -> u64 {
    static MEMORY: OnceLock<u64> = OnceLock::new();
    *MEMORY.get_or_init(|| {
        // SAFETY: sysconf reads system constants and has no preconditions.
        let (pages, page_size) =
            unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        match (u64::try_from(pages), u64::try_from(page_size)) {
            (Ok(pages), Ok(page_size)) if pages > 0 && page_size > 0 => pages.saturating_mul(page_size),
            _ => u64::MAX,
        }
    })
}

/// UPDATE_CONSUMER_OFFSET (15, usually oneway): commits a group's offset of one queue.
async fn update_consumer_offset(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        let header: UpdateConsumerOffsetRequestHeader = reply::header(&request)?;
        let (group, topic, queue_id) = (&header.consumer_group, &header.topic, header.queue_id);
        if !state.groups.contains(group) {
            return Err(Failure::new(
                response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("Group {group} not exist!"),
            ));
        }
        if state.topics.get(topic).is_none() {
            return Err(Failure::new(response_code::TOPIC_NOT_EXIST, format!("Topic {topic} not exist!")));
        }
        if state.offsets.has_reset_offset(group, topic, queue_id) {
            tracing::info!(group = %group, topic = %topic, queue_id, remote = %connection.remote_addr(), "offset commit ignored: a reset is pending");
            return Ok(RemotingCommand::success_for(&request).with_remark("Offset has been previously reset"));
        }
        state.offsets.commit(group, topic, queue_id, header.commit_offset);
        Ok(RemotingCommand::success_for(&request))
    })();
    Some(finish(&request, outcome))
}

/// LOCK_BATCH_MQ (41): locks queues for an orderly consumer; answers the queues it now holds.
async fn lock_batch_mq(
    state: Arc<BrokerState>,
    _connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        let _: LockBatchMqRequestHeader = reply::header(&request)?;
        let body: LockBatchRequestBody = reply::decode_body(&request, "LockBatchRequestBody")?;
        let locked = state.locks.lock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
        body_response(&request, &LockBatchResponseBody { lock_ok_mq_set: locked })
    })();
    Some(finish(&request, outcome))
}

/// UNLOCK_BATCH_MQ (42): releases queues an orderly consumer holds.
async fn unlock_batch_mq(
    state: Arc<BrokerState>,
    _connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = (|| {
        let _: UnlockBatchMqRequestHeader = reply::header(&request)?;
        let body: UnlockBatchRequestBody = reply::decode_body(&request, "UnlockBatchRequestBody")?;
        state.locks.unlock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
        Ok(RemotingCommand::success_for(&request))
    })();
    Some(finish(&request, outcome))
}
