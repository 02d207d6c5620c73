//! The timer pipeline (storage spec §9.3) on one thread of its own, which owns the
//! [`Engine`]: Java's enqueue-get/put, dequeue-get/get-message/put and flush services folded
//! into one loop, each step bounded:
//!
//! 1. enqueue: read `rmq_sys_wheel_timer` queue 0 from the engine's queue offset (up to
//!    [`ENQUEUE_BATCH`] entries) and place each timer; one whose slot already fired is
//!    delivered at once;
//! 2. dequeue: when the slot at the read time has fully passed, deliver it in chunks of
//!    [`DELIVERY_CHUNK`] units (delete markers drop their timer, rolled timers go back to
//!    the timer topic), waiting for the store's answers before the chunk counts as done;
//! 3. every `timerFlushIntervalMs`: flush the log and the wheel, then the checkpoint; every
//!    30 s remove timer-log files every timer of which is past.
//!
//! The thread reads the mapped commit log and waits for the store, which is why it is not an
//! async task. It stops when the broker stops (or is dropped), after a last flush.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::property;
use apogee_common::message::record::RecordView;
use apogee_common::time::now_ms;
use apogee_common::topic::TIMER_TOPIC;
use apogee_store::read::AcceptAll;
use apogee_store::{GetMessageStatus, PutRequest, PutStatus};

use super::engine::{Engine, EnqueueItem, Placed};
use super::log::Unit;
use super::{delete_key, TimerState};
use crate::message::InnerMessage;
use crate::BrokerState;

/// Timer-topic entries read per enqueue step.
const ENQUEUE_BATCH: u32 = 1024;
/// Bytes read per enqueue step (the first message is returned even if larger).
const ENQUEUE_BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Units delivered per dequeue step.
const DELIVERY_CHUNK: usize = 1024;
/// Longest idle sleep: a timer sent while the service sleeps is placed this late at most.
const IDLE_SLEEP_MS: u64 = 10;
/// Attempts of a delivery the store refuses for a passing reason (Java: 3), unless
/// `timerEnableRetryUntilSuccess`.
const PUT_ATTEMPTS: u32 = 3;
/// Pause between delivery attempts.
const RETRY_PAUSE_MS: u64 = 100;
/// Longest wait for the store's answer to a put.
const PUT_ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Period of the removal of timer-log files every timer of which is past (Java: 30 s).
const EXPIRY_PERIOD: Duration = Duration::from_secs(30);
/// Pause after a step failed on I/O.
const PAUSE_AFTER_ERROR_MS: u64 = 1_000;

/// Starts the service thread; `None` when the wheel is off (nothing to run).
pub fn start(state: &Arc<BrokerState>) -> Option<std::thread::JoinHandle<()>> {
    let engine = state.timer.take_engine()?;
    let owner = Arc::clone(state);
    let spawned = std::thread::Builder::new().name("timer".to_owned()).spawn(move || run(&owner, engine));
    match spawned {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::error!(%error, "timer service thread not started; timer messages wait in their topic");
            None
        }
    }
}

/// Whether the broker stops (or its owner is gone).
fn stopping(state: &BrokerState) -> bool {
    *state.stopping.borrow() || state.stopping.has_changed().is_err()
}

/// Recovers, then runs the pipeline until the broker stops.
fn run(state: &BrokerState, mut engine: Engine) {
    let bounds = (state.store.min_offset(TIMER_TOPIC, 0), state.store.max_offset(TIMER_TOPIC, 0));
    let recovered = engine.recover(now_ms(), bounds, |offset| timer_queue_offset_at(state, offset));
    match recovered {
        Ok(recovered) => tracing::info!(?recovered, "timer store recovered"),
        Err(error) => {
            tracing::error!(%error, "timer store recovery failed; timer messages wait in their topic");
            return;
        }
    }
    let stats = &state.timer.stats;
    let wheel_pending =
        state.timer.wheel.as_ref().map_or(0, |wheel| wheel.pending_from(engine.read_time_ms()));
    stats.pending.store(wheel_pending, Ordering::Relaxed);
    stats.running.store(true, Ordering::Relaxed);
    publish(&state.timer, &engine);
    let flush_every = Duration::from_millis(state.timer.config.flush_interval_ms.max(10));
    let (mut last_flush, mut last_expiry, mut last_rate) = (Instant::now(), Instant::now(), Instant::now());
    let (mut enqueued_since, mut dequeued_since) = (0u64, 0u64);
    while !stopping(state) {
        if !state.replication.is_master() {
            // A controller-mode broker that lost mastership: its store refuses writes.
            std::thread::sleep(Duration::from_millis(crate::replication::ROLE_POLL_MS));
            continue;
        }
        let now = now_ms();
        let mut busy = false;
        match enqueue_step(state, &mut engine, now) {
            Ok(count) => {
                busy |= count > 0;
                enqueued_since += count as u64;
            }
            Err(error) => {
                tracing::error!(%error, "timer enqueue failed; retrying");
                std::thread::sleep(Duration::from_millis(PAUSE_AFTER_ERROR_MS));
            }
        }
        if let Some(delivered) = dequeue_step(state, &mut engine, now) {
            busy = true;
            dequeued_since += delivered as u64;
        }
        publish(&state.timer, &engine);
        if last_flush.elapsed() >= flush_every {
            last_flush = Instant::now();
            if let Err(error) = engine.flush(now_ms()) {
                tracing::error!(%error, "timer store not flushed");
            }
        }
        if last_expiry.elapsed() >= EXPIRY_PERIOD {
            last_expiry = Instant::now();
            if let Err(error) = engine.remove_expired_files() {
                tracing::warn!(%error, "expired timer-log files not removed");
            }
        }
        let rate_window = last_rate.elapsed();
        if rate_window >= Duration::from_secs(1) {
            let per_sec = |count: u64| (count as f64 / rate_window.as_secs_f64()).round() as u64;
            stats.enqueue_per_sec.store(per_sec(enqueued_since), Ordering::Relaxed);
            stats.dequeue_per_sec.store(per_sec(dequeued_since), Ordering::Relaxed);
            (enqueued_since, dequeued_since, last_rate) = (0, 0, Instant::now());
        }
        if !busy {
            let next_slot_in = engine.read_time_ms() + state.timer.config.precision_ms - now_ms();
            let pause = u64::try_from(next_slot_in).unwrap_or(0).clamp(1, IDLE_SLEEP_MS);
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
    if let Err(error) = engine.flush(now_ms()) {
        tracing::error!(%error, "timer store not flushed at shutdown");
    }
    stats.running.store(false, Ordering::Relaxed);
    tracing::info!(
        read_time_ms = engine.read_time_ms(),
        queue_offset = engine.queue_offset(),
        "timer service stopped"
    );
}

/// Publishes the engine's positions for the runtime information.
fn publish(timer: &TimerState, engine: &Engine) {
    timer.stats.read_time_ms.store(engine.read_time_ms(), Ordering::Relaxed);
    timer.stats.queue_offset.store(engine.queue_offset(), Ordering::Relaxed);
}

/// The queue offset of the timer-topic record at commit-log `offset` (recovery), if it is one.
fn timer_queue_offset_at(state: &BrokerState, offset: i64) -> Option<i64> {
    let record = state.store.message_at(u64::try_from(offset).ok()?)?;
    let view = RecordView::parse(record.as_slice(), false).ok()?;
    (view.topic() == TIMER_TOPIC).then(|| view.queue_offset())
}

/// Places the next timer-topic entries; returns how many were read. Entries whose slot
/// already fired are delivered before the queue offset moves past them.
fn enqueue_step(state: &BrokerState, engine: &mut Engine, now: i64) -> std::io::Result<usize> {
    let offset = engine.queue_offset();
    let result =
        state.store.get_messages(TIMER_TOPIC, 0, offset, ENQUEUE_BATCH, ENQUEUE_BATCH_BYTES, &AcceptAll);
    match result.status {
        GetMessageStatus::Found => {}
        GetMessageStatus::NoMatchedLogicQueue
        | GetMessageStatus::NoMessageInQueue
        | GetMessageStatus::OffsetOverflowOne => return Ok(0),
        status => {
            if result.next_begin_offset != offset {
                tracing::warn!(offset, next = result.next_begin_offset, ?status, "timer queue skipped ahead");
                engine.set_queue_offset(result.next_begin_offset.max(offset));
            }
            return Ok(0);
        }
    }
    let mut due_now = Vec::new();
    let mut next_offset = offset;
    for (record, queue_offset) in result.messages.iter().zip(&result.queue_offsets) {
        next_offset = queue_offset + 1;
        let view = match RecordView::parse(record.as_slice(), false) {
            Ok(view) => view,
            Err(error) => {
                tracing::warn!(queue_offset, %error, "unreadable timer-topic record skipped");
                continue;
            }
        };
        let Some(out_ms) = view.property(property::TIMER_OUT_MS).and_then(|out| out.parse::<i64>().ok())
        else {
            tracing::warn!(queue_offset, "timer-topic record without a valid TIMER_OUT_MS skipped");
            continue;
        };
        let delete = view.property(property::TIMER_DEL_UNIQKEY).is_some();
        let item = EnqueueItem {
            commit_log_offset: view.physical_offset(),
            size_bytes: view.total_size(),
            deliver_ms: out_ms,
            delete,
            real_topic: view.property(property::REAL_TOPIC).unwrap_or_default(),
        };
        match engine.enqueue(&item, now)? {
            Placed::InWheel(_) => {
                let count = if delete { -1 } else { 1 };
                state.timer.stats.pending.fetch_add(count, Ordering::Relaxed);
            }
            // A late delete marker deletes nothing: its timer's slot fired already.
            Placed::DueNow if delete => {}
            Placed::DueNow => {
                if let Some(message) = rebuild(&view, now, false, now) {
                    due_now.push(message);
                }
            }
        }
    }
    put_all(state, due_now);
    engine.set_queue_offset(next_offset.max(offset));
    Ok(result.messages.len())
}

/// Delivers the next chunk of a due slot; `Some(units handled)` when there was one.
fn dequeue_step(state: &BrokerState, engine: &mut Engine, now: i64) -> Option<usize> {
    if !engine.start_due_slot(now, |unit| delete_key_of(state, unit)) {
        return None;
    }
    let chunk = engine.next_chunk(DELIVERY_CHUNK)?;
    let mut messages = Vec::with_capacity(chunk.units.len());
    let mut removed = 0i32;
    for (pos, unit) in &chunk.units {
        if unit.is_delete() && !unit.is_roll() {
            continue;
        }
        removed += 1;
        let Some(record) = state.store.message_at(u64::try_from(unit.commit_log_offset).unwrap_or(u64::MAX))
        else {
            tracing::warn!(
                pos,
                offset = unit.commit_log_offset,
                "timer message no longer in the commit log; skipped"
            );
            continue;
        };
        let view = match RecordView::parse(record.as_slice(), false) {
            Ok(view) if view.physical_offset() == unit.commit_log_offset => view,
            Ok(_) | Err(_) => {
                tracing::warn!(pos, offset = unit.commit_log_offset, "timer unit names no record; skipped");
                continue;
            }
        };
        if !unit.is_roll() {
            let real_topic = view.property(property::REAL_TOPIC).unwrap_or_default();
            let uniq_key = view.property(property::UNIQ_KEY).unwrap_or_default();
            if engine.is_deleted(&delete_key(real_topic, uniq_key)) {
                tracing::debug!(real_topic, uniq_key, "recalled timer message dropped");
                continue;
            }
        }
        if let Some(message) = rebuild(&view, unit.write_time_ms, unit.is_roll(), now_ms()) {
            messages.push(message);
        }
    }
    let handled = chunk.units.len();
    put_all(state, messages);
    engine.chunk_done(&chunk, removed);
    state.timer.stats.pending.fetch_sub(i64::from(removed), Ordering::Relaxed);
    Some(handled)
}

/// The delete key a delete marker names (its `TIMER_DEL_UNIQKEY`).
fn delete_key_of(state: &BrokerState, unit: &Unit) -> Option<String> {
    let record = state.store.message_at(u64::try_from(unit.commit_log_offset).ok()?)?;
    let view = RecordView::parse(record.as_slice(), false).ok()?;
    view.property(property::TIMER_DEL_UNIQKEY).map(str::to_owned)
}

/// The message to store for a due timer (Java `convert`/`convertMessage`): everything of the
/// record (body, flag, properties with `UNIQ_KEY` and `TIMER_OUT_MS`, sysflag, born time and
/// host, reconsume times) plus `TIMER_ENQUEUE_MS` and `TIMER_DEQUEUE_MS`, not waiting for a
/// flush; under `REAL_TOPIC`/`REAL_QID` (both removed), or for a rolled timer back in the
/// timer topic with `TIMER_ROLL_TIMES` + 1. `None` for a record without its destination.
fn rebuild(view: &RecordView<'_>, enqueue_ms: i64, roll: bool, now: i64) -> Option<InnerMessage> {
    let mut message = InnerMessage::from_ext(&view.to_message_ext());
    let properties = &mut message.properties;
    properties.insert(property::TIMER_ENQUEUE_MS, enqueue_ms.to_string());
    if roll {
        let times = properties.get(property::TIMER_ROLL_TIMES).and_then(|times| times.parse::<i32>().ok());
        properties
            .insert(property::TIMER_ROLL_TIMES, times.map_or(1, |times| times.saturating_add(1)).to_string());
    }
    properties.insert(property::TIMER_DEQUEUE_MS, now.to_string());
    properties.insert(property::WAIT, "false");
    if roll {
        return Some(message);
    }
    let topic = properties.get(property::REAL_TOPIC).map(str::to_owned);
    let queue_id = properties.get(property::REAL_QID).and_then(|queue| queue.trim().parse::<i32>().ok());
    let (Some(topic), Some(queue_id)) = (topic, queue_id) else {
        tracing::error!(offset = view.physical_offset(), "timer message without REAL_TOPIC/REAL_QID dropped");
        return None;
    };
    properties.remove(property::REAL_TOPIC);
    properties.remove(property::REAL_QID);
    message.topic = topic;
    message.queue_id = queue_id;
    Some(message)
}

/// Whether a refused put may succeed later (Java `doPut`: PUT_NEED_RETRY).
fn is_passing(status: PutStatus) -> bool {
    !matches!(status, PutStatus::MessageIllegal | PutStatus::PropertiesSizeExceeded)
}

/// Stores `messages` and waits for every answer; refusals for a passing reason are retried
/// ([`PUT_ATTEMPTS`] times, or until stored with `timerEnableRetryUntilSuccess` while the
/// broker runs).
fn put_all(state: &BrokerState, messages: Vec<InnerMessage>) {
    if messages.is_empty() {
        return;
    }
    let mut pending: Vec<(String, Vec<u8>)> = Vec::with_capacity(messages.len());
    for message in messages {
        match message.encode(state.store_host) {
            Ok(records) => pending.push((message.topic, records)),
            Err(error) => {
                tracing::error!(%error, topic = %message.topic, "due timer message cannot be encoded; dropped")
            }
        }
    }
    let until_success = state.timer.config.retry_until_success;
    let mut attempt = 0u32;
    while !pending.is_empty() {
        attempt += 1;
        let (sender, receiver) = mpsc::channel();
        for (index, (_, records)) in pending.iter().enumerate() {
            let sender = sender.clone();
            state.store.put(
                PutRequest { records: records.clone(), wait_store_ok: false },
                Box::new(move |result: apogee_store::PutResult| {
                    let _ = sender.send((index, result.status));
                }),
            );
        }
        drop(sender);
        let mut retry = vec![false; pending.len()];
        let mut answered = vec![false; pending.len()];
        let mut answers = 0;
        while answers < pending.len() {
            match receiver.recv_timeout(PUT_ANSWER_LIMIT) {
                Ok((index, status)) => {
                    answers += 1;
                    answered[index] = true;
                    if status.is_stored() {
                        continue;
                    }
                    if is_passing(status) {
                        retry[index] = true;
                    } else {
                        tracing::error!(topic = %pending[index].0, ?status, "due timer message refused by the store; dropped");
                    }
                }
                Err(_) => {
                    tracing::error!("the store did not answer timer deliveries; retrying them");
                    // Unanswered puts are retried: at least once.
                    for (flag, answered) in retry.iter_mut().zip(&answered) {
                        *flag |= !answered;
                    }
                    break;
                }
            }
        }
        let mut index = 0;
        pending.retain(|_| {
            let keep = retry[index];
            index += 1;
            keep
        });
        if pending.is_empty() {
            break;
        }
        let give_up = if until_success { stopping(state) } else { attempt >= PUT_ATTEMPTS };
        if give_up {
            tracing::error!(count = pending.len(), attempt, "due timer messages not delivered; given up");
            break;
        }
        tracing::warn!(count = pending.len(), attempt, "due timer messages refused for now; retrying");
        std::thread::sleep(Duration::from_millis(RETRY_PAUSE_MS));
    }
}
