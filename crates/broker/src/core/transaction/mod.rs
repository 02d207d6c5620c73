//! Transactions (behaviour spec §6), whatever front they came from.
//!
//! A half message is parked in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0, its real topic and queue
//! kept in `REAL_TOPIC` / `REAL_QID` ([`park_half`], called by the send path), so no consumer
//! of the real topic sees it. The producer then ends the transaction ([`end`]): a commit stores
//! the real message and an op record, a rollback only the op record. The op record, in
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC` (see [`op`]), names the half's queue offset; it is how the
//! check-back service ([`check`]) and a restarted broker know the half is decided. Halves
//! nobody decides are asked about ([`check`]), up to `transactionCheckMax` times.
//!
//! Everything lives in the store (the two topics and the `CID_RMQ_SYS_TRANS` consumer offsets
//! over them), so a restart rebuilds the state by reading them: nothing is decided twice and
//! nothing is lost.

pub mod check;
pub mod decided;
pub mod op;

use std::sync::Arc;

use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use apogee_common::message::{sysflag, MessageExt};
use apogee_common::topic::TRANS_HALF_TOPIC;
use apogee_remoting::code::response_code;

use super::blocking;
use super::error::{CoreResult, Error};
use crate::message::{self, InnerMessage};
use crate::BrokerState;

/// The queue of the half topic every half message goes to (Java uses only queue 0).
pub const HALF_QUEUE_ID: i32 = 0;
/// The consumer group whose offsets over the half and op topics record how far the
/// check-back service got (Java's `TransactionalMessageUtil.buildConsumerGroup()`).
pub const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";

/// What the producer decided (`commitOrRollback` of END_TRANSACTION: the sysflag transaction
/// type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Deliver the message (`TRANSACTION_COMMIT_TYPE`).
    Commit,
    /// Drop it (`TRANSACTION_ROLLBACK_TYPE`).
    Rollback,
    /// Not known yet (`TRANSACTION_NOT_TYPE`): the broker will ask again.
    Unknown,
}

impl Decision {
    /// The decision a `commitOrRollback` value names; `None` for a value that is none of the
    /// three (Java ignores such a request).
    pub fn from_transaction_type(value: i32) -> Option<Self> {
        match value {
            sysflag::TRANSACTION_COMMIT_TYPE => Some(Self::Commit),
            sysflag::TRANSACTION_ROLLBACK_TYPE => Some(Self::Rollback),
            sysflag::TRANSACTION_NOT_TYPE => Some(Self::Unknown),
            _ => None,
        }
    }
}

/// END_TRANSACTION as the producer sent it.
#[derive(Debug, Clone, Copy)]
pub struct EndRequest<'a> {
    /// The producer group that sent the half message (must match its `PGROUP`).
    pub producer_group: &'a str,
    /// Queue offset of the half message in the half topic.
    pub tran_state_table_offset: i64,
    /// Commit-log offset of the half message.
    pub commit_log_offset: i64,
    /// Commit, rollback or unknown.
    pub decision: Decision,
    /// The answer to a check-back (true) or the producer's own end (false).
    pub from_transaction_check: bool,
    /// The message id the producer knows (for the log).
    pub msg_id: &'a str,
}

/// What an END_TRANSACTION did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The real message is stored and the half marked done.
    Committed,
    /// The half is marked done; nothing is delivered.
    RolledBack,
    /// The producer does not know yet: nothing changes and nothing is answered (Java sends no
    /// response), the check-back service asks again later.
    Pending,
}

/// Turns a half message into what is stored: in the half topic's queue 0, with the real topic
/// and queue kept in properties, its transaction id (the `UNIQ_KEY`) in `__transactionId__`,
/// and the transaction type reset so the half topic's consume queue indexes it (Java
/// `TransactionalMessageBridge.parseHalfMessageInner`).
pub fn park_half(topic: &mut String, queue_id: &mut i32, properties: &mut Properties, sys_flag: &mut i32) {
    if let Some(uniq_key) = properties.get(property::UNIQ_KEY).filter(|key| !key.is_empty()) {
        let uniq_key = uniq_key.to_owned();
        properties.insert(property::TRANSACTION_ID, uniq_key);
    }
    properties.insert(property::REAL_TOPIC, topic.as_str());
    properties.insert(property::REAL_QID, queue_id.to_string());
    *sys_flag = sysflag::reset_transaction_value(*sys_flag, sysflag::TRANSACTION_NOT_TYPE);
    *topic = TRANS_HALF_TOPIC.to_owned();
    *queue_id = HALF_QUEUE_ID;
}

/// Ends a transaction: commit stores the real message then marks the half done, rollback only
/// marks it. The half must be the one the request names (producer group, queue offset and
/// commit-log offset), as Java checks.
pub async fn end(state: &Arc<BrokerState>, request: &EndRequest<'_>) -> CoreResult<Ended> {
    if !state.replication.is_master() {
        return Err(Error::new(
            response_code::SLAVE_NOT_AVAILABLE,
            "the broker is a slave: end transaction is forbidden",
        ));
    }
    let commit = match request.decision {
        Decision::Unknown => {
            tracing::warn!(
                group = request.producer_group,
                msg_id = request.msg_id,
                from_check = request.from_transaction_check,
                "transaction still unknown to its producer; the broker will check it again"
            );
            return Ok(Ended::Pending);
        }
        Decision::Commit => true,
        Decision::Rollback => false,
    };
    let half = find_half(state, request).await?;
    let transaction_id = half.message.properties.get(property::TRANSACTION_ID).map(str::to_owned);
    if !request.from_transaction_check && immunity_expired(state, &half) {
        tracing::warn!(
            msg_id = request.msg_id,
            "transaction end refused: past its check immunity time, waiting for the check"
        );
        return Err(Error::new(
            response_code::ILLEGAL_OPERATION,
            "the transaction ended after its check immunity time; the broker's check decides it",
        ));
    }
    if let Some(id) = transaction_id.as_deref() {
        if !state.transactions.claim(id.to_owned()) {
            // Another copy of this half was decided already (a check answered twice, or the
            // producer's own late end after a check): deciding again would deliver twice.
            tracing::info!(
                transaction_id = id,
                commit,
                "transaction already decided; this end only marks its copy done"
            );
            op::mark_done(state, half.queue_offset, Some(id)).await?;
            return Ok(if commit { Ended::Committed } else { Ended::RolledBack });
        }
    }
    if commit {
        if let Err(error) = deliver(state, &half, request).await {
            // Nothing was delivered: a later end or check may decide again.
            if let Some(id) = transaction_id.as_deref() {
                state.transactions.release(id);
            }
            return Err(error);
        }
    }
    // A lost op record only makes the broker ask again; the claim keeps a second delivery out.
    op::mark_done(state, half.queue_offset, transaction_id.as_deref()).await?;
    state.metrics.transaction_ended(half.message.properties.get(property::REAL_TOPIC).unwrap_or(""), commit);
    Ok(if commit { Ended::Committed } else { Ended::RolledBack })
}

/// Stores the real message of a committed half.
async fn deliver(state: &Arc<BrokerState>, half: &MessageExt, request: &EndRequest<'_>) -> CoreResult<()> {
    let real = committed_message(half, request)?;
    let result = message::put_message(state, &real, false).await;
    if result.status.is_stored() {
        Ok(())
    } else {
        Err(super::send::put_error(state, result.status))
    }
}

/// The half message the request names, checked as Java checks it: SYSTEM_ERROR when it is not
/// there, is not a half message, or belongs to another group or queue offset.
async fn find_half(state: &Arc<BrokerState>, request: &EndRequest<'_>) -> CoreResult<MessageExt> {
    let offset = request.commit_log_offset;
    let half = blocking(state, move |state| read_record(state, offset)).await?;
    let half = half
        .filter(|half| half.message.topic == TRANS_HALF_TOPIC)
        .ok_or_else(|| Error::system("Find prepared transaction message failed"))?;
    if half.message.properties.get(property::PGROUP) != Some(request.producer_group) {
        return Err(Error::system("The producer group wrong"));
    }
    if half.queue_offset != request.tran_state_table_offset {
        return Err(Error::system("The transaction state table offset wrong"));
    }
    if half.commit_log_offset != request.commit_log_offset {
        return Err(Error::system("The commit log offset wrong"));
    }
    Ok(half)
}

/// The stored record at a commit-log offset, decoded (`None` when there is none).
pub(crate) fn read_record(state: &BrokerState, commit_log_offset: i64) -> Option<MessageExt> {
    let record = state.store.message_at(u64::try_from(commit_log_offset).ok()?)?;
    RecordView::parse(record.as_slice(), false).ok().map(|view| view.to_message_ext())
}

/// Whether a half that names its own check immunity time is older than that time: then only
/// the check-back's answer may end it (Java `rejectCommitOrRollback`).
fn immunity_expired(state: &BrokerState, half: &MessageExt) -> bool {
    let Some(immunity) = half.message.properties.get(property::CHECK_IMMUNITY_TIME_IN_SECONDS) else {
        return false;
    };
    let age_ms = apogee_common::time::now_ms().saturating_sub(half.born_timestamp);
    age_ms > immunity_ms(Some(immunity), state.config.transaction_timeout_ms)
}

/// How long after its birth a half is left alone: `CHECK_IMMUNITY_TIME_IN_SECONDS` in ms, but
/// never less than `transactionTimeOut` (Java `getImmunityTime`).
pub(crate) fn immunity_ms(check_immunity_seconds: Option<&str>, transaction_timeout_ms: u64) -> i64 {
    let timeout_ms = i64::try_from(transaction_timeout_ms).unwrap_or(i64::MAX);
    let asked_ms = check_immunity_seconds
        .and_then(|seconds| seconds.trim().parse::<i64>().ok())
        .map_or(0, |seconds| seconds.saturating_mul(1000));
    asked_ms.max(timeout_ms)
}

/// The real message of a committed half (Java `endMessageTransaction`): its topic and queue
/// from `REAL_TOPIC` / `REAL_QID`, everything else as the producer sent it, the commit
/// transaction type and the half's commit-log offset as the prepared offset.
fn committed_message(half: &MessageExt, request: &EndRequest<'_>) -> CoreResult<InnerMessage> {
    let mut real = InnerMessage::from_ext(half);
    let properties = &mut real.properties;
    let topic = properties.remove(property::REAL_TOPIC);
    let queue_id = properties.remove(property::REAL_QID).and_then(|queue| queue.trim().parse::<i32>().ok());
    let (Some(topic), Some(queue_id)) = (topic, queue_id) else {
        return Err(Error::system("the half message names no real topic and queue"));
    };
    properties.remove(property::TRAN_MSG);
    real.topic = topic;
    real.queue_id = queue_id;
    real.sys_flag = sysflag::reset_transaction_value(half.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    real.prepared_transaction_offset = request.commit_log_offset;
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_keeps_the_destination_and_the_transaction_id() {
        let mut topic = "Orders".to_owned();
        let mut queue_id = 5;
        let mut properties = Properties::default();
        properties.insert(property::UNIQ_KEY, "AC11000100002A9F0000000000000001");
        properties.insert(property::TRAN_MSG, "true");
        let mut sys_flag = sysflag::TRANSACTION_PREPARED_TYPE | sysflag::COMPRESSED_FLAG;
        park_half(&mut topic, &mut queue_id, &mut properties, &mut sys_flag);
        assert_eq!((topic.as_str(), queue_id), (TRANS_HALF_TOPIC, HALF_QUEUE_ID));
        assert_eq!(properties.get(property::REAL_TOPIC), Some("Orders"));
        assert_eq!(properties.get(property::REAL_QID), Some("5"));
        assert_eq!(properties.get(property::TRANSACTION_ID), Some("AC11000100002A9F0000000000000001"));
        assert_eq!(sys_flag, sysflag::COMPRESSED_FLAG, "transaction type reset, other bits kept");
    }

    #[test]
    fn immunity_is_the_property_in_seconds_or_the_timeout() {
        assert_eq!(immunity_ms(None, 6_000), 6_000);
        assert_eq!(immunity_ms(Some("60"), 6_000), 60_000);
        assert_eq!(immunity_ms(Some("soon"), 6_000), 6_000);
        assert_eq!(immunity_ms(Some("1"), 6_000), 6_000, "never shorter than the timeout");
    }

    #[test]
    fn decisions_are_the_transaction_types() {
        assert_eq!(Decision::from_transaction_type(8), Some(Decision::Commit));
        assert_eq!(Decision::from_transaction_type(12), Some(Decision::Rollback));
        assert_eq!(Decision::from_transaction_type(0), Some(Decision::Unknown));
        assert_eq!(Decision::from_transaction_type(4), None);
    }
}
