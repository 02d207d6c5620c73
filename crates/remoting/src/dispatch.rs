//! Serving one inbound request: find its handler, run it in its own task within the
//! connection's in-flight limit, and write back what it returns, dressed as the response to
//! that very request. Also the framework's own answers (spec §1.9): unsupported code,
//! overload, handler failure, go-away during shutdown.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::code::response_code;
use crate::command::{RemotingCommand, SerializeType, CURRENT_VERSION, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::connection::Connection;

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

/// What the response needs from its request once the request itself has been handed over.
#[derive(Debug, Clone, Copy)]
struct RequestKey {
    code: i32,
    opaque: i32,
    oneway: bool,
    serialize_type: SerializeType,
}

/// Handles one request read from `connection`. Returns once the request has been handed to
/// its handler task (or answered by the framework); never waits for the handler.
pub(crate) async fn dispatch(connection: &Connection, request: RemotingCommand) {
    connection.record_serialize_type(request.serialize_type);
    let key = RequestKey {
        code: request.code,
        opaque: request.opaque,
        oneway: request.is_oneway(),
        serialize_type: request.serialize_type,
    };
    let endpoint = connection.endpoint().clone();
    if endpoint.draining.is_cancelled() && request.version > GO_AWAY_MIN_VERSION_EXCLUSIVE {
        let answer = RemotingCommand::response(response_code::GO_AWAY, Some(GO_AWAY_REMARK.into()));
        respond(connection, key, answer).await;
        return;
    }
    let Some(handler) = endpoint.router.handler(request.code) else {
        tracing::debug!(connection = connection.id(), code = key.code, "no handler for request code");
        let answer = RemotingCommand::response(
            response_code::REQUEST_CODE_NOT_SUPPORTED,
            Some(not_supported_remark(key.code)),
        );
        respond(connection, key, answer).await;
        return;
    };
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
        return;
    };
    let connection = connection.clone();
    let hard_stop = endpoint.hard_stop.clone();
    endpoint.handler_tasks.spawn(async move {
        let _slot = slot;
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
        if let Some(answer) = answer {
            respond(&connection, key, answer).await;
        }
    });
}

/// Writes `answer` as the response to the request `key` describes, unless that request was
/// oneway. A response too large to encode is replaced by a SYSTEM_ERROR.
async fn respond(connection: &Connection, key: RequestKey, mut answer: RemotingCommand) {
    if key.oneway {
        tracing::trace!(connection = connection.id(), code = key.code, "oneway request; response dropped");
        return;
    }
    answer.opaque = key.opaque;
    answer.flag = (answer.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
    answer.serialize_type = key.serialize_type;
    if answer.version == 0 {
        // Peers read the responder's version from here (spec §1.5); never announce 0.
        answer.version = CURRENT_VERSION;
    }
    let frame = match connection.encode(&answer) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::warn!(
                connection = connection.id(),
                code = key.code,
                %error,
                "response cannot be encoded; answering SYSTEM_ERROR instead"
            );
            let mut fallback = RemotingCommand::response(
                response_code::SYSTEM_ERROR,
                Some(format!("response cannot be encoded: {error}")),
            );
            fallback.opaque = key.opaque;
            fallback.serialize_type = key.serialize_type;
            match connection.encode(&fallback) {
                Ok(frame) => frame,
                Err(_) => return,
            }
        }
    };
    if connection.enqueue(frame).await.is_err() {
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
