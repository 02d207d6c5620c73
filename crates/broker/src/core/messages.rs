//! Looking messages up: one by commit-log offset (what an offset message id resolves to) and
//! messages of a topic by key or unique key through the index.

use std::sync::Arc;

use apogee_store::mapped_file::MappedSlice;

use super::blocking;
use super::error::{CoreResult, Error};
use crate::BrokerState;

/// Messages a unique-key query returns at most (Java `defaultQueryMaxNum`); the asker's
/// maximum is ignored for those.
pub const DEFAULT_QUERY_MAX_NUM: i32 = 32;

/// The stored record at a commit-log offset; SYSTEM_ERROR when there is none.
pub async fn at_offset(state: &Arc<BrokerState>, commit_log_offset: i64) -> CoreResult<MappedSlice> {
    let not_found = || Error::system(format!("can not find message by the offset, {commit_log_offset}"));
    let position = u64::try_from(commit_log_offset).map_err(|_| not_found())?;
    blocking(state, move |state| state.store.message_at(position)).await?.ok_or_else(not_found)
}

/// A search of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyQuery<'a> {
    /// The topic searched.
    pub topic: &'a str,
    /// A key (`KEYS`) or, with `unique_key`, a `UNIQ_KEY`.
    pub key: &'a str,
    /// Whether `key` is a unique key: at most [`DEFAULT_QUERY_MAX_NUM`] answers then.
    pub unique_key: bool,
    /// Most messages wanted.
    pub max_num: i32,
    /// Stored at or after, in ms.
    pub begin_timestamp_ms: i64,
    /// Stored at or before, in ms.
    pub end_timestamp_ms: i64,
}

/// What the index gave: the records (zero copy) and how fresh the index is.
#[derive(Debug)]
pub struct KeyQueryResult {
    /// The matching records.
    pub messages: Vec<MappedSlice>,
    /// Store time of the index's last entry, in ms.
    pub index_last_update_timestamp_ms: i64,
    /// Commit-log offset of the index's last entry.
    pub index_last_update_phy_offset: i64,
}

/// Messages of a topic whose key matches, stored within the time range.
pub async fn by_key(state: &Arc<BrokerState>, query: &KeyQuery<'_>) -> CoreResult<KeyQueryResult> {
    let max_num = if query.unique_key { DEFAULT_QUERY_MAX_NUM } else { query.max_num };
    let max_count = usize::try_from(max_num).unwrap_or(0);
    let (topic, key) = (query.topic.to_owned(), query.key.to_owned());
    let (begin, end) = (query.begin_timestamp_ms, query.end_timestamp_ms);
    let result =
        blocking(state, move |state| state.store.query_by_key(&topic, &key, max_count, begin, end)).await?;
    Ok(KeyQueryResult {
        messages: result.messages,
        index_last_update_timestamp_ms: result.index_last_update_timestamp,
        index_last_update_phy_offset: result.index_last_update_phy_offset,
    })
}
