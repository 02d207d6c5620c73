//! Offsets: a group's committed offset of a queue (query and commit), and a queue's bounds
//! (min, max, earliest store time, offset by time).

use std::sync::{Arc, OnceLock};

use apogee_remoting::code::response_code;
use apogee_store::{AcceptAll, BoundaryType, GetMessageStatus};

use super::blocking;
use super::caller::Caller;
use super::error::{CoreResult, Error};
use crate::BrokerState;

/// Share of physical memory behind the commit log's end that counts as "still in the page
/// cache" for a group without a committed offset (Java 4.x `accessMessageInMemoryMaxRatio`),
/// in percent.
pub const IN_MEMORY_MAX_RATIO_PERCENT: u64 = 40;

/// A queue of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRef<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The queue.
    pub queue_id: i32,
}

/// A group's committed offset of one queue; without one, 0 for a young queue whose first
/// message is still cached (so a new group reads it) when `zero_if_not_found`, else
/// QUERY_NOT_FOUND (the client applies its consume-from-where policy).
pub async fn committed_offset(
    state: &Arc<BrokerState>,
    group: &str,
    queue: QueueRef<'_>,
    zero_if_not_found: bool,
) -> CoreResult<i64> {
    let QueueRef { topic, queue_id } = queue;
    if let Some(offset) = state.offsets.query(group, topic, queue_id).filter(|offset| *offset >= 0) {
        return Ok(offset);
    }
    if !zero_if_not_found {
        return Err(Error::new(
            response_code::QUERY_NOT_FOUND,
            "Not found, do not set to zero, maybe this group boot first",
        ));
    }
    let young =
        state.store.min_offset(topic, queue_id) <= 0 && first_message_in_memory(state, topic, queue_id).await;
    if young {
        return Ok(0);
    }
    Err(Error::new(
        response_code::QUERY_NOT_FOUND,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    ))
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

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The offset is the group's now.
    Committed,
    /// Ignored: an admin reset of this queue waits for the group's next pull.
    ResetPending,
}

/// Commits a group's offset of one queue; the group and the topic must exist.
pub fn commit(
    state: &BrokerState,
    caller: &Caller,
    group: &str,
    queue: QueueRef<'_>,
    offset: i64,
) -> CoreResult<Commit> {
    let QueueRef { topic, queue_id } = queue;
    if !state.groups.contains(group) {
        return Err(Error::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("Group {group} not exist!"),
        ));
    }
    if state.topics.get(topic).is_none() {
        return Err(Error::new(response_code::TOPIC_NOT_EXIST, format!("Topic {topic} not exist!")));
    }
    if state.offsets.has_reset_offset(group, topic, queue_id) {
        tracing::info!(group, topic, queue_id, remote = %caller.remote_addr, "offset commit ignored: a reset is pending");
        return Ok(Commit::ResetPending);
    }
    state.offsets.commit(group, topic, queue_id, offset);
    Ok(Commit::Committed)
}

/// The next offset to be written; 0 for an unknown queue.
pub fn max_offset(state: &BrokerState, queue: QueueRef<'_>) -> i64 {
    state.store.max_offset(queue.topic, queue.queue_id)
}

/// The first stored offset; 0 for an unknown queue.
pub fn min_offset(state: &BrokerState, queue: QueueRef<'_>) -> i64 {
    state.store.min_offset(queue.topic, queue.queue_id)
}

/// Store time of the queue's first message, in ms; -1 when empty.
pub async fn earliest_store_time_ms(state: &Arc<BrokerState>, queue: QueueRef<'_>) -> CoreResult<i64> {
    let (topic, queue_id) = (queue.topic.to_owned(), queue.queue_id);
    blocking(state, move |state| state.store.earliest_store_timestamp(&topic, queue_id)).await
}

/// Which message [`offset_by_time`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The first stored at or after the time.
    Lower,
    /// The last stored at or before it.
    Upper,
}

/// The offset of the message stored at `timestamp_ms` by `boundary`.
pub async fn offset_by_time(
    state: &Arc<BrokerState>,
    queue: QueueRef<'_>,
    timestamp_ms: i64,
    boundary: Boundary,
) -> CoreResult<i64> {
    let (topic, queue_id) = (queue.topic.to_owned(), queue.queue_id);
    let boundary = match boundary {
        Boundary::Lower => BoundaryType::Lower,
        Boundary::Upper => BoundaryType::Upper,
    };
    blocking(state, move |state| state.store.offset_by_time(&topic, queue_id, timestamp_ms, boundary)).await
}
