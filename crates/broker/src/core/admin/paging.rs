//! Reading a table by pages, as 5.x peers do (Java `splitMetadataSize`): a page is valid
//! only against the table version it started from; otherwise paging restarts.

use std::collections::BTreeMap;

use apogee_common::DataVersion;

/// Entries per page at most (Java `splitMetadataSize`).
pub const SPLIT_METADATA_SIZE: usize = 2000;

/// A page asked for. A front gives none when its peer sent nothing paging-related (older
/// peers), which means the whole table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// Index of the first entry wanted.
    pub first_index: Option<i32>,
    /// The table version the peer's earlier pages came from; `None` when absent or unreadable.
    pub caller_version: Option<DataVersion>,
    /// Page size wanted.
    pub max_entries: Option<i32>,
}

/// `(first index, page size)` of the page to give, or `None` for the whole table.
pub fn requested_page(request: Option<&PageRequest>, current: &DataVersion) -> Option<(usize, usize)> {
    let request = request?;
    let size = request
        .max_entries
        .and_then(|max| usize::try_from(max).ok())
        .unwrap_or(usize::MAX)
        .min(SPLIT_METADATA_SIZE);
    let start = if request.caller_version.as_ref() == Some(current) {
        request.first_index.and_then(|seq| usize::try_from(seq).ok()).unwrap_or(0)
    } else {
        0
    };
    Some((start, size))
}

/// Entries `[seq, seq + size)` of a sorted table.
pub fn page<V>(table: BTreeMap<String, V>, seq: usize, size: usize) -> BTreeMap<String, V> {
    table.into_iter().skip(seq).take(size).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_requests() {
        let version = DataVersion { counter: 2, state_version: 0, timestamp: 5 };
        assert_eq!(requested_page(None, &version), None);
        let same =
            PageRequest { first_index: Some(10), caller_version: Some(version), max_entries: Some(50) };
        assert_eq!(requested_page(Some(&same), &version), Some((10, 50)));
        // A stale version restarts from the beginning; the page size is capped.
        let stale_version = DataVersion { counter: 1, ..version };
        let stale =
            PageRequest { first_index: Some(10), caller_version: Some(stale_version), max_entries: None };
        assert_eq!(requested_page(Some(&stale), &version), Some((0, SPLIT_METADATA_SIZE)));
        let table: BTreeMap<String, i32> = (0..5).map(|index| (format!("t{index}"), index)).collect();
        assert_eq!(page(table, 3, 10).into_values().collect::<Vec<_>>(), vec![3, 4]);
    }
}
