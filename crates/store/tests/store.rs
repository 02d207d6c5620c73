//! The store end to end: appends, reads, restarts, recovery from torn tails, retention and
//! a full disk.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apogee_common::java_string_hash;
use apogee_common::message::property;
use apogee_common::message::record::RecordView;
use apogee_store::disk::{DiskSpace, DiskUsage};
use apogee_store::{
    AcceptAll, BoundaryType, FlushDiskType, GetMessageStatus, MessageFilter, MessageStore, PutRequest,
    PutStatus,
};
use common::{read_all, record, small_config};

#[test]
fn every_field_survives_append_and_read() {
    let (_dir, store) = common::fresh_store();
    let mut offsets = Vec::new();
    for n in 0..50 {
        let body = format!("body-{n}");
        let result =
            store.put_blocking(PutRequest::new(record("T", 1, body.as_bytes(), Some("TagA"), Some("k1 k2"))));
        assert_eq!(result.status, PutStatus::PutOk);
        let append = result.append.unwrap();
        assert_eq!(append.queue_offset, n);
        offsets.push(append.commit_log_offset);
    }
    let messages = read_all(&store, "T", 1);
    assert_eq!(messages.len(), 50);
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(message.message.topic, "T");
        assert_eq!(message.queue_id, 1);
        assert_eq!(message.queue_offset, n as i64);
        assert_eq!(message.commit_log_offset, offsets[n] as i64);
        assert_eq!(&message.message.body[..], format!("body-{n}").as_bytes());
        assert_eq!(message.message.tags(), Some("TagA"));
        assert_eq!(message.message.property(property::KEYS), Some("k1 k2"));
        assert!(message.store_timestamp >= 1_700_000_000_000);
        assert_eq!(message.born_host.to_string(), "127.0.0.1:50000");
    }
    assert_eq!(store.min_offset("T", 1), 0);
    assert_eq!(store.max_offset("T", 1), 50);
    assert_eq!(store.max_offset("T", 2), 0);
}

#[test]
fn reads_cross_file_boundaries_and_batches_are_one_unit() {
    let (_dir, store) = common::fresh_store();
    let body = vec![b'x'; 700];
    for _ in 0..300 {
        assert_eq!(
            store.put_blocking(PutRequest::new(record("T", 0, &body, None, None))).status,
            PutStatus::PutOk
        );
    }
    assert!(store.commit_log_max_offset() > 3 * 64 * 1024, "spans several commit-log files");
    let batch: Vec<u8> =
        (0..5).flat_map(|n| record("T", 0, format!("b{n}").as_bytes(), None, None)).collect();
    let result = store.put_blocking(PutRequest::new(batch));
    let append = result.append.unwrap();
    assert_eq!((append.queue_offset, append.message_count), (300, 5));

    let messages = read_all(&store, "T", 0);
    assert_eq!(messages.len(), 305);
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(message.queue_offset, n as i64);
    }
    assert_eq!(&messages[304].message.body[..], b"b4");
    assert_eq!(
        messages[304].commit_log_offset,
        messages[303].commit_log_offset + messages[303].store_size as i64
    );
}

#[test]
fn malformed_and_oversized_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.max_message_size = 1024;
    let store = common::open_store(config).unwrap();
    assert_eq!(store.put_blocking(PutRequest::new(vec![1, 2, 3])).status, PutStatus::MessageIllegal);
    let mut damaged = record("T", 0, b"x", None, None);
    damaged[4] ^= 0xff;
    assert_eq!(store.put_blocking(PutRequest::new(damaged)).status, PutStatus::MessageIllegal);
    assert_eq!(
        store.put_blocking(PutRequest::new(record("T", 0, &[0; 2048], None, None))).status,
        PutStatus::MessageIllegal
    );
    let mixed: Vec<u8> = [record("T", 0, b"a", None, None), record("U", 0, b"b", None, None)].concat();
    assert_eq!(store.put_blocking(PutRequest::new(mixed)).status, PutStatus::MessageIllegal);
    assert_eq!(
        store.put_blocking(PutRequest::new(record("T", 0, b"ok", None, None))).status,
        PutStatus::PutOk
    );
    assert_eq!(read_all(&store, "T", 0).len(), 1, "nothing of the refused appends was stored");
}

struct TagFilter(Vec<i64>);

impl MessageFilter for TagFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        self.0.contains(&tags_code)
    }
}

#[test]
fn lookups_by_tag_time_offset_and_key() {
    let (_dir, store) = common::fresh_store();
    let mut stored = Vec::new();
    for n in 0..30 {
        let tags = if n % 3 == 0 { "TagA" } else { "TagB" };
        let keys = format!("order-{n}");
        let result = store.put_blocking(PutRequest::new(record("T", 0, b"x", Some(tags), Some(&keys))));
        stored.push(result.append.unwrap());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let filter = TagFilter(vec![i64::from(java_string_hash("TagA"))]);
    let result = store.get_messages("T", 0, 0, 32, u64::MAX, &filter);
    assert_eq!(result.status, GetMessageStatus::Found);
    assert_eq!(result.queue_offsets, (0..30).filter(|n| n % 3 == 0).collect::<Vec<i64>>());
    let none = store.get_messages("T", 0, 1, 1, u64::MAX, &TagFilter(vec![1]));
    // Like Java, a read that finds nothing examines a whole scan window before giving up.
    assert_eq!((none.status, none.next_begin_offset), (GetMessageStatus::NoMatchedMessage, 30));

    let middle = stored[15].store_timestamp;
    assert_eq!(store.offset_by_time("T", 0, middle, BoundaryType::Lower), 15);
    assert_eq!(store.offset_by_time("T", 0, middle, BoundaryType::Upper), 15);
    assert_eq!(store.offset_by_time("T", 0, 0, BoundaryType::Lower), 0);
    assert_eq!(store.earliest_store_timestamp("T", 0), stored[0].store_timestamp);
    assert_eq!(store.earliest_store_timestamp("T", 9), -1);

    let view = store.message_at(stored[7].commit_log_offset).unwrap();
    assert_eq!(RecordView::parse(view.as_slice(), true).unwrap().queue_offset(), 7);
    assert!(store.message_at(store.commit_log_max_offset()).is_none());

    let found = store.query_by_key("T", "order-12", 32, 0, i64::MAX);
    assert_eq!(found.messages.len(), 1);
    assert_eq!(RecordView::parse(found.messages[0].as_slice(), true).unwrap().queue_offset(), 12);
    assert!(store.query_by_key("T", "order-99", 32, 0, i64::MAX).messages.is_empty());
    assert!(store.query_by_key("U", "order-12", 32, 0, i64::MAX).messages.is_empty());

    let too_small = store.get_messages("T", 0, -5, 32, u64::MAX, &AcceptAll);
    assert_eq!((too_small.status, too_small.next_begin_offset), (GetMessageStatus::OffsetTooSmall, 0));
    let beyond = store.get_messages("T", 0, 99, 32, u64::MAX, &AcceptAll);
    assert_eq!((beyond.status, beyond.next_begin_offset), (GetMessageStatus::OffsetOverflowBadly, 30));
    let at_end = store.get_messages("T", 0, 30, 32, u64::MAX, &AcceptAll);
    assert_eq!(at_end.status, GetMessageStatus::OffsetOverflowOne);
    assert_eq!(
        store.get_messages("Nope", 0, 0, 32, u64::MAX, &AcceptAll).status,
        GetMessageStatus::NoMatchedLogicQueue
    );
}

#[test]
fn clean_restart_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let end = {
        let store = common::open_store(small_config(dir.path())).unwrap();
        for n in 0..200u32 {
            store.put_blocking(PutRequest::new(record("T", (n % 3) as i32, &n.to_be_bytes(), None, None)));
        }
        let end = store.commit_log_max_offset();
        store.shutdown();
        end
    };
    assert!(!dir.path().join("abort").exists(), "a clean shutdown removes the abort file");
    let store = common::open_store(small_config(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), end);
    assert_eq!(store.max_offset("T", 0) + store.max_offset("T", 1) + store.max_offset("T", 2), 200);
    let append = store.put_blocking(PutRequest::new(record("T", 1, b"after", None, None))).append.unwrap();
    assert_eq!(append.commit_log_offset, end);
    assert_eq!(append.queue_offset, 67);
    assert_eq!(read_all(&store, "T", 1).len(), 68);
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _store = common::open_store(small_config(dir.path())).unwrap();
    assert!(matches!(common::open_store(small_config(dir.path())), Err(apogee_store::StoreError::Locked(_))));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Restores the store as it was at shutdown, then zeroes the first commit-log file from `cut`
/// on and leaves the abort file behind, as a crash in the middle of that write would.
fn tear_commit_log(pristine: &Path, root: &Path, cut: usize) {
    let _ = fs::remove_dir_all(root);
    copy_dir(pristine, root);
    let path = root.join("commitlog").join("00000000000000000000");
    let mut bytes = fs::read(&path).unwrap();
    bytes[cut..].fill(0);
    fs::write(path, bytes).unwrap();
    fs::write(root.join("abort"), b"crash").unwrap();
}

#[test]
fn a_torn_last_record_recovers_to_exactly_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (last_start, last_end) = {
        let store = common::open_store(small_config(dir.path())).unwrap();
        let mut last = None;
        for n in 0..20u32 {
            let result = store.put_blocking(PutRequest::new(record(
                "T",
                0,
                format!("m{n}").as_bytes(),
                Some("t"),
                Some("k"),
            )));
            last = result.append;
        }
        store.shutdown();
        let last = last.unwrap();
        (last.commit_log_offset as usize, last.commit_log_offset as usize + last.wrote_bytes as usize)
    };
    let pristine = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), pristine.path());
    let _ = fs::remove_file(pristine.path().join("lock"));
    let root = dir.path().join("torn");
    let pristine_bytes = fs::read(pristine.path().join("commitlog").join("00000000000000000000")).unwrap();
    for cut in last_start..=last_end {
        tear_commit_log(pristine.path(), &root, cut);
        let store = common::open_store(small_config(&root)).unwrap();
        // Zeroing bytes that were zero already leaves the record whole.
        let intact = pristine_bytes[cut..last_end].iter().all(|byte| *byte == 0);
        assert_eq!(intact, cut == last_end, "a record with properties ends in a non-zero byte");
        let expected = if intact { 20 } else { 19 };
        let messages = read_all(&store, "T", 0);
        assert_eq!(messages.len(), expected, "cut at byte {cut}");
        assert_eq!(store.commit_log_max_offset() as usize, if intact { last_end } else { last_start });
        for (n, message) in messages.iter().enumerate() {
            assert_eq!(&message.message.body[..], format!("m{n}").as_bytes());
        }
        // The store keeps working after recovery: the next append lands at the cut.
        let append = store.put_blocking(PutRequest::new(record("T", 0, b"next", None, None))).append.unwrap();
        assert_eq!(append.queue_offset, expected as i64);
        store.shutdown();
    }
}

#[test]
fn consume_queues_are_rebuilt_from_the_commit_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open_store(small_config(dir.path())).unwrap();
        for n in 0..100u32 {
            store.put_blocking(PutRequest::new(record(
                "T",
                (n % 4) as i32,
                &n.to_be_bytes(),
                None,
                Some("key"),
            )));
        }
        store.shutdown();
    }
    fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    fs::write(dir.path().join("abort"), b"crash").unwrap();
    let store = common::open_store(small_config(dir.path())).unwrap();
    for queue_id in 0..4 {
        let messages = read_all(&store, "T", queue_id);
        assert_eq!(messages.len(), 25, "queue {queue_id}");
        assert!(messages.iter().enumerate().all(|(n, message)| message.queue_offset == n as i64));
    }
}

#[test]
fn sync_flush_answers_every_waiter_after_one_group_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.flush_disk_type = FlushDiskType::SyncFlush;
    config.mapped_file_size_commit_log = 1024 * 1024;
    let store = Arc::new(common::open_store(config).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..100u32 {
                    let result = store.put_blocking(PutRequest::new(record(
                        "S",
                        thread,
                        &n.to_be_bytes(),
                        None,
                        None,
                    )));
                    assert_eq!(result.status, PutStatus::PutOk);
                    let append = result.append.unwrap();
                    let record_end = append.commit_log_offset + u64::from(append.wrote_bytes);
                    assert!(
                        store.commit_log_flushed_offset() >= record_end,
                        "acknowledged before the flush covered the whole record"
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total: i64 = (0..8).map(|queue| store.max_offset("S", queue)).sum();
    assert_eq!(total, 800);
}

struct FakeDisk(Arc<AtomicU32>);

impl DiskUsage for FakeDisk {
    fn space(&self, _path: &Path) -> std::io::Result<DiskSpace> {
        Ok(DiskSpace { used_percent: self.0.load(Ordering::SeqCst), available_bytes: u64::MAX })
    }
}

#[test]
fn a_full_disk_refuses_appends_and_keeps_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let used = Arc::new(AtomicU32::new(50));
    let mut config = small_config(dir.path());
    config.clean_file_forcibly_enable = false;
    let store = MessageStore::open_with_disk(config, Box::new(FakeDisk(Arc::clone(&used)))).unwrap();
    for n in 0..10u32 {
        assert_eq!(
            store.put_blocking(PutRequest::new(record("T", 0, &n.to_be_bytes(), None, None))).status,
            PutStatus::PutOk
        );
    }
    used.store(95, Ordering::SeqCst);
    store.run_retention();
    assert!(!store.is_writeable());
    assert_eq!(
        store.put_blocking(PutRequest::new(record("T", 0, b"refused", None, None))).status,
        PutStatus::ServiceNotAvailable
    );
    assert_eq!(read_all(&store, "T", 0).len(), 10, "stored messages stay readable");
    used.store(60, Ordering::SeqCst);
    store.run_retention();
    assert_eq!(
        store.put_blocking(PutRequest::new(record("T", 0, b"again", None, None))).status,
        PutStatus::PutOk
    );
    assert_eq!(read_all(&store, "T", 0).len(), 11);
}

/// Sets a file's modification time `hours` into the past.
fn age_file(path: &Path, hours: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(when).unwrap();
}

#[test]
fn retention_deletes_expired_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FakeDisk(Arc::new(AtomicU32::new(10)));
    let store = MessageStore::open_with_disk(small_config(dir.path()), Box::new(disk)).unwrap();
    let body = vec![b'r'; 1000];
    for _ in 0..300 {
        store.put_blocking(PutRequest::new(record("T", 0, &body, None, Some("key"))));
    }
    let commit_log_dir = dir.path().join("commitlog");
    let mut files: Vec<_> =
        fs::read_dir(&commit_log_dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 5, "{} files", files.len());
    // The two oldest are past fileReservedTime (72 h); the third is young.
    age_file(&files[0], 100);
    age_file(&files[1], 73);
    age_file(&files[2], 1);
    age_file(&files[3], 200);
    // Controller mode's epochs: the first two own only bytes of the files about to go.
    let file_size = 64 * 1024;
    for (epoch, start) in [(1, 0), (2, file_size + 100), (3, 2 * file_size), (4, 3 * file_size + 7)] {
        store.epochs().lock().append(epoch, start).unwrap();
    }
    store.run_retention();
    let epochs: Vec<(i32, u64)> =
        store.epochs().lock().entries().iter().map(|entry| (entry.epoch, entry.start_offset)).collect();
    assert_eq!(epochs, [(3, 2 * file_size), (4, 3 * file_size + 7)], "epochs below the new start dropped");
    assert!(!files[0].exists() && !files[1].exists(), "expired files deleted");
    assert!(files[2].exists(), "a young file stops the deletion");
    assert!(files[3].exists(), "files after the first kept one stay, whatever their age");
    let min_commit_log = store.commit_log_min_offset();
    assert_eq!(min_commit_log, 2 * 64 * 1024);
    let min_offset = store.min_offset("T", 0);
    assert!(min_offset > 0);
    let first = store.get_messages("T", 0, min_offset, 1, u64::MAX, &AcceptAll);
    assert_eq!(first.status, GetMessageStatus::Found);
    let first_offset = RecordView::parse(first.messages[0].as_slice(), true).unwrap().physical_offset();
    assert!(first_offset as u64 >= min_commit_log);
    let before = store.get_messages("T", 0, 0, 1, u64::MAX, &AcceptAll);
    assert_eq!((before.status, before.next_begin_offset), (GetMessageStatus::OffsetTooSmall, min_offset));
    assert_eq!(read_all(&store, "T", 0).len() as i64, 300 - min_offset);
}

/// Appends queued by several threads and run by them (`put_queued` + `append_queued`), mixed
/// with `put`s the appender thread runs: every append is answered once, and each queue's
/// offsets are dense and in commit-log order, whoever ran the round.
#[test]
fn queued_appends_from_many_threads_are_each_stored_once_in_order() {
    const THREADS: usize = 4;
    const BATCHES: usize = 50;
    const PER_BATCH: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open_store(small_config(dir.path())).unwrap());
    let (answers, answered) = std::sync::mpsc::channel();
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            let answers = answers.clone();
            std::thread::spawn(move || {
                for batch in 0..BATCHES {
                    for n in 0..PER_BATCH {
                        let body = format!("{thread}-{batch}-{n}");
                        let answers = answers.clone();
                        let request =
                            PutRequest::new(record("Q", thread as i32, body.as_bytes(), None, None));
                        let callback = Box::new(move |result: apogee_store::PutResult| {
                            answers.send((thread, result)).unwrap();
                        });
                        // Every third batch goes through the appender thread instead.
                        if batch % 3 == 2 {
                            store.put(request, callback);
                        } else {
                            store.put_queued(request, callback);
                        }
                    }
                    store.append_queued();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    drop(answers);
    let mut results: Vec<Vec<apogee_store::AppendInfo>> = vec![Vec::new(); THREADS];
    for _ in 0..THREADS * BATCHES * PER_BATCH {
        let (thread, result) = answered.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(result.status, PutStatus::PutOk);
        results[thread].push(result.append.unwrap());
    }
    assert!(answered.recv_timeout(std::time::Duration::from_millis(100)).is_err(), "one answer per append");
    for (thread, mut appends) in results.into_iter().enumerate() {
        appends.sort_by_key(|append| append.queue_offset);
        let offsets: Vec<i64> = appends.iter().map(|append| append.queue_offset).collect();
        assert_eq!(offsets, (0..(BATCHES * PER_BATCH) as i64).collect::<Vec<_>>());
        assert!(appends.windows(2).all(|pair| pair[0].commit_log_offset < pair[1].commit_log_offset));
        // Each thread queued its messages in order, so the queue holds them in that order.
        let bodies: Vec<String> = read_all(&store, "Q", thread as i32)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.message.body).into())
            .collect();
        let expected: Vec<String> = (0..BATCHES)
            .flat_map(|batch| (0..PER_BATCH).map(move |n| format!("{thread}-{batch}-{n}")))
            .collect();
        assert_eq!(bodies, expected);
    }
}

/// An append queued by a caller that never runs `append_queued` is still stored: the appender
/// thread takes it within its idle check.
#[test]
fn a_queued_append_nobody_runs_is_taken_by_the_appender_thread() {
    let (_dir, store) = common::fresh_store();
    let (answer, answered) = std::sync::mpsc::channel();
    store.put_queued(
        PutRequest::new(record("S", 0, b"stranded", None, None)),
        Box::new(move |result| answer.send(result).unwrap()),
    );
    let result = answered.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(result.status, PutStatus::PutOk);
    assert_eq!(read_all(&store, "S", 0).len(), 1);
}

/// After shutdown, queued appends are refused with SERVICE_NOT_AVAILABLE, not left waiting.
#[test]
fn queued_appends_after_shutdown_are_refused() {
    let (_dir, store) = common::fresh_store();
    store.shutdown();
    let (answer, answered) = std::sync::mpsc::channel();
    store.put_queued(
        PutRequest::new(record("S", 0, b"late", None, None)),
        Box::new(move |result| answer.send(result).unwrap()),
    );
    store.append_queued();
    let result = answered.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(result.status, PutStatus::ServiceNotAvailable);
}

/// A round that panics (here a callback, standing in for any bug) answers every other append
/// of the round, refuses writes from then on, and leaves no append waiting.
#[test]
fn a_panicking_round_answers_the_rest_and_stops_writes() {
    let (_dir, store) = common::fresh_store();
    let (answers, answered) = std::sync::mpsc::channel();
    for n in 0..3 {
        let answers = answers.clone();
        store.put_queued(
            PutRequest::new(record("P", 0, format!("m{n}").as_bytes(), None, None)),
            Box::new(move |result: apogee_store::PutResult| {
                if n == 1 {
                    panic!("a callback bug");
                }
                answers.send((n, result.status)).unwrap();
            }),
        );
    }
    store.append_queued();
    let mut got: Vec<i32> =
        (0..2).map(|_| answered.recv_timeout(std::time::Duration::from_secs(5)).unwrap().0).collect();
    got.sort();
    assert_eq!(got, [0, 2]);
    assert!(!store.is_writeable());
    let after = store.put_blocking(PutRequest::new(record("P", 0, b"after", None, None)));
    assert_eq!(after.status, PutStatus::ServiceNotAvailable);
}

/// Every key is found right after its append, and after a clean shutdown (which skips the
/// scan on reopening) the reopened store still finds every key.
#[test]
fn every_key_is_found_at_once_and_after_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let count = 2_000;
    {
        let store = common::open_store(small_config(dir.path())).unwrap();
        for n in 0..count {
            let keys = format!("key-{n}");
            let result = store.put_blocking(PutRequest::new(record("K", n % 4, b"x", None, Some(&keys))));
            assert_eq!(result.status, PutStatus::PutOk);
        }
        let last = format!("key-{}", count - 1);
        assert_eq!(store.query_by_key("K", &last, 32, 0, i64::MAX).messages.len(), 1);
        for n in count..count + 500 {
            let keys = format!("key-{n}");
            store.put_blocking(PutRequest::new(record("K", n % 4, b"x", None, Some(&keys))));
        }
        store.shutdown();
    }
    let store = common::open_store(small_config(dir.path())).unwrap();
    for n in (0..count + 500).step_by(97).chain([count + 499]) {
        let found = store.query_by_key("K", &format!("key-{n}"), 32, 0, i64::MAX);
        assert_eq!(found.messages.len(), 1, "key-{n}");
    }
}
