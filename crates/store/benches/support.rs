//! Shared setup of the store benchmarks.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use apogee_common::message::record;
use apogee_common::message::{Message, MessageExt};
use apogee_store::{FlushDiskType, StoreConfig};

/// A store config for benchmarks: production file sizes for the commit log, index off (the
/// index has its own bench), a big read budget.
pub fn config(root: &Path, flush: FlushDiskType) -> StoreConfig {
    let mut config = StoreConfig::with_root(root);
    config.flush_disk_type = flush;
    config.message_index_enable = false;
    config.max_transfer_count_on_message_in_memory = 1024;
    config.max_transfer_bytes_on_message_in_memory = 4 * 1024 * 1024;
    config
}

/// One encoded record whose whole stored size is `size_bytes`.
pub fn record_of_size(topic: &str, queue_id: i32, size_bytes: usize) -> Vec<u8> {
    let overhead = record::encoded_len(topic.len(), 0, 0, 0);
    let body = vec![b'a'; size_bytes.saturating_sub(overhead)];
    let ext = MessageExt {
        message: Message::new(topic, body),
        queue_id,
        born_host: "127.0.0.1:50000".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        ..MessageExt::default()
    };
    let mut out = Vec::with_capacity(size_bytes);
    record::encode(&ext, &mut out).unwrap();
    out
}
