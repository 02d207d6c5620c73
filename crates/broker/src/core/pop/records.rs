//! The records of the revive topic (`rmq_sys_REVIVE_LOG_<cluster>`): check points written by
//! pops (tag `ck`) and acknowledgements (tags `ack`, `bAck`), in Java's JSON with its short
//! member names (`PopCheckPoint`, `AckMsg`, `BatchAckMsg`), so Java's tools read Apogee's
//! revive topic and the other way round.
//!
//! Java stores them as timer messages due at the check point's revive time, so its revive
//! service reads each one when it is due. Apogee's records are ordinary messages of the
//! revive queue, read as soon as they are stored, and the revive service waits for the revive
//! time itself (`revive.rs`). Switching to timer delivery (`core::timer` exists now) changes
//! only `revive_record`'s destination and when the service sees a record.

use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::InnerMessage;
use crate::BrokerState;

/// Tag of a check point record (Java `PopAckConstants.CK_TAG`).
pub const CK_TAG: &str = "ck";
/// Tag of an ack record.
pub const ACK_TAG: &str = "ack";
/// Tag of a batch ack record.
pub const BATCH_ACK_TAG: &str = "bAck";
/// Tag of an orderly ack record: Apogee's own (Java keeps orderly progress only in its
/// consumer offsets); Java's revive service skips records of tags it does not know.
pub const ORDER_ACK_TAG: &str = "oAck";
/// The revive queue orderly ack records go to (orderly pops have no revive queue of their own).
pub const ORDER_ACK_QUEUE: i32 = 0;
/// Most messages one check point covers (one pop reads at most 32).
pub const MAX_CK_MESSAGES: usize = 32;

/// A check point: one pop of one queue (Java `PopCheckPoint`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckPoint {
    /// Acked bits, by index into `offset_diffs` (the revive service keeps its own).
    #[serde(rename = "bm")]
    pub bit_map: i32,
    /// The broker that popped.
    #[serde(rename = "bn", skip_serializing_if = "Option::is_none")]
    pub broker_name: Option<String>,
    /// Consumer group.
    #[serde(rename = "c")]
    pub group: String,
    /// Queue offset of each message minus `start_offset`.
    #[serde(rename = "d")]
    pub offset_diffs: Vec<i32>,
    /// Invisible time of the pop, in ms.
    #[serde(rename = "it")]
    pub invisible_ms: i64,
    /// Number of messages.
    #[serde(rename = "n")]
    pub num: i32,
    /// When the pop happened, epoch ms.
    #[serde(rename = "pt")]
    pub pop_time_ms: i64,
    /// Queue popped.
    #[serde(rename = "q")]
    pub queue_id: i32,
    /// Offset of the check point in its revive queue (Java fills it when it re-puts one).
    #[serde(rename = "ro")]
    pub revive_offset: i64,
    /// Start offset: where the pop began reading.
    #[serde(rename = "so")]
    pub start_offset: i64,
    /// Topic popped (the pop retry topic for redeliveries).
    #[serde(rename = "t")]
    pub topic: String,
}

/// The [`CkKey`] of a check point or of an ack: both carry its five fields by the same names.
macro_rules! ck_key_of {
    ($record:expr) => {
        CkKey {
            topic: $record.topic.clone(),
            group: $record.group.clone(),
            queue_id: $record.queue_id,
            start_offset: $record.start_offset,
            pop_time_ms: $record.pop_time_ms,
        }
    };
}

impl CheckPoint {
    /// When un-acked messages go back to the group.
    pub fn revive_time_ms(&self) -> i64 {
        self.pop_time_ms.saturating_add(self.invisible_ms)
    }

    /// Queue offset of message `index`.
    pub fn offset_at(&self, index: usize) -> Option<i64> {
        self.offset_diffs.get(index).map(|diff| self.start_offset.saturating_add(i64::from(*diff)))
    }

    /// The offset after the last message: where the group's pops go on.
    pub fn end_offset(&self) -> i64 {
        self.offset_diffs.last().map_or(self.start_offset, |diff| {
            self.start_offset.saturating_add(i64::from(*diff)).saturating_add(1)
        })
    }

    /// What identifies the check point to its acks.
    pub fn key(&self) -> CkKey {
        ck_key_of!(self)
    }
}

/// What an ack names its check point by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CkKey {
    /// Topic popped.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Queue popped.
    pub queue_id: i32,
    /// Start offset of the check point.
    pub start_offset: i64,
    /// Pop time of the check point.
    pub pop_time_ms: i64,
}

/// An acknowledgement (Java `AckMsg`, and `BatchAckMsg` with `aol`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AckRecord {
    /// Offset acked (single acks).
    #[serde(rename = "ao", alias = "ackOffset")]
    pub ack_offset: i64,
    /// Offsets acked (batch acks).
    #[serde(rename = "aol", alias = "ackOffsetList", skip_serializing_if = "Vec::is_empty")]
    pub ack_offsets: Vec<i64>,
    /// The broker that popped.
    #[serde(rename = "bn", alias = "brokerName", skip_serializing_if = "Option::is_none")]
    pub broker_name: Option<String>,
    /// Consumer group.
    #[serde(rename = "c", alias = "consumerGroup")]
    pub group: String,
    /// Pop time of the check point.
    #[serde(rename = "pt", alias = "popTime")]
    pub pop_time_ms: i64,
    /// Queue.
    #[serde(rename = "q", alias = "queueId")]
    pub queue_id: i32,
    /// Start offset of the check point.
    #[serde(rename = "so", alias = "startOffset")]
    pub start_offset: i64,
    /// Topic popped.
    #[serde(rename = "t", alias = "topic")]
    pub topic: String,
}

impl AckRecord {
    /// The check point acked.
    pub fn key(&self) -> CkKey {
        ck_key_of!(self)
    }

    /// Every offset acked.
    pub fn offsets(&self) -> Vec<i64> {
        if self.ack_offsets.is_empty() {
            vec![self.ack_offset]
        } else {
            self.ack_offsets.clone()
        }
    }
}

/// Where an orderly ack moved a group's offset: kept in the revive topic until the consumer
/// offsets holding it are on disk, so a kill -9 before that write does not move the offset
/// back and deliver acked messages again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderAckRecord {
    /// Consumer group.
    #[serde(rename = "c")]
    pub group: String,
    /// The offset committed.
    #[serde(rename = "o")]
    pub offset: i64,
    /// Queue.
    #[serde(rename = "q")]
    pub queue_id: i32,
    /// Topic.
    #[serde(rename = "t")]
    pub topic: String,
}

/// One record of the revive topic, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviveRecord {
    /// A check point.
    CheckPoint(CheckPoint),
    /// An ack or batch ack.
    Ack(AckRecord),
    /// An orderly ack's offset commit.
    OrderAck(OrderAckRecord),
    /// Something else (a record of an unknown tag, or a body that does not parse): skipped.
    Other,
}

/// Reads a stored revive record.
pub fn parse(record: &[u8]) -> ReviveRecord {
    let Ok(view) = RecordView::parse(record, false) else { return ReviveRecord::Other };
    let parsed = match view.property(property::TAGS) {
        Some(CK_TAG) => serde_json::from_slice(view.body()).map(ReviveRecord::CheckPoint),
        Some(ACK_TAG | BATCH_ACK_TAG) => serde_json::from_slice(view.body()).map(ReviveRecord::Ack),
        Some(ORDER_ACK_TAG) => serde_json::from_slice(view.body()).map(ReviveRecord::OrderAck),
        _ => return ReviveRecord::Other,
    };
    parsed.unwrap_or_else(|error| {
        tracing::warn!(%error, "revive record does not parse; skipped");
        ReviveRecord::Other
    })
}

/// The record storing a check point in revive queue `revive_qid`.
pub fn check_point_record(state: &BrokerState, ck: &CheckPoint, revive_qid: i32) -> InnerMessage {
    let unique_id = format!(
        "{}@{}@{}@{}@{}@{}@{CK_TAG}",
        ck.topic,
        ck.queue_id,
        ck.start_offset,
        ck.group,
        ck.pop_time_ms,
        ck.broker_name.as_deref().unwrap_or("")
    );
    let body = serde_json::to_vec(ck).unwrap_or_default();
    revive_record(state, revive_qid, CK_TAG, unique_id, body)
}

/// The record storing an ack in revive queue `revive_qid`.
pub fn ack_record(state: &BrokerState, ack: &AckRecord, revive_qid: i32) -> InnerMessage {
    let tag = if ack.ack_offsets.is_empty() { ACK_TAG } else { BATCH_ACK_TAG };
    let acked = if ack.ack_offsets.is_empty() {
        ack.ack_offset.to_string()
    } else {
        format!("{:?}", ack.ack_offsets)
    };
    let unique_id = format!("{}@{}@{acked}@{}@{}@{tag}", ack.topic, ack.queue_id, ack.group, ack.pop_time_ms);
    let body = serde_json::to_vec(ack).unwrap_or_default();
    revive_record(state, revive_qid, tag, unique_id, body)
}

/// The record storing an orderly ack's offset commit.
pub fn order_ack_record(state: &BrokerState, ack: &OrderAckRecord) -> InnerMessage {
    let unique_id = format!("{}@{}@{}@{}@{ORDER_ACK_TAG}", ack.topic, ack.queue_id, ack.offset, ack.group);
    let body = serde_json::to_vec(ack).unwrap_or_default();
    revive_record(state, ORDER_ACK_QUEUE, ORDER_ACK_TAG, unique_id, body)
}

/// A message of the revive topic. Java's `UNIQ_KEY` of these records names what they are
/// about, so a duplicate is recognisable in tools.
fn revive_record(
    state: &BrokerState,
    revive_qid: i32,
    tag: &str,
    unique_id: String,
    body: Vec<u8>,
) -> InnerMessage {
    let mut properties = Properties::default();
    properties.insert(property::TAGS, tag);
    properties.insert(property::UNIQ_KEY, unique_id);
    properties.insert(property::WAIT, "false");
    InnerMessage::new(
        super::revive_topic(&state.config),
        revive_qid,
        Bytes::from(body),
        properties,
        state.store_host,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_points_use_javas_short_names() {
        let ck = CheckPoint {
            group: "G".into(),
            topic: "T".into(),
            queue_id: 1,
            start_offset: 10,
            offset_diffs: vec![0, 2],
            num: 2,
            pop_time_ms: 1000,
            invisible_ms: 500,
            broker_name: Some("b".into()),
            ..CheckPoint::default()
        };
        let json = serde_json::to_string(&ck).unwrap();
        assert_eq!(
            json,
            r#"{"bm":0,"bn":"b","c":"G","d":[0,2],"it":500,"n":2,"pt":1000,"q":1,"ro":0,"so":10,"t":"T"}"#
        );
        assert_eq!((ck.revive_time_ms(), ck.end_offset(), ck.offset_at(1)), (1500, 13, Some(12)));
        // What Java writes for an AckMsg (fastjson, sorted names).
        let ack: AckRecord =
            serde_json::from_str(r#"{"ao":12,"bn":"b","c":"G","pt":1000,"q":1,"so":10,"t":"T"}"#).unwrap();
        assert_eq!((ack.key(), ack.offsets()), (ck.key(), vec![12]));
        let batch: AckRecord =
            serde_json::from_str(r#"{"ao":-1,"aol":[10,12],"c":"G","pt":1000,"q":1,"so":10,"t":"T"}"#)
                .unwrap();
        assert_eq!(batch.offsets(), vec![10, 12]);
    }
}
