//! Property tests of the controller's state machine: random request sequences, decided by the
//! validation of `manager` under random liveness and applied as events, keep every invariant;
//! epochs never move back; the event log replays to the same state (determinism).

use std::collections::{BTreeMap, BTreeSet};

use apogee_controller::body::SyncStateSet;
use apogee_controller::elect::{LiveInfo, Liveness};
use apogee_controller::header::*;
use apogee_controller::manager;
use apogee_controller::state::{ControllerState, Event};
use apogee_remoting::response_code;
use proptest::prelude::*;

const SETS: [&str; 2] = ["broker-a", "broker-b"];
const CLUSTER: &str = "c";

/// Liveness as a table the test changes.
#[derive(Default)]
struct Table(BTreeMap<(String, i64), LiveInfo>);

impl Liveness for Table {
    fn is_alive(&self, _: &str, broker_name: &str, broker_id: i64) -> bool {
        self.0.contains_key(&(broker_name.to_owned(), broker_id))
    }
    fn live_info(&self, _: &str, broker_name: &str, broker_id: i64) -> Option<LiveInfo> {
        self.0.get(&(broker_name.to_owned(), broker_id)).copied()
    }
}

#[derive(Debug, Clone)]
enum Op {
    NextAndApply { set: usize, code: u8 },
    ApplyId { set: usize, id: i64, code: u8 },
    Register { set: usize, id: i64, port: u16 },
    Elect { set: usize, id: i64, designate: bool, unclean: bool },
    Alter { set: usize, master: i64, master_epoch_skew: i32, members: BTreeSet<i64>, epoch_skew: i32 },
    Clean { set: usize, ids: Option<BTreeSet<i64>>, living: bool },
    Live { set: usize, id: i64, alive: bool, epoch: i32, offset: i64, priority: i32 },
}

fn op() -> impl Strategy<Value = Op> {
    let set = 0..SETS.len();
    let id = -1i64..6;
    let members = proptest::collection::btree_set(0i64..6, 0..4);
    prop_oneof![
        3 => (set.clone(), 0u8..3).prop_map(|(set, code)| Op::NextAndApply { set, code }),
        1 => (set.clone(), id.clone(), 0u8..3).prop_map(|(set, id, code)| Op::ApplyId { set, id, code }),
        1 => (set.clone(), id.clone(), 0u16..3).prop_map(|(set, id, port)| Op::Register { set, id, port }),
        3 => (set.clone(), id.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(set, id, designate, unclean)| Op::Elect { set, id, designate, unclean }),
        3 => (set.clone(), id.clone(), -1i32..2, members.clone(), -1i32..2).prop_map(
            |(set, master, master_epoch_skew, members, epoch_skew)| Op::Alter { set, master, master_epoch_skew, members, epoch_skew }
        ),
        1 => (set.clone(), proptest::option::of(members), any::<bool>())
            .prop_map(|(set, ids, living)| Op::Clean { set, ids, living }),
        4 => (set, id, any::<bool>(), 0i32..4, 0i64..1000, 0i32..3).prop_map(
            |(set, id, alive, epoch, offset, priority)| Op::Live { set, id, alive, epoch, offset, priority }
        ),
    ]
}

/// Decides one operation against the state; returns the events (and checks answers that are
/// fixed by the state).
fn decide(state: &ControllerState, live: &mut Table, op: &Op) -> Vec<Event> {
    match op {
        Op::NextAndApply { set, code } => {
            let next = manager::get_next_broker_id(
                state,
                &GetNextBrokerIdRequestHeader {
                    cluster_name: CLUSTER.into(),
                    broker_name: SETS[*set].into(),
                },
            );
            let id = next.answer.next_broker_id.unwrap();
            let decision = manager::apply_broker_id(state, &apply_header(*set, id, *code));
            // The proposed id is always free, so applying it is always granted.
            assert_eq!(decision.code, response_code::SUCCESS, "next id {id} refused: {:?}", decision.remark);
            decision.events
        }
        Op::ApplyId { set, id, code } => {
            manager::apply_broker_id(state, &apply_header(*set, *id, *code)).events
        }
        Op::Register { set, id, port } => {
            let header = RegisterBrokerToControllerRequestHeader {
                cluster_name: CLUSTER.into(),
                broker_name: SETS[*set].into(),
                broker_id: *id,
                broker_address: format!("127.0.0.1:{port}"),
                invoke_time: None,
            };
            manager::register_broker(state, live, &header).events
        }
        Op::Elect { set, id, designate, unclean } => {
            let header = ElectMasterRequestHeader {
                cluster_name: CLUSTER.into(),
                broker_name: SETS[*set].into(),
                broker_id: *id,
                designate_elect: *designate,
                invoke_time: None,
            };
            let decision = manager::elect_master(state, live, &header, *unclean);
            if decision.code == response_code::SUCCESS {
                let master = decision.answer.0.master_broker_id.unwrap();
                let known = state.set(SETS[*set]).unwrap();
                if !known.sync.is_first_time_for_elect() {
                    assert!(live.is_alive(CLUSTER, SETS[*set], master), "elected a dead broker");
                    if !*unclean {
                        assert!(
                            known.sync.sync_state_set.contains(&master),
                            "unclean election while disabled"
                        );
                    }
                }
            }
            decision.events
        }
        Op::Alter { set, master, master_epoch_skew, members, epoch_skew } => {
            let (master_epoch, sync_epoch) = state
                .set(SETS[*set])
                .map_or((0, 0), |known| (known.sync.master_epoch, known.sync.sync_state_set_epoch));
            let header = AlterSyncStateSetRequestHeader {
                broker_name: SETS[*set].into(),
                master_broker_id: *master,
                master_epoch: master_epoch + master_epoch_skew,
                invoke_time: None,
            };
            let proposed = SyncStateSet {
                sync_state_set: members.clone(),
                sync_state_set_epoch: sync_epoch + epoch_skew,
            };
            let decision = manager::alter_sync_state_set(state, live, &header, &proposed);
            if decision.code == response_code::SUCCESS {
                assert_eq!((*master_epoch_skew, *epoch_skew), (0, 0), "a stale epoch was not fenced");
            }
            decision.events
        }
        Op::Clean { set, ids, living } => {
            let header = CleanControllerBrokerDataRequestHeader {
                cluster_name: Some(CLUSTER.into()),
                broker_name: SETS[*set].into(),
                broker_controller_ids_to_clean: ids
                    .as_ref()
                    .map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(";")),
                is_clean_living_broker: Some(*living),
                invoke_time: None,
            };
            manager::clean_broker_data(state, live, &header).events
        }
        Op::Live { set, id, alive, epoch, offset, priority } => {
            let key = (SETS[*set].to_owned(), *id);
            if *alive {
                live.0.insert(
                    key,
                    LiveInfo { epoch: *epoch, max_offset: *offset, election_priority: *priority },
                );
            } else {
                live.0.remove(&key);
            }
            Vec::new()
        }
    }
}

fn apply_header(set: usize, id: i64, code: u8) -> ApplyBrokerIdRequestHeader {
    ApplyBrokerIdRequestHeader {
        cluster_name: CLUSTER.into(),
        broker_name: SETS[set].into(),
        applied_broker_id: id,
        register_check_code: format!("127.0.0.1:{id};{code}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn validated_events_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut state = ControllerState::default();
        let mut live = Table::default();
        let mut log: Vec<Event> = Vec::new();
        for op in &ops {
            let events = decide(&state, &mut live, op);
            for event in &events {
                let before = state.set(event.broker_name()).map(|set| (set.sync.master_epoch, set.sync.sync_state_set_epoch));
                state.apply(event);
                let after = state.set(event.broker_name()).map(|set| (set.sync.master_epoch, set.sync.sync_state_set_epoch));
                if let (Some(before), Some(after)) = (before, after) {
                    prop_assert!(after.0 >= before.0, "master epoch went back: {before:?} -> {after:?}");
                    prop_assert!(after.1 >= before.1, "SyncStateSet epoch went back: {before:?} -> {after:?}");
                }
                if let Err(broken) = state.check_invariants() {
                    return Err(TestCaseError::fail(format!("{broken} after {event:?}")));
                }
            }
            log.extend(events);
        }
        // Determinism: replaying the log from empty gives the same state, and the state
        // survives its snapshot encoding.
        let mut replayed = ControllerState::default();
        for event in &log {
            replayed.apply(event);
        }
        prop_assert_eq!(&replayed, &state);
        let encoded = serde_json::to_vec(&state).unwrap();
        let decoded: ControllerState = serde_json::from_slice(&encoded).unwrap();
        prop_assert_eq!(decoded, state);
    }

    #[test]
    fn any_event_applies_without_breaking_invariants(events in proptest::collection::vec(any_event(), 1..60)) {
        let mut state = ControllerState::default();
        for event in &events {
            state.apply(event);
            if let Err(broken) = state.check_invariants() {
                return Err(TestCaseError::fail(format!("{broken} after {event:?}")));
            }
        }
    }
}

/// Events nobody validated (a log written by a buggy or older leader).
fn any_event() -> impl Strategy<Value = Event> {
    let name = (0..SETS.len()).prop_map(|index| SETS[index].to_owned());
    let id = -2i64..8;
    let ids = proptest::collection::btree_set(-1i64..8, 0..4);
    prop_oneof![
        (name.clone(), id.clone()).prop_map(|(broker_name, id)| Event::ApplyBrokerId {
            cluster_name: CLUSTER.into(),
            broker_name,
            broker_address: format!("a:{id}"),
            new_broker_id: id,
            register_check_code: String::new(),
        }),
        (name.clone(), proptest::option::of(id.clone())).prop_map(|(broker_name, new_master_broker_id)| {
            Event::ElectMaster { broker_name, new_master_broker_id }
        }),
        (name.clone(), ids.clone()).prop_map(|(broker_name, new_sync_state_set)| Event::AlterSyncStateSet {
            broker_name,
            new_sync_state_set
        }),
        (name.clone(), id).prop_map(|(broker_name, broker_id)| Event::UpdateBrokerAddress {
            broker_name,
            broker_id,
            broker_address: "b:1".into(),
        }),
        (name, proptest::option::of(ids))
            .prop_map(|(broker_name, broker_ids)| Event::CleanBrokerData { broker_name, broker_ids }),
    ]
}
