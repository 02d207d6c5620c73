//! Transactional messages (behaviour spec §6.1), Java's `TransactionMQProducer`: a message is
//! sent as a half message the broker keeps from consumers, the application runs its local
//! transaction, and the producer commits or rolls the message back with END_TRANSACTION. When
//! the outcome was unknown (or the end was lost), the broker later asks a live producer of the
//! group (CHECK_TRANSACTION_STATE) and the application's checker answers.

use std::sync::Arc;

use apogee_common::message::msg_id::decode_offset_msg_id;
use apogee_common::message::record::RecordView;
use apogee_common::message::{property, sysflag, Message, MessageExt};
use apogee_remoting::code::request_code;
use apogee_remoting::connection::Connection;
use apogee_remoting::header::send::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use apogee_remoting::RemotingCommand;
use tokio::sync::Semaphore;

use super::{Producer, ProducerBuilder, SendResult, SendStatus};
use crate::error::ClientError;
use crate::instance::handlers::CheckerTable;

/// Checks a broker asked about and not yet answered, per producer group (Java's check
/// executor queue of 2,000); more are dropped with a warning and asked again next round.
pub const MAX_PENDING_CHECKS: usize = 2_000;

/// What the application decided about its local transaction (Java `LocalTransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    /// Deliver the message.
    CommitMessage,
    /// Drop the message.
    RollbackMessage,
    /// Not known yet: the broker asks the checker later.
    Unknown,
}

impl LocalTransactionState {
    /// `commitOrRollback` of END_TRANSACTION: the sysflag transaction type.
    fn transaction_type(self) -> i32 {
        match self {
            Self::CommitMessage => sysflag::TRANSACTION_COMMIT_TYPE,
            Self::RollbackMessage => sysflag::TRANSACTION_ROLLBACK_TYPE,
            Self::Unknown => sysflag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application's side of a transaction (Java `TransactionListener`). Both methods run on
/// a blocking thread, so they may do blocking work (a database call).
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction for a half message the broker stored; `transaction_id` is
    /// the message's id.
    fn execute_local_transaction(&self, message: &Message, transaction_id: &str) -> LocalTransactionState;

    /// Answers a broker asking about a transaction whose outcome it does not know.
    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState;
}

/// What [`TransactionProducer::send_in_transaction`] did.
#[derive(Debug, Clone)]
pub struct TransactionSendResult {
    /// Where the half message was stored.
    pub send: SendResult,
    /// What the local transaction decided (and what the broker was told).
    pub local_state: LocalTransactionState,
}

/// A producer of transactional messages (Java `TransactionMQProducer`): a [`Producer`] whose
/// group answers the broker's transaction checks with its [`TransactionListener`].
#[derive(Clone)]
pub struct TransactionProducer {
    producer: Producer,
    listener: Arc<dyn TransactionListener>,
}

impl std::fmt::Debug for TransactionProducer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TransactionProducer")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl TransactionProducer {
    /// Starts a producer from `builder` whose group answers checks with `listener`.
    pub async fn start(
        builder: ProducerBuilder,
        listener: impl TransactionListener,
    ) -> Result<Self, ClientError> {
        let producer = builder.start().await?;
        let listener: Arc<dyn TransactionListener> = Arc::new(listener);
        producer.instance().register_transaction_checker(producer.group(), Arc::clone(&listener));
        Ok(Self { producer, listener })
    }

    /// The producer underneath, for ordinary sends.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Sends `message` as a half message, runs the local transaction and ends it: commit,
    /// rollback, or nothing yet (unknown, the broker will check). A half the broker stored late
    /// on disk is rolled back without running the transaction, as Java does.
    pub async fn send_in_transaction(
        &self,
        mut message: Message,
    ) -> Result<TransactionSendResult, ClientError> {
        message.properties.remove(property::DELAY);
        message.properties.insert(property::TRAN_MSG, "true");
        message.properties.insert(property::PGROUP, self.producer.group());
        let send = self.producer.send(message.clone()).await?;
        let local_state = match send.status {
            SendStatus::SendOk => {
                let transaction_id = send.transaction_id.clone().unwrap_or_else(|| send.msg_id.clone());
                message.set_uniq_key(send.msg_id.clone());
                self.run_local_transaction(message, transaction_id).await
            }
            _ => LocalTransactionState::RollbackMessage,
        };
        if let Err(error) = self.end_transaction(&send, local_state).await {
            // The broker checks a half nobody ended, so a lost end is not a lost decision.
            tracing::warn!(%error, msg_id = %send.msg_id, "END_TRANSACTION not sent; the broker will check");
        }
        Ok(TransactionSendResult { send, local_state })
    }

    async fn run_local_transaction(&self, message: Message, transaction_id: String) -> LocalTransactionState {
        let listener = Arc::clone(&self.listener);
        let run = tokio::task::spawn_blocking(move || {
            listener.execute_local_transaction(&message, &transaction_id)
        });
        match run.await {
            Ok(state) => state,
            Err(error) => {
                // A panicking transaction decides nothing: the broker will ask the checker.
                tracing::warn!(%error, "local transaction failed; its outcome is unknown");
                LocalTransactionState::Unknown
            }
        }
    }

    /// END_TRANSACTION (oneway) to the master that stored the half.
    async fn end_transaction(
        &self,
        send: &SendResult,
        state: LocalTransactionState,
    ) -> Result<(), ClientError> {
        let offset_id = if send.offset_msg_id.is_empty() { &send.msg_id } else { &send.offset_msg_id };
        let (_, commit_log_offset) = decode_offset_msg_id(offset_id)
            .map_err(|error| ClientError::Malformed(format!("offset message id {offset_id}: {error}")))?;
        let header = EndTransactionRequestHeader {
            topic: Some(send.queue.topic.clone()),
            producer_group: self.producer.group().to_owned(),
            tran_state_table_offset: send.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.transaction_type(),
            from_transaction_check: Some(false),
            msg_id: send.msg_id.clone(),
            transaction_id: send.transaction_id.clone(),
            bname: Some(send.queue.broker_name.clone()),
        };
        let instance = self.producer.instance();
        let addr = instance.master_addr_of(&send.queue).await?;
        let request = RemotingCommand::request(request_code::END_TRANSACTION).with_header(&header);
        instance.invoke_oneway(&addr, request).await
    }

    /// Stops answering checks and shuts the producer down.
    pub async fn shutdown(&self) {
        self.producer.instance().unregister_transaction_checker(self.producer.group());
        self.producer.shutdown().await;
    }
}

/// A broker's CHECK_TRANSACTION_STATE as it arrived, for a relay that answers it later
/// through someone else (a gRPC proxy asks its own producer, who ends the transaction with
/// its own request): the check's header, the half message, and the broker's address.
#[derive(Debug, Clone)]
pub struct TransactionCheck {
    /// The check's header: the half's offsets, its transaction id and the broker's name.
    pub header: CheckTransactionStateRequestHeader,
    /// The half message the broker asks about.
    pub message: MessageExt,
    /// The address of the broker that asked.
    pub broker_addr: std::net::SocketAddr,
}

/// Receives the transaction checks of a producer group instead of a [`TransactionListener`]:
/// for relays whose decisions come from elsewhere and reach the broker as END_TRANSACTION
/// sent on their own. Called on the connection's task, so it must not block.
pub trait TransactionCheckForwarder: Send + Sync + 'static {
    /// Takes one check; nothing is answered on the broker's connection.
    fn forward(&self, check: TransactionCheck);
}

/// A producer group's checker: a listener with the bound on its pending checks, or a
/// forwarder.
#[derive(Clone)]
pub(crate) enum Checker {
    /// Answered here, on a blocking thread.
    Listener { listener: Arc<dyn TransactionListener>, pending: Arc<Semaphore> },
    /// Handed over as it came.
    Forward(Arc<dyn TransactionCheckForwarder>),
}

impl Checker {
    /// A checker answering with `listener`.
    pub(crate) fn new(listener: Arc<dyn TransactionListener>) -> Self {
        Self::Listener { listener, pending: Arc::new(Semaphore::new(MAX_PENDING_CHECKS)) }
    }
}

/// CHECK_TRANSACTION_STATE (oneway): asks the checker of the message's producer group on a
/// blocking thread and answers with END_TRANSACTION on the connection the check came on.
pub(crate) fn answer_check(checkers: &CheckerTable, connection: Connection, request: &RemotingCommand) {
    let header: CheckTransactionStateRequestHeader = match request.decode_header() {
        Ok(header) => header,
        Err(error) => {
            tracing::warn!(%error, "transaction check with a malformed header ignored");
            return;
        }
    };
    let message = match RecordView::parse(&request.body, false) {
        Ok(view) => view.to_message_ext(),
        Err(error) => {
            tracing::warn!(%error, "transaction check with a malformed message ignored");
            return;
        }
    };
    let group = message.message.properties.get(property::PGROUP).unwrap_or_default().to_owned();
    let Some(checker) = checkers.read().get(&group).cloned() else {
        tracing::warn!(group, "transaction check for a producer group without a checker ignored");
        return;
    };
    let (listener, pending) = match checker {
        Checker::Listener { listener, pending } => (listener, pending),
        Checker::Forward(forwarder) => {
            forwarder.forward(TransactionCheck { header, message, broker_addr: connection.remote_addr() });
            return;
        }
    };
    let Ok(permit) = pending.try_acquire_owned() else {
        tracing::warn!(group, "transaction check dropped: {MAX_PENDING_CHECKS} checks pending");
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let uniq_key = message.message.uniq_key().unwrap_or_default().to_owned();
        let checked = tokio::task::spawn_blocking(move || listener.check_local_transaction(&message)).await;
        let state = checked.unwrap_or_else(|error| {
            tracing::warn!(%error, "transaction check failed; answering unknown");
            LocalTransactionState::Unknown
        });
        let end = EndTransactionRequestHeader {
            topic: header.topic.clone(),
            producer_group: group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: state.transaction_type(),
            from_transaction_check: Some(true),
            msg_id: uniq_key,
            transaction_id: header.transaction_id.clone(),
            bname: header.bname.clone(),
        };
        let request = RemotingCommand::request(request_code::END_TRANSACTION).with_header(&end);
        if let Err(error) = connection.invoke_oneway(request).await {
            tracing::warn!(%error, group, "transaction check answer not sent");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_transaction_types() {
        assert_eq!(LocalTransactionState::CommitMessage.transaction_type(), 8);
        assert_eq!(LocalTransactionState::RollbackMessage.transaction_type(), 12);
        assert_eq!(LocalTransactionState::Unknown.transaction_type(), 0);
    }
}
