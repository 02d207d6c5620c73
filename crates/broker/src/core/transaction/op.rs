//! Op records: how a decided half message is marked done (behaviour spec §6.3). Each is a
//! message in `RMQ_SYS_TRANS_OP_HALF_TOPIC`, in the queue of the same id as the half's, tagged
//! `d`, whose body lists half queue offsets, each followed by `,` (Java's format, so Java's
//! tools read Apogee's op topic and the other way round).
//!
//! Apogee writes one record per decision, carrying the transaction id (`__transactionId__`)
//! too, so a decision on one copy of a half is seen on the others; Java gathers several
//! offsets into one record per `transactionOpBatchInterval` and names no id. Reading accepts
//! both.

use std::sync::Arc;

use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use apogee_common::topic::TRANS_OP_HALF_TOPIC;
use apogee_store::{AcceptAll, GetMessageStatus};
use bytes::Bytes;

use super::HALF_QUEUE_ID;
use crate::core::error::{CoreResult, Error};
use crate::message::{self, InnerMessage};
use crate::BrokerState;

/// The tag of an op record that removes halves (Java `TransactionalMessageUtil.REMOVE_TAG`).
pub const REMOVE_TAG: &str = "d";
/// Op records asked for per store read.
const READ_BATCH_RECORDS: u32 = 32;
/// Bytes asked for per store read.
const READ_BATCH_BYTES: u64 = 1024 * 1024;

/// One op record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Its own offset in the op queue.
    pub queue_offset: i64,
    /// The half queue offsets it marks done (empty for a record that is not a removal).
    pub half_offsets: Vec<i64>,
    /// The transaction it decided, when the record names it (Apogee's do, Java's do not).
    pub transaction_id: Option<String>,
}

/// Op records read from one point of the op queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpBatch {
    /// In queue order.
    pub ops: Vec<Op>,
    /// Where reading would go on.
    pub next_offset: i64,
    /// Reading stopped at `limit` with more records after `next_offset`.
    pub truncated: bool,
}

/// Marks the half at `half_queue_offset`, of transaction `transaction_id`, done by storing an
/// op record.
pub async fn mark_done(
    state: &Arc<BrokerState>,
    half_queue_offset: i64,
    transaction_id: Option<&str>,
) -> CoreResult<()> {
    let mut properties = Properties::default();
    properties.insert(property::TAGS, REMOVE_TAG);
    properties.insert(property::WAIT, "false");
    if let Some(transaction_id) = transaction_id {
        properties.insert(property::TRANSACTION_ID, transaction_id);
    }
    let body = Bytes::from(encode_body(&[half_queue_offset]));
    let record =
        InnerMessage::new(TRANS_OP_HALF_TOPIC.to_owned(), HALF_QUEUE_ID, body, properties, state.store_host);
    let result = message::put_message(state, &record, false).await;
    if result.status.is_stored() {
        return Ok(());
    }
    tracing::error!(half_queue_offset, status = ?result.status, "transaction op record not stored");
    let error = crate::core::send::put_error(state, result.status);
    Err(Error::new(error.code, format!("transaction op record not stored: {}", error.remark)))
}

/// The body of an op record: each offset in decimal followed by `,`.
pub fn encode_body(half_offsets: &[i64]) -> String {
    half_offsets.iter().map(|offset| format!("{offset},")).collect()
}

/// The half offsets an op body lists; pieces that are not numbers are skipped, as Java
/// skips them.
pub fn decode_body(body: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(body).split(',').filter_map(|piece| piece.trim().parse::<i64>().ok()).collect()
}

/// Reads up to `limit` op records from `offset` (on a blocking thread: reads touch the
/// mapped commit log).
pub fn read(state: &BrokerState, mut offset: i64, limit: usize) -> OpBatch {
    let mut batch = OpBatch { ops: Vec::new(), next_offset: offset, truncated: false };
    while batch.ops.len() < limit {
        let result = state.store.get_messages(
            TRANS_OP_HALF_TOPIC,
            HALF_QUEUE_ID,
            offset,
            READ_BATCH_RECORDS,
            READ_BATCH_BYTES,
            &AcceptAll,
        );
        match result.status {
            GetMessageStatus::Found => {}
            GetMessageStatus::OffsetTooSmall
            | GetMessageStatus::OffsetFoundNull
            | GetMessageStatus::NoMatchedMessage
            | GetMessageStatus::MessageWasRemoving
                if result.next_begin_offset > offset =>
            {
                // Records gone (retention) or unreadable: go on where the store says.
                offset = result.next_begin_offset;
                batch.next_offset = offset;
                continue;
            }
            _ => return batch,
        }
        for (record, queue_offset) in result.messages.iter().zip(&result.queue_offsets) {
            batch.ops.push(read_op(record.as_slice(), *queue_offset));
            batch.next_offset = queue_offset + 1;
        }
        if result.next_begin_offset <= offset {
            return batch;
        }
        offset = result.next_begin_offset;
    }
    batch.truncated = state.store.max_offset(TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID) > batch.next_offset;
    batch
}

/// A stored op record: it removes nothing unless it is tagged [`REMOVE_TAG`].
fn read_op(record: &[u8], queue_offset: i64) -> Op {
    let mut op = Op { queue_offset, half_offsets: Vec::new(), transaction_id: None };
    match RecordView::parse(record, false) {
        Ok(view) => {
            let message = view.to_message_ext();
            let properties = &message.message.properties;
            if properties.get(property::TAGS) == Some(REMOVE_TAG) {
                op.half_offsets = decode_body(&message.message.body);
                op.transaction_id = properties.get(property::TRANSACTION_ID).map(str::to_owned);
            }
        }
        Err(error) => tracing::error!(queue_offset, %error, "unreadable transaction op record skipped"),
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_offsets_each_followed_by_a_comma() {
        assert_eq!(encode_body(&[7]), "7,");
        assert_eq!(encode_body(&[0, 12, 3]), "0,12,3,");
        assert_eq!(decode_body(b"0,12,3,"), vec![0, 12, 3]);
        // Java's batched bodies and stray pieces.
        assert_eq!(decode_body(b"5,x,,6"), vec![5, 6]);
        assert!(decode_body(b"").is_empty());
    }
}
