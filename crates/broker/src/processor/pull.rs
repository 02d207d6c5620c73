//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) over remoting (spec §3.4): the adapter
//! decodes the header, runs [`core::pull::pull`](crate::core::pull::pull) (checks, read, long
//! polling) and encodes the result: the response code by the spec's table, the store status's
//! name as the remark, the stored records back to back as the body.

use std::sync::Arc;

use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::connection::Connection;
use apogee_remoting::flags::pull as pull_sys_flag;
use apogee_remoting::header::consumer::{PullMessageRequestHeader, PullMessageResponseHeader};
use apogee_remoting::reply::{self, Failure};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_store::mapped_file::MappedSlice;
use bytes::{Bytes, BytesMut};

use super::route;
use crate::core::pull::{
    self as core_pull, Forbidden, PullError, PullRequest, PullResult, PullStatus, Subscription,
};
use crate::BrokerState;

/// Java `ForbiddenType` values, set in the response header with NO_PERMISSION.
pub mod forbidden_type {
    /// The broker is not readable.
    pub const BROKER: i32 = 1;
    /// The group may not consume.
    pub const GROUP: i32 = 2;
    /// The topic is not readable.
    pub const TOPIC: i32 = 3;
    /// The group may not consume by broadcasting.
    pub const BROADCASTING_DISABLED: i32 = 4;
    /// The group is forbidden to read the topic.
    pub const SUBSCRIPTION: i32 = 5;
}

/// Adds PULL_MESSAGE and LITE_PULL_MESSAGE to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::PULL_MESSAGE, state, handle);
    route(router, request_code::LITE_PULL_MESSAGE, state, handle);
}

async fn handle(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let header = match reply::header::<PullMessageRequestHeader>(&request) {
        Ok(header) => header,
        Err(failure) => return Some(failure.into_response(&request)),
    };
    let expression_type = ExpressionType::from_name(header.expression_type.as_deref().unwrap_or(""));
    let subscription = if header.sys_flag & pull_sys_flag::SUBSCRIPTION != 0 {
        Subscription::Given { expression_type: &expression_type, expression: header.subscription.as_deref() }
    } else {
        Subscription::Registered { sub_version: header.sub_version }
    };
    let pull = PullRequest {
        group: &header.consumer_group,
        topic: &header.topic,
        queue_id: header.queue_id,
        queue_offset: header.queue_offset,
        max_msg_nums: header.max_msg_nums,
        subscription,
        commit_offset: (header.sys_flag & pull_sys_flag::COMMIT_OFFSET != 0).then_some(header.commit_offset),
        suspend: header.sys_flag & pull_sys_flag::SUSPEND != 0,
        suspend_timeout_ms: header.suspend_timeout_millis,
    };
    let caller = super::caller(&connection, &request);
    let pulled = core_pull::pull(&state, &caller, &pull, join_records, || connection.is_closed()).await?;
    Some(match pulled {
        Ok(result) => response(&request, result),
        Err(PullError::Forbidden { kind, remark }) => {
            RemotingCommand::respond_to(&request, response_code::NO_PERMISSION, Some(remark))
                .with_ext("forbiddenType", forbidden_type_of(kind).to_string())
        }
        Err(PullError::Failed(error)) => Failure::from(error).into_response(&request),
    })
}

/// The response carrying a pull's result; the records go only with SUCCESS.
fn response(request: &RemotingCommand, result: PullResult<Bytes>) -> RemotingCommand {
    let code = match result.status {
        PullStatus::Found => response_code::SUCCESS,
        PullStatus::NoNewMessage => response_code::PULL_NOT_FOUND,
        PullStatus::NoMatchedMessage => response_code::PULL_RETRY_IMMEDIATELY,
        PullStatus::OffsetMoved => response_code::PULL_OFFSET_MOVED,
    };
    let header = PullMessageResponseHeader {
        suggest_which_broker_id: i64::try_from(result.suggest_broker_id).unwrap_or(0),
        next_begin_offset: result.next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
        topic_sys_flag: Some(result.topic_sys_flag),
        group_sys_flag: Some(result.group_sys_flag),
        ..PullMessageResponseHeader::default()
    };
    let mut response = RemotingCommand::respond_to(request, code, Some(result.read_status.name().to_owned()))
        .with_header(&header);
    if code == response_code::SUCCESS {
        response.body = result.messages;
    }
    response
}

/// The `forbiddenType` value of a refusal.
fn forbidden_type_of(kind: Forbidden) -> i32 {
    match kind {
        Forbidden::Broker => forbidden_type::BROKER,
        Forbidden::Group => forbidden_type::GROUP,
        Forbidden::Topic => forbidden_type::TOPIC,
        Forbidden::BroadcastingDisabled => forbidden_type::BROADCASTING_DISABLED,
        Forbidden::Subscription => forbidden_type::SUBSCRIPTION,
    }
}

/// One body from the records (run where the read runs): the record itself (no copy) when
/// there is one.
fn join_records(mut records: Vec<MappedSlice>, total_bytes: u64) -> Bytes {
    if records.len() == 1 {
        if let Some(record) = records.pop() {
            return record.into_bytes();
        }
    }
    let mut body = BytesMut::with_capacity(usize::try_from(total_bytes).unwrap_or(0));
    for record in &records {
        body.extend_from_slice(record.as_slice());
    }
    body.freeze()
}
