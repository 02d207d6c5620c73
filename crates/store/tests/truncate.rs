//! Truncating a slave's log to the point it agrees on with a new master (`truncate_to`): an
//! old master writes records, a slave copies them, a new master shares only a prefix and
//! writes something else after it. The slave, cut back to the prefix, takes the new master's
//! continuation and ends up with exactly the new master's log, queues and keys, across a
//! clean restart and a crash.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use apogee_common::message::record::RecordView;
use apogee_store::epoch::OPEN_END;
use apogee_store::{
    EpochEntry, FlushDiskType, MessageStore, PutRequest, PutStatus, StoreConfig, TruncateError,
};
use common::{open_store, read_all, record, small_config};

/// One record as its writer stored it.
#[derive(Debug, Clone)]
struct Sent {
    offset: u64,
    size: u64,
    topic: String,
    queue_id: i32,
    queue_offset: i64,
    key: String,
    body: Vec<u8>,
}

/// Appends one record with `key` and returns where it went.
fn send(store: &MessageStore, topic: &str, queue_id: i32, key: &str, body: Vec<u8>) -> Sent {
    let records = record(topic, queue_id, &body, Some("tag"), Some(key));
    let size = records.len() as u64;
    let result = store.put_blocking(PutRequest::new(records));
    assert_eq!(result.status, PutStatus::PutOk, "append of {key}");
    let append = result.append.unwrap();
    Sent {
        offset: append.commit_log_offset,
        size,
        topic: topic.to_owned(),
        queue_id,
        queue_offset: append.queue_offset,
        key: key.to_owned(),
        body,
    }
}

/// `count` records named `{prefix}-{n}` over two topics and three queues, of varied sizes;
/// records of `only_topic` (if any) go to a topic nobody else writes.
fn send_many(store: &MessageStore, prefix: &str, count: usize, only_topic: Option<&str>) -> Vec<Sent> {
    (0..count)
        .map(|n| {
            let topic = only_topic.unwrap_or(if n % 2 == 0 { "TruncA" } else { "TruncB" });
            let body = format!("{prefix}-{n}-{}", "b".repeat(40 + (n * 37) % 290)).into_bytes();
            send(store, topic, (n % 3) as i32, &format!("{prefix}-{n}"), body)
        })
        .collect()
}

/// Copies `from`'s log to `to` from `to`'s end up to `end`, in chunks of `chunk` bytes.
fn copy_log(from: &MessageStore, to: &MessageStore, end: u64, chunk: usize) {
    let mut offset = to.commit_log_max_offset();
    for _ in 0..1_000_000 {
        if offset >= end {
            break;
        }
        let length = chunk.min((end - offset) as usize);
        let data = from.replica_data(offset, length).expect("published data");
        offset = to.append_replica(offset, data.as_slice()).expect("replicated append");
    }
    assert_eq!(to.commit_log_max_offset(), end);
}

fn slave(config: StoreConfig) -> MessageStore {
    let store = open_store(config).unwrap();
    store.set_replica_only(true);
    store
}

/// Checks that `store` holds exactly `kept` (in log order) and none of `gone`: the log end,
/// every queue's contents and max offset, and lookups by key.
fn assert_holds_exactly(store: &MessageStore, kept: &[Sent], gone: &[Sent]) {
    let end = kept.last().map_or(0, |last| last.offset + last.size);
    assert_eq!(store.commit_log_max_offset(), end, "log end");
    assert!(store.commit_log_flushed_offset() <= end, "flushed past the end");
    let queues: BTreeSet<(String, i32)> =
        kept.iter().chain(gone).map(|sent| (sent.topic.clone(), sent.queue_id)).collect();
    for (topic, queue_id) in &queues {
        let expected: Vec<&Sent> =
            kept.iter().filter(|sent| &sent.topic == topic && sent.queue_id == *queue_id).collect();
        let read = read_all(store, topic, *queue_id);
        assert_eq!(read.len(), expected.len(), "{topic}/{queue_id}: messages");
        for (message, sent) in read.iter().zip(&expected) {
            assert_eq!(message.queue_offset, sent.queue_offset, "{topic}/{queue_id}: queue offset");
            assert_eq!(message.commit_log_offset as u64, sent.offset, "{topic}/{queue_id}: log offset");
            assert_eq!(message.message.body, sent.body, "{topic}/{queue_id}: body");
        }
        let max = expected.last().map_or(0, |last| last.queue_offset + 1);
        assert_eq!(store.max_offset(topic, *queue_id), max, "{topic}/{queue_id}: max offset");
    }
    let kept_keys: BTreeSet<&str> = kept.iter().map(|sent| sent.key.as_str()).collect();
    for sent in gone.iter().filter(|sent| !kept_keys.contains(sent.key.as_str())) {
        let found = store.query_by_key(&sent.topic, &sent.key, 8, 0, i64::MAX);
        assert!(found.messages.is_empty(), "the truncated {} is still found", sent.key);
    }
    for sent in kept {
        let found = store.query_by_key(&sent.topic, &sent.key, 8, 0, i64::MAX);
        assert_eq!(found.messages.len(), 1, "{} found once", sent.key);
        let view = RecordView::parse(found.messages[0].as_slice(), true).unwrap();
        assert_eq!(view.physical_offset() as u64, sent.offset, "{} found where it is", sent.key);
        assert_eq!(view.body(), &sent.body[..]);
    }
}

/// The records of `all` that start below `point`, and the others.
fn split_at_point(all: &[Sent], point: u64) -> (Vec<Sent>, Vec<Sent>) {
    all.iter().cloned().partition(|sent| sent.offset < point)
}

fn reopen(config: &StoreConfig, store: MessageStore, crash: bool) -> MessageStore {
    store.shutdown();
    drop(store);
    if crash {
        // What a crash leaves: the abort file, so recovery scans the log.
        std::fs::write(config.store_path_root_dir.join("abort"), b"").unwrap();
    }
    slave(config.clone())
}

/// A new master sharing `old`'s log up to `point`, then writing records of its own: first,
/// if given, one with the key, topic and queue of a dropped record and the given body, then
/// `count` more and one of a topic only it has. Returns it with those records.
fn new_master(
    root: &Path,
    old: &MessageStore,
    point: u64,
    replaced: Option<(&Sent, Vec<u8>)>,
    count: usize,
) -> (MessageStore, Vec<Sent>) {
    let store = slave(small_config(root));
    copy_log(old, &store, point, 5_000);
    store.set_replica_only(false);
    let mut sent = Vec::new();
    if let Some((replaced, body)) = replaced {
        sent.push(send(&store, &replaced.topic, replaced.queue_id, &replaced.key, body));
    }
    sent.extend(send_many(&store, "new", count, None));
    // A topic only the new master has.
    sent.push(send(&store, "TruncNew", 0, "fresh", b"fresh".to_vec()));
    (store, sent)
}

/// A body for a record stored where `outer` was that holds an encoded record with `hidden`'s
/// topic, queue and key exactly at `hidden`'s offset (which must lie past `outer`'s header).
fn body_hiding(outer: &Sent, hidden: &Sent) -> Vec<u8> {
    let marker = b"<-- the body starts here -->".to_vec();
    let probe = record(&outer.topic, outer.queue_id, &marker, Some("tag"), Some(&outer.key));
    let body_at = probe.windows(marker.len()).position(|window| window == marker).unwrap();
    let gap = (hidden.offset - outer.offset) as usize - body_at;
    let mut body = vec![b'p'; gap];
    body.extend(record(&hidden.topic, hidden.queue_id, b"hidden", Some("tag"), Some(&hidden.key)));
    body.extend_from_slice(b"tail");
    body
}

#[test]
fn a_slave_cut_mid_record_takes_its_new_masters_continuation() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let old = open_store(small_config(dirs[0].path())).unwrap();
    let mut sent = send_many(&old, "old", 500, None);
    // A queue only the dropped records use.
    sent.extend((0..5).map(|n| send(&old, "TruncGone", 1, &format!("gone-{n}"), vec![b'g'; 90])));
    let config = small_config(dirs[1].path());
    let store = slave(config.clone());
    copy_log(&old, &store, old.commit_log_max_offset(), 7_777);
    assert!(store.commit_log_max_offset() > 2 * 64 * 1024, "the log spans three files");

    // Cut inside record 230 (in the second file): the point is that record's start.
    let cut_inside = &sent[230];
    assert!(cut_inside.offset > 64 * 1024 && cut_inside.offset < 128 * 1024);
    let (kept, gone) = split_at_point(&sent, cut_inside.offset);
    store.epochs().lock().append(1, 0).unwrap();
    store.epochs().lock().append(2, sent[100].offset).unwrap();
    store.epochs().lock().append(3, cut_inside.offset).unwrap();
    store.epochs().lock().append(5, sent[400].offset).unwrap();
    let point = store.truncate_to(cut_inside.offset + 17).unwrap();
    assert_eq!(point, cut_inside.offset);
    assert_holds_exactly(&store, &kept, &gone);
    assert_eq!(
        store.epochs().lock().entries(),
        &[
            EpochEntry { epoch: 1, start_offset: 0, end_offset: sent[100].offset },
            EpochEntry { epoch: 2, start_offset: sent[100].offset, end_offset: OPEN_END },
        ],
        "entries starting at or after the point are dropped"
    );
    // Nothing left to drop: the same point again.
    assert_eq!(store.truncate_to(cut_inside.offset + 17).unwrap(), point);
    assert_eq!(store.truncate_to(point).unwrap(), point);

    let (master, continuation) = new_master(dirs[2].path(), &old, point, None, 300);
    assert!(continuation.iter().all(|sent| sent.offset >= point));
    copy_log(&master, &store, master.commit_log_max_offset(), 3_001);
    let mut expected = kept.clone();
    expected.extend(continuation.iter().cloned());
    assert_holds_exactly(&store, &expected, &gone);

    let store = reopen(&config, store, false);
    assert_holds_exactly(&store, &expected, &gone);
    // More from the master after the restart, then a crash.
    let more = send_many(&master, "more", 40, None);
    copy_log(&master, &store, master.commit_log_max_offset(), 1_000);
    expected.extend(more);
    let store = reopen(&config, store, true);
    assert_holds_exactly(&store, &expected, &gone);
}

#[test]
fn a_demoted_master_cut_at_a_record_boundary_under_sync_flush() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut config = small_config(dirs[0].path());
    config.flush_disk_type = FlushDiskType::SyncFlush;
    // The old master: its own appends, then demoted.
    let store = open_store(config.clone()).unwrap();
    let sent = send_many(&store, "old", 560, None);
    // The newest file is more than half full: the next one is made ahead of time.
    let end = store.commit_log_max_offset();
    assert!(end > 2 * 64 * 1024 + 32 * 1024 && end < 3 * 64 * 1024, "end {end}");
    let next_file = dirs[0].path().join("commitlog").join(format!("{:020}", 3 * 64 * 1024));
    for _ in 0..500 {
        if next_file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(next_file.exists(), "the next file is made ahead");
    store.set_replica_only(true);
    let refused = store.put_blocking(PutRequest::new(record("TruncA", 0, b"late", None, None)));
    assert_eq!(refused.status, PutStatus::ServiceNotAvailable);

    let boundary = &sent[333];
    let (kept, gone) = split_at_point(&sent, boundary.offset);
    let point = store.truncate_to(boundary.offset).unwrap();
    assert_eq!(point, boundary.offset, "a record boundary is kept as it is");
    assert_holds_exactly(&store, &kept, &gone);
    assert!(!next_file.exists(), "a file made ahead past the new end would leave a gap");
    // A crash right after the cut recovers to it: nothing dropped comes back.
    let store = reopen(&config, store, true);
    assert_holds_exactly(&store, &kept, &gone);

    // The new master writes a record with the dropped one's key at the very same offset: the
    // key is found once, with the new body. That body hides, where the next dropped record
    // started, a record with that one's key: its index entry must not find it.
    let body = body_hiding(boundary, &sent[334]);
    let (master, continuation) = new_master(dirs[1].path(), &store, point, Some((boundary, body)), 120);
    assert_eq!(continuation[0].offset, boundary.offset);
    assert_ne!(continuation[0].body, boundary.body);
    copy_log(&master, &store, master.commit_log_max_offset(), 64 * 1024);
    let mut expected = kept;
    expected.extend(continuation);
    assert_holds_exactly(&store, &expected, &gone);
    let store = reopen(&config, store, false);
    assert_holds_exactly(&store, &expected, &gone);
    let store = reopen(&config, store, true);
    assert_holds_exactly(&store, &expected, &gone);
}

#[test]
fn an_offset_past_the_end_drops_only_a_trailing_partial_record() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let old = open_store(small_config(dirs[0].path())).unwrap();
    let sent = send_many(&old, "old", 60, None);
    let store = slave(small_config(dirs[1].path()));
    // The slave got the last record only in part.
    let last = sent.last().unwrap();
    copy_log(&old, &store, last.offset + last.size / 2, 4_000);
    let (kept, gone) = split_at_point(&sent, last.offset);
    assert_eq!(store.truncate_to(u64::MAX).unwrap(), last.offset);
    assert_holds_exactly(&store, &kept, &gone);
    // Whole log: nothing to drop.
    copy_log(&old, &store, old.commit_log_max_offset(), 4_000);
    assert_eq!(store.truncate_to(u64::MAX).unwrap(), old.commit_log_max_offset());
    assert_holds_exactly(&store, &sent, &[]);
    // Everything: an empty log, which takes the log again from its first byte.
    let (_, gone) = split_at_point(&sent, 0);
    assert_eq!(store.truncate_to(0).unwrap(), 0);
    assert_holds_exactly(&store, &[], &gone);
    copy_log(&old, &store, old.commit_log_max_offset(), 4_000);
    assert_holds_exactly(&store, &sent, &[]);
}

#[test]
fn truncation_is_refused_unless_the_store_is_replica_only() {
    let (_dir, store) = common::fresh_store();
    let sent = send_many(&store, "old", 20, None);
    let end = store.commit_log_max_offset();
    let refused = store.truncate_to(sent[5].offset);
    assert!(matches!(refused, Err(TruncateError::NotReplicaOnly)), "{refused:?}");
    assert_holds_exactly(&store, &sent, &[]);
    assert_eq!(store.commit_log_max_offset(), end);
    // Holding the epoch file while truncating is refused, not a deadlock.
    store.set_replica_only(true);
    let held = store.epochs().lock();
    let refused = store.truncate_to(sent[5].offset);
    assert!(matches!(refused, Err(TruncateError::EpochsLocked)), "{refused:?}");
    drop(held);
    assert_holds_exactly(&store, &sent, &[]);
    assert_eq!(store.truncate_to(sent[5].offset).unwrap(), sent[5].offset);
}
