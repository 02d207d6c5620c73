//! The broker-facing request handlers (Java `ControllerRequestProcessor`): decode the header
//! and body, have the leader decide ([`crate::server::Shared::decide`]), encode the answer.
//! BROKER_HEARTBEAT and CONTROLLER_GET_METADATA_INFO are served by every controller; the rest
//! only by the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_remoting::connection::Connection;
use apogee_remoting::fastjson::Dialect;
use apogee_remoting::header::namesrv::BrokerHeartbeatRequestHeader;
use apogee_remoting::header::CommandHeader;
use apogee_remoting::reply::{self, decode_body, encode_body, header, Failure, Outcome};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use serde::Serialize;

use crate::body::SyncStateSet;
use crate::header::*;
use crate::heartbeat::{BrokerKey, Heartbeat};
use crate::manager::{self, Decision};
use crate::server::{Shared, LEADER_ADDRESS_FIELD};

/// Every request code a controller answers besides the raft RPCs.
pub const HANDLED_CODES: &[i32] = &[
    request_code::CONTROLLER_GET_NEXT_BROKER_ID,
    request_code::CONTROLLER_APPLY_BROKER_ID,
    request_code::CONTROLLER_REGISTER_BROKER,
    request_code::BROKER_HEARTBEAT,
    request_code::CONTROLLER_ELECT_MASTER,
    request_code::CONTROLLER_ALTER_SYNC_STATE_SET,
    request_code::CONTROLLER_GET_REPLICA_INFO,
    request_code::CONTROLLER_GET_METADATA_INFO,
    request_code::CONTROLLER_GET_SYNC_STATE_DATA,
    request_code::CLEAN_BROKER_DATA,
];

/// Largest number of broker sets one GET_SYNC_STATE_DATA may name.
const MAX_SYNC_STATE_QUERY_SETS: usize = 4_096;

/// Handles one request.
pub async fn process(
    shared: Arc<Shared>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = match request.code {
        request_code::BROKER_HEARTBEAT => heartbeat(&shared, &connection, &request),
        request_code::CONTROLLER_GET_METADATA_INFO => metadata(&shared, &request),
        request_code::CONTROLLER_GET_NEXT_BROKER_ID => match header::<GetNextBrokerIdRequestHeader>(&request)
        {
            Ok(head) => {
                answer(&request, shared.decide(|state, _| manager::get_next_broker_id(state, &head)).await)
            }
            Err(failure) => Err(failure),
        },
        request_code::CONTROLLER_APPLY_BROKER_ID => match header::<ApplyBrokerIdRequestHeader>(&request) {
            Ok(head) => {
                answer(&request, shared.decide(|state, _| manager::apply_broker_id(state, &head)).await)
            }
            Err(failure) => Err(failure),
        },
        request_code::CONTROLLER_REGISTER_BROKER => {
            match header::<RegisterBrokerToControllerRequestHeader>(&request) {
                Ok(head) => answer_with_body(
                    &request,
                    shared.decide(|state, live| manager::register_broker(state, live, &head)).await,
                ),
                Err(failure) => Err(failure),
            }
        }
        request_code::CONTROLLER_ELECT_MASTER => elect_master(&shared, &request).await,
        request_code::CONTROLLER_ALTER_SYNC_STATE_SET => alter_sync_state_set(&shared, &request).await,
        request_code::CONTROLLER_GET_REPLICA_INFO => match header::<GetReplicaInfoRequestHeader>(&request) {
            Ok(head) => answer_with_body(
                &request,
                shared.decide(|state, _| manager::get_replica_info(state, &head)).await,
            ),
            Err(failure) => Err(failure),
        },
        request_code::CONTROLLER_GET_SYNC_STATE_DATA => sync_state_data(&shared, &request).await,
        request_code::CLEAN_BROKER_DATA => match header::<CleanControllerBrokerDataRequestHeader>(&request) {
            Ok(head) => shared
                .decide(|state, live| manager::clean_broker_data(state, live, &head))
                .await
                .map(|decision| respond(&request, &decision, None::<&EmptyHeader>, None::<&()>)),
            Err(failure) => Err(failure),
        },
        other => Err(Failure::not_supported(other)),
    };
    let mut response = reply::finish(&request, outcome);
    if response.code == response_code::CONTROLLER_NOT_LEADER {
        if let Some((_, addr)) = shared.leader() {
            response = response.with_ext(LEADER_ADDRESS_FIELD, addr);
        }
    }
    Some(response)
}

/// The response carrying a decision's code, remark, header and body.
fn respond<H: CommandHeader, B: Serialize>(
    request: &RemotingCommand,
    decision: &Decision<impl Sized>,
    head: Option<&H>,
    body: Option<&B>,
) -> RemotingCommand {
    let mut response = RemotingCommand::respond_to(request, decision.code, decision.remark.clone());
    if let Some(head) = head {
        response = response.with_header(head);
    }
    if let Some(body) = body {
        match encode_body(body, Dialect::Fastjson) {
            Ok(bytes) => response = response.with_body(bytes),
            Err(failure) => return failure.into_response(request),
        }
    }
    response
}

/// The answer of a header-only decision.
fn answer<H: CommandHeader>(request: &RemotingCommand, decided: Result<Decision<H>, Failure>) -> Outcome {
    decided.map(|decision| respond(request, &decision, Some(&decision.answer), None::<&()>))
}

/// The answer of a (header, body) decision.
fn answer_with_body<H: CommandHeader, B: Serialize>(
    request: &RemotingCommand,
    decided: Result<Decision<(H, Option<B>)>, Failure>,
) -> Outcome {
    decided.map(|decision| {
        let (head, body) = &decision.answer;
        respond(request, &decision, Some(head), body.as_ref())
    })
}

fn heartbeat(shared: &Shared, connection: &Connection, request: &RemotingCommand) -> Outcome {
    let head: BrokerHeartbeatRequestHeader = header(request)?;
    let Some(broker_id) = head.broker_id else {
        return Err(Failure::new(
            response_code::CONTROLLER_INVALID_REQUEST,
            "Heart beat with empty brokerId",
        ));
    };
    let timeout_ms = head
        .heartbeat_timeout_mills
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(shared.config.default_heartbeat_timeout_ms);
    let beat = Heartbeat {
        key: BrokerKey { cluster_name: head.cluster_name, broker_name: head.broker_name, broker_id },
        broker_addr: head.broker_addr,
        connection_id: Some(connection.id()),
        timeout: Duration::from_millis(timeout_ms),
        epoch: head.epoch.unwrap_or(-1),
        max_offset: head.max_offset.unwrap_or(-1),
        confirm_offset: head.confirm_offset.unwrap_or(-1),
        election_priority: head.election_priority.unwrap_or(i32::MAX),
    };
    shared
        .heartbeats
        .on_heartbeat(beat, Instant::now())
        .map_err(|full| Failure::new(response_code::CONTROLLER_INVALID_REQUEST, full.to_string()))?;
    Ok(RemotingCommand::success_for(request).with_remark("Heart beat success"))
}

fn metadata(shared: &Shared, request: &RemotingCommand) -> Outcome {
    let leader = shared.leader();
    let peers: String = shared.config.peers.iter().map(|(id, addr)| format!("{id}:{addr};")).collect();
    let head = GetMetaDataResponseHeader {
        group: Some(shared.config.group.clone()),
        controller_leader_id: leader.as_ref().map(|(id, _)| id.to_string()),
        controller_leader_address: leader.map(|(_, addr)| addr),
        is_leader: shared.is_leader(),
        peers: Some(peers),
    };
    Ok(RemotingCommand::success_for(request).with_header(&head))
}

async fn elect_master(shared: &Arc<Shared>, request: &RemotingCommand) -> Outcome {
    let head: ElectMasterRequestHeader = header(request)?;
    let unclean = shared.config.enable_elect_unclean_master;
    let decision = shared.decide(|state, live| manager::elect_master(state, live, &head, unclean)).await?;
    if decision.code == response_code::SUCCESS {
        if let (header, Some(body)) = &decision.answer {
            shared.notify_role_changed(header, body);
        }
    }
    answer_with_body(request, Ok(decision))
}

async fn alter_sync_state_set(shared: &Shared, request: &RemotingCommand) -> Outcome {
    let head: AlterSyncStateSetRequestHeader = header(request)?;
    let proposed: SyncStateSet = decode_body(request, "sync state set")?;
    answer_with_body(
        request,
        shared.decide(|state, live| manager::alter_sync_state_set(state, live, &head, &proposed)).await,
    )
}

/// CONTROLLER_GET_SYNC_STATE_DATA: the body is a JSON list of set names; without one Java
/// answers SUCCESS with nothing.
async fn sync_state_data(shared: &Shared, request: &RemotingCommand) -> Outcome {
    if request.body.is_empty() {
        return Ok(RemotingCommand::success_for(request));
    }
    let names: Vec<String> = decode_body(request, "broker name list")?;
    if names.is_empty() {
        return Ok(RemotingCommand::success_for(request));
    }
    if names.len() > MAX_SYNC_STATE_QUERY_SETS {
        return Err(Failure::new(
            response_code::CONTROLLER_INVALID_REQUEST,
            format!("at most {MAX_SYNC_STATE_QUERY_SETS} broker sets per request, got {}", names.len()),
        ));
    }
    let decision = shared.decide(|state, live| manager::get_sync_state_data(state, live, &names)).await?;
    Ok(respond(request, &decision, None::<&GetReplicaInfoRequestHeader>, Some(&decision.answer)))
}
