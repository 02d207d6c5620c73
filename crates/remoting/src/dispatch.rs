//! Serving one inbound request: find its handler, run it in its own task within the
//! connection's in-flight limit, and write back what it returns, dressed as the response to
//! that very request; or first offering it to the code's fast path, which answers through a
//! [`Responder`] without a task. Before either, the router's [`crate::router::RequestGuard`]
//! (the broker's ACL), when it has one, may refuse the request. Also the framework's own
//! answers (spec §1.9): unsupported code, overload, handler failure, go-away during shutdown.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::code::response_code;
use crate::command::RemotingCommand;
use crate::connection::outbound::Outgoing;
use crate::connection::Connection;
use crate::responder::{RequestKey, Responder};
use crate::router::Declined;

/// Remark of the SYSTEM_BUSY answer when a connection has too many requests in flight.
pub const OVERLOAD_REMARK: &str = "[OVERLOAD]system busy, start flow control for a while";

/// Remark of the GO_AWAY answer sent while the server shuts down.
pub const GO_AWAY_REMARK: &str = "please go away";

/// Requests from peers newer than V5_3_1 (ordinal 475) understand GO_AWAY; older ones would
/// treat it as an unknown error, so they are still served while the server drains.
const GO_AWAY_MIN_VERSION_EXCLUSIVE: i32 = 475;

/// The remark Java gives for a code without a processor (leading space included).
pub fn not_supported_remark(code: i32) -> String {
    format!(" request type {code} not supported")
}

/// Handles one request read from `connection`. Returns once the request has been handed to
/// its fast path or handler task (or answered by the framework); never waits for a handler.
/// True when a fast path served it (the reader then ends the batch, see
/// [`crate::router::FastPath::end_of_batch`]).
pub(crate) async fn dispatch(connection: &Connection, request: RemotingCommand) -> bool {
    connection.record_serialize_type(request.serialize_type);
    let endpoint = connection.endpoint().clone();
    let key = RequestKey::of(&request, endpoint.router.observer().is_some());
    if endpoint.draining.is_cancelled() && request.version > GO_AWAY_MIN_VERSION_EXCLUSIVE {
        let answer = RemotingCommand::response(response_code::GO_AWAY, Some(GO_AWAY_REMARK.into()));
        respond(connection, key, answer).await;
        return false;
    }
    let Some(handler) = endpoint.router.handler(request.code) else {
        tracing::debug!(connection = connection.id(), code = key.code, "no handler for request code");
        let answer = RemotingCommand::response(
            response_code::REQUEST_CODE_NOT_SUPPORTED,
            Some(not_supported_remark(key.code)),
        );
        respond(connection, key, answer).await;
        return false;
    };
    if let Some(guard) = endpoint.router.guard() {
        // A guard that panics refuses the request rather than taking the reader down.
        let refusal = std::panic::catch_unwind(AssertUnwindSafe(|| guard.refuse(connection, &request)))
            .unwrap_or_else(|panic| {
                tracing::error!(code = key.code, panic = %panic_message(panic.as_ref()), "request guard panicked");
                Some(RemotingCommand::response(response_code::SYSTEM_ERROR, Some("request check failed".into())))
            });
        if let Some(refusal) = refusal {
            respond(connection, key, refusal).await;
            return false;
        }
    }
    let Some(slot) = connection.try_begin_request() else {
        if connection.note_overload() {
            tracing::warn!(
                connection = connection.id(),
                remote = %connection.remote_addr(),
                code = key.code,
                "too many requests in flight on one connection; answering SYSTEM_BUSY"
            );
        }
        let answer = RemotingCommand::response(response_code::SYSTEM_BUSY, Some(OVERLOAD_REMARK.into()));
        respond(connection, key, answer).await;
        return false;
    };
    let mut responder = Responder::new(connection.clone(), key, slot);
    let mut request = request;
    if let Some(fast_path) = endpoint.router.fast_path(key.code) {
        let served = std::panic::catch_unwind(AssertUnwindSafe(|| {
            fast_path.try_serve(connection, request, responder)
        }));
        match served {
            Ok(Ok(())) => return true,
            Ok(Err(declined)) => {
                let Declined { request: declined_request, responder: declined_responder } = *declined;
                request = declined_request;
                responder = declined_responder;
            }
            // The responder went down with the panic and has answered SYSTEM_ERROR.
            Err(panic) => {
                tracing::error!(
                    connection = connection.id(),
                    code = key.code,
                    panic = %panic_message(panic.as_ref()),
                    "request fast path panicked"
                );
                return false;
            }
        }
    }
    let connection = connection.clone();
    let hard_stop = endpoint.hard_stop.clone();
    endpoint.handler_tasks.spawn(async move {
        let handling = async {
            // `call` itself may panic before it returns a future; catch that too.
            let future =
                std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(connection.clone(), request)))?;
            AssertUnwindSafe(future).catch_unwind().await
        };
        let outcome = tokio::select! {
            outcome = handling => outcome,
            // The owner gave up waiting (shutdown grace elapsed): drop the handler.
            _ = hard_stop.cancelled() => return,
        };
        let answer = match outcome {
            Ok(answer) => answer,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(
                    connection = connection.id(),
                    code = key.code,
                    panic = %message,
                    "request handler panicked; answering SYSTEM_ERROR"
                );
                Some(RemotingCommand::response(
                    response_code::SYSTEM_ERROR,
                    Some(format!("handler for request code {} failed: {message}", key.code)),
                ))
            }
        };
        match answer {
            Some(answer) => responder.respond_waiting(answer).await,
            // The handler answers by other means, or not at all (oneway).
            None => responder.discard(),
        }
    });
    false
}

/// Writes `answer` as the response to the request `key` describes, unless that request was
/// oneway.
async fn respond(connection: &Connection, key: RequestKey, answer: RemotingCommand) {
    let Some(response) = key.dress_observed(connection, answer) else { return };
    if connection.enqueue(Outgoing::Response(response)).await.is_err() {
        tracing::debug!(
            connection = connection.id(),
            code = key.code,
            "connection closed before the response"
        );
    }
}

/// The text of a panic payload, when it is one of the two usual kinds.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_owned()
    }
}
