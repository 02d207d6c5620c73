//! `ExtFields`: the custom header of a command, field name → value text (spec §1.6).
//!
//! Every request and response carries one, so its shape is chosen for the hot path: all keys
//! and values are written back to back into one string, and a vector of spans into it is kept
//! sorted by key. Decoding a header is then a run of small copies into one buffer sized from
//! the header, with no string object built per field (building a dozen small inline strings
//! and moving them around cost more than the rest of the decode, in store-forwarding stalls);
//! lookups are a binary search; and the JSON writer gets Java's `TreeMap` key order without
//! sorting.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use compact_str::CompactString;

mod recycle;

/// A command's custom header: unique keys, kept in ascending byte order of the key.
#[derive(Clone, Default)]
pub struct ExtFields {
    /// Keys and values back to back; text no entry points at is left behind by replaced and
    /// removed fields until [`Self::compact_if_wasteful`] drops it.
    text: String,
    /// Sorted by key, no duplicate keys.
    entries: Vec<Entry>,
}

/// Where one field's key and value are in [`ExtFields::text`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Span,
    value: Span,
}

/// A byte range of [`ExtFields::text`]; `u32` keeps an entry at 16 bytes (a header is at
/// most 16 MiB on the wire).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(range: Range<usize>) -> Self {
        let narrow = |offset: usize| u32::try_from(offset).expect("header text stays below 4 GiB");
        Self { start: narrow(range.start), end: narrow(range.end) }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// The text `span` covers. Spans are only ever made around whole `&str`s appended to the
/// text, so they start and end on character boundaries; only the range is checked.
#[inline]
fn text_of(text: &str, span: Span) -> &str {
    let bytes = &text.as_bytes()[span.range()];
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: `bytes` is a whole run of UTF-8 text that was appended as a `&str` (above).
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Key and value text reserved per field by [`ExtFields::with_capacity`]: a send response
/// (two 32-character ids among six fields) fits without growing.
const TYPICAL_FIELD_TEXT_BYTES: usize = 24;

/// Text left behind beyond which an insert or removal rewrites the buffer.
const WASTE_ALLOWANCE_BYTES: usize = 256;

impl ExtFields {
    /// An empty header.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty header with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { text: recycle::text(capacity * TYPICAL_FIELD_TEXT_BYTES), entries: recycle::entries(capacity) }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|index| self.slice(self.entries[index].value))
    }

    /// Sets `key` to `value`; true when it replaced a value (read the old one with
    /// [`Self::get`] first if it matters: returning it would cost an allocation per replace).
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> bool {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.position(key) {
            Ok(index) => {
                self.entries[index].value = self.append(value);
                self.compact_if_wasteful();
                true
            }
            Err(index) => {
                let key = self.append(key);
                let value = self.append(value);
                self.entries.insert(index, Entry { key, value });
                false
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        let index = self.position(key).ok()?;
        let entry = self.entries.remove(index);
        let value = CompactString::new(self.slice(entry.value));
        self.compact_if_wasteful();
        Some(value)
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
    pub fn iter(&self) -> Iter<'_> {
        Iter { text: &self.text, entries: self.entries.iter() }
    }

    /// The keys in ascending order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.iter().map(|(key, _)| key)
    }

    fn slice(&self, span: Span) -> &str {
        text_of(&self.text, span)
    }

    fn append(&mut self, part: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(part);
        Span::of(start..self.text.len())
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        let text = self.text.as_bytes();
        self.entries.binary_search_by(|probe| compare_keys(&text[probe.key.range()], key.as_bytes()))
    }

    /// Rewrites the text without what no entry points at, once that is more than the live text
    /// and [`WASTE_ALLOWANCE_BYTES`]: a field replaced again and again does not grow the
    /// buffer without bound.
    fn compact_if_wasteful(&mut self) {
        let live: usize = self.entries.iter().map(|entry| entry.key.len() + entry.value.len()).sum();
        if self.text.len() <= 2 * live + WASTE_ALLOWANCE_BYTES {
            return;
        }
        let mut text = String::with_capacity(live);
        for entry in &mut self.entries {
            for span in [&mut entry.key, &mut entry.value] {
                let start = text.len();
                text.push_str(text_of(&self.text, *span));
                *span = Span::of(start..text.len());
            }
        }
        self.text = text;
    }
}

/// Builds [`ExtFields`] from fields in wire order, their text written straight into the
/// header's one buffer (the JSON and binary header readers).
pub(crate) struct ExtFieldsBuilder {
    fields: ExtFields,
}

impl ExtFieldsBuilder {
    /// Room for `text_bytes` of keys and values and `count` fields.
    pub fn with_capacity(text_bytes: usize, count: usize) -> Self {
        Self { fields: ExtFields { text: recycle::text(text_bytes), entries: recycle::entries(count) } }
    }

    /// The buffer keys and values are written into; a field is its `key` and `value` ranges
    /// of it, given to [`Self::push_ranges`].
    pub fn text(&mut self) -> &mut String {
        &mut self.fields.text
    }

    /// Adds the field whose key and value were written at `key` and `value` of the text.
    pub fn push_ranges(&mut self, key: Range<usize>, value: Range<usize>) {
        // `text_of` relies on this without checking again.
        let text = &self.fields.text;
        assert!(
            [key.start, key.end, value.start, value.end].into_iter().all(|at| text.is_char_boundary(at)),
            "extFields spans must fall on character boundaries"
        );
        self.fields.entries.push(Entry { key: Span::of(key), value: Span::of(value) });
    }

    /// Adds one field.
    pub fn push(&mut self, key: &str, value: &str) {
        let key = self.fields.append(key);
        let value = self.fields.append(value);
        self.fields.entries.push(Entry { key, value });
    }

    /// The header: sorted by key, the last of duplicate keys kept. O(n log n) whatever the
    /// input, so a peer cannot make decoding quadratic with many keys.
    pub fn finish(self) -> ExtFields {
        let mut fields = self.fields;
        let text = fields.text.as_bytes();
        // Stable: among equal keys the later field stays later. Headers written in key order
        // (ours, and any TreeMap) skip the sort.
        let order =
            |left: &Entry, right: &Entry| compare_keys(&text[left.key.range()], &text[right.key.range()]);
        if !fields.entries.is_sorted_by(|left, right| order(left, right).is_le()) {
            fields.entries.sort_by(order);
        }
        // `dedup_by` keeps the earlier of two equal neighbours; give it the later value.
        fields.entries.dedup_by(|later, earlier| {
            let duplicate = text[later.key.range()] == text[earlier.key.range()];
            if duplicate {
                earlier.value = later.value;
            }
            duplicate
        });
        fields
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

/// The fields of an [`ExtFields`] in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?;
        Some((text_of(self.text, entry.key), text_of(self.text, entry.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Hands the buffers to this thread's pool, for the next header built here.
impl Drop for ExtFields {
    fn drop(&mut self) {
        recycle::give(std::mem::take(&mut self.text), std::mem::take(&mut self.entries));
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Pairs in any order; for a key given twice the last value wins (what a JSON object reader
/// does).
impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let pairs = pairs.into_iter();
        let mut builder = ExtFieldsBuilder::with_capacity(0, pairs.size_hint().0);
        for (key, value) in pairs {
            builder.push(key.as_ref(), value.as_ref());
        }
        builder.finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for ExtFields {
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
        assert!(!fields.insert("topic", "T"));
        assert!(!fields.insert("b", "2"));
        assert!(!fields.insert("a", "1"));
        assert!(fields.insert("b", "3"));
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b", "topic"]);
        assert_eq!(fields.get("b"), Some("3"));
        assert_eq!(fields.get("c"), None);
        assert_eq!(fields.remove("a").as_deref(), Some("1"));
        assert_eq!(fields.remove("a"), None);
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn replacing_one_field_again_and_again_keeps_the_buffer_bounded() {
        let mut fields = ExtFields::new();
        fields.insert("other", "kept");
        for round in 0..10_000 {
            fields.insert("k", format!("value-{round}"));
        }
        assert_eq!(fields.get("k"), Some("value-9999"));
        assert_eq!(fields.get("other"), Some("kept"));
        assert!(fields.text.len() < 2 * 32 + WASTE_ALLOWANCE_BYTES, "{} bytes", fields.text.len());
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
                let old = fields.get(key).map(str::to_owned);
                let replaced = fields.insert(key.as_str(), value.as_str());
                let model_old = model.insert(key.clone(), value.clone());
                prop_assert_eq!(replaced, model_old.is_some());
                prop_assert_eq!(old, model_old);
            }
            let collected: ExtFields = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(&collected, &fields);
            let expected: Vec<(&str, &str)> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(fields.iter().collect::<Vec<_>>(), expected);
            // Removing every other key leaves the rest, and the buffer stays bounded.
            for key in model.keys().step_by(2) {
                prop_assert!(fields.remove(key).is_some());
            }
            let kept: Vec<(&str, &str)> = model.iter().skip(1).step_by(2).map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(fields.iter().collect::<Vec<_>>(), kept);
        }
    }
}
