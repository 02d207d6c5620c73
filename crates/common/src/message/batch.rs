//! Batch bodies (spec remoting-protocol §4.6): SEND_BATCH_MESSAGE bodies and inner-batch
//! records are items back to back, each `TOTALSIZE, MAGIC(0), BODYCRC(0), FLAG,
//! BODYLEN + BODY, PROPLEN + PROPERTIES`, with no count prefix.

use bytes::Bytes;

use super::error::RecordError;
use super::record::{get_i32, trailing_properties};
use super::{property, Message, MessageExt, Properties};

/// Bytes of an item without body and properties: four i32 fields, body length, i16 length.
pub const ITEM_FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4 + 2;
/// Offset of FLAG in an item.
const FLAG_AT: usize = 12;
/// Offset of BODYLEN in an item.
const BODY_LEN_AT: usize = 16;
/// Offset of the body in an item.
const BODY_AT: usize = 20;

/// One message of a batch: what a producer sets per message (the topic is the batch's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchItem {
    /// User flag of this message.
    pub flag: i32,
    /// Body of this message (shares the batch buffer after [`decode_batch`]).
    pub body: Bytes,
    /// This message's own properties (its `UNIQ_KEY`, tags, keys, `WAIT`, ...).
    pub properties: Properties,
}

impl BatchItem {
    /// The item carrying `message`'s flag, body and properties (its topic belongs to the batch).
    pub fn from_message(message: &Message) -> Self {
        BatchItem { flag: message.flag, body: message.body.clone(), properties: message.properties.clone() }
    }

    /// Bytes this item takes in a batch body.
    pub fn encoded_len(&self) -> usize {
        ITEM_FIXED_LEN.saturating_add(self.body.len()).saturating_add(self.properties.encoded_len())
    }
}

/// One item of a batch body, borrowed from it: what the broker stores per message without
/// decoding its properties into a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItemRef<'a> {
    /// User flag of this message.
    pub flag: i32,
    /// Where this message's body is in the batch body.
    pub body: std::ops::Range<usize>,
    /// This message's properties string, as the producer wrote it.
    pub properties: &'a str,
}

/// The items of a batch body, in order. Every item's fields must exactly fill its TOTALSIZE,
/// as Java's reader assumes; any inconsistency is an error (and ends the iteration), never a
/// panic.
pub fn batch_item_refs(body: &[u8]) -> impl Iterator<Item = Result<BatchItemRef<'_>, RecordError>> + '_ {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= body.len() {
            return None;
        }
        let item = item_at(body, pos);
        match &item {
            Ok((_, total_len)) => pos += total_len,
            Err(_) => failed = true,
        }
        Some(item.map(|(item, _)| item))
    })
}

/// The item starting at `pos` of `body`, and its length.
fn item_at(body: &[u8], pos: usize) -> Result<(BatchItemRef<'_>, usize), RecordError> {
    let rest = body.get(pos..).unwrap_or(&[]);
    let total = get_i32(rest, 0).ok_or(RecordError::Truncated { needed: 4, available: rest.len() })?;
    let total_len = usize::try_from(total)
        .ok()
        .filter(|&len| len >= ITEM_FIXED_LEN)
        .ok_or(RecordError::BadTotalSize(total))?;
    let item =
        rest.get(..total_len).ok_or(RecordError::Truncated { needed: total_len, available: rest.len() })?;
    let flag = get_i32(item, FLAG_AT).unwrap_or(0);
    let body_len = get_i32(item, BODY_LEN_AT).unwrap_or(0);
    let body_end = usize::try_from(body_len)
        .ok()
        .and_then(|len| BODY_AT.checked_add(len))
        .filter(|&end| end.saturating_add(2) <= total_len)
        .ok_or(RecordError::BadLength { field: "batch item body", len: i64::from(body_len) })?;
    let properties = trailing_properties(item, body_end, total_len, "batch item properties")?;
    let properties = std::str::from_utf8(properties)
        .map_err(|_| RecordError::InvalidUtf8 { field: "batch item properties" })?;
    Ok((BatchItemRef { flag, body: pos + BODY_AT..pos + body_end, properties }, total_len))
}

/// Splits a batch body into its items, properties decoded. Bodies are slices of `body` (no
/// copy). See [`batch_item_refs`] for what is refused.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchItem>, RecordError> {
    batch_item_refs(body)
        .map(|item| {
            item.map(|item| BatchItem {
                flag: item.flag,
                body: body.slice(item.body),
                properties: property::decode(item.properties),
            })
        })
        .collect()
}

/// Encodes items as a batch body, refusing properties over
/// [`property::MAX_ENCODED_BYTES`] and a body too large for its i32 lengths.
pub fn try_encode_batch(items: &[BatchItem]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(items.iter().map(BatchItem::encoded_len).fold(0, usize::saturating_add));
    for item in items {
        let properties_len = item.properties.encoded_len();
        if properties_len > property::MAX_ENCODED_BYTES {
            return Err(RecordError::TooLong {
                field: "batch item properties",
                len: properties_len,
                max: property::MAX_ENCODED_BYTES,
            });
        }
        let total = item.encoded_len();
        let max = i32::MAX as usize;
        let total = i32::try_from(total).map_err(|_| RecordError::TooLong {
            field: "batch item",
            len: total,
            max,
        })?;
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // MAGICCODE, ignored
        out.extend_from_slice(&0i32.to_be_bytes()); // BODYCRC, recomputed by the broker
        out.extend_from_slice(&item.flag.to_be_bytes());
        // Smaller than `total`, which fits an i32.
        out.extend_from_slice(&(item.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&item.body);
        out.extend_from_slice(&(properties_len as u16).to_be_bytes());
        property::encode_into(&item.properties, &mut out);
    }
    Ok(out)
}

/// Encodes items as a batch body (spec §4.6), as a producer sends it.
///
/// Items must respect the limits that [`try_encode_batch`] checks (properties at most 32767
/// bytes); if one does not, the result is empty rather than a malformed batch.
pub fn encode_batch(items: &[BatchItem]) -> Vec<u8> {
    try_encode_batch(items).unwrap_or_default()
}

/// Expands an inner-batch record (sysflag NEED_UNWRAP | INNER_BATCH) into its messages the way
/// 5.x clients do: item *i* gets queue offset `QUEUEOFFSET + i`, its own flag, body and
/// properties, and the record's topic, queue, hosts, timestamps, sysflag and commit-log offset.
pub fn unwrap_inner_batch(ext: &MessageExt) -> Result<Vec<MessageExt>, RecordError> {
    let items = decode_batch(&ext.message.body)?;
    Ok(items
        .into_iter()
        .zip(0i64..)
        .map(|(item, index)| MessageExt {
            message: Message {
                topic: ext.message.topic.clone(),
                flag: item.flag,
                properties: item.properties,
                body: item.body,
            },
            queue_id: ext.queue_id,
            queue_offset: ext.queue_offset.wrapping_add(index),
            sys_flag: ext.sys_flag,
            born_timestamp: ext.born_timestamp,
            born_host: ext.born_host,
            store_timestamp: ext.store_timestamp,
            store_host: ext.store_host,
            commit_log_offset: ext.commit_log_offset,
            ..MessageExt::default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::testkit::{arb_body, arb_properties};
    use crate::message::{record, sysflag};
    use proptest::prelude::*;

    fn item(flag: i32, body: &'static [u8], props: &[(&str, &str)]) -> BatchItem {
        BatchItem { flag, body: Bytes::from_static(body), properties: props.iter().copied().collect() }
    }

    #[test]
    fn java_layout() {
        let bytes = encode_batch(&[item(7, b"ab", &[("K", "V")])]);
        let mut expected =
            vec![0, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, b'a', b'b', 0, 4];
        expected.extend_from_slice(b"K\x01V\x02");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn decodes_zero_copy() {
        let items = vec![
            item(1, b"first", &[("UNIQ_KEY", "A")]),
            item(2, b"", &[]),
            item(3, b"third", &[("KEYS", "x y")]),
        ];
        let bytes = Bytes::from(encode_batch(&items));
        let decoded = decode_batch(&bytes).unwrap();
        assert_eq!(decoded, items);
        assert_eq!(decoded[0].body.as_ptr() as usize, bytes.as_ptr() as usize + BODY_AT);
        assert_eq!(decode_batch(&Bytes::new()), Ok(vec![]));
    }

    #[test]
    fn malformed_batches() {
        let good = encode_batch(&[item(1, b"body", &[("a", "b")])]);
        let decode = |bytes: &[u8]| decode_batch(&Bytes::copy_from_slice(bytes)).map(|_| ());
        assert_eq!(decode(&good[..2]), Err(RecordError::Truncated { needed: 4, available: 2 }));
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(RecordError::Truncated { needed: good.len(), available: good.len() - 1 })
        );
        let mut bad = good.clone();
        bad[..4].copy_from_slice(&21i32.to_be_bytes());
        assert_eq!(decode(&bad), Err(RecordError::BadTotalSize(21)));
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&100i32.to_be_bytes());
        assert_eq!(decode(&bad), Err(RecordError::BadLength { field: "batch item body", len: 100 }));
        let mut bad = good.clone();
        bad[24..26].copy_from_slice(&(-3i16).to_be_bytes());
        assert_eq!(decode(&bad), Err(RecordError::BadLength { field: "batch item properties", len: -3 }));
        let mut bad = good.clone();
        bad[24..26].copy_from_slice(&3i16.to_be_bytes());
        assert_eq!(
            decode(&bad),
            Err(RecordError::LengthMismatch { total_size: good.len(), parsed: good.len() - 1 })
        );
    }

    #[test]
    fn oversized_properties_are_refused() {
        let big = BatchItem {
            properties: [("k", "v".repeat(property::MAX_ENCODED_BYTES))].into_iter().collect(),
            ..BatchItem::default()
        };
        assert!(matches!(try_encode_batch(std::slice::from_ref(&big)), Err(RecordError::TooLong { .. })));
        assert!(encode_batch(&[big]).is_empty());
    }

    #[test]
    fn unwraps_inner_batches() {
        let items = vec![item(1, b"one", &[("UNIQ_KEY", "ID1")]), item(2, b"two", &[("UNIQ_KEY", "ID2")])];
        let outer = MessageExt {
            message: Message::new("BatchTopic", encode_batch(&items)),
            queue_id: 4,
            queue_offset: 100,
            sys_flag: sysflag::NEED_UNWRAP_FLAG | sysflag::INNER_BATCH_FLAG,
            commit_log_offset: 5000,
            ..MessageExt::default()
        };
        let mut stored = Vec::new();
        assert_eq!(record::encode(&outer, &mut stored), Ok(()));
        let pulled = record::decode_all(&stored).unwrap();
        let inner = unwrap_inner_batch(&pulled[0]).unwrap();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[1].message.topic, "BatchTopic");
        assert_eq!(inner[1].queue_offset, 101);
        assert_eq!(inner[1].queue_id, 4);
        assert_eq!(inner[1].message.flag, 2);
        assert_eq!(&inner[1].message.body[..], b"two");
        assert_eq!(inner[1].msg_id(), "ID2");
        assert_eq!(inner[1].commit_log_offset, 5000);
    }

    fn arb_item() -> impl Strategy<Value = BatchItem> {
        (any::<i32>(), arb_body(), arb_properties(8)).prop_map(|(flag, body, properties)| BatchItem {
            flag,
            body,
            properties,
        })
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec(arb_item(), 0..8)) {
            let bytes = try_encode_batch(&items);
            prop_assert!(bytes.is_ok());
            let bytes = Bytes::from(bytes.unwrap_or_default());
            prop_assert_eq!(bytes.len(), items.iter().map(BatchItem::encoded_len).sum::<usize>());
            prop_assert_eq!(decode_batch(&bytes), Ok(items));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_batch(&Bytes::from(bytes));
        }

        #[test]
        fn decode_never_panics_on_mutations(items in proptest::collection::vec(arb_item(), 1..4),
                                            at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = encode_batch(&items);
            let index = at.index(bytes.len());
            bytes[index] = byte;
            // Re-encoding may differ (a mutated separator changes how properties split), but
            // the bodies are slices of the input and cannot outgrow it.
            if let Ok(decoded) = decode_batch(&Bytes::from(bytes.clone())) {
                prop_assert!(decoded.iter().map(|item| item.body.len()).sum::<usize>() <= bytes.len());
            }
        }
    }
}
