//! Replication at the store level: a slave fed the master's commit log in ranges of any size
//! ends up with the same log, queues and keys, and refuses ordinary appends.

mod common;

use std::path::Path;

use apogee_store::{MessageStore, PutRequest, PutStatus, ReplicaAppendError};
use common::{open_store, read_all, record, small_config};
use proptest::prelude::*;
use tempfile::TempDir;

/// A slave's store in `dir`: it refuses ordinary appends and takes only the master's log.
fn open_slave(dir: &Path) -> MessageStore {
    let slave = open_store(small_config(dir)).unwrap();
    slave.set_replica_only(true);
    slave
}

/// A master's store and a slave's ([`open_slave`]), each in a fresh directory (master's,
/// slave's); bound in this order, the stores are dropped before their directories.
fn master_and_slave() -> ((TempDir, TempDir), MessageStore, MessageStore) {
    let (master_dir, master) = common::fresh_store();
    let slave_dir = tempfile::tempdir().unwrap();
    let slave = open_slave(slave_dir.path());
    ((master_dir, slave_dir), master, slave)
}

/// Appends `count` records spread over two topics and three queues; returns the log's end.
fn fill_master(master: &MessageStore, count: usize) -> u64 {
    for sequence in 0..count {
        let topic = if sequence % 2 == 0 { "ReplicaA" } else { "ReplicaB" };
        let key = format!("key-{sequence}");
        let body = vec![b'x'; 50 + sequence % 300];
        let records = record(topic, (sequence % 3) as i32, &body, Some("tag"), Some(&key));
        let result = master.put_blocking(PutRequest::new(records));
        assert_eq!(result.status, PutStatus::PutOk, "append {sequence}");
    }
    master.commit_log_max_offset()
}

/// Feeds the slave everything the master published, in chunks of the given sizes (cycled).
fn replicate(master: &MessageStore, slave: &MessageStore, chunk_sizes: &[usize]) {
    let mut offset = slave.commit_log_max_offset().max(master.commit_log_min_offset());
    let end = master.commit_log_max_offset();
    let mut sizes = chunk_sizes.iter().cycle();
    let mut rounds = 0;
    while offset < end {
        rounds += 1;
        assert!(rounds < 1_000_000, "replication never finished");
        let size = *sizes.next().unwrap();
        let data = master.replica_data(offset, size).expect("published master data");
        offset = slave.append_replica(offset, data.as_slice()).expect("slave append");
    }
    assert_eq!(slave.commit_log_max_offset(), end);
}

fn assert_same_queues(master: &MessageStore, slave: &MessageStore) {
    for topic in ["ReplicaA", "ReplicaB"] {
        for queue_id in 0..3 {
            let on_master = read_all(master, topic, queue_id);
            let on_slave = read_all(slave, topic, queue_id);
            assert_eq!(on_master.len(), on_slave.len(), "{topic}/{queue_id}");
            for (left, right) in on_master.iter().zip(&on_slave) {
                assert_eq!(left.queue_offset, right.queue_offset);
                assert_eq!(left.commit_log_offset, right.commit_log_offset);
                assert_eq!(left.message.body, right.message.body);
                assert_eq!(left.msg_id(), right.msg_id());
            }
        }
    }
}

#[test]
fn a_slave_fed_in_odd_chunks_has_the_masters_log_queues_and_keys() {
    let ((_master_dir, slave_dir), master, slave) = master_and_slave();
    // 600 records of ~250 B cross several 64 KiB files.
    fill_master(&master, 600);
    replicate(&master, &slave, &[1, 7, 4096, 13, 32 * 1024, 100]);
    assert_same_queues(&master, &slave);
    let found = slave.query_by_key("ReplicaB", "key-599", 4, 0, i64::MAX);
    assert_eq!(found.messages.len(), 1, "the slave's index has the keys");

    // The slave takes no ordinary append, and no range that does not continue its log.
    let refused = slave.put_blocking(PutRequest::new(record("ReplicaA", 0, b"no", None, None)));
    assert_eq!(refused.status, PutStatus::ServiceNotAvailable);
    let end = slave.commit_log_max_offset();
    let gap = slave.append_replica(end + 8, b"12345678");
    assert!(matches!(gap, Err(ReplicaAppendError::Discontinuous { .. })), "{gap:?}");

    // More on the master, then a restart of the slave halfway through a record: the torn
    // record is dropped on open and sent again.
    fill_master(&master, 100);
    let data = master.replica_data(end, 100).unwrap();
    slave.append_replica(end, data.as_slice()).unwrap();
    slave.shutdown();
    drop(slave);
    let slave = open_slave(slave_dir.path());
    assert_eq!(slave.commit_log_max_offset(), end, "a clean shutdown drops the partial record");
    let data = master.replica_data(end, 100).unwrap();
    slave.append_replica(end, data.as_slice()).unwrap();
    drop(slave);
    // A crash (the abort file marks it): recovery drops the torn tail.
    std::fs::write(slave_dir.path().join("abort"), b"").unwrap();
    let slave = open_slave(slave_dir.path());
    assert_eq!(slave.commit_log_max_offset(), end, "recovery keeps whole records only");
    replicate(&master, &slave, &[333]);
    assert_same_queues(&master, &slave);
}

#[test]
fn a_corrupt_record_is_refused_and_nothing_after_it_is_dispatched() {
    let (_dirs, master, slave) = master_and_slave();
    fill_master(&master, 3);
    let mut bytes = master.replica_data(0, 1 << 20).unwrap().as_slice().to_vec();
    // The second record's own offset field no longer matches where it lies.
    let first_size = i32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    bytes[first_size + 28] ^= 0x40;
    let result = slave.append_replica(0, &bytes);
    assert!(
        matches!(result, Err(ReplicaAppendError::Corrupt { offset }) if offset == first_size as u64),
        "{result:?}"
    );
    assert_eq!(read_all(&slave, "ReplicaA", 0).len(), 1, "only the record before the bad one is visible");
    assert_eq!(slave.commit_log_max_offset(), first_size as u64, "the bad tail is dropped");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
    #[test]
    fn any_chunking_gives_the_same_queues(sizes in proptest::collection::vec(1usize..20_000, 1..8)) {
        let (_dirs, master, slave) = master_and_slave();
        fill_master(&master, 300);
        replicate(&master, &slave, &sizes);
        assert_same_queues(&master, &slave);
    }
}
