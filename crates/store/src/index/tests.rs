//! Behaviour of the index as the store sees it: put, query, roll, reopen, delete, corrupt input.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use apogee_common::java_string_hash;
use proptest::prelude::*;

use super::*;

const T0: i64 = 1_700_000_000_000;
const NOT_TRANSACTIONAL: i32 = 0;
const EVERYTHING: (i64, i64) = (0, i64::MAX);

fn config(slots: u32, max_index: u32) -> IndexConfig {
    IndexConfig { max_hash_slot_num: slots, max_index_num: max_index }
}

fn open(dir: &Path, config: IndexConfig) -> IndexService {
    IndexService::open(dir, config).expect("open index")
}

/// An index with `config` in a fresh temporary directory; bound as `(dir, service)`, the
/// service is dropped before its directory.
fn open_fresh(config: IndexConfig) -> (tempfile::TempDir, IndexService) {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = open(dir.path(), config);
    (dir, service)
}

/// Leaves in `dir` one cleanly shut down index (5 slots, 8 entries) holding key `k` of topic
/// `T` at offset 0: the files the reopen tests then tamper with.
fn one_entry_index(dir: &Path) {
    let service = open(dir, config(5, 8));
    put(&service, "T", "k", None, 0, T0);
    service.shutdown().expect("shutdown");
}

fn put(service: &IndexService, topic: &str, keys: &str, uniq: Option<&str>, offset: i64, timestamp: i64) {
    service.build_index(topic, Some(keys), uniq, offset, timestamp, NOT_TRANSACTIONAL).expect("build_index");
}

fn query_all(service: &IndexService, topic: &str, key: &str) -> Vec<i64> {
    service.query(topic, key, MAX_QUERY_RESULTS, EVERYTHING.0, EVERYTHING.1).phy_offsets
}

/// Index file paths in `dir`, oldest first.
fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(name::is_index_file_name))
        .collect();
    paths.sort();
    paths
}

fn entry_pos(slots: u32, n: u32) -> usize {
    INDEX_HEADER_SIZE + slots as usize * INDEX_SLOT_SIZE + n as usize * INDEX_ENTRY_SIZE
}

#[test]
fn service_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<IndexService>();
}

#[test]
fn key_hash_is_javas_abs_hash_with_overflow_to_zero() {
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(positive_key_hash(i32::MIN), 0);
    assert_eq!(positive_key_hash(-5), 5);
    assert_eq!(index_key_hash("TopicTest", "order-1"), java_string_hash("TopicTest#order-1").abs());
}

proptest! {
    #[test]
    fn key_hash_equals_hash_of_the_joined_key(topic in "\\PC{0,20}", key in "\\PC{0,40}") {
        let joined = format!("{topic}#{key}");
        prop_assert_eq!(index_key_hash(&topic, &key), positive_key_hash(java_string_hash(&joined)));
    }
}

#[test]
fn round_trip_with_slot_collisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three slots for 200 keys: every chain mixes many different hashes.
    let service = open(dir.path(), config(3, 1000));
    for i in 0..100i64 {
        let keys = format!("K{} shared", i % 10);
        put(&service, "TopicA", &keys, Some(&format!("U{i}")), i * 100, T0 + i * 1000);
    }
    for i in 0..100i64 {
        assert_eq!(query_all(&service, "TopicA", &format!("U{i}")), vec![i * 100], "U{i}");
    }
    let expected: Vec<i64> = (0..100i64).rev().filter(|i| i % 10 == 3).map(|i| i * 100).collect();
    assert_eq!(query_all(&service, "TopicA", "K3"), expected);
    assert_eq!(query_all(&service, "TopicA", "shared").len(), 64);
    assert!(query_all(&service, "TopicB", "K3").is_empty(), "topic is part of the key");
    assert!(query_all(&service, "TopicA", "missing").is_empty());

    let result = service.query("TopicA", "K3", 10, 0, i64::MAX);
    assert_eq!(result.index_last_update_phy_offset, 99 * 100);
    assert_eq!(result.index_last_update_timestamp, T0 + 99 * 1000);
}

#[test]
fn java_hash_collisions_return_every_candidate() {
    // "Aa" and "BB" have the same Java hash, so the index cannot tell them apart.
    assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    let (_dir, service) = open_fresh(config(16, 100));
    put(&service, "T", "Aa", None, 10, T0);
    put(&service, "T", "BB", None, 20, T0 + 1000);
    assert_eq!(query_all(&service, "T", "Aa"), vec![20, 10]);
    assert_eq!(query_all(&service, "T", "BB"), vec![20, 10]);
}

#[test]
fn keys_are_split_on_spaces_and_empty_keys_ignored() {
    let (_dir, service) = open_fresh(config(16, 100));
    put(&service, "T", "  a  b ", None, 1, T0);
    assert_eq!(query_all(&service, "T", "a"), vec![1]);
    assert_eq!(query_all(&service, "T", "b"), vec![1]);
    assert!(query_all(&service, "T", "").is_empty());
    assert_eq!(service.file_headers()[0].1.index_count, 3, "two entries, numbering from 1");
    // No keys at all: nothing to index, no file needed.
    let empty = tempfile::tempdir().expect("tempdir");
    let quiet = open(empty.path(), config(16, 100));
    quiet.build_index("T", Some("   "), None, 5, T0, NOT_TRANSACTIONAL).expect("build_index");
    quiet.build_index("T", None, None, 6, T0, NOT_TRANSACTIONAL).expect("build_index");
    assert!(index_files(empty.path()).is_empty());
}

#[test]
fn time_range_filters_entries() {
    let (_dir, service) = open_fresh(config(7, 1000));
    for i in 0..10i64 {
        put(&service, "T", "k", None, i, T0 + i * 10_000);
    }
    let result = service.query("T", "k", 64, T0 + 30_000, T0 + 60_000);
    assert_eq!(result.phy_offsets, vec![6, 5, 4, 3]);
    // Entries keep whole seconds since the file's begin: 500 ms into a second still matches.
    assert_eq!(service.query("T", "k", 64, T0 + 89_500, T0 + 90_000).phy_offsets, vec![9]);
    assert!(service.query("T", "k", 64, T0 + 100_000, T0 + 200_000).phy_offsets.is_empty());
    assert!(service.query("T", "k", 64, 0, T0 - 1).phy_offsets.is_empty());
}

#[test]
fn max_num_is_capped() {
    let (_dir, service) = open_fresh(config(11, 1000));
    for i in 0..100i64 {
        put(&service, "T", "k", None, i, T0 + i);
    }
    let all = service.query("T", "k", 1000, 0, i64::MAX).phy_offsets;
    assert_eq!(all.len(), MAX_QUERY_RESULTS);
    assert_eq!(all[0], 99);
    assert_eq!(service.query("T", "k", 5, 0, i64::MAX).phy_offsets, vec![99, 98, 97, 96, 95]);
    assert!(service.query("T", "k", 0, 0, i64::MAX).phy_offsets.is_empty());
}

#[test]
fn rolls_over_and_queries_newest_file_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Four entry positions: entries 1..=3 per file.
    let service = open(dir.path(), config(5, 4));
    for i in 0..10i64 {
        put(&service, "T", "k", None, i * 10, T0 + i * 1000);
    }
    let files = index_files(dir.path());
    assert_eq!(files.len(), 4);
    let names: Vec<_> = files.iter().map(|p| p.file_name().map(|n| n.to_owned())).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "names are distinct and in creation order");
    assert_eq!(query_all(&service, "T", "k"), (0..10i64).rev().map(|i| i * 10).collect::<Vec<_>>());

    // A new file starts where its predecessor ended.
    let headers: Vec<_> = service.file_headers().into_iter().map(|(_, h)| h).collect();
    assert_eq!((headers[1].begin_phy_offset, headers[1].end_phy_offset), (30, 50));
    assert_eq!((headers[3].begin_timestamp, headers[3].index_count), (T0 + 9000, 2));

    // Only the full files' syncs count for the checkpoint, and only once done.
    service.flush().expect("flush");
    assert_eq!(service.last_flushed_full_file_end_timestamp(), T0 + 8000);

    // A window that starts inside the second file stops the walk there.
    let result = service.query("T", "k", 64, T0 + 4000, T0 + 7000);
    assert_eq!(result.phy_offsets, vec![70, 60, 50, 40]);
}

#[test]
fn reopen_from_disk_and_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(5, 8);
    let before = {
        let service = open(dir.path(), cfg);
        for i in 0..20i64 {
            put(&service, "T", &format!("k{} all", i % 3), Some(&format!("u{i}")), i * 7, T0 + i * 1000);
        }
        service.shutdown().expect("shutdown");
        assert!(service.build_index("T", Some("x"), None, 1000, T0, NOT_TRANSACTIONAL).is_err());
        (query_all(&service, "T", "k1"), query_all(&service, "T", "all"), query_all(&service, "T", "u4"))
    };
    let service = open(dir.path(), cfg);
    let after =
        (query_all(&service, "T", "k1"), query_all(&service, "T", "all"), query_all(&service, "T", "u4"));
    assert_eq!(before, after);
    assert_eq!(after.2, vec![28]);
    let full_files = service.file_headers().iter().filter(|(_, h)| h.index_count == 8).count();
    assert!(full_files > 0);
    assert!(service.last_flushed_full_file_end_timestamp() > 0, "loaded full files count as flushed");

    // Re-dispatched messages are skipped, new ones appended.
    put(&service, "T", "k1", None, 19 * 7, T0 + 19_000);
    put(&service, "T", "k1", None, 500, T0 + 30_000);
    let mut expected = vec![500];
    expected.extend(before.0);
    assert_eq!(query_all(&service, "T", "k1"), expected);
}

/// Builds an index file the way the spec describes it, independently of the writer.
fn handwritten_file(slots: u32, max_index: u32, messages: &[(&str, i64, i64)]) -> Vec<u8> {
    let mut bytes = vec![0u8; entry_pos(slots, max_index)];
    let begin_timestamp = messages[0].2;
    let mut slot_values = vec![0i32; slots as usize];
    let mut used_slots = 0i32;
    for (n, (key, phy_offset, timestamp)) in messages.iter().enumerate() {
        let n = n as u32 + 1;
        let hash = java_string_hash(key).checked_abs().unwrap_or(0);
        let slot = hash as usize % slots as usize;
        let prev = slot_values[slot];
        if prev == 0 {
            used_slots += 1;
        }
        // The first entry is written while the header still has no begin timestamp: diff 0.
        let diff = if n == 1 { 0 } else { ((timestamp - begin_timestamp) / 1000) as i32 };
        let at = entry_pos(slots, n);
        bytes[at..at + 4].copy_from_slice(&hash.to_be_bytes());
        bytes[at + 4..at + 12].copy_from_slice(&phy_offset.to_be_bytes());
        bytes[at + 12..at + 16].copy_from_slice(&diff.to_be_bytes());
        bytes[at + 16..at + 20].copy_from_slice(&prev.to_be_bytes());
        slot_values[slot] = n as i32;
    }
    for (slot, value) in slot_values.iter().enumerate() {
        let at = INDEX_HEADER_SIZE + slot * 4;
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
    let last = messages[messages.len() - 1];
    bytes[0..8].copy_from_slice(&begin_timestamp.to_be_bytes());
    bytes[8..16].copy_from_slice(&last.2.to_be_bytes());
    bytes[16..24].copy_from_slice(&messages[0].1.to_be_bytes());
    bytes[24..32].copy_from_slice(&last.1.to_be_bytes());
    bytes[32..36].copy_from_slice(&used_slots.to_be_bytes());
    bytes[36..40].copy_from_slice(&(messages.len() as i32 + 1).to_be_bytes());
    bytes
}

#[test]
fn reads_a_file_written_from_the_spec_and_writes_the_same_bytes() {
    let (slots, max_index) = (4, 10);
    let messages = [
        ("TopicA#order-1", 0, T0),
        ("TopicA#UNIQ0001", 0, T0),
        ("TopicA#order-2", 250, T0 + 1500),
        ("TopicA#order-1", 600, T0 + 4200),
        ("TopicB#order-1", 900, T0 + 9000),
        ("TopicA#order-1", 1300, T0 + 12_000),
    ];
    let bytes = handwritten_file(slots, max_index, &messages);
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("20240102030405678"), &bytes).expect("write");
    let service = open(dir.path(), config(slots, max_index));
    assert_eq!(query_all(&service, "TopicA", "order-1"), vec![1300, 600, 0]);
    assert_eq!(query_all(&service, "TopicA", "UNIQ0001"), vec![0]);
    assert_eq!(query_all(&service, "TopicB", "order-1"), vec![900]);
    assert_eq!(service.query("TopicA", "order-1", 64, T0 + 4000, T0 + 5000).phy_offsets, vec![600]);
    let result = service.query("TopicA", "order-2", 64, 0, i64::MAX);
    assert_eq!(result.phy_offsets, vec![250]);
    assert_eq!(
        (result.index_last_update_phy_offset, result.index_last_update_timestamp),
        (1300, T0 + 12_000)
    );

    // Our writer, fed the same messages, produces the very same file.
    let ours = tempfile::tempdir().expect("tempdir");
    let writer = open(ours.path(), config(slots, max_index));
    put(&writer, "TopicA", "order-1", Some("UNIQ0001"), 0, T0);
    put(&writer, "TopicA", "order-2", None, 250, T0 + 1500);
    put(&writer, "TopicA", "order-1", None, 600, T0 + 4200);
    put(&writer, "TopicB", "order-1", None, 900, T0 + 9000);
    put(&writer, "TopicA", "order-1", None, 1300, T0 + 12_000);
    writer.flush().expect("flush");
    let written = fs::read(&index_files(ours.path())[0]).expect("read");
    // The uniq key is indexed before the keys, so entries 1 and 2 trade places.
    let swapped = [messages[1], messages[0], messages[2], messages[3], messages[4], messages[5]];
    assert_eq!(written, handwritten_file(slots, max_index, &swapped));
}

#[test]
fn new_files_have_the_full_default_size() {
    let (dir, service) = open_fresh(IndexConfig::default());
    put(&service, "T", "k", None, 0, T0);
    let files = index_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(fs::metadata(&files[0]).expect("metadata").len(), 420_000_040);
    assert_eq!(query_all(&service, "T", "k"), vec![0]);
}

/// Ten messages 1 s apart over four files of three entries (ends at T0+2s, +5s, +8s, +9s).
fn four_files(dir: &Path) -> IndexService {
    let service = open(dir, config(5, 4));
    for i in 0..10i64 {
        put(&service, "T", "k", None, i * 10, T0 + i * 1000);
    }
    assert_eq!(index_files(dir).len(), 4);
    service
}

#[test]
fn delete_files_after_timestamp_keeps_older_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = {
        let service = four_files(dir.path());
        service.flush().expect("flush");
        index_files(dir.path())
    };
    let service = open(dir.path(), config(5, 4));
    assert_eq!(service.delete_files_after_timestamp(T0 + 5000).expect("delete"), 2);
    assert_eq!(index_files(dir.path()), names[..2].to_vec());
    assert_eq!(query_all(&service, "T", "k"), vec![50, 40, 30, 20, 10, 0]);
    assert_eq!(service.last_flushed_full_file_end_timestamp(), T0 + 5000);
    // Recovery re-dispatches the lost messages; the ones still indexed are skipped.
    for i in 4..10i64 {
        put(&service, "T", "k", None, i * 10, T0 + i * 1000);
    }
    assert_eq!(query_all(&service, "T", "k"), (0..10i64).rev().map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(service.delete_files_after_timestamp(i64::MAX).expect("delete"), 0);
    // Everything after the beginning of time goes; a fresh start indexes offset 0 again.
    let deleted = service.delete_files_after_timestamp(0).expect("delete");
    assert_eq!(deleted, 4);
    assert!(index_files(dir.path()).is_empty());
    put(&service, "T", "k", None, 0, T0);
    assert_eq!(query_all(&service, "T", "k"), vec![0]);
}

#[test]
fn delete_files_below_offset_keeps_needed_files_and_the_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = four_files(dir.path());
    let names = index_files(dir.path());
    // File ends: 20, 50, 80, 90. A file is deleted only when it ends below the minimum.
    assert_eq!(service.delete_files_below_offset(20).expect("delete"), 0);
    assert_eq!(service.delete_files_below_offset(21).expect("delete"), 1);
    assert_eq!(index_files(dir.path()), names[1..].to_vec());
    assert_eq!(service.delete_files_below_offset(i64::MAX).expect("delete"), 2);
    assert_eq!(index_files(dir.path()), names[3..].to_vec());
    assert_eq!(query_all(&service, "T", "k"), vec![90]);
    // Appending continues in the surviving file.
    put(&service, "T", "k", None, 100, T0 + 10_000);
    assert_eq!(query_all(&service, "T", "k"), vec![100, 90]);
}

#[test]
fn rollback_records_are_not_indexed() {
    let (dir, service) = open_fresh(config(16, 100));
    let build = |offset: i64, transaction_type: i32| {
        service.build_index("T", Some("k"), Some("u"), offset, T0, transaction_type).expect("build_index");
    };
    build(10, TRANSACTION_ROLLBACK_TYPE);
    build(20, TRANSACTION_ROLLBACK_TYPE | 0x1); // a whole sysFlag with the rollback bits set
    assert!(query_all(&service, "T", "k").is_empty());
    assert!(index_files(dir.path()).is_empty());
    build(30, 0x4); // prepared
    build(40, 0x8); // commit
    assert_eq!(query_all(&service, "T", "k"), vec![40, 30]);
    assert_eq!(query_all(&service, "T", "u"), vec![40, 30]);
}

#[test]
fn rebuild_does_not_duplicate_entries() {
    let (_dir, service) = open_fresh(config(3, 8));
    for _ in 0..2 {
        for i in 0..6i64 {
            put(&service, "T", "k", Some(&format!("u{i}")), i * 50, T0 + i * 1000);
        }
    }
    assert_eq!(query_all(&service, "T", "k"), vec![250, 200, 150, 100, 50, 0]);
    assert_eq!(query_all(&service, "T", "u0"), vec![0]);
    let entries: i32 = service.file_headers().iter().map(|(_, h)| h.index_count - 1).sum();
    assert_eq!(entries, 12);
}

#[test]
fn open_rejects_mismatched_files_and_skips_foreign_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    one_entry_index(dir.path());
    fs::write(dir.path().join("README"), b"not an index").expect("write");
    fs::create_dir(dir.path().join("20990101000000000")).expect("mkdir");
    assert_eq!(query_all(&open(dir.path(), config(5, 8)), "T", "k"), vec![0]);
    let wrong_size = IndexService::open(dir.path(), config(6, 8)).expect_err("size mismatch");
    assert_eq!(wrong_size.kind(), std::io::ErrorKind::InvalidData);

    // An entry count beyond the geometry is rejected rather than trusted.
    let path = &index_files(dir.path())[0];
    let mut bytes = fs::read(path).expect("read");
    bytes[36..40].copy_from_slice(&9i32.to_be_bytes());
    fs::write(path, &bytes).expect("write");
    let error = IndexService::open(dir.path(), config(5, 8)).expect_err("count beyond max");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);

    assert!(IndexService::open(dir.path(), config(0, 8)).is_err());
}

#[test]
fn an_empty_file_left_by_an_interrupted_creation_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    one_entry_index(dir.path());
    // What a kill between `create_new` and `set_len` leaves: a newer name, no bytes.
    let empty = dir.path().join("20990101000000000");
    fs::write(&empty, b"").expect("write");
    let service = open(dir.path(), config(5, 8));
    assert!(!empty.exists());
    assert_eq!(index_files(dir.path()).len(), 1);
    assert_eq!(query_all(&service, "T", "k"), vec![0]);
}

/// Writes `value` as a big-endian i32 at `at` in `path`.
fn poke(path: &Path, at: usize, value: i32) {
    let mut bytes = fs::read(path).expect("read");
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    fs::write(path, &bytes).expect("write");
}

#[test]
fn corrupt_slots_and_chains_end_the_walk() {
    let (slots, max_index) = (2, 40);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let service = open(dir.path(), config(slots, max_index));
        for i in 0..30i64 {
            put(&service, "T", "k", None, i, T0 + i * 1000);
        }
        service.shutdown().expect("shutdown");
    }
    let path = index_files(dir.path())[0].clone();
    let slot_of_k =
        INDEX_HEADER_SIZE + (index_key_hash("T", "k") as usize % slots as usize) * INDEX_SLOT_SIZE;
    let prev_of = |n: u32| entry_pos(slots, n) + 16;
    let time_of = |n: u32| entry_pos(slots, n) + 12;

    let query = || query_all(&open(dir.path(), config(slots, max_index)), "T", "k");
    assert_eq!(query().len(), 30);

    for bad_slot in [i32::MAX, i32::MIN, -1, 31, 40, 1_000_000] {
        poke(&path, slot_of_k, bad_slot);
        assert!(query().is_empty(), "slot {bad_slot}");
    }
    poke(&path, slot_of_k, 30);

    // A chain pointing at itself, forward, or far away stops instead of looping or panicking.
    for bad_prev in [20, 25, 39, 40, i32::MAX, -7] {
        poke(&path, prev_of(20), bad_prev);
        assert_eq!(query(), (19..30).rev().collect::<Vec<i64>>(), "prev {bad_prev}");
    }
    poke(&path, prev_of(20), 19);
    assert_eq!(query().len(), 30);

    // A negative time difference ends the walk; a huge one just fails the time filter.
    poke(&path, time_of(25), -1);
    assert_eq!(query(), (25..30).rev().collect::<Vec<i64>>());
    poke(&path, time_of(25), i32::MAX);
    let bounded = open(dir.path(), config(slots, max_index)).query("T", "k", 64, 0, T0 + 100_000);
    assert_eq!(bounded.phy_offsets.len(), 29);

    // A header claiming far more entries than were written walks zeroed entries harmlessly.
    poke(&path, 36, max_index as i32);
    let _ = query();
    // Absurd header timestamps do not overflow.
    let mut bytes = fs::read(&path).expect("read");
    bytes[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
    bytes[8..16].copy_from_slice(&i64::MIN.to_be_bytes());
    fs::write(&path, &bytes).expect("write");
    let service = open(dir.path(), config(slots, max_index));
    let _ = service.query("T", "k", 64, i64::MIN, i64::MAX);
    let _ = service.query("T", "k", 64, i64::MAX, i64::MIN);
    // And the writer still appends after garbage.
    put(&service, "T", "k", None, 1000, T0);
    service.flush().expect("flush");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_corruption_never_panics(
        pokes in proptest::collection::vec((0usize..(40 + 3 * 4 + 12 * 20), any::<u8>()), 1..40),
        begin in any::<i64>(),
        end in any::<i64>(),
    ) {
        let (slots, max_index) = (3, 12);
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let service = open(dir.path(), config(slots, max_index));
            for i in 0..11i64 {
                put(&service, "T", &format!("k{} k", i % 2), None, i, T0 + i * 1000);
            }
            service.shutdown().expect("shutdown");
        }
        let path = index_files(dir.path())[0].clone();
        let mut bytes = fs::read(&path).expect("read");
        for (at, value) in pokes {
            bytes[at] = value;
        }
        fs::write(&path, &bytes).expect("write");
        if let Ok(service) = IndexService::open(dir.path(), config(slots, max_index)) {
            for key in ["k", "k0", "k1", "other"] {
                let found = service.query("T", key, 64, begin, end).phy_offsets;
                prop_assert!(found.len() <= 64);
                let _ = service.query("T", key, 64, 0, i64::MAX);
            }
            let _ = service.build_index("T", Some("k"), None, 100, T0 + 20_000, 0);
            let _ = service.delete_files_below_offset(50);
            let _ = service.delete_files_after_timestamp(T0);
        }
    }
}

#[test]
fn queries_run_while_the_appender_puts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Arc::new(open(dir.path(), config(97, 500)));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (service, done) = (Arc::clone(&service), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !done.load(Ordering::Acquire) {
                    let found = query_all(&service, "T", "hot");
                    // Newest first, never a duplicate.
                    assert!(found.windows(2).all(|pair| pair[0] > pair[1]), "{found:?}");
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    for i in 0..3000i64 {
        put(&service, "T", &format!("hot k{i}"), None, i, T0 + i);
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("reader");
    }
    assert_eq!(query_all(&service, "T", "hot"), (3000 - 64..3000i64).rev().collect::<Vec<_>>());
    assert_eq!(query_all(&service, "T", "k1234"), vec![1234]);
    assert!(index_files(dir.path()).len() >= 12);
}
