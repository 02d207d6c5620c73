//! The producer's requests over remoting: SEND_MESSAGE (10, long header keys),
//! SEND_MESSAGE_V2 (310, one-letter keys) and SEND_BATCH_MESSAGE (320) (protocol spec §3.3),
//! and the replies of request–reply, SEND_REPLY_MESSAGE (324) and its V2 (325), which take
//! the same headers and go to [`core::reply`](crate::core::reply).
//! The adapter decodes the header, lends its texts to [`core::send`](crate::core::send) and
//! encodes the result; every response, failures included, carries the `MSG_REGION` and
//! `TRACE_ON` extFields the Java client reads unconditionally.
//!
//! The common case is served as the request is read ([`SendFastPath`]): the core queues the
//! records in the store with this module's completion box, and the store's append round
//! answers through the request's `Responder`, with no task, oneshot or wake per request.

use std::cell::RefCell;
use std::sync::Arc;

use apogee_common::message::property;
use apogee_common::spare;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::connection::Connection;
use apogee_remoting::header::send::{
    decode_send_message_header, SendMessageRequestHeader, SendMessageResponseHeader,
};
use apogee_remoting::reply::Failure;
use apogee_remoting::responder::{DeferredAnswer, Responder};
use apogee_remoting::router::{Declined, FastPath, Router};
use apogee_remoting::RemotingCommand;
use apogee_store::{PutDone, PutResult, PutStatus};

use crate::core::send::{self as core_send, Queued, Receipt, SendRequest, SendResult, SendStatus};
use crate::core::CoreResult;
use crate::BrokerState;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    let codes = [request_code::SEND_MESSAGE, request_code::SEND_MESSAGE_V2, request_code::SEND_BATCH_MESSAGE];
    for code in codes {
        super::route(router, code, state, handle);
    }
    router.register_fast_path(&codes, SendFastPath(Arc::clone(state)));
    for code in [request_code::SEND_REPLY_MESSAGE, request_code::SEND_REPLY_MESSAGE_V2] {
        super::route(router, code, state, handle);
    }
}

/// Serves one send or reply request; the response always carries `MSG_REGION` and
/// `TRACE_ON`.
async fn handle(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let answer = match decode_send_message_header(&request) {
        Ok(header) => {
            let caller = super::caller(&connection, &request);
            let send = send_request(&header, &request);
            let result = match request.code {
                request_code::SEND_REPLY_MESSAGE | request_code::SEND_REPLY_MESSAGE_V2 => {
                    crate::core::reply::reply(&state, &caller, &send).await
                }
                _ => core_send::send(&state, &caller, &send).await,
            };
            result.map_err(Failure::from)
        }
        Err(error) => Err(Failure::from(error)),
    };
    Some(finish(&state, answer.map(response)))
}

/// The core's view of a decoded send: borrowed, nothing copied.
fn send_request<'a>(header: &'a SendMessageRequestHeader, request: &'a RemotingCommand) -> SendRequest<'a> {
    SendRequest {
        producer_group: &header.producer_group,
        topic: &header.topic,
        default_topic: &header.default_topic,
        default_topic_queue_nums: header.default_topic_queue_nums,
        queue_id: header.queue_id,
        sys_flag: header.sys_flag,
        born_timestamp_ms: header.born_timestamp,
        flag: header.flag,
        properties: header.properties.as_deref(),
        reconsume_times: header.reconsume_times,
        unit_mode: header.unit_mode == Some(true),
        max_reconsume_times: header.max_reconsume_times,
        batch: header.batch == Some(true),
        body: &request.body,
    }
}

/// The send path for the common case, run as the request is read: a known topic that is
/// not a retry topic. The records are queued in the store, and appended together with the
/// rest of the socket read's sends when the reader ends its batch; the callback answers.
/// Everything else is declined to [`handle`].
struct SendFastPath(Arc<BrokerState>);

impl FastPath for SendFastPath {
    fn try_serve(
        &self,
        connection: &Connection,
        request: RemotingCommand,
        responder: Responder,
    ) -> Result<(), Box<Declined>> {
        let state = &self.0;
        let header = match decode_send_message_header(&request) {
            Ok(header) => header,
            Err(error) => {
                responder.respond(finish(state, Err(Failure::from(error))));
                return Ok(());
            }
        };
        let caller = super::caller(connection, &request);
        let mut responder = Some(responder);
        let queued =
            core_send::try_send_queued(state, &caller, &send_request(&header, &request), |receipt| {
                AwaitedSend::boxed(state, receipt, responder.take())
            });
        match (queued, responder) {
            (Ok(Queued::Yes), _) => Ok(()),
            (Ok(Queued::Declined), Some(responder)) => Err(Box::new(Declined { request, responder })),
            (Err(error), Some(responder)) => {
                responder.respond(finish(state, Err(Failure::from(error))));
                Ok(())
            }
            // The completion took the responder, so the send was queued.
            (Ok(Queued::Declined) | Err(_), None) => Ok(()),
        }
    }

    fn end_of_batch(&self) {
        core_send::end_of_batch(&self.0);
    }
}

/// A fast-path send in the store: one box that is first the store's callback, then the answer
/// the connection's writer builds, and then a spare for a later send read on the thread that
/// built the answer (a reader and its connection's writer mostly share a worker).
struct AwaitedSend {
    /// `None` only while spare: a spare must not keep a stopped broker's state alive.
    state: Option<Arc<BrokerState>>,
    receipt: Receipt,
    /// Taken when the store answers.
    responder: Option<Responder>,
    /// Set when the store answers.
    result: Option<PutResult>,
}

/// Spare boxes a thread keeps: about the sends its connections have in flight, so a steady
/// stream of sends allocates none.
const SPARE_SENDS_PER_THREAD: usize = 256;

thread_local! {
    // The boxes themselves are what is kept: each is a send's allocation, reused whole.
    #[allow(clippy::vec_box)]
    static SPARE_SENDS: RefCell<Vec<Box<AwaitedSend>>> = const { RefCell::new(Vec::new()) };
}

impl AwaitedSend {
    /// A send waiting for the store: a spare box of this thread, or a new one.
    fn boxed(state: &Arc<BrokerState>, receipt: Receipt, responder: Option<Responder>) -> Box<Self> {
        let mut awaited = spare::take(&SPARE_SENDS).unwrap_or_else(|| {
            Box::new(AwaitedSend { state: None, receipt: Receipt::EMPTY, responder: None, result: None })
        });
        debug_assert!(awaited.state.is_none() && awaited.responder.is_none() && awaited.result.is_none());
        awaited.state = Some(Arc::clone(state));
        awaited.receipt = receipt;
        awaited.responder = responder;
        awaited
    }

    /// Empties the box and keeps it as a spare when this thread has room.
    fn recycle(mut self: Box<Self>) {
        self.state = None;
        self.receipt = Receipt::EMPTY;
        self.responder = None;
        self.result = None;
        spare::keep(&SPARE_SENDS, self, SPARE_SENDS_PER_THREAD);
    }
}

impl PutDone for AwaitedSend {
    fn done(mut self: Box<Self>, result: PutResult) {
        self.result = Some(result);
        if let Some(responder) = self.responder.take() {
            responder.respond_deferred(self);
        }
    }
}

impl DeferredAnswer for AwaitedSend {
    fn build(mut self: Box<Self>) -> RemotingCommand {
        let state = self.state.take().expect("a send in flight holds the broker state");
        let receipt = std::mem::replace(&mut self.receipt, Receipt::EMPTY);
        let result = self.result.take().unwrap_or(PutResult::failed(PutStatus::UnknownError));
        self.recycle();
        finish(&state, stored_answer(&state, receipt, result))
    }
}

/// The answer to a send, success or failure, with the extFields every send response carries.
fn finish(state: &BrokerState, answer: Result<RemotingCommand, Failure>) -> RemotingCommand {
    let response = answer.unwrap_or_else(|failure| {
        tracing::debug!(code = failure.code, remark = %failure.remark, "send refused");
        failure.into_answer()
    });
    with_region(state, response)
}

/// Adds the extFields the Java client dereferences on every send response.
fn with_region(state: &BrokerState, response: RemotingCommand) -> RemotingCommand {
    let region = core_send::region(state);
    response
        .with_ext(property::MSG_REGION, region.region_id)
        .with_ext(property::TRACE_ON, if region.trace_on { "true" } else { "false" })
}

/// The response of a stored send: FLUSH_DISK_TIMEOUT is still a successful send for the
/// client, which reads the header.
fn response(result: SendResult) -> RemotingCommand {
    let code = match result.status {
        SendStatus::Ok => response_code::SUCCESS,
        SendStatus::FlushDiskTimeout => response_code::FLUSH_DISK_TIMEOUT,
        SendStatus::FlushSlaveTimeout => response_code::FLUSH_SLAVE_TIMEOUT,
        SendStatus::SlaveNotAvailable => response_code::SLAVE_NOT_AVAILABLE,
    };
    let header = SendMessageResponseHeader {
        msg_id: result.msg_id,
        queue_id: result.queue_id,
        queue_offset: result.queue_offset,
        transaction_id: result.transaction_id,
        batch_uniq_id: None,
        recall_handle: result.recall_handle,
    };
    RemotingCommand::response(code, None).with_header(&header)
}

/// The answer once the store has answered `result`.
fn stored_answer(
    state: &BrokerState,
    receipt: Receipt,
    result: PutResult,
) -> Result<RemotingCommand, Failure> {
    let result: CoreResult<SendResult> = receipt.result(state, result);
    result.map(response).map_err(Failure::from)
}
