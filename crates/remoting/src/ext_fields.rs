//! `ExtFields`: the custom header of a command, field name → value text (spec §1.6).
//!
//! Every request and response carries one, so its shape is chosen for the hot path: a vector
//! of pairs kept sorted by key, with keys and values as [`CompactString`]s. A header holds a
//! dozen short fields (one-letter keys on SEND_MESSAGE_V2, topics, numbers), which then live
//! inline in the vector with no allocation each; lookups are a binary search; and the JSON
//! writer gets Java's `TreeMap` key order without sorting.

use std::cmp::Ordering;
use std::fmt;

use compact_str::CompactString;

/// A command's custom header: unique keys, kept in ascending byte order of the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtFields {
    /// Sorted by key, no duplicate keys.
    entries: Vec<(CompactString, CompactString)>,
}

impl ExtFields {
    /// An empty header.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty header with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { entries: Vec::with_capacity(capacity) }
    }

    /// Builds a header from pairs in any order; for a key given twice the last value wins
    /// (what a JSON object reader does). O(n log n) whatever the input, so a peer cannot make
    /// decoding quadratic with many keys.
    pub fn from_pairs(mut pairs: Vec<(CompactString, CompactString)>) -> Self {
        // Stable: among equal keys the later pair stays later. Headers written in key order
        // (ours, and any TreeMap) skip the sort.
        let order = |left: &(CompactString, CompactString), right: &(CompactString, CompactString)| {
            compare_keys(left.0.as_bytes(), right.0.as_bytes())
        };
        if !pairs.is_sorted_by(|left, right| order(left, right).is_le()) {
            pairs.sort_by(order);
        }
        // `dedup_by` keeps the earlier of two equal neighbours; give it the later value.
        pairs.dedup_by(|later, earlier| {
            let duplicate = later.0 == earlier.0;
            if duplicate {
                std::mem::swap(&mut later.1, &mut earlier.1);
            }
            duplicate
        });
        Self { entries: pairs }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|index| self.entries[index].1.as_str())
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<CompactString> {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        let index = self.position(key).ok()?;
        Some(self.entries.remove(index).1)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True without fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields in ascending key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.into_iter()
    }

    /// The keys in ascending order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(probe, _)| compare_keys(probe.as_bytes(), key.as_bytes()))
    }
}

/// Keys up to this long are compared byte by byte.
const SHORT_KEY_BYTES: usize = 24;

/// Byte order of two keys. Keys mostly differ in their first byte (SEND_MESSAGE_V2 uses
/// one-letter keys), which is compared inline before a full comparison is called for.
#[inline]
fn compare_keys(left: &[u8], right: &[u8]) -> Ordering {
    match (left.first(), right.first()) {
        (Some(left_first), Some(right_first)) if left_first != right_first => left_first.cmp(right_first),
        _ if left.len() <= SHORT_KEY_BYTES && right.len() <= SHORT_KEY_BYTES => {
            // Header keys are short: a byte loop beats a call to `memcmp`.
            for (left_byte, right_byte) in left.iter().zip(right) {
                if left_byte != right_byte {
                    return left_byte.cmp(right_byte);
                }
            }
            left.len().cmp(&right.len())
        }
        _ => left.cmp(right),
    }
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, CompactString)>,
        fn(&'a (CompactString, CompactString)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self::from_pairs(pairs.into_iter().map(|(key, value)| (key.into(), value.into())).collect())
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (key, value) in pairs {
            self.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_keys_sorted_and_unique() {
        let mut fields = ExtFields::new();
        assert_eq!(fields.insert("topic", "T"), None);
        assert_eq!(fields.insert("b", "2"), None);
        assert_eq!(fields.insert("a", "1"), None);
        assert_eq!(fields.insert("b", "3").as_deref(), Some("2"));
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b", "topic"]);
        assert_eq!(fields.get("b"), Some("3"));
        assert_eq!(fields.get("c"), None);
        assert_eq!(fields.remove("a").as_deref(), Some("1"));
        assert_eq!(fields.remove("a"), None);
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn the_last_of_duplicate_keys_wins() {
        let fields: ExtFields = [("k", "first"), ("a", "x"), ("k", "second")].into_iter().collect();
        assert_eq!(fields.get("k"), Some("second"));
        assert_eq!(fields.len(), 2);
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_map(pairs in proptest::collection::vec(("[a-e]{0,3}", "[a-z0-9]{0,30}"), 0..40)) {
            let mut model = std::collections::BTreeMap::new();
            let mut fields = ExtFields::new();
            for (key, value) in &pairs {
                prop_assert_eq!(
                    fields.insert(key.as_str(), value.as_str()).map(|old| old.to_string()),
                    model.insert(key.clone(), value.clone())
                );
            }
            let collected: ExtFields = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(&collected, &fields);
            let expected: Vec<(&str, &str)> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(fields.iter().collect::<Vec<_>>(), expected);
        }
    }
}
