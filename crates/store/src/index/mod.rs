//! Index files: find messages by key or UNIQ_KEY within a time range (storage spec §3).
//!
//! Consumers and admin tools look messages up by business key ("order-42") or by the client
//! generated unique id. The commit log cannot answer that, so every dispatched message also lands in
//! a hash index: `index/<yyyyMMddHHmmssSSS>` files, each a 40-byte header, a table of hash slots and
//! an append-only area of 20-byte entries chained per slot. The layout is Apache RocketMQ's byte for
//! byte, so an `index/` directory written by the Java broker opens here and the reverse.
//!
//! - `header.rs` — the 40-byte header and the file geometry (where slot `s` and entry `n` live).
//! - `file.rs` — one mapped index file: put one key, walk one key's chain.
//! - `service.rs` — the ordered set of files: rolling, querying newest first, flushing, deletion.
//! - `name.rs` — file names from the creation time in local time.
//!
//! A query returns candidate commit-log offsets only: two keys can share a hash, so the caller
//! reads each message and compares its keys exactly, as the Java broker does.

mod file;
pub(crate) mod header;
mod name;
mod service;

#[cfg(test)]
mod tests;

use apogee_common::java_string_hash;

pub use header::{IndexHeader, INDEX_ENTRY_SIZE, INDEX_HEADER_SIZE, INDEX_SLOT_SIZE};
pub use service::IndexService;

/// Default number of hash slots per file (RocketMQ `maxHashSlotNum`).
pub const DEFAULT_MAX_HASH_SLOT_NUM: u32 = 5_000_000;

/// Default number of entry positions per file, entry 0 included (RocketMQ `maxIndexNum`).
pub const DEFAULT_MAX_INDEX_NUM: u32 = 20_000_000;

/// Most commit-log offsets one query returns (RocketMQ `maxMsgsNumBatch`, in messages): the
/// broker reads every candidate message back, so the answer must stay small.
pub const MAX_QUERY_RESULTS: usize = 64;

/// Separator between the keys in a message's `KEYS` property (RocketMQ `KEY_SEPARATOR`).
pub const KEY_SEPARATOR: char = ' ';

/// Separator between topic and key in an indexed key (`topic#key`).
pub const TOPIC_KEY_SEPARATOR: char = '#';

// The transaction bits of a record's sysFlag: rollback records are never visible, so never indexed.
pub use apogee_common::message::sysflag::{TRANSACTION_ROLLBACK_TYPE, TRANSACTION_TYPE_MASK};

/// Sizes of the index files; both must match the broker that wrote an existing `index/`
/// directory, since neither is stored in the files themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// Hash slots per file (RocketMQ `maxHashSlotNum`, default 5,000,000).
    pub max_hash_slot_num: u32,
    /// Entry positions per file, the unused entry 0 included (RocketMQ `maxIndexNum`, default
    /// 20,000,000), so a file holds `max_index_num - 1` keys.
    pub max_index_num: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self { max_hash_slot_num: DEFAULT_MAX_HASH_SLOT_NUM, max_index_num: DEFAULT_MAX_INDEX_NUM }
    }
}

/// Answer to [`IndexService::query`]: what the broker needs to answer QUERY_MESSAGE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOffsetResult {
    /// Candidate commit-log offsets, newest first; hash collisions are possible, so the caller
    /// compares the stored message's keys before returning it.
    pub phy_offsets: Vec<i64>,
    /// Store timestamp of the newest indexed message (end timestamp of the newest file), so the
    /// client knows how far the index had caught up; 0 when there is no index file.
    pub index_last_update_timestamp: i64,
    /// Commit-log offset of the newest indexed message (end offset of the newest file); 0 when
    /// there is no index file.
    pub index_last_update_phy_offset: i64,
}

/// Hash stored for an indexed key: `abs(key.hashCode())`, with the one value whose absolute value
/// overflows (`i32::MIN`) mapped to 0, exactly as Java's `Math.abs` followed by the `< 0` check.
pub fn positive_key_hash(java_hash: i32) -> i32 {
    java_hash.checked_abs().unwrap_or(0)
}

/// Stored hash of the indexed key `topic#key`, computed without building the string: Java's hash
/// of a concatenation is `hash(a) * 31^len(b) + hash(b)` (wrapping, lengths in UTF-16 units).
pub fn index_key_hash(topic: &str, key: &str) -> i32 {
    let mut hash = java_string_hash(topic);
    hash = hash.wrapping_mul(31).wrapping_add(TOPIC_KEY_SEPARATOR as i32);
    let key_units = key.encode_utf16().count();
    let mut scale: i32 = 1;
    // 31^len by squaring: one round per bit of the UTF-16 length.
    let mut base: i32 = 31;
    let mut exp = key_units;
    while exp > 0 {
        if exp & 1 == 1 {
            scale = scale.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        exp >>= 1;
    }
    positive_key_hash(hash.wrapping_mul(scale).wrapping_add(java_string_hash(key)))
}
