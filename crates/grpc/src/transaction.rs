//! EndTransaction (spec §5.11, §6.6) and the check-back: the backend finds the half (embedded
//! in a broker, by its unique key in the half topic's index; as a proxy, where the send or the
//! broker's check said it is), and a broker's check reaches one gRPC producer of the topic as
//! a `RecoverOrphanedTransactionCommand` on its Telemetry stream.

use apogee_broker::core::transaction::Decision;

use crate::backend::{Backend, EndTransaction};

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
        let end = EndTransaction {
            topic,
            transaction_id,
            message_id: &request.message_id,
            decision,
            from_transaction_check: request.source == TransactionSource::SourceServerCheck as i32,
        };
        self.backend.end_transaction(end).await?;
        Ok(EndTransactionResponse { status: Some(ok()) })
    }

    /// Asks one producer of `group` (a gRPC producer's group is its topic, spec §6.1) about
    /// the half message `half`: a `RecoverOrphanedTransactionCommand` on its Telemetry stream.
    /// False when no producer of the group has an open stream or its stream is full.
    pub(crate) fn forward_check(&self, group: &str, half: &apogee_common::message::MessageExt) -> bool {
        let producers = self.clients.producers_of(group);
        if producers.is_empty() {
            return false;
        }
        let turn = self.check_turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// The gRPC front's producers, as the broker's transaction check reaches them: a
/// `RecoverOrphanedTransactionCommand` on the Telemetry stream of one producer of the topic
/// (a gRPC producer's group is its topic, spec §6.1). Held weakly, so the broker state that
/// holds it does not keep the endpoint alive.
#[derive(Debug)]
pub struct TransactionChecks(pub std::sync::Weak<Messaging>);

impl apogee_broker::core::fronts::ProducerCallbacks for TransactionChecks {
    fn check_transaction(&self, group: &str, half: &apogee_common::message::MessageExt) -> bool {
        self.0.upgrade().is_some_and(|messaging| messaging.forward_check(group, half))
    }
}
