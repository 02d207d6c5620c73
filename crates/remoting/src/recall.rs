//! A timer message's recall handle (Java `RecallMessageHandle.HandleV1`): what the broker
//! puts in the send response of a timer message and a producer hands back in RECALL_MESSAGE.
//! It is URL-safe base64 (with padding, as Java's `Base64.getUrlEncoder()`) of
//! `"v1 <topic> <brokerName> <timestamp> <uniqKey>"`, the timestamp being the message's
//! `TIMER_OUT_MS` + 1, so that the recall's own timer rounds into the same slot.
//! Shared by the broker, which builds and checks it, and the SDK, which reads the broker
//! name to know where to send the recall.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;

/// The only version there is.
const VERSION_1: &str = "v1";

/// A decoded handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallHandle {
    /// The topic the message was sent to.
    pub topic: String,
    /// The broker group that holds the timer.
    pub broker_name: String,
    /// The timestamp as written (the message's `TIMER_OUT_MS` + 1).
    pub timestamp: String,
    /// The message's `UNIQ_KEY`.
    pub message_id: String,
}

/// Why a handle was refused: Java's remark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("recall handle is invalid")]
pub struct InvalidRecallHandle;

impl RecallHandle {
    /// Encodes a handle (no check of its parts, as Java's `buildHandle`).
    pub fn build(topic: &str, broker_name: &str, timestamp: &str, message_id: &str) -> String {
        let raw = [VERSION_1, topic, broker_name, timestamp, message_id].join(" ");
        URL_SAFE.encode(raw.as_bytes())
    }

    /// Decodes a handle: base64 of at least five space-separated parts, the first `v1`.
    pub fn decode(handle: &str) -> Result<Self, InvalidRecallHandle> {
        if handle.is_empty() {
            return Err(InvalidRecallHandle);
        }
        let raw = URL_SAFE.decode(handle.as_bytes()).map_err(|_| InvalidRecallHandle)?;
        let raw = String::from_utf8(raw).map_err(|_| InvalidRecallHandle)?;
        let items: Vec<&str> = raw.split(' ').collect();
        if items.len() < 5 || items[0] != VERSION_1 {
            return Err(InvalidRecallHandle);
        }
        Ok(Self {
            topic: items[1].to_owned(),
            broker_name: items[2].to_owned(),
            timestamp: items[3].to_owned(),
            message_id: items[4].to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javas_encoding() {
        // Base64.getUrlEncoder().encodeToString("v1 TopicA broker-a 1700000000001 ID1".getBytes())
        // computed independently: URL-safe alphabet, padded.
        let handle = RecallHandle::build("TopicA", "broker-a", "1700000000001", "ID1");
        assert_eq!(handle, "djEgVG9waWNBIGJyb2tlci1hIDE3MDAwMDAwMDAwMDEgSUQx");
        let decoded = RecallHandle::decode(&handle).unwrap();
        assert_eq!(decoded.topic, "TopicA");
        assert_eq!(decoded.broker_name, "broker-a");
        assert_eq!(decoded.timestamp, "1700000000001");
        assert_eq!(decoded.message_id, "ID1");
        assert_eq!(RecallHandle::decode(""), Err(InvalidRecallHandle));
        assert_eq!(RecallHandle::decode("%%%"), Err(InvalidRecallHandle));
        assert_eq!(RecallHandle::decode(&URL_SAFE.encode("v2 a b c d")), Err(InvalidRecallHandle));
        assert_eq!(RecallHandle::decode(&URL_SAFE.encode("v1 a b c")), Err(InvalidRecallHandle));
    }
}
