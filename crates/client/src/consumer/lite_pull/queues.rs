//! The consumer's assigned queues and their local caches (Java `AssignedMessageQueue`,
//! `ProcessQueue` and the consume-request cache), kept free of I/O so every transition can be
//! tested on its own.
//!
//! Each queue has a generation: seeking, resetting or dropping a queue gives it a new one (or
//! removes it), and whatever a pull task of an older generation brings back is discarded. The
//! ready list holds pulled batches in arrival order; `poll` hands out one batch at a time and
//! moves that queue's consumed offset to the smallest offset still cached, or one past the
//! largest ever cached when nothing is left (Java `ProcessQueue.removeMessage`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use apogee_common::MessageQueue;
use tokio::task::JoinHandle;

use super::pull::{PullOutcome, PullStatus};
use crate::MessageExt;

/// Pause of a pull task while its queue is paused (Java 1000 ms).
pub(crate) const PAUSED_RECHECK: Duration = Duration::from_millis(1000);
/// Pause of a pull task while the caches are full (Java 50 ms).
pub(crate) const FLOW_CONTROL_RECHECK: Duration = Duration::from_millis(50);

/// Bounds of the local caches (Java lite pull defaults in [`Default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheLimits {
    /// Messages asked for per pull (`pullBatchSize`, 10).
    pub batch_size: usize,
    /// Messages cached per queue before its pulls stop (`pullThresholdForQueue`, 1000).
    pub max_messages_per_queue: usize,
    /// Body bytes cached per queue before its pulls stop (`pullThresholdSizeForQueue`, 100 MiB).
    pub max_bytes_per_queue: usize,
    /// Messages waiting in ready batches, all queues together (`pullThresholdForAll`, 10000).
    pub max_messages_all: usize,
    /// Largest distance between the first and last cached offsets of a queue
    /// (`consumeMaxSpan`, 2000).
    pub max_offset_span: i64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            batch_size: super::DEFAULT_PULL_BATCH_SIZE,
            max_messages_per_queue: 1000,
            max_bytes_per_queue: 100 * 1024 * 1024,
            max_messages_all: 10_000,
            max_offset_span: 2000,
        }
    }
}

/// One assigned queue.
#[derive(Debug, Default)]
pub(crate) struct QueueState {
    /// Changes whenever the queue restarts at a new offset.
    pub generation: u64,
    /// The pull task of this generation.
    pub task: Option<JoinHandle<()>>,
    /// Set by `pause`: the pull task idles.
    pub paused: bool,
    /// Next offset to pull; `None` until the start offset is known.
    pub pull_offset: Option<i64>,
    /// Offset to commit (next to consume); `None` until something was consumed or sought.
    pub consumed_offset: Option<i64>,
    /// Broker id the last answer suggested pulling from.
    pub suggested_broker_id: i64,
    /// Offsets cached and not yet polled → body bytes.
    cached: BTreeMap<i64, usize>,
    /// Sum of `cached`'s values.
    cached_bytes: usize,
    /// Largest offset ever cached in this generation.
    max_cached_offset: Option<i64>,
    /// Wall-clock ms of the last pull answer applied; 0 before the first.
    last_pull_ms: i64,
    /// Wall-clock ms of the last poll that took messages of the queue; 0 before the first.
    last_consume_ms: i64,
}

/// What the consumer's runtime info reports of one held queue (Java `ProcessQueueInfo`, the
/// fields a pull consumer has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueInfo {
    /// Lowest offset cached and not yet polled (0 when none, as Java reports).
    pub cached_min_offset: i64,
    /// Highest offset cached and not yet polled (0 when none).
    pub cached_max_offset: i64,
    /// Messages cached and not yet polled.
    pub cached_count: usize,
    /// Their body bytes.
    pub cached_bytes: usize,
    /// Wall-clock ms of the last pull answer; 0 before the first.
    pub last_pull_ms: i64,
    /// Wall-clock ms of the last poll that took messages; 0 before the first.
    pub last_consume_ms: i64,
}

impl QueueState {
    fn clear_cache(&mut self) {
        self.cached.clear();
        self.cached_bytes = 0;
        self.max_cached_offset = None;
    }
}

/// What a pull task should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The queue was dropped or restarted: end the task.
    Stop,
    /// Try again after this long (paused or caches full).
    Wait(Duration),
    /// The start offset must be looked up first.
    FindStart,
    /// Pull from this offset, preferably from this broker id.
    Pull {
        /// Offset to pull from.
        offset: i64,
        /// Broker id suggested by the last answer.
        broker_id: i64,
    },
}

/// A pulled batch waiting for `poll`.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Its queue.
    pub queue: MessageQueue,
    /// The queue generation it was pulled in.
    pub generation: u64,
    /// Messages, by increasing offset.
    pub messages: Vec<MessageExt>,
}

/// Every assigned queue plus the ready batches.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    queues: HashMap<MessageQueue, QueueState>,
    ready: VecDeque<Batch>,
    next_generation: u64,
}

impl Queues {
    fn new_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// The queues held, sorted.
    pub fn assigned(&self) -> Vec<MessageQueue> {
        let mut queues: Vec<MessageQueue> = self.queues.keys().cloned().collect();
        queues.sort();
        queues
    }

    /// Whether `queue` is held.
    pub fn contains(&self, queue: &MessageQueue) -> bool {
        self.queues.contains_key(queue)
    }

    /// One queue's state.
    pub fn get_mut(&mut self, queue: &MessageQueue) -> Option<&mut QueueState> {
        self.queues.get_mut(queue)
    }

    /// One queue's state.
    #[cfg(test)]
    pub fn get(&self, queue: &MessageQueue) -> Option<&QueueState> {
        self.queues.get(queue)
    }

    /// Adds `queue` (pulled from its committed position); returns its generation, or `None`
    /// if it was held already.
    pub fn add(&mut self, queue: MessageQueue) -> Option<u64> {
        if self.queues.contains_key(&queue) {
            return None;
        }
        let generation = self.new_generation();
        self.queues.insert(queue, QueueState { generation, ..QueueState::default() });
        Some(generation)
    }

    /// Drops `queue` and its ready batches; returns its last state (whose task the caller
    /// aborts).
    pub fn remove(&mut self, queue: &MessageQueue) -> Option<QueueState> {
        let state = self.queues.remove(queue)?;
        self.ready.retain(|batch| batch.queue != *queue);
        Some(state)
    }

    /// Restarts `queue` at `offset`: new generation, cache and ready batches dropped, pull and
    /// consumed offsets set there. Returns the new generation and the old task (to abort), or
    /// `None` if the queue is not held.
    pub fn restart_at(&mut self, queue: &MessageQueue, offset: i64) -> Option<(u64, Option<JoinHandle<()>>)> {
        if !self.queues.contains_key(queue) {
            return None;
        }
        let generation = self.new_generation();
        self.ready.retain(|batch| batch.queue != *queue);
        let state = self.queues.get_mut(queue)?;
        state.generation = generation;
        state.clear_cache();
        state.pull_offset = Some(offset);
        state.consumed_offset = Some(offset);
        Some((generation, state.task.take()))
    }

    /// Whether the task of `generation` still serves `queue`.
    fn current(&mut self, queue: &MessageQueue, generation: u64) -> Option<&mut QueueState> {
        self.queues.get_mut(queue).filter(|state| state.generation == generation)
    }

    /// The next step of the pull task of `queue` in `generation`.
    pub fn plan(&self, queue: &MessageQueue, generation: u64, limits: &CacheLimits) -> Plan {
        let Some(state) = self.queues.get(queue).filter(|state| state.generation == generation) else {
            return Plan::Stop;
        };
        if state.paused {
            return Plan::Wait(PAUSED_RECHECK);
        }
        let waiting: usize = self.ready.iter().map(|batch| batch.messages.len()).sum();
        let span = match (state.cached.keys().next(), state.cached.keys().next_back()) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        };
        if waiting > limits.max_messages_all
            || state.cached.len() > limits.max_messages_per_queue
            || state.cached_bytes > limits.max_bytes_per_queue
            || span > limits.max_offset_span
        {
            return Plan::Wait(FLOW_CONTROL_RECHECK);
        }
        match state.pull_offset {
            Some(offset) => Plan::Pull { offset, broker_id: state.suggested_broker_id },
            None => Plan::FindStart,
        }
    }

    /// Records the start offset found by the task of `generation`; false if the task is stale.
    pub fn set_start(&mut self, queue: &MessageQueue, generation: u64, offset: i64) -> bool {
        match self.current(queue, generation) {
            Some(state) => {
                state.pull_offset.get_or_insert(offset);
                true
            }
            None => false,
        }
    }

    /// Applies a pull answer of the task of `generation`: caches found messages as a ready
    /// batch, moves the pull offset, and, when the queue's cache is empty and nothing matched,
    /// moves the consumed offset past the skipped range. Returns whether a batch became ready,
    /// or `None` if the task is stale.
    pub fn apply(&mut self, queue: &MessageQueue, generation: u64, outcome: PullOutcome) -> Option<bool> {
        let state = self.current(queue, generation)?;
        state.last_pull_ms = apogee_common::time::now_ms();
        state.suggested_broker_id = outcome.suggest_broker_id;
        state.pull_offset = Some(outcome.next_begin_offset);
        let messages = match outcome.status {
            PullStatus::Found(messages) if !messages.is_empty() => messages,
            _ => {
                if state.cached.is_empty() {
                    state.consumed_offset = Some(outcome.next_begin_offset);
                }
                return Some(false);
            }
        };
        for message in &messages {
            state.cached.insert(message.queue_offset, message.message.body.len());
            state.cached_bytes += message.message.body.len();
            state.max_cached_offset = Some(
                state.max_cached_offset.map_or(message.queue_offset, |max| max.max(message.queue_offset)),
            );
        }
        self.ready.push_back(Batch { queue: queue.clone(), generation, messages });
        Some(true)
    }

    /// Takes the oldest ready batch of a live queue generation, moving that queue's consumed
    /// offset; stale batches met on the way are dropped.
    pub fn take_batch(&mut self) -> Option<Batch> {
        while let Some(batch) = self.ready.pop_front() {
            let Some(state) =
                self.queues.get_mut(&batch.queue).filter(|state| state.generation == batch.generation)
            else {
                continue;
            };
            for message in &batch.messages {
                if let Some(bytes) = state.cached.remove(&message.queue_offset) {
                    state.cached_bytes = state.cached_bytes.saturating_sub(bytes);
                }
            }
            let next = match state.cached.keys().next() {
                Some(first) => Some(*first),
                None => state.max_cached_offset.map(|max| max + 1),
            };
            if next.is_some() {
                state.consumed_offset = next;
            }
            state.last_consume_ms = apogee_common::time::now_ms();
            return Some(batch);
        }
        None
    }

    /// Every held queue's consumed offset, where known.
    pub fn consumed_offsets(&self) -> Vec<(MessageQueue, i64)> {
        let mut offsets: Vec<(MessageQueue, i64)> = self
            .queues
            .iter()
            .filter_map(|(queue, state)| state.consumed_offset.map(|offset| (queue.clone(), offset)))
            .collect();
        offsets.sort();
        offsets
    }

    /// Removes every queue, returning their states (whose tasks the caller aborts).
    pub fn drain(&mut self) -> Vec<(MessageQueue, QueueState)> {
        self.ready.clear();
        self.queues.drain().collect()
    }

    /// The runtime figures of every held queue, sorted by queue.
    pub fn infos(&self) -> Vec<(MessageQueue, QueueInfo)> {
        let mut infos: Vec<(MessageQueue, QueueInfo)> = self
            .queues
            .iter()
            .map(|(queue, state)| {
                let info = QueueInfo {
                    cached_min_offset: state.cached.keys().next().copied().unwrap_or(0),
                    cached_max_offset: state.cached.keys().next_back().copied().unwrap_or(0),
                    cached_count: state.cached.len(),
                    cached_bytes: state.cached_bytes,
                    last_pull_ms: state.last_pull_ms,
                    last_consume_ms: state.last_consume_ms,
                };
                (queue.clone(), info)
            })
            .collect();
        infos.sort_by(|left, right| left.0.cmp(&right.0));
        infos
    }

    /// Number of messages in ready batches.
    pub fn ready_messages(&self) -> usize {
        self.ready.iter().map(|batch| batch.messages.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn queue(id: i32) -> MessageQueue {
        MessageQueue::new("T", "b", id)
    }

    fn message(offset: i64, bytes: usize) -> MessageExt {
        let mut message = MessageExt { queue_offset: offset, ..MessageExt::default() };
        message.message.body = Bytes::from(vec![0u8; bytes]);
        message
    }

    /// Adds queue `id` to `queues`, its pulls starting at `offset`; returns its generation.
    fn started(queues: &mut Queues, id: i32, offset: i64) -> u64 {
        let generation = queues.add(queue(id)).unwrap();
        queues.set_start(&queue(id), generation, offset);
        generation
    }

    fn found(offsets: std::ops::Range<i64>) -> PullOutcome {
        PullOutcome {
            status: PullStatus::Found(offsets.clone().map(|offset| message(offset, 10)).collect()),
            next_begin_offset: offsets.end,
            min_offset: 0,
            max_offset: offsets.end,
            suggest_broker_id: 0,
        }
    }

    fn nothing(status: PullStatus, next: i64) -> PullOutcome {
        PullOutcome { status, next_begin_offset: next, min_offset: 0, max_offset: next, suggest_broker_id: 0 }
    }

    #[test]
    fn a_new_queue_looks_up_its_start_then_pulls() {
        let mut queues = Queues::default();
        let limits = CacheLimits::default();
        let generation = queues.add(queue(0)).unwrap();
        assert_eq!(queues.add(queue(0)), None);
        assert_eq!(queues.plan(&queue(0), generation, &limits), Plan::FindStart);
        assert!(queues.set_start(&queue(0), generation, 5));
        assert_eq!(queues.plan(&queue(0), generation, &limits), Plan::Pull { offset: 5, broker_id: 0 });
        assert_eq!(queues.plan(&queue(0), generation + 1, &limits), Plan::Stop);
        assert_eq!(queues.plan(&queue(1), generation, &limits), Plan::Stop);
    }

    #[test]
    fn polled_batches_move_the_consumed_offset() {
        let mut queues = Queues::default();
        let generation = started(&mut queues, 0, 0);
        assert_eq!(queues.apply(&queue(0), generation, found(0..3)), Some(true));
        assert_eq!(queues.apply(&queue(0), generation, found(3..5)), Some(true));
        assert_eq!(queues.get(&queue(0)).unwrap().pull_offset, Some(5));
        assert_eq!(queues.consumed_offsets(), []);

        let first = queues.take_batch().unwrap();
        assert_eq!(first.messages.len(), 3);
        assert_eq!(queues.consumed_offsets(), [(queue(0), 3)]);
        let second = queues.take_batch().unwrap();
        assert_eq!(second.messages.len(), 2);
        assert_eq!(queues.consumed_offsets(), [(queue(0), 5)]);
        assert!(queues.take_batch().is_none());
    }

    #[test]
    fn empty_answers_advance_the_consumed_offset_only_with_an_empty_cache() {
        let mut queues = Queues::default();
        let generation = started(&mut queues, 0, 0);
        queues.apply(&queue(0), generation, nothing(PullStatus::NoMatchedMessage, 8));
        assert_eq!(queues.consumed_offsets(), [(queue(0), 8)]);
        queues.apply(&queue(0), generation, found(8..10));
        queues.apply(&queue(0), generation, nothing(PullStatus::NoNewMessage, 10));
        assert_eq!(queues.consumed_offsets(), [(queue(0), 8)]);
        queues.take_batch();
        assert_eq!(queues.consumed_offsets(), [(queue(0), 10)]);
        queues.apply(&queue(0), generation, nothing(PullStatus::OffsetIllegal, 30));
        assert_eq!(queues.get(&queue(0)).unwrap().pull_offset, Some(30));
        assert_eq!(queues.consumed_offsets(), [(queue(0), 30)]);
    }

    #[test]
    fn a_restart_discards_the_cache_and_stale_answers() {
        let mut queues = Queues::default();
        let old = started(&mut queues, 0, 0);
        queues.apply(&queue(0), old, found(0..4));
        let (new, _task) = queues.restart_at(&queue(0), 2).unwrap();
        assert_ne!(old, new);
        assert!(queues.take_batch().is_none());
        assert_eq!(queues.apply(&queue(0), old, found(4..6)), None);
        assert!(!queues.set_start(&queue(0), old, 9));
        assert_eq!(
            queues.plan(&queue(0), new, &CacheLimits::default()),
            Plan::Pull { offset: 2, broker_id: 0 }
        );
        assert_eq!(queues.consumed_offsets(), [(queue(0), 2)]);
        assert!(queues.restart_at(&queue(9), 0).is_none());
    }

    #[test]
    fn removing_a_queue_drops_its_ready_batches_only() {
        let mut queues = Queues::default();
        let zero = started(&mut queues, 0, 0);
        let one = started(&mut queues, 1, 0);
        queues.apply(&queue(0), zero, found(0..2));
        queues.apply(&queue(1), one, found(0..3));
        assert_eq!(queues.ready_messages(), 5);
        assert!(queues.remove(&queue(0)).is_some());
        let batch = queues.take_batch().unwrap();
        assert_eq!(batch.queue, queue(1));
        assert_eq!(queues.assigned(), [queue(1)]);
    }

    #[test]
    fn full_caches_and_pauses_hold_the_pulls() {
        let limits = CacheLimits { max_messages_per_queue: 3, ..CacheLimits::default() };
        let mut queues = Queues::default();
        let generation = started(&mut queues, 0, 0);
        queues.apply(&queue(0), generation, found(0..4));
        assert_eq!(queues.plan(&queue(0), generation, &limits), Plan::Wait(FLOW_CONTROL_RECHECK));
        queues.take_batch();
        assert_eq!(queues.plan(&queue(0), generation, &limits), Plan::Pull { offset: 4, broker_id: 0 });
        queues.get_mut(&queue(0)).unwrap().paused = true;
        assert_eq!(queues.plan(&queue(0), generation, &limits), Plan::Wait(PAUSED_RECHECK));

        let bytes = CacheLimits { max_bytes_per_queue: 15, ..CacheLimits::default() };
        let mut queues = Queues::default();
        let generation = started(&mut queues, 0, 0);
        queues.apply(&queue(0), generation, found(0..2));
        assert_eq!(queues.plan(&queue(0), generation, &bytes), Plan::Wait(FLOW_CONTROL_RECHECK));

        let all = CacheLimits { max_messages_all: 1, ..CacheLimits::default() };
        assert_eq!(queues.plan(&queue(0), generation, &all), Plan::Wait(FLOW_CONTROL_RECHECK));
    }

    #[test]
    fn the_suggested_broker_is_remembered() {
        let mut queues = Queues::default();
        let generation = started(&mut queues, 0, 0);
        let mut outcome = nothing(PullStatus::NoNewMessage, 0);
        outcome.suggest_broker_id = 1;
        queues.apply(&queue(0), generation, outcome);
        assert_eq!(
            queues.plan(&queue(0), generation, &CacheLimits::default()),
            Plan::Pull { offset: 0, broker_id: 1 }
        );
    }
}
