//! Counters kept per label value, found by a borrowed `&str` (no allocation once the value has
//! been seen), and capped so a client that invents topic names cannot grow them without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Most label values one family keeps (Java's `metricsOtelCardinalityLimit` default).
pub const CARDINALITY_LIMIT: usize = 50_000;

/// `V` per key, created on first use.
#[derive(Debug, Default)]
pub struct Keyed<V> {
    entries: RwLock<HashMap<Box<str>, Arc<V>>>,
    /// Whether the limit was reported, so it is logged once.
    limit_reported: AtomicBool,
}

impl<V: Default> Keyed<V> {
    /// The entry of `key`, made if new; `None` once [`CARDINALITY_LIMIT`] keys exist.
    pub fn entry(&self, key: &str) -> Option<Arc<V>> {
        if let Some(entry) = self.entries.read().get(key) {
            return Some(Arc::clone(entry));
        }
        let mut entries = self.entries.write();
        if let Some(entry) = entries.get(key) {
            return Some(Arc::clone(entry));
        }
        if entries.len() >= CARDINALITY_LIMIT {
            if !self.limit_reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limit = CARDINALITY_LIMIT,
                    key,
                    "metric label values at their limit: new ones not recorded"
                );
            }
            return None;
        }
        let entry = Arc::new(V::default());
        entries.insert(key.into(), Arc::clone(&entry));
        Some(entry)
    }

    /// Every key with its entry, sorted by key, for a scrape.
    pub fn snapshot(&self) -> Vec<(Box<str>, Arc<V>)> {
        let mut entries: Vec<(Box<str>, Arc<V>)> =
            self.entries.read().iter().map(|(key, value)| (key.clone(), Arc::clone(value))).collect();
        entries.sort_by(|left, right| left.0.cmp(&right.0));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn one_entry_per_key() {
        let keyed: Keyed<AtomicU64> = Keyed::default();
        keyed.entry("b").unwrap().fetch_add(2, Ordering::Relaxed);
        keyed.entry("a").unwrap().fetch_add(1, Ordering::Relaxed);
        keyed.entry("b").unwrap().fetch_add(3, Ordering::Relaxed);
        let values: Vec<(String, u64)> = keyed
            .snapshot()
            .into_iter()
            .map(|(key, value)| (key.into(), value.load(Ordering::Relaxed)))
            .collect();
        assert_eq!(values, vec![("a".to_owned(), 1), ("b".to_owned(), 5)]);
    }
}
