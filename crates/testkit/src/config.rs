//! The settings every test server starts from: loopback, port 0, small store files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use apogee_broker::{Broker, BrokerConfig};
use apogee_namesrv::NamesrvConfig;

/// Where test servers listen: loopback only, nothing is exposed.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Commit log file size of test brokers: small, so a test store stays small on disk.
const COMMIT_LOG_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Consume queue file size of test brokers (a multiple of the 20-byte entry).
const CONSUME_QUEUE_FILE_BYTES: u64 = 20 * 1024;
/// Index hash slots of test brokers.
const INDEX_HASH_SLOTS: u32 = 1024;
/// Index entries per index file of test brokers.
const INDEX_ENTRIES: u32 = 4096;
/// Flush period of test brokers, so data reaches the files soon after a write.
const FLUSH_INTERVAL_MS: u64 = 50;
/// Period of expired-file cleaning: longer than any test, so nothing is deleted under one.
const CLEAN_INTERVAL_MS: u64 = 3_600_000;

/// A NameServer on a free loopback port keeping its KV file under `dir`.
pub fn namesrv_config(dir: &Path) -> NamesrvConfig {
    NamesrvConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        kv_config_path: dir.join("kvConfig.json"),
        ..NamesrvConfig::default()
    }
}

/// A broker named `broker_name` on a free loopback port, store under `store_dir`, small files,
/// no fast channel and no NameServer; tests change what they need afterwards.
pub fn broker_config(store_dir: &Path, broker_name: &str) -> BrokerConfig {
    let mut config = BrokerConfig {
        broker_name: broker_name.to_owned(),
        broker_ip1: LOOPBACK,
        listen_port: 0,
        fast_channel_enable: false,
        namesrv_addr: None,
        ..BrokerConfig::default()
    };
    let store = &mut config.store;
    store.store_path_root_dir = store_dir.to_path_buf();
    store.mapped_file_size_commit_log = COMMIT_LOG_FILE_BYTES;
    store.mapped_file_size_consume_queue = CONSUME_QUEUE_FILE_BYTES;
    store.max_hash_slot_num = INDEX_HASH_SLOTS;
    store.max_index_num = INDEX_ENTRIES;
    store.flush_interval_commit_log_ms = FLUSH_INTERVAL_MS;
    store.flush_interval_consume_queue_ms = FLUSH_INTERVAL_MS;
    store.clean_resource_interval_ms = CLEAN_INTERVAL_MS;
    config
}

/// Starts a broker over `config`, failing the test if it cannot. For tests that own a store
/// directory across restarts; [`crate::Cluster`] is the usual way.
pub async fn start_broker(config: BrokerConfig) -> Broker {
    let name = config.broker_name.clone();
    match Broker::start(config).await {
        Ok(broker) => broker,
        Err(error) => panic!("broker {name} does not start: {error}"),
    }
}
