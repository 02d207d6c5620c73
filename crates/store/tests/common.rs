//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use apogee_common::message::record::{self, RecordView};
use apogee_common::message::{Message, MessageExt};
use apogee_store::{AcceptAll, GetMessageStatus, MessageStore, StoreConfig};
use tempfile::TempDir;

/// A store config with small files so tests cross file boundaries quickly.
pub fn small_config(root: &Path) -> StoreConfig {
    let mut config = StoreConfig::with_root(root);
    config.mapped_file_size_commit_log = 64 * 1024;
    config.mapped_file_size_consume_queue = 20 * 128;
    config.max_hash_slot_num = 64;
    config.max_index_num = 512;
    config.flush_interval_commit_log_ms = 50;
    config.flush_interval_consume_queue_ms = 50;
    config.clean_resource_interval_ms = 3_600_000;
    config
}

/// Encodes one record the way a broker would hand it to the store.
pub fn record(topic: &str, queue_id: i32, body: &[u8], tags: Option<&str>, keys: Option<&str>) -> Vec<u8> {
    let mut message = Message::new(topic, body.to_vec());
    if let Some(tags) = tags {
        message.set_tags(tags);
    }
    if let Some(keys) = keys {
        message.set_keys(keys.split(' ').map(str::to_owned).collect::<Vec<_>>());
    }
    let ext = MessageExt {
        message,
        queue_id,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        ..MessageExt::default()
    };
    let mut out = Vec::new();
    record::encode(&ext, &mut out).unwrap();
    out
}

/// Reads a whole queue, following file ends, and returns the decoded records.
pub fn read_all(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<MessageExt> {
    let mut offset = store.min_offset(topic, queue_id);
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let result = store.get_messages(topic, queue_id, offset, 32, u64::MAX, &AcceptAll);
        match result.status {
            GetMessageStatus::Found => {
                for slice in &result.messages {
                    out.push(RecordView::parse(slice.as_slice(), true).unwrap().to_message_ext());
                }
            }
            GetMessageStatus::OffsetOverflowOne
            | GetMessageStatus::NoMessageInQueue
            | GetMessageStatus::NoMatchedLogicQueue => return out,
            _ => {}
        }
        if result.next_begin_offset <= offset && result.status != GetMessageStatus::Found {
            return out;
        }
        offset = result.next_begin_offset;
    }
    panic!("queue never ended");
}

/// A disk that always reports room: the store's disk-pressure rules (refusing appends above
/// 90 %, deleting the oldest files early above 85 %) would otherwise make these tests depend on
/// how full the machine's disk is. `store.rs` tests those rules with a disk it controls.
struct RoomyDisk;

impl apogee_store::disk::DiskUsage for RoomyDisk {
    fn space(&self, _path: &Path) -> std::io::Result<apogee_store::disk::DiskSpace> {
        Ok(apogee_store::disk::DiskSpace { used_percent: 1, available_bytes: u64::MAX })
    }
}

/// Opens a store whose disk never looks full.
pub fn open_store(config: StoreConfig) -> Result<MessageStore, apogee_store::StoreError> {
    MessageStore::open_with_disk(config, Box::new(RoomyDisk))
}

/// A store with [`small_config`] in a fresh temporary directory, the setup most tests start
/// from; bound as `(dir, store)`, the store is dropped before its directory.
pub fn fresh_store() -> (TempDir, MessageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(small_config(dir.path())).unwrap();
    (dir, store)
}
