//! Request validation (Java `ReplicasInfoManager`): each function reads the state (and, where
//! Java does, liveness) and decides the answer and the events to propose. Nothing here changes
//! the state; the events do, once committed ([`crate::state::ControllerState::apply`]).

use std::collections::BTreeSet;

use apogee_remoting::body::route::BrokerMemberGroup;
use apogee_remoting::response_code;

use crate::body::{BrokerReplicasInfo, ElectMasterResponseBody, ReplicaIdentity, ReplicasInfo, SyncStateSet};
use crate::elect::{self, Liveness};
use crate::header::*;
use crate::state::{
    BrokerSet, ControllerState, Event, FIRST_BROKER_CONTROLLER_ID, MAX_BROKERS_PER_SET, MAX_BROKER_SETS,
};

/// The answer to one request and the events it needs committed first.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<A> {
    /// Response code (SUCCESS or a CONTROLLER_* code).
    pub code: i32,
    /// Remark of a failure.
    pub remark: Option<String>,
    /// Header and body of the answer (sent with failures too, as Java does).
    pub answer: A,
    /// Events to append to the raft log before answering; empty for reads and refusals.
    pub events: Vec<Event>,
}

impl<A> Decision<A> {
    fn success(answer: A) -> Self {
        Self { code: response_code::SUCCESS, remark: None, answer, events: Vec::new() }
    }

    fn refuse(code: i32, remark: impl Into<String>, answer: A) -> Self {
        Self { code, remark: Some(remark.into()), answer, events: Vec::new() }
    }

    fn with_event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }
}

/// The SyncStateSet body of a set.
fn sync_state_body(set: &BrokerSet) -> SyncStateSet {
    SyncStateSet {
        sync_state_set: set.sync.sync_state_set.clone(),
        sync_state_set_epoch: set.sync.sync_state_set_epoch,
    }
}

/// CONTROLLER_GET_NEXT_BROKER_ID.
pub fn get_next_broker_id(
    state: &ControllerState,
    request: &GetNextBrokerIdRequestHeader,
) -> Decision<GetNextBrokerIdResponseHeader> {
    let next = state
        .set(&request.broker_name)
        .map_or(FIRST_BROKER_CONTROLLER_ID, |set| set.replicas.next_assign_broker_id);
    Decision::success(GetNextBrokerIdResponseHeader {
        cluster_name: Some(request.cluster_name.clone()),
        broker_name: Some(request.broker_name.clone()),
        next_broker_id: Some(next),
    })
}

/// CONTROLLER_APPLY_BROKER_ID: the first id of an unknown set must be 1; otherwise an id is
/// granted when unassigned, or when assigned with the same check code (a retry).
pub fn apply_broker_id(
    state: &ControllerState,
    request: &ApplyBrokerIdRequestHeader,
) -> Decision<ApplyBrokerIdResponseHeader> {
    let answer = ApplyBrokerIdResponseHeader {
        cluster_name: Some(request.cluster_name.clone()),
        broker_name: Some(request.broker_name.clone()),
    };
    let id = request.applied_broker_id;
    let broker_address = request.register_check_code.split(';').next().unwrap_or_default().to_owned();
    let event = Event::ApplyBrokerId {
        cluster_name: request.cluster_name.clone(),
        broker_name: request.broker_name.clone(),
        broker_address,
        new_broker_id: id,
        register_check_code: request.register_check_code.clone(),
    };
    let invalid = |remark: String| {
        Decision::refuse(response_code::CONTROLLER_BROKER_ID_INVALID, remark, answer.clone())
    };
    match state.set(&request.broker_name) {
        None if id != FIRST_BROKER_CONTROLLER_ID => invalid(format!(
            "Broker-set: {} hasn't been registered in controller, but broker try to apply brokerId: {id}",
            request.broker_name
        )),
        None if state.sets.len() >= MAX_BROKER_SETS => {
            invalid(format!("The controller already holds {MAX_BROKER_SETS} broker sets"))
        }
        None => Decision::success(answer.clone()).with_event(event),
        Some(set) => match set.replicas.brokers.get(&id) {
            Some(replica) if replica.register_check_code == request.register_check_code => {
                Decision::success(answer.clone()).with_event(event)
            }
            None if id >= FIRST_BROKER_CONTROLLER_ID && set.replicas.brokers.len() < MAX_BROKERS_PER_SET => {
                Decision::success(answer.clone()).with_event(event)
            }
            _ => invalid(format!("Fail to apply brokerId: {id} in broker-set: {}", request.broker_name)),
        },
    }
}

/// What REGISTER_BROKER answers: the header and the SyncStateSet body.
pub type RegisterAnswer = (RegisterBrokerToControllerResponseHeader, Option<SyncStateSet>);

/// CONTROLLER_REGISTER_BROKER: tells the broker the live master, records a changed address.
pub fn register_broker(
    state: &ControllerState,
    liveness: &dyn Liveness,
    request: &RegisterBrokerToControllerRequestHeader,
) -> Decision<RegisterAnswer> {
    let mut header = RegisterBrokerToControllerResponseHeader {
        cluster_name: Some(request.cluster_name.clone()),
        broker_name: Some(request.broker_name.clone()),
        ..Default::default()
    };
    let need_register = response_code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED;
    let Some(set) = state.set(&request.broker_name) else {
        let remark = format!("Broker-set: {} hasn't been registered in controller", request.broker_name);
        return Decision::refuse(need_register, remark, (header, None));
    };
    let Some(known) = set.replicas.brokers.get(&request.broker_id) else {
        let remark = format!(
            "BrokerId: {} hasn't been registered in broker-set: {}",
            request.broker_id, request.broker_name
        );
        return Decision::refuse(need_register, remark, (header, None));
    };
    if let Some(master) = set.sync.master_broker_id {
        if liveness.is_alive(&request.cluster_name, &request.broker_name, master) {
            header.master_broker_id = Some(master);
            header.master_address = set.replicas.address(Some(master)).map(str::to_owned);
            header.master_epoch = Some(set.sync.master_epoch);
            header.sync_state_set_epoch = Some(set.sync.sync_state_set_epoch);
        }
    }
    let mut decision = Decision::success((header, Some(sync_state_body(set))));
    if known.address != request.broker_address {
        decision = decision.with_event(Event::UpdateBrokerAddress {
            broker_name: request.broker_name.clone(),
            broker_id: request.broker_id,
            broker_address: request.broker_address.clone(),
        });
    }
    decision
}

/// What ELECT_MASTER answers: the header and the body.
pub type ElectAnswer = (ElectMasterResponseHeader, Option<ElectMasterResponseBody>);

/// CONTROLLER_ELECT_MASTER (spec §7.5). `request.broker_id` -1 means the controller triggered
/// it; `unclean` is `enableElectUncleanMaster`.
pub fn elect_master(
    state: &ControllerState,
    liveness: &dyn Liveness,
    request: &ElectMasterRequestHeader,
    unclean: bool,
) -> Decision<ElectAnswer> {
    let Some(set) = state.set(&request.broker_name) else {
        return Decision::refuse(
            response_code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
            "Broker hasn't been registered",
            (ElectMasterResponseHeader::default(), None),
        );
    };
    let cluster = set.replicas.cluster_name.as_str();
    let requester = (request.broker_id >= FIRST_BROKER_CONTROLLER_ID).then_some(request.broker_id);
    let old_master = set.sync.master_broker_id;
    let all_replicas: BTreeSet<i64> = set.replicas.brokers.keys().copied().collect();
    let first_time =
        set.sync.is_first_time_for_elect() && requester.is_some_and(|id| all_replicas.contains(&id));
    let new_master = if first_time {
        requester
    } else {
        let prefer = if request.designate_elect { requester } else { None };
        let all = unclean.then_some(&all_replicas);
        elect::elect(
            liveness,
            cluster,
            &request.broker_name,
            &set.sync.sync_state_set,
            all,
            old_master,
            prefer,
        )
    };
    match new_master {
        Some(master) if Some(master) == old_master => {
            let header = ElectMasterResponseHeader {
                master_broker_id: Some(master),
                master_address: set.replicas.address(Some(master)).map(str::to_owned),
                master_epoch: Some(set.sync.master_epoch),
                sync_state_set_epoch: Some(set.sync.sync_state_set_epoch),
            };
            let body = ElectMasterResponseBody {
                broker_member_group: None,
                sync_state_set: set.sync.sync_state_set.clone(),
            };
            let remark = format!(
                "The old master {master} is still alive, not need to elect new master for broker {}",
                request.broker_name
            );
            Decision::refuse(response_code::CONTROLLER_MASTER_STILL_EXIST, remark, (header, Some(body)))
        }
        Some(master) => {
            let header = ElectMasterResponseHeader {
                master_broker_id: Some(master),
                master_address: set.replicas.address(Some(master)).map(str::to_owned),
                master_epoch: Some(set.sync.master_epoch.saturating_add(1)),
                sync_state_set_epoch: Some(set.sync.sync_state_set_epoch.saturating_add(1)),
            };
            let body = ElectMasterResponseBody {
                broker_member_group: Some(BrokerMemberGroup {
                    broker_addrs: set.replicas.address_table(),
                    broker_name: set.replicas.broker_name.clone(),
                    cluster: set.replicas.cluster_name.clone(),
                }),
                sync_state_set: BTreeSet::from([master]),
            };
            Decision::success((header, Some(body))).with_event(Event::ElectMaster {
                broker_name: request.broker_name.clone(),
                new_master_broker_id: Some(master),
            })
        }
        None if requester.is_none() => Decision::refuse(
            response_code::CONTROLLER_MASTER_NOT_AVAILABLE,
            "Old master has down and failed to elect a new broker master",
            (ElectMasterResponseHeader::default(), None),
        )
        .with_event(Event::ElectMaster {
            broker_name: request.broker_name.clone(),
            new_master_broker_id: None,
        }),
        None => Decision::refuse(
            response_code::CONTROLLER_ELECT_MASTER_FAILED,
            "Failed to elect a new master",
            (ElectMasterResponseHeader::default(), None),
        ),
    }
}

/// What ALTER_SYNC_STATE_SET answers: the header and the new set.
pub type AlterAnswer = (AlterSyncStateSetResponseHeader, Option<SyncStateSet>);

/// CONTROLLER_ALTER_SYNC_STATE_SET (spec §7.6): only the current master, holding both current
/// epochs, may change the set, to registered live brokers that include itself.
pub fn alter_sync_state_set(
    state: &ControllerState,
    liveness: &dyn Liveness,
    request: &AlterSyncStateSetRequestHeader,
    proposed: &SyncStateSet,
) -> Decision<AlterAnswer> {
    let refuse = |code: i32, remark: String| {
        Decision::refuse(code, remark, (AlterSyncStateSetResponseHeader::default(), None))
    };
    let Some(set) = state.set(&request.broker_name) else {
        return refuse(
            response_code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            "Broker metadata is not existed".into(),
        );
    };
    let new_set = &proposed.sync_state_set;
    if *new_set == set.sync.sync_state_set {
        return refuse(
            response_code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            "The newSyncStateSet is equal with oldSyncStateSet, no needed to update syncStateSet".into(),
        );
    }
    if set.sync.master_broker_id != Some(request.master_broker_id) {
        return refuse(
            response_code::CONTROLLER_INVALID_MASTER,
            format!(
                "Rejecting alter syncStateSet request because the current leader is:{{{}}}, not {{{}}}",
                set.sync.master_broker_id.map_or_else(|| "null".to_owned(), |id| id.to_string()),
                request.master_broker_id
            ),
        );
    }
    let epochs = [
        (
            response_code::CONTROLLER_FENCED_MASTER_EPOCH,
            "master epoch",
            set.sync.master_epoch,
            request.master_epoch,
        ),
        (
            response_code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
            "syncStateSet epoch",
            set.sync.sync_state_set_epoch,
            proposed.sync_state_set_epoch,
        ),
    ];
    for (code, what, current, given) in epochs {
        if current != given {
            return refuse(
                code,
                format!("Rejecting alter syncStateSet request because the current {what} is:{{{current}}}, not {{{given}}}"),
            );
        }
    }
    for &replica in new_set {
        if !set.replicas.brokers.contains_key(&replica) {
            return refuse(
                response_code::CONTROLLER_INVALID_REPLICAS,
                format!(
                    "Rejecting alter syncStateSet request because the replicas {{{replica}}} don't exist"
                ),
            );
        }
        if !liveness.is_alive(&set.replicas.cluster_name, &request.broker_name, replica) {
            return refuse(
                response_code::CONTROLLER_BROKER_NOT_ALIVE,
                format!(
                    "Rejecting alter syncStateSet request because the replicas {{{replica}}} don't alive"
                ),
            );
        }
    }
    if !new_set.contains(&request.master_broker_id) {
        return refuse(
            response_code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            format!(
                "Rejecting alter syncStateSet request because the newSyncStateSet don't contains origin leader {{{}}}",
                request.master_broker_id
            ),
        );
    }
    let epoch = set.sync.sync_state_set_epoch.saturating_add(1);
    let header = AlterSyncStateSetResponseHeader { new_sync_state_set_epoch: Some(epoch) };
    let body = SyncStateSet { sync_state_set: new_set.clone(), sync_state_set_epoch: epoch };
    Decision::success((header, Some(body))).with_event(Event::AlterSyncStateSet {
        broker_name: request.broker_name.clone(),
        new_sync_state_set: new_set.clone(),
    })
}

/// What GET_REPLICA_INFO answers: the header and the SyncStateSet body.
pub type ReplicaInfoAnswer = (GetReplicaInfoResponseHeader, Option<SyncStateSet>);

/// CONTROLLER_GET_REPLICA_INFO.
pub fn get_replica_info(
    state: &ControllerState,
    request: &GetReplicaInfoRequestHeader,
) -> Decision<ReplicaInfoAnswer> {
    match state.set(&request.broker_name) {
        Some(set) => Decision::success((
            GetReplicaInfoResponseHeader {
                master_broker_id: set.sync.master_broker_id,
                master_address: set.replicas.address(set.sync.master_broker_id).map(str::to_owned),
                master_epoch: Some(set.sync.master_epoch),
            },
            Some(sync_state_body(set)),
        )),
        None => Decision::refuse(
            response_code::CONTROLLER_BROKER_METADATA_NOT_EXIST,
            "Broker metadata is not existed",
            (GetReplicaInfoResponseHeader::default(), None),
        ),
    }
}

/// CONTROLLER_GET_SYNC_STATE_DATA: the replicas of each named set that exists.
pub fn get_sync_state_data(
    state: &ControllerState,
    liveness: &dyn Liveness,
    broker_names: &[String],
) -> Decision<BrokerReplicasInfo> {
    let mut info = BrokerReplicasInfo::default();
    for name in broker_names {
        let Some(set) = state.set(name) else { continue };
        let mut replicas = ReplicasInfo {
            master_broker_id: set.sync.master_broker_id,
            master_address: set.replicas.address(set.sync.master_broker_id).map(str::to_owned),
            master_epoch: set.sync.master_epoch,
            sync_state_set_epoch: set.sync.sync_state_set_epoch,
            ..ReplicasInfo::default()
        };
        for (&id, replica) in &set.replicas.brokers {
            let identity = ReplicaIdentity {
                broker_name: name.clone(),
                broker_id: id,
                broker_address: replica.address.clone(),
                alive: liveness.is_alive(&set.replicas.cluster_name, name, id),
            };
            if set.sync.sync_state_set.contains(&id) {
                replicas.in_sync_replicas.push(identity);
            } else {
                replicas.not_in_sync_replicas.push(identity);
            }
        }
        info.replicas_info_table.insert(name.clone(), replicas);
    }
    Decision::success(info)
}

/// CLEAN_BROKER_DATA: forgets a set or some of its brokers; refused while they are alive
/// unless `isCleanLivingBroker`.
pub fn clean_broker_data(
    state: &ControllerState,
    liveness: &dyn Liveness,
    request: &CleanControllerBrokerDataRequestHeader,
) -> Decision<()> {
    let invalid = |remark: String| {
        Decision::refuse(response_code::CONTROLLER_INVALID_CLEAN_BROKER_METADATA, remark, ())
    };
    let cluster = request.cluster_name.as_deref().unwrap_or_default();
    let ids_text =
        request.broker_controller_ids_to_clean.as_deref().map(str::trim).filter(|text| !text.is_empty());
    let mut ids = None;
    if let Some(text) = ids_text {
        let mut parsed = BTreeSet::new();
        for part in text.split(';').filter(|part| !part.trim().is_empty()) {
            match part.trim().parse::<i64>() {
                Ok(id) => parsed.insert(id),
                Err(error) => {
                    return invalid(format!(
                        "Please set the option <brokerControllerIdsToClean> according to the format, exception: {error}"
                    ))
                }
            };
        }
        ids = Some(parsed);
    }
    if request.is_clean_living_broker != Some(true) {
        match &ids {
            None => {
                if state.set(&request.broker_name).is_some_and(|set| set.sync.master_broker_id.is_some()) {
                    return invalid(format!(
                        "Broker {} is still alive, clean up failure",
                        request.broker_name
                    ));
                }
            }
            Some(ids) => {
                if let Some(id) = ids.iter().find(|id| liveness.is_alive(cluster, &request.broker_name, **id))
                {
                    return invalid(format!(
                        "Broker [{},  {id}] is still alive, clean up failure",
                        request.broker_name
                    ));
                }
            }
        }
    }
    if state.set(&request.broker_name).is_none() {
        return invalid(format!("Broker {} is not existed,clean broker data failure.", request.broker_name));
    }
    Decision::success(())
        .with_event(Event::CleanBrokerData { broker_name: request.broker_name.clone(), broker_ids: ids })
}

/// Sets whose master has stopped heartbeating while some other member still does: the leader
/// triggers an election in each (Java `scanNeedReelectBrokerSets`).
pub fn sets_needing_election(state: &ControllerState, liveness: &dyn Liveness) -> Vec<String> {
    state
        .sets
        .iter()
        .filter(|(name, set)| {
            let cluster = set.replicas.cluster_name.as_str();
            set.sync.master_broker_id.is_some_and(|master| !liveness.is_alive(cluster, name, master))
                && set.replicas.brokers.keys().any(|id| liveness.is_alive(cluster, name, *id))
        })
        .map(|(name, _)| name.clone())
        .collect()
}
