//! Message properties (spec remoting-protocol §4.1, §4.2): the well-known keys, the ordered map
//! that holds them, and the `key U+0001 value U+0002` string they travel as, both in the send
//! header and at the tail of every stored record.

use std::collections::HashMap;

use compact_str::CompactString;

/// Separates a key from its value inside one entry.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends every entry.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// Separates business keys inside [`KEYS`].
pub const KEY_SEPARATOR: char = ' ';
/// Largest encoded properties string a stored record can carry, in bytes (an `i16` length).
pub const MAX_ENCODED_BYTES: usize = i16::MAX as usize;

/// Single tag of a message; subscriptions filter on it.
pub const TAGS: &str = "TAGS";
/// Business keys separated by a single space; the index makes them searchable.
pub const KEYS: &str = "KEYS";
/// `true`/`false`: whether the send waits for flush/replication before being answered.
pub const WAIT: &str = "WAIT";
/// Delay level 1..18 (−1 forces no delay on the DLQ path).
pub const DELAY: &str = "DELAY";
/// Original topic of a retried message.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Original topic of a delayed or half message parked in a system topic.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Original queue id of a delayed or half message parked in a system topic.
pub const REAL_QID: &str = "REAL_QID";
/// `true` on transaction half messages.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// Producer group; the broker asks it to check transaction state.
pub const PGROUP: &str = "PGROUP";
/// Queue min offset, set client-side on pulled messages.
pub const MIN_OFFSET: &str = "MIN_OFFSET";
/// Queue max offset, set client-side on pulled messages.
pub const MAX_OFFSET: &str = "MAX_OFFSET";
/// Buyer id (legacy business property).
pub const BUYER_ID: &str = "BUYER_ID";
/// Message id of the original message of a retried one.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Legacy transfer flag.
pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
/// Legacy correction flag.
pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
/// Legacy MQ2 flag.
pub const MQ2_FLAG: &str = "MQ2_FLAG";
/// Client-side reconsume count; moved into the `reconsumeTimes` header on retry sends.
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Client-side max reconsume count; moved into the `maxReconsumeTimes` header.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// Region of the broker (also a send-response field).
pub const MSG_REGION: &str = "MSG_REGION";
/// Trace switch (also a send-response field).
pub const TRACE_ON: &str = "TRACE_ON";
/// Client-generated message id (spec §4.8); the visible `msgId` of a message.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// Extra uniqueness information.
pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
/// Client-side consume start time.
pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
/// Number of messages in an inner batch (BatchCQ).
pub const INNER_NUM: &str = "INNER_NUM";
/// Base queue offset of an inner batch (BatchCQ).
pub const INNER_BASE: &str = "INNER_BASE";
/// Duplication information.
pub const DUP_INFO: &str = "DUP_INFO";
/// Delay before the first transaction check, in seconds.
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Queue offset of the half message in the transaction system topic.
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Transaction id.
pub const TRANSACTION_ID: &str = "__transactionId__";
/// How often the broker has checked this transaction.
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Namespace instance id.
pub const INSTANCE_ID: &str = "INSTANCE_ID";
/// Request/reply correlation id.
pub const CORRELATION_ID: &str = "CORRELATION_ID";
/// Client id a reply must be pushed to.
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// Request time-to-live.
pub const TTL: &str = "TTL";
/// Arrival time of a reply.
pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
/// Time a reply was pushed.
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
/// Cluster name, added by the broker on store.
pub const CLUSTER: &str = "CLUSTER";
/// Message type of request/reply (`reply`).
pub const MSG_TYPE: &str = "MSG_TYPE";
/// Pop checkpoint.
pub const POP_CK: &str = "POP_CK";
/// Pop checkpoint offset.
pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
/// Time of the first pop.
pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// Sharding key of ordered messages (5.x).
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// Forward queue id.
pub const FORWARD_QUEUE_ID: &str = "PROPERTY_FORWARD_QUEUE_ID";
/// Redirect marker.
pub const REDIRECT: &str = "REDIRECT";
/// Light message queues to dispatch to (`%LMQ%` multi-dispatch).
pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
/// Queue offsets in the light message queues.
pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
/// Trace context.
pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
/// 5.x arbitrary delay in seconds (client-set).
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// 5.x absolute delivery time in ms (client-set).
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// 5.x arbitrary delay in ms (client-set).
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// Timer internals: enqueue time.
pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
/// Timer internals: dequeue time.
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
/// Timer internals: how often the message rolled over the wheel.
pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
/// Timer internals: timeout time.
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// Timer internals: unique key of a deleted timer message.
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// Timer internals: delay level.
pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
/// Born host as a property.
pub const BORN_HOST: &str = "__BORNHOST";
/// Born timestamp as a property.
pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
/// Prefix of transient properties, which are never stored.
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
/// Transient topic sysflag, set by the client when pulling.
pub const TRANSIENT_TOPIC_SYS_FLAG: &str = "__RMQ.TRANSIENT.TOPIC_SYS_FLAG";
/// Transient group sysflag, set by the client when pulling.
pub const TRANSIENT_GROUP_SYS_FLAG: &str = "__RMQ.TRANSIENT.GROUP_SYS_FLAG";
/// Optional stored-record CRC property (`enabledAppendPropCRC`).
pub const CRC32: &str = "__CRC32#";
/// 5.x DLQ: original topic.
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// 5.x DLQ: original message id.
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// Legacy commercial delay, checked by Java producer hooks.
pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";

/// Above this many input bytes, [`decode`] de-duplicates keys through a hash index instead of
/// a linear scan, so a hostile string with thousands of entries costs linear time.
const LINEAR_DEDUP_MAX_BYTES: usize = 1024;

/// An insertion-ordered string map of message properties.
///
/// Messages carry a handful of entries, so a vector with linear lookup is faster and cheaper to
/// build than a hash map; keys and values up to 24 bytes are stored inline, without an
/// allocation each (the broker decodes and re-encodes every message's properties). Overwriting a key keeps its original position (like Java's
/// `LinkedHashMap`); the last write wins. Equality ignores order, as a map's should.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    entries: Vec<(CompactString, CompactString)>,
}

impl Properties {
    /// An empty map.
    pub const fn new() -> Self {
        Properties { entries: Vec::new() }
    }

    /// An empty map with room for `capacity` entries, to build one without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Properties { entries: Vec::with_capacity(capacity) }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`, returning the previous value. A new key goes last.
    ///
    /// Keys and values should not contain U+0001 or U+0002 and should not be empty, or they will
    /// not survive an encode/decode round trip (the Java decoder drops or splits them too).
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<String> {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(index) => {
                self.entries.get_mut(index).map(|entry| std::mem::replace(&mut entry.1, value).into_string())
            }
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value; the other entries keep their order.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.position(key).map(|index| self.entries.remove(index).1.into_string())
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Keeps only the entries for which `keep` returns true (e.g. to strip transient keys).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.entries.retain(|(k, v)| keep(k, v));
    }

    /// Length in bytes of [`encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Properties {}

impl<K: Into<CompactString>, V: Into<CompactString>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = Properties::new();
        props.extend(iter);
        props
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> Extend<(K, V)> for Properties {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// A properties string as a stored record holds it, written without building a `String`:
/// a [`Properties`] map, or a producer's string kept as sent ([`SentProperties`]).
pub trait RecordProperties {
    /// Length in bytes of what [`Self::encode_into`] appends.
    fn encoded_len(&self) -> usize;
    /// Appends the `key U+0001 value U+0002` entries to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
}

impl RecordProperties for Properties {
    fn encoded_len(&self) -> usize {
        Properties::encoded_len(self)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_into(self, out);
    }
}

/// Entries beyond which a producer's string is not kept as sent (checking that no key comes
/// twice is quadratic); Java clients send a handful.
const MAX_SENT_ENTRIES: usize = 32;

/// A producer's properties string that can be stored exactly as sent, with entries appended:
/// decoding it into a map and encoding that again (what Java's broker does) would give the
/// same entries, so the broker skips both on the send path. The string is split once, when
/// parsed; lookups then walk at most 32 spans.
#[derive(Debug, Clone, Copy)]
pub struct SentProperties<'a> {
    text: &'a str,
    sent: [SentEntry; MAX_SENT_ENTRIES],
    sent_count: usize,
    appended: [(&'a str, &'a str); 2],
}

/// One entry of [`SentProperties::text`]: the key is `start..separator`, the value
/// `separator + 1..end` (its U+0002 is at `end`).
#[derive(Debug, Clone, Copy, Default)]
struct SentEntry {
    start: u16,
    separator: u16,
    end: u16,
}

impl<'a> SentProperties<'a> {
    /// `text` when it is written as Java's encoder writes it: every entry `key U+0001 value
    /// U+0002` with a non-empty key and value, no key twice, at most 32 entries. `None`
    /// otherwise: [`decode`] then applies Java's rules for what to drop and which value wins.
    pub fn parse(text: &'a str) -> Option<Self> {
        // A stored record's properties fit an i16 length; longer ones are refused anyway.
        if text.len() > MAX_ENCODED_BYTES {
            return None;
        }
        let bytes = text.as_bytes();
        let mut parsed = Self {
            text,
            sent: [SentEntry::default(); MAX_SENT_ENTRIES],
            sent_count: 0,
            appended: [("", ""); 2],
        };
        let mut start = 0;
        while start < bytes.len() {
            // The separators are ASCII, so these positions are character boundaries.
            let end = start + memchr::memchr(PROPERTY_SEPARATOR as u8, &bytes[start..])?;
            let separator = start + memchr::memchr(NAME_VALUE_SEPARATOR as u8, &bytes[start..end])?;
            if separator == start || separator + 1 == end || parsed.sent_count == MAX_SENT_ENTRIES {
                return None;
            }
            let key = &text[start..separator];
            if parsed.sent_entries().any(|(sent, _)| sent == key) {
                return None;
            }
            // Every offset is at most MAX_ENCODED_BYTES, checked above.
            let narrow = |offset: usize| offset as u16;
            parsed.sent[parsed.sent_count] =
                SentEntry { start: narrow(start), separator: narrow(separator), end: narrow(end) };
            parsed.sent_count += 1;
            start = end + 1;
        }
        Some(parsed)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries().find(|(candidate, _)| *candidate == key).map(|(_, value)| value)
    }

    /// Adds `key` with `value` after the sent entries; false (and nothing added) when `key` is
    /// already set, either is empty or holds a separator, or two entries were added already.
    pub fn append(&mut self, key: &'a str, value: &'a str) -> bool {
        let well_formed =
            |part: &str| !part.is_empty() && !part.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR]);
        if !well_formed(key) || !well_formed(value) || self.get(key).is_some() {
            return false;
        }
        let Some(slot) = self.appended.iter_mut().find(|(key, _)| key.is_empty()) else { return false };
        *slot = (key, value);
        true
    }

    /// Every entry: the sent ones, then the appended ones.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.sent_entries().chain(self.appended())
    }

    fn sent_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        let text = self.text;
        self.sent[..self.sent_count].iter().map(move |entry| {
            let (start, separator, end) =
                (entry.start as usize, entry.separator as usize, entry.end as usize);
            (&text[start..separator], &text[separator + 1..end])
        })
    }

    fn appended(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.appended.into_iter().filter(|(key, _)| !key.is_empty())
    }
}

impl RecordProperties for SentProperties<'_> {
    fn encoded_len(&self) -> usize {
        self.text.len() + self.appended().map(|(key, value)| key.len() + value.len() + 2).sum::<usize>()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(self.text.as_bytes());
        for (key, value) in self.appended() {
            out.extend_from_slice(key.as_bytes());
            out.push(0x01);
            out.extend_from_slice(value.as_bytes());
            out.push(0x02);
        }
    }
}

/// Encodes `props` as the wire string: `key U+0001 value U+0002` per entry, in order.
pub fn encode(props: &Properties) -> String {
    let mut out = String::with_capacity(props.encoded_len());
    for (k, v) in props.iter() {
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// Appends the UTF-8 bytes of [`encode`]`(props)` to `out` without building a `String`.
pub fn encode_into(props: &Properties, out: &mut Vec<u8>) {
    out.reserve(props.encoded_len());
    for (k, v) in props.iter() {
        out.extend_from_slice(k.as_bytes());
        out.push(0x01);
        out.extend_from_slice(v.as_bytes());
        out.push(0x02);
    }
}

/// The key and value of every piece of `text` that holds a U+0001, split as Java splits them:
/// pieces end at U+0002, a key at the piece's first U+0001 (either may be empty). Byte-wise
/// with `memchr`: both separators are ASCII, so every cut is a character boundary, and a
/// `char` pattern would compare each candidate with `memcmp` (the store reads the properties
/// of every record this way).
pub fn raw_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(PROPERTY_SEPARATOR as u8, rest.as_bytes()).unwrap_or(rest.len());
        let piece = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if let Some(at) = memchr::memchr(NAME_VALUE_SEPARATOR as u8, piece.as_bytes()) {
            return Some((&piece[..at], &piece[at + 1..]));
        }
    })
}

/// The entries Java keeps: [`raw_pairs`] with a non-empty key and value (which also drops
/// pieces of fewer than three characters).
fn entries_of(text: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    raw_pairs(text).filter(|(key, value)| !key.is_empty() && !value.is_empty())
}

/// Decodes a properties string exactly like Java's `string2messageProperties`: split on U+0002,
/// keep pieces whose first U+0001 is neither the first nor the last character, last write wins.
/// Never fails: anything unparseable is skipped, as in Java.
pub fn decode(text: &str) -> Properties {
    let entries = entries_of(text);
    if text.len() <= LINEAR_DEDUP_MAX_BYTES {
        return entries.collect();
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut props = Properties::new();
    for (key, value) in entries {
        match index.get(key).and_then(|&at| props.entries.get_mut(at)) {
            Some(entry) => entry.1 = value.into(),
            None => {
                index.insert(key, props.entries.len());
                props.entries.push((key.into(), value.into()));
            }
        }
    }
    props
}

/// The tag hash code stored in consume-queue units: Java `String.hashCode()` of the tags,
/// sign-extended to 64 bits, so our filters agree with Java clients' subscription code sets.
pub fn tags_code(tags: &str) -> i64 {
    i64::from(crate::hash::java_string_hash(tags))
}

/// The business keys of [`KEYS`], split on single spaces, skipping empty pieces.
pub fn keys(props: &Properties) -> impl Iterator<Item = &str> {
    props.get(KEYS).unwrap_or("").split(KEY_SEPARATOR).filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::testkit::arb_properties;
    use proptest::prelude::*;

    #[test]
    fn encodes_in_insertion_order() {
        let mut props = Properties::new();
        props.insert(TAGS, "TagA");
        props.insert(KEYS, "k1 k2");
        props.insert(TAGS, "TagB");
        assert_eq!(encode(&props), "TAGS\u{1}TagB\u{2}KEYS\u{1}k1 k2\u{2}");
        let mut bytes = Vec::new();
        encode_into(&props, &mut bytes);
        assert_eq!(bytes, encode(&props).into_bytes());
        assert_eq!(props.encoded_len(), bytes.len());
        assert_eq!(props.remove(TAGS).as_deref(), Some("TagB"));
        assert_eq!(encode(&props), "KEYS\u{1}k1 k2\u{2}");
        assert_eq!(encode(&Properties::new()), "");
    }

    #[test]
    fn decodes_with_java_rules() {
        let props = decode("a\u{1}1\u{2}\u{1}x\u{2}b\u{1}\u{2}c\u{1}3\u{1}4\u{2}a\u{1}2\u{2}zz\u{2}d\u{1}5");
        let got: Vec<_> = props.iter().collect();
        assert_eq!(got, vec![("a", "2"), ("c", "3\u{1}4"), ("d", "5")]);
        assert!(decode("").is_empty());
        assert!(decode("\u{2}\u{2}\u{1}\u{2}").is_empty());
    }

    #[test]
    fn large_input_uses_the_same_rules() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!("k{}\u{1}v{i}\u{2}", i % 100));
        }
        text.push_str("\u{1}lost\u{2}");
        let props = decode(&text);
        assert_eq!(props.len(), 100);
        assert_eq!(props.get("k7"), Some("v407"));
        assert_eq!(props.iter().next(), Some(("k0", "v400")));
    }

    #[test]
    fn keys_and_tags_code() {
        let mut props = Properties::new();
        assert_eq!(keys(&props).count(), 0);
        props.insert(KEYS, " order-1  order-2 ");
        assert_eq!(keys(&props).collect::<Vec<_>>(), vec!["order-1", "order-2"]);
        assert_eq!(tags_code("TagA"), 2598919);
        // Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE; sign extension keeps it.
        assert_eq!(tags_code("polygenelubricants"), -2_147_483_648);
    }

    #[test]
    fn equality_ignores_order() {
        let a: Properties = [("x", "1"), ("y", "2")].into_iter().collect();
        let b: Properties = [("y", "2"), ("x", "1")].into_iter().collect();
        let c: Properties = [("y", "2"), ("x", "3")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn round_trip(props in arb_properties(20)) {
            let text = encode(&props);
            prop_assert_eq!(text.len(), props.encoded_len());
            let back = decode(&text);
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), props.iter().collect::<Vec<_>>());
        }

        /// Storing a producer's string as sent, with entries appended, stores what decoding
        /// it, inserting them and encoding the map again stores (read back as a map); a
        /// string is refused only where the map would normalise it.
        #[test]
        fn sent_strings_store_what_the_map_stores(
            text in "[\u{1}\u{2}a-c\u{e9}]{0,64}",
            added in proptest::collection::vec(("[a-d]{1,2}", "[a-c\u{1}]{0,3}"), 0..3),
        ) {
            let decoded = decode(&text);
            let normalised = !text.is_empty() && !text.ends_with(PROPERTY_SEPARATOR)
                || text.split_terminator(PROPERTY_SEPARATOR).count() != decoded.len()
                || text.split_terminator(PROPERTY_SEPARATOR).any(|entry| {
                    entry.split_once(NAME_VALUE_SEPARATOR).is_none_or(|(key, value)| key.is_empty() || value.is_empty())
                });
            let Some(mut sent) = SentProperties::parse(&text) else {
                prop_assert!(normalised, "refused a string the map keeps as is: {:?}", text);
                return Ok(());
            };
            prop_assert!(!normalised, "kept a string the map normalises: {:?}", text);
            let mut map = decoded;
            for (key, value) in &added {
                let room = sent.appended().count() < 2;
                let fits = room && !value.is_empty() && !value.contains(NAME_VALUE_SEPARATOR) && !map.contains_key(key);
                prop_assert_eq!(sent.append(key, value), fits);
                if fits {
                    map.insert(key.as_str(), value.as_str());
                }
            }
            let mut stored = Vec::new();
            sent.encode_into(&mut stored);
            prop_assert_eq!(stored.len(), RecordProperties::encoded_len(&sent));
            let stored = String::from_utf8(stored).unwrap();
            prop_assert_eq!(decode(&stored), map.clone());
            prop_assert_eq!(sent.entries().count(), map.len());
            for (key, value) in map.iter() {
                prop_assert_eq!(sent.get(key), Some(value));
            }
        }

        /// The byte-wise splitter cuts where `str::split` and `split_once` would.
        #[test]
        fn raw_pairs_split_like_the_char_patterns(text in "[\u{1}\u{2}a-c\u{e9}\u{1f600}]{0,64}") {
            let expected: Vec<(&str, &str)> = text
                .split(PROPERTY_SEPARATOR)
                .filter_map(|piece| piece.split_once(NAME_VALUE_SEPARATOR))
                .collect();
            prop_assert_eq!(raw_pairs(&text).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn java_encoded_strings_are_kept_as_sent(props in arb_properties(20)) {
            let text = encode(&props);
            let sent = SentProperties::parse(&text);
            prop_assert!(sent.is_some(), "refused {:?}", text);
            let entries: Vec<_> = sent.iter().flat_map(|sent| sent.entries()).collect();
            prop_assert_eq!(entries, props.iter().collect::<Vec<_>>());
        }

        #[test]
        fn decode_never_panics(text in "[\u{1}\u{2}a-c\u{e9}]{0,64}") {
            let props = decode(&text);
            for (k, v) in props.iter() {
                prop_assert!(!k.is_empty() && !v.is_empty());
                let clean = !k.contains(NAME_VALUE_SEPARATOR) && !k.contains(PROPERTY_SEPARATOR) && !v.contains(PROPERTY_SEPARATOR);
                prop_assert!(clean, "separator leaked into {:?}={:?}", k, v);
            }
        }
    }
}
