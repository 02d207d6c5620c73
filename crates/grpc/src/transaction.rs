//! EndTransaction (spec §5.11, §6.6). The reference proxy remembers each half message's
//! offsets for 30 s after the send; an integrated endpoint finds the half itself, by its unique
//! key in the half topic's index, so a commit that comes late (or after a restart) still finds
//! it. The latest copy wins: a check-back stores copies of a half, and the broker decides each
//! transaction once whichever copy is named.

use apogee_broker::core::messages::{self, KeyQuery};
use apogee_broker::core::transaction::{self, Decision, EndRequest};
use apogee_common::message::RecordView;
use apogee_common::topic::TRANS_HALF_TOPIC;

use crate::pb::{
    Code, EndTransactionRequest, EndTransactionResponse, TransactionResolution, TransactionSource,
};
use crate::status::{ok, Refusal};
use crate::{names, Messaging};

impl Messaging {
    /// EndTransaction: commit or roll back the half message the transaction id names.
    pub(crate) async fn end_transaction(
        &self,
        request: &EndTransactionRequest,
    ) -> Result<EndTransactionResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let transaction_id = request.transaction_id.trim();
        if transaction_id.is_empty() {
            return Err(Refusal::new(Code::InvalidTransactionId, "transaction id cannot be empty"));
        }
        let decision = match TransactionResolution::try_from(request.resolution) {
            Ok(TransactionResolution::Commit) => Decision::Commit,
            Ok(TransactionResolution::Rollback) => Decision::Rollback,
            _ => Decision::Unknown,
        };
        let (queue_offset, commit_log_offset) = self.find_half(transaction_id).await?;
        let end = EndRequest {
            producer_group: topic,
            tran_state_table_offset: queue_offset,
            commit_log_offset,
            decision,
            from_transaction_check: request.source == TransactionSource::SourceServerCheck as i32,
            msg_id: &request.message_id,
        };
        transaction::end(&self.state, &end).await?;
        Ok(EndTransactionResponse { status: Some(ok()) })
    }

    /// The queue and commit-log offsets of the latest stored copy of the half message with
    /// unique key `transaction_id`.
    async fn find_half(&self, transaction_id: &str) -> Result<(i64, i64), Refusal> {
        let query = KeyQuery {
            topic: TRANS_HALF_TOPIC,
            key: transaction_id,
            unique_key: true,
            max_num: messages::DEFAULT_QUERY_MAX_NUM,
            begin_timestamp_ms: 0,
            end_timestamp_ms: i64::MAX,
        };
        let found = messages::by_key(&self.state, &query).await?;
        found
            .messages
            .iter()
            .filter_map(|record| RecordView::parse(record.as_ref(), false).ok())
            .filter(|view| view.property(apogee_common::message::property::UNIQ_KEY) == Some(transaction_id))
            .map(|view| (view.queue_offset(), view.physical_offset()))
            .max_by_key(|(_, commit_log_offset)| *commit_log_offset)
            .ok_or_else(|| {
                Refusal::new(
                    Code::InternalServerError,
                    format!("cannot found transaction data: {transaction_id}"),
                )
            })
    }
}

/// The gRPC front's producers, as the broker's transaction check reaches them: a
/// `RecoverOrphanedTransactionCommand` on the Telemetry stream of one producer of the topic
/// (a gRPC producer's group is its topic, spec §6.1). Held weakly, so the broker state that
/// holds it does not keep the endpoint alive.
#[derive(Debug)]
pub struct TransactionChecks(pub std::sync::Weak<Messaging>);

impl apogee_broker::core::fronts::ProducerCallbacks for TransactionChecks {
    fn check_transaction(&self, group: &str, half: &apogee_common::message::MessageExt) -> bool {
        let Some(messaging) = self.0.upgrade() else { return false };
        let producers = messaging.clients.producers_of(group);
        if producers.is_empty() {
            return false;
        }
        let turn = messaging.send_turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (client_id, commands) = &producers[usize::try_from(turn).unwrap_or(0) % producers.len()];
        let transaction_id = half
            .message
            .properties
            .get(apogee_common::message::property::UNIQ_KEY)
            .unwrap_or_default()
            .to_owned();
        let command = crate::pb::TelemetryCommand {
            status: None,
            command: Some(crate::pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(
                crate::pb::RecoverOrphanedTransactionCommand {
                    message: Some(crate::convert::to_pb_message(half, None)),
                    transaction_id,
                },
            )),
        };
        match commands.try_send(Ok(command)) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(client = %client_id, %error, "transaction check not queued for a grpc producer");
                false
            }
        }
    }
}
