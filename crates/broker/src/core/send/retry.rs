//! The `%RETRY%` rules (behaviour spec §2.6 step 7): a consumer's send-back of a message it
//! could not consume, redirected to the group's dead-letter topic when it may not be retried.

use std::sync::Arc;

use apogee_common::message::property::{self, Properties};
use apogee_common::perm;
use apogee_common::topic;
use apogee_remoting::code::response_code;

use super::encode::Destination;
use crate::core::error::{CoreResult, Error};
use crate::BrokerState;

/// Queues of a dead-letter topic (Java `DLQ_NUMS_PER_GROUP`).
pub const DLQ_QUEUE_NUMS: i32 = 1;
/// Delay level the DLQ path stores, so the message is never delayed again.
const DLQ_DELAY_LEVEL: &str = "-1";

/// The group must exist; past its redelivery limit, or when it consumes orderly (holds queue
/// locks), the message goes to the group's dead-letter topic, queue 0, never delayed.
pub(super) async fn redirect(
    state: &Arc<BrokerState>,
    destination: &mut Destination,
    properties: &mut Properties,
    reconsume_times: i32,
    max_from_request: Option<i32>,
) -> CoreResult<()> {
    let group = destination.topic.get(topic::RETRY_GROUP_TOPIC_PREFIX.len()..).unwrap_or("").to_owned();
    let owner = Arc::clone(state);
    let lookup = group.clone();
    let group_config = tokio::task::spawn_blocking(move || owner.groups.get_or_create(&lookup))
        .await
        .map_err(|error| Error::system(format!("subscription group lookup failed: {error}")))?
        .ok_or_else(|| {
            Error::new(
                response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {group}"),
            )
        })?;
    let max_reconsume_times = max_from_request.unwrap_or(group_config.retry_max_times);
    if !to_dead_letters(reconsume_times, max_reconsume_times, state.locks.is_group_locked(&group)) {
        return Ok(());
    }
    let dlq = topic::dlq_topic(&group);
    let config = match state.topics.lookup(&dlq) {
        Some(config) => config,
        None => {
            let owner = Arc::clone(state);
            let name = dlq.clone();
            tokio::task::spawn_blocking(move || {
                owner.topics.get_or_create_shared(&name, DLQ_QUEUE_NUMS, perm::READ_WRITE, 0)
            })
            .await
            .ok()
            .and_then(Result::ok)
            .or_else(|| state.topics.lookup(&dlq))
            .ok_or_else(|| Error::system(format!("topic[{dlq}] not exist")))?
        }
    };
    tracing::info!(
        group,
        reconsume_times,
        max_reconsume_times,
        "retry message sent to the dead letter queue"
    );
    properties.insert(property::DELAY, DLQ_DELAY_LEVEL);
    *destination =
        Destination { topic: dlq, queue_id: 0, chosen_queue_id: destination.chosen_queue_id, config };
    Ok(())
}

/// Whether a retry send goes to the dead-letter topic: redelivered more often than allowed,
/// or the group consumes orderly.
fn to_dead_letters(reconsume_times: i32, max_reconsume_times: i32, group_locked: bool) -> bool {
    reconsume_times > max_reconsume_times || group_locked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_rule() {
        assert!(!to_dead_letters(16, 16, false));
        assert!(to_dead_letters(17, 16, false));
        assert!(to_dead_letters(0, 16, true));
        assert!(to_dead_letters(1, 0, false));
    }
}
