//! Buffers of dropped headers, kept per thread for the next header built on that thread.
//!
//! Every request and every response has a header, so without reuse each command costs two
//! allocations, its text and its spans. A connection's reader decodes requests and drops
//! them on one thread, and a writer builds and drops responses on one thread, so a small pool
//! per thread serves nearly every header. The pool is bounded in count and in the size of
//! what it keeps: a huge header from a peer is freed, not hoarded.

use std::cell::RefCell;

use apogee_common::spare::{keep, take};

use super::Entry;

/// Buffers of each kind a thread keeps: about the headers a worker has alive at once (its
/// connections' requests in flight), so a burst is served from the pool and the pool stays
/// small (at most 1 MiB of text per thread).
const POOLED_PER_THREAD: usize = 256;

/// Text buffers with more capacity than this are freed, not kept.
const MAX_POOLED_TEXT_BYTES: usize = 4096;

/// Span vectors with room for more entries than this are freed, not kept.
const MAX_POOLED_ENTRIES: usize = 64;

thread_local! {
    static TEXTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static ENTRIES: RefCell<Vec<Vec<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// An empty text buffer with room for at least `bytes`.
pub(super) fn text(bytes: usize) -> String {
    let mut text = take(&TEXTS).unwrap_or_default();
    text.reserve(bytes);
    text
}

/// An empty span vector with room for at least `count` entries.
pub(super) fn entries(count: usize) -> Vec<Entry> {
    let mut entries = take(&ENTRIES).unwrap_or_default();
    entries.reserve(count);
    entries
}

/// Keeps a dropped header's buffers for reuse, those small enough while the pool has room.
pub(super) fn give(mut text: String, mut entries: Vec<Entry>) {
    if (1..=MAX_POOLED_TEXT_BYTES).contains(&text.capacity()) {
        text.clear();
        keep(&TEXTS, text, POOLED_PER_THREAD);
    }
    if (1..=MAX_POOLED_ENTRIES).contains(&entries.capacity()) {
        entries.clear();
        keep(&ENTRIES, entries, POOLED_PER_THREAD);
    }
}
