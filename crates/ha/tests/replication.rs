//! A master store and a slave store in one process, replicating over loopback TCP with
//! RocketMQ's HA wire format.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::record;
use apogee_common::message::{Message, MessageExt};
use apogee_ha::{BrokerRole, HaConfig, HaMaster, HaSlave};
use apogee_store::{MessageStore, PutRequest, PutStatus, StoreConfig};

fn store_config(root: &Path) -> StoreConfig {
    let mut config = StoreConfig::with_root(root);
    config.mapped_file_size_commit_log = 256 * 1024;
    config.mapped_file_size_consume_queue = 20 * 1000;
    config.clean_resource_interval_ms = 3_600_000;
    config
}

fn open(root: &Path) -> Arc<MessageStore> {
    Arc::new(MessageStore::open(store_config(root)).expect("store opens"))
}

fn message(sequence: usize) -> Vec<u8> {
    let ext = MessageExt {
        message: Message::new(
            "HaTopic",
            format!("message {sequence} {}", "x".repeat(sequence % 500)).into_bytes(),
        ),
        queue_id: (sequence % 4) as i32,
        born_host: "127.0.0.1:50000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        ..MessageExt::default()
    };
    let mut out = Vec::new();
    record::encode(&ext, &mut out).unwrap();
    out
}

fn ha_config(role: BrokerRole) -> HaConfig {
    HaConfig {
        role,
        send_heartbeat_interval_ms: 200,
        housekeeping_interval_ms: 2_000,
        slave_timeout_ms: 1_000,
        ..HaConfig::default()
    }
}

/// A slave client for `store`, following `master`.
fn follow(master: &HaMaster, store: &Arc<MessageStore>) -> HaSlave {
    HaSlave::start(Arc::clone(store), ha_config(BrokerRole::Slave), Some(master.local_addr().to_string()))
        .expect("slave client starts")
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Waits (bounded) until `check` holds.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn queue_lengths(store: &MessageStore) -> Vec<i64> {
    (0..4).map(|queue_id| store.max_offset("HaTopic", queue_id)).collect()
}

#[test]
fn an_async_slave_copies_the_whole_log_and_follows_new_appends() {
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = open(master_dir.path());
    // History before any slave exists, across several files: an empty slave copies it all.
    for sequence in 0..2_000 {
        assert_eq!(master_store.put_blocking(PutRequest::new(message(sequence))).status, PutStatus::PutOk);
    }
    let master =
        HaMaster::start(Arc::clone(&master_store), ha_config(BrokerRole::AsyncMaster), loopback()).unwrap();
    let slave_store = open(slave_dir.path());
    let slave = follow(&master, &slave_store);
    for sequence in 2_000..3_000 {
        assert_eq!(master_store.put_blocking(PutRequest::new(message(sequence))).status, PutStatus::PutOk);
    }
    let end = master_store.commit_log_max_offset();
    wait_until("the slave to catch up", || slave_store.commit_log_max_offset() == end);
    wait_until("the master to see the slave's report", || master.pushed_max_offset() == end);
    assert_eq!(queue_lengths(&slave_store), queue_lengths(&master_store));
    assert_eq!(queue_lengths(&slave_store).iter().sum::<i64>(), 3_000);
    let refused = slave_store.put_blocking(PutRequest::new(message(0)));
    assert_eq!(refused.status, PutStatus::ServiceNotAvailable, "a slave refuses writes");

    // The slave restarts on its data and resumes from its end, not from the start.
    slave.shutdown();
    drop(slave);
    drop(slave_store);
    for sequence in 3_000..3_100 {
        master_store.put_blocking(PutRequest::new(message(sequence)));
    }
    let slave_store = open(slave_dir.path());
    let _slave = follow(&master, &slave_store);
    let end = master_store.commit_log_max_offset();
    wait_until("the restarted slave to catch up", || slave_store.commit_log_max_offset() == end);
    assert_eq!(queue_lengths(&slave_store), queue_lengths(&master_store));
}

#[test]
fn a_sync_master_answers_only_once_the_slave_holds_the_message() {
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = open(master_dir.path());
    let master =
        HaMaster::start(Arc::clone(&master_store), ha_config(BrokerRole::SyncMaster), loopback()).unwrap();

    // No slave: refused at once with SLAVE_NOT_AVAILABLE, though stored.
    let started = Instant::now();
    let alone = master_store.put_blocking(PutRequest::new(message(0)));
    assert_eq!(alone.status, PutStatus::SlaveNotAvailable);
    assert!(started.elapsed() < Duration::from_millis(500), "no wait for a slave that is not there");
    assert!(alone.status.is_stored());

    let slave_store = open(slave_dir.path());
    let slave = follow(&master, &slave_store);
    wait_until("the slave to connect and catch up", || {
        master.slaves().iter().any(|(_, ack)| *ack == master_store.commit_log_max_offset() as i64)
    });
    for sequence in 1..300 {
        let result = master_store.put_blocking(PutRequest::new(message(sequence)));
        assert_eq!(result.status, PutStatus::PutOk, "send {sequence}");
        let append = result.append.unwrap();
        let end = append.commit_log_offset + u64::from(append.wrote_bytes);
        assert!(
            slave_store.commit_log_max_offset() >= end,
            "send {sequence} answered before the slave held it"
        );
    }

    // The slave stops: the next sends are not confirmed.
    slave.shutdown();
    wait_until("the master to drop the slave", || master.slaves().is_empty());
    let result = master_store.put_blocking(PutRequest::new(message(300)));
    assert!(
        matches!(result.status, PutStatus::SlaveNotAvailable | PutStatus::FlushSlaveTimeout),
        "{:?}",
        result.status
    );
}

#[test]
fn a_slave_that_stops_reading_times_the_send_out() {
    let master_dir = tempfile::tempdir().unwrap();
    let master_store = open(master_dir.path());
    let master =
        HaMaster::start(Arc::clone(&master_store), ha_config(BrokerRole::SyncMaster), loopback()).unwrap();
    // A fake slave: reports offset 0 once, then never reads nor reports again.
    let mut fake = std::net::TcpStream::connect(master.local_addr()).unwrap();
    std::io::Write::write_all(&mut fake, &apogee_ha::wire::encode_report(0)).unwrap();
    wait_until("the master to see the fake slave", || master.slaves().iter().any(|(_, ack)| *ack == 0));
    let started = Instant::now();
    let result = master_store.put_blocking(PutRequest::new(message(1)));
    assert_eq!(result.status, PutStatus::FlushSlaveTimeout);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "waited {waited:?}");
}
