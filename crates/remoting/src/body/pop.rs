//! POP bodies: the acknowledgement of several popped messages in one request.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most bytes a batch ack's bit set may take (Java `BitSet.toByteArray`): 4096 bits, far more
/// than the 32 messages one pop returns spread over a filtered queue. A peer's larger set is
/// refused rather than walked.
pub const MAX_BIT_SET_BYTES: usize = 512;

/// The request body of BATCH_ACK_MESSAGE (200151), Java `BatchAckMessageRequestBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchAckMessageRequestBody {
    /// Acknowledgements, one per check point (one pop of one queue).
    pub acks: Vec<BatchAck>,
    /// The broker the messages were popped from.
    pub broker_name: String,
}

/// The acknowledged messages of one check point (Java `BatchAck`, with its short JSON names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchAck {
    /// The acknowledged offsets, as bits counted from `start_offset`.
    #[serde(rename = "b", alias = "bitSet")]
    pub bit_set: BitSet,
    /// Consumer group.
    #[serde(rename = "c", alias = "consumerGroup")]
    pub consumer_group: String,
    /// The invisible time of the pop, in ms.
    #[serde(rename = "it", alias = "invisibleTime")]
    pub invisible_time: i64,
    /// When the messages were popped, epoch ms.
    #[serde(rename = "pt", alias = "popTime")]
    pub pop_time: i64,
    /// Queue of the messages.
    #[serde(rename = "q", alias = "queueId")]
    pub queue_id: i32,
    /// `0` for the topic itself, `1`/`2` for its pop retry topic (the receipt handle's flag).
    #[serde(rename = "r", alias = "retry")]
    pub retry: String,
    /// Revive queue of the check point.
    #[serde(rename = "rq", alias = "reviveQueueId")]
    pub revive_queue_id: i32,
    /// Start offset of the check point.
    #[serde(rename = "so", alias = "startOffset")]
    pub start_offset: i64,
    /// The topic the client consumes (not the retry topic).
    #[serde(rename = "t", alias = "topic")]
    pub topic: String,
}

/// Java's `BitSet` as its serializer writes it: the little-endian bytes of
/// `BitSet.toByteArray()`, base64-encoded in a JSON string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    bytes: Vec<u8>,
}

impl BitSet {
    /// Sets bit `index`; false (and nothing set) past [`MAX_BIT_SET_BYTES`].
    pub fn set(&mut self, index: usize) -> bool {
        let byte = index / 8;
        if byte >= MAX_BIT_SET_BYTES {
            return false;
        }
        if self.bytes.len() <= byte {
            self.bytes.resize(byte + 1, 0);
        }
        self.bytes[byte] |= 1 << (index % 8);
        true
    }

    /// The set bits, in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.bytes.iter().enumerate().flat_map(|(byte, bits)| {
            (0..8).filter(move |bit| bits & (1 << bit) != 0).map(move |bit| byte * 8 + bit)
        })
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.bytes.iter().all(|byte| *byte == 0)
    }
}

impl Serialize for BitSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let end = self.bytes.iter().rposition(|byte| *byte != 0).map_or(0, |last| last + 1);
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.bytes[..end]))
    }
}

impl<'de> Deserialize<'de> for BitSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        if text.len() > MAX_BIT_SET_BYTES.div_ceil(3) * 4 {
            return Err(serde::de::Error::custom("batch ack bit set too large"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|error| serde::de::Error::custom(format!("batch ack bit set: {error}")))?;
        Ok(Self { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastjson::{self, Dialect};

    #[test]
    fn bit_sets_travel_as_javas_base64_bytes() {
        let mut bits = BitSet::default();
        assert!(bits.set(0) && bits.set(9));
        assert!(!bits.set(MAX_BIT_SET_BYTES * 8));
        // Java: BitSet{0, 9}.toByteArray() = [0x01, 0x02] → "AQI=".
        let ack = BatchAck { bit_set: bits.clone(), topic: "T".into(), ..BatchAck::default() };
        let json = String::from_utf8(fastjson::to_vec(&ack, Dialect::Fastjson).unwrap()).unwrap();
        assert!(json.contains(r#""b":"AQI=""#), "{json}");
        let back: BatchAck = fastjson::from_slice(json.as_bytes()).unwrap();
        assert_eq!(back.bit_set.ones().collect::<Vec<_>>(), vec![0, 9]);
        let long_names: BatchAck =
            fastjson::from_slice(br#"{"bitSet":"AQ==","consumerGroup":"G","startOffset":7}"#).unwrap();
        assert_eq!((long_names.consumer_group.as_str(), long_names.start_offset), ("G", 7));
        assert_eq!(long_names.bit_set.ones().collect::<Vec<_>>(), vec![0]);
    }
}
