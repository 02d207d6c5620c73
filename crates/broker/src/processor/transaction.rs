//! END_TRANSACTION (37) over remoting: a producer commits or rolls back a half message, on its
//! own or answering CHECK_TRANSACTION_STATE; [`core::transaction`](crate::core::transaction)
//! does the work. An unknown outcome gets no answer, as from Java's broker.

use std::sync::Arc;

use apogee_remoting::header::send::EndTransactionRequestHeader;
use apogee_remoting::reply::{finish, header, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, RemotingCommand};

use super::route;
use crate::core::transaction::{self, Decision, EndRequest, Ended};
use crate::BrokerState;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::END_TRANSACTION, state, |state, _connection, request| async move {
        end_transaction(&state, &request).await.map(|outcome| finish(&request, outcome))
    });
}

/// `None` (no response) for an unknown outcome or a `commitOrRollback` that names none.
async fn end_transaction(state: &Arc<BrokerState>, request: &RemotingCommand) -> Option<Outcome> {
    let request_header: EndTransactionRequestHeader = match header(request) {
        Ok(request_header) => request_header,
        Err(failure) => return Some(Err(failure)),
    };
    let Some(decision) = Decision::from_transaction_type(request_header.commit_or_rollback) else {
        tracing::warn!(
            value = request_header.commit_or_rollback,
            "END_TRANSACTION with an unknown commitOrRollback ignored"
        );
        return None;
    };
    let end = EndRequest {
        producer_group: &request_header.producer_group,
        tran_state_table_offset: request_header.tran_state_table_offset,
        commit_log_offset: request_header.commit_log_offset,
        decision,
        from_transaction_check: request_header.from_transaction_check == Some(true),
        msg_id: &request_header.msg_id,
    };
    match transaction::end(state, &end).await {
        Ok(Ended::Pending) => None,
        Ok(Ended::Committed | Ended::RolledBack) => Some(Ok(RemotingCommand::success_for(request))),
        Err(error) => Some(Err(error.into())),
    }
}
