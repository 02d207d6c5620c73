//! NOTIFICATION and POLLING_INFO (behaviour spec §8.4): whether a group could pop something
//! from a topic now (waiting up to the poll time for it), and how many pops are parked.

use std::sync::Arc;

use apogee_common::perm;
use apogee_common::time::now_ms;
use apogee_remoting::code::response_code;

use super::{check_topic_and_group, park, poll_duration, retry_topic};
use crate::core::error::{CoreResult, Error};
use crate::long_polling::ParkRefused;
use crate::BrokerState;

/// A NOTIFICATION request.
#[derive(Debug, Clone, Copy)]
pub struct NotificationRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Queue, or -1 for any.
    pub queue_id: i32,
    /// How long to wait for a message, in ms.
    pub poll_ms: i64,
    /// Orderly consumption: blocked queues offer nothing.
    pub order: bool,
    /// Attempt id of an orderly receive.
    pub attempt_id: Option<&'a str>,
}

/// The answer to NOTIFICATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// A message is there to pop.
    pub has_msg: bool,
    /// Nothing was there and the broker holds too many waiting requests to wait.
    pub polling_full: bool,
}

/// Java's checks of NOTIFICATION and POLLING_INFO: the broker readable, then the topic,
/// queue and group checks a pop makes too.
fn check(state: &BrokerState, group: &str, topic: &str, queue_id: i32) -> CoreResult<i32> {
    if !perm::is_readable(state.broker_permission()) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the broker[{}] peeking message is forbidden", state.config.broker_ip1),
        ));
    }
    check_topic_and_group(state, group, topic, queue_id, None)
}

/// NOTIFICATION: answers at once when a message is there, else waits for an arrival or the
/// poll time and looks again.
pub async fn notification(
    state: &Arc<BrokerState>,
    request: &NotificationRequest<'_>,
) -> CoreResult<Notification> {
    let queue_nums = check(state, request.group, request.topic, request.queue_id)?;
    if has_message(state, request, queue_nums) {
        return Ok(Notification { has_msg: true, polling_full: false });
    }
    let poll = poll_duration(request.poll_ms);
    if poll.is_zero() {
        return Ok(Notification { has_msg: false, polling_full: false });
    }
    let retry = retry_topic(request.topic, request.group);
    match park(state, request.topic, &retry, request.queue_id) {
        Ok(mut parked) => {
            parked.woken(poll).await;
            Ok(Notification { has_msg: has_message(state, request, queue_nums), polling_full: false })
        }
        Err(ParkRefused::Full) => Ok(Notification { has_msg: false, polling_full: true }),
        Err(ParkRefused::Stopping) => Ok(Notification { has_msg: false, polling_full: false }),
    }
}

/// Whether the pop retry topic or the asked queues hold messages past the group's offset.
fn has_message(state: &BrokerState, request: &NotificationRequest<'_>, queue_nums: i32) -> bool {
    let retry = retry_topic(request.topic, request.group);
    let retry_queues = state.topics.get(&retry).map_or(0, |config| config.read_queue_nums);
    let in_retry = (0..retry_queues).any(|queue_id| queue_has_message(state, request, &retry, queue_id));
    let queues: Vec<i32> =
        if request.queue_id < 0 { (0..queue_nums).collect() } else { vec![request.queue_id] };
    in_retry || queues.into_iter().any(|queue_id| queue_has_message(state, request, request.topic, queue_id))
}

fn queue_has_message(
    state: &BrokerState,
    request: &NotificationRequest<'_>,
    topic: &str,
    queue_id: i32,
) -> bool {
    if request.order
        && state.pop.order.is_blocked(topic, request.group, queue_id, request.attempt_id, now_ms())
    {
        return false;
    }
    let offset = state
        .offsets
        .query(request.group, topic, queue_id)
        .unwrap_or_else(|| state.store.min_offset(topic, queue_id));
    state.store.max_offset(topic, queue_id) > offset
}

/// POLLING_INFO: the pops parked for the queue (or for any queue of the topic).
pub fn polling_info(state: &BrokerState, group: &str, topic: &str, queue_id: i32) -> CoreResult<i32> {
    check(state, group, topic, queue_id)?;
    Ok(i32::try_from(state.pop.polling.parked_on(topic, queue_id)).unwrap_or(i32::MAX))
}
