//! The client registry: heartbeats register a client's producer and consumer groups,
//! unregistration removes them, consumers ask for their group's members and check their
//! subscriptions, and orderly consumers lock queues.
//!
//! The registrations hold a [`ClientChannel`], which the front builds: today it carries the
//! remoting connection the broker calls clients back through (consumer-id changes, running
//! info, transaction checks). A front whose callbacks go another way needs its own kind of
//! channel there; that is the one seam left between this registry and the remoting wire.

use std::collections::BTreeSet;
use std::sync::Arc;

use apogee_common::{perm, topic, MessageQueue};
use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::body::heartbeat::{HeartbeatData, SubscriptionData};
use apogee_remoting::code::response_code;

use super::caller::Caller;
use super::error::{CoreResult, Error};
use super::pull::PullFilter;
use crate::client_manager::{ClientChannel, ConsumerRegistration};
use crate::BrokerState;

/// What a heartbeat changed, for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Whether the client must send its subscriptions in full next time (a classic heartbeat,
    /// or a fingerprint that changed).
    pub sub_changed: bool,
}

/// Registers the client's producer and consumer groups on its channel (`channel` makes one
/// per registration), creating each consumer group's subscription group and retry topic as
/// needed.
pub async fn heartbeat(
    state: &Arc<BrokerState>,
    heartbeat: &HeartbeatData,
    channel: impl Fn() -> ClientChannel,
) -> Heartbeat {
    let fingerprint = heartbeat.heartbeat_fingerprint;
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
    Heartbeat { sub_changed: fingerprint == 0 || sub_changed }
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

/// A client leaving a producer and/or consumer group (at its shutdown).
pub fn unregister(
    state: &BrokerState,
    caller: &Caller,
    producer_group: Option<&str>,
    consumer_group: Option<&str>,
) {
    if let Some(group) = producer_group {
        state.clients.unregister_producer(group, caller.session_id);
    }
    if let Some(group) = consumer_group {
        let notify = state.groups.get(group).is_none_or(|config| config.notify_consumer_ids_changed_enable);
        state.clients.unregister_consumer(group, caller.session_id, notify);
    }
}

/// Checks a subscription before a consumer starts: tags always pass; other expressions need
/// `enablePropertyFilter` and must compile.
pub fn check_subscription(state: &BrokerState, subscription: &SubscriptionData) -> CoreResult<()> {
    if subscription.expression_type == ExpressionType::Tag {
        return Ok(());
    }
    let type_name = subscription.expression_type.name();
    if !state.config.enable_property_filter {
        return Err(Error::system(format!(
            "The broker does not support consumer to filter message by {type_name}"
        )));
    }
    PullFilter::compile(&subscription.expression_type, &subscription.sub_string)
        .map(|_| ())
        .map_err(|reason| Error::new(response_code::SUBSCRIPTION_PARSE_FAILED, reason))
}

/// The client ids of a group's live members; an error for a group without any.
pub fn consumer_ids(state: &BrokerState, caller: &Caller, group: &str) -> CoreResult<Vec<String>> {
    let ids = state.clients.consumer_ids(group);
    if ids.is_empty() {
        tracing::debug!(group, remote = %caller.remote_addr, "consumer list of a group without members");
        return Err(Error::system(format!("no consumer for this group, {group}")));
    }
    Ok(ids)
}

/// Locks (or renews) queues for an orderly consumer; gives the queues it now holds.
pub fn lock_queues(
    state: &BrokerState,
    group: &str,
    queues: &BTreeSet<MessageQueue>,
    client_id: &str,
) -> BTreeSet<MessageQueue> {
    state.locks.lock_batch(group, queues, client_id)
}

/// Releases queues an orderly consumer holds.
pub fn unlock_queues(state: &BrokerState, group: &str, queues: &BTreeSet<MessageQueue>, client_id: &str) {
    state.locks.unlock_batch(group, queues, client_id);
}
