//! The replicated controller state (storage-ha spec §7.2) and the events that change it.
//!
//! Every controller holds one [`ControllerState`]; it changes only by [`ControllerState::apply`]
//! of an [`Event`] taken from the committed raft log, in log order. `apply` is a pure,
//! deterministic function of the state and the event (no clock, no liveness, no randomness),
//! so every controller that applied the same log prefix holds the same state. Validation of
//! requests against liveness happens before an event is proposed ([`crate::manager`]); `apply`
//! only re-checks what keeps the state's invariants ([`ControllerState::check_invariants`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The first broker id the controller assigns in a broker set (Java
/// `MixAll.FIRST_BROKER_CONTROLLER_ID`).
pub const FIRST_BROKER_CONTROLLER_ID: i64 = 1;

/// Most broker sets one controller tracks; an ApplyBrokerId that would create one more is
/// ignored by `apply` and refused by validation.
pub const MAX_BROKER_SETS: usize = 65_536;

/// Most brokers in one broker set.
pub const MAX_BROKERS_PER_SET: usize = 1_024;

/// One registered broker of a set: where it listens and the check code it applied with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAddress {
    /// `ip:port` of the broker.
    pub address: String,
    /// `brokerAddr;currentTimeMillis` sent with APPLY_BROKER_ID; a re-application with the
    /// same code is the same broker retrying.
    pub register_check_code: String,
}

/// Java `BrokerReplicaInfo`: the ids a broker set has handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReplicaInfo {
    /// Cluster of the set.
    pub cluster_name: String,
    /// Name of the set (`brokerName`).
    pub broker_name: String,
    /// The id GET_NEXT_BROKER_ID proposes; always greater than every assigned id.
    pub next_assign_broker_id: i64,
    /// Broker id → address and check code.
    pub brokers: BTreeMap<i64, ReplicaAddress>,
}

impl BrokerReplicaInfo {
    /// The address of `broker_id`, if registered.
    pub fn address(&self, broker_id: Option<i64>) -> Option<&str> {
        broker_id.and_then(|id| self.brokers.get(&id)).map(|replica| replica.address.as_str())
    }

    /// Broker id → address, for answers.
    pub fn address_table(&self) -> BTreeMap<i64, String> {
        self.brokers.iter().map(|(id, replica)| (*id, replica.address.clone())).collect()
    }
}

/// Java `SyncStateInfo`: who is master, since which epoch, and who is in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateInfo {
    /// Raised by every election, successful or not; never lowered.
    pub master_epoch: i32,
    /// Raised by every change of the SyncStateSet; never lowered.
    pub sync_state_set_epoch: i32,
    /// Brokers known to hold everything the master acknowledged.
    pub sync_state_set: BTreeSet<i64>,
    /// The current master, if any; always a member of `sync_state_set`.
    pub master_broker_id: Option<i64>,
}

impl SyncStateInfo {
    /// No election has ever happened in the set: the first requester wins (spec §7.5 step 2).
    pub fn is_first_time_for_elect(&self) -> bool {
        self.master_epoch == 0
    }
}

/// One broker set: Java keeps the two halves in two tables that are always added and removed
/// together (`isContainsBroker` needs both), so here they are one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSet {
    /// Assigned ids and addresses.
    pub replicas: BrokerReplicaInfo,
    /// Master and SyncStateSet.
    pub sync: SyncStateInfo,
}

/// An event of the replicated log (Java `EventMessage` types 1, 2, 3, 5, 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A broker took an id (creates the set on its first id).
    #[serde(rename_all = "camelCase")]
    ApplyBrokerId {
        /// Cluster of the set.
        cluster_name: String,
        /// Set name.
        broker_name: String,
        /// Broker's address (the part of the check code before `;`).
        broker_address: String,
        /// The id taken.
        new_broker_id: i64,
        /// The check code it applied with.
        register_check_code: String,
    },
    /// An election ended: a new master (`Some`) or none left (`None`).
    #[serde(rename_all = "camelCase")]
    ElectMaster {
        /// Set name.
        broker_name: String,
        /// The winner; `None` when the old master is gone and nobody could take over.
        new_master_broker_id: Option<i64>,
    },
    /// The master reported a new SyncStateSet.
    #[serde(rename_all = "camelCase")]
    AlterSyncStateSet {
        /// Set name.
        broker_name: String,
        /// The new set.
        new_sync_state_set: BTreeSet<i64>,
    },
    /// A registered broker came back on another address.
    #[serde(rename_all = "camelCase")]
    UpdateBrokerAddress {
        /// Set name.
        broker_name: String,
        /// Broker id.
        broker_id: i64,
        /// New address.
        broker_address: String,
    },
    /// An administrator removed a whole set (`None`) or some of its brokers.
    #[serde(rename_all = "camelCase")]
    CleanBrokerData {
        /// Set name.
        broker_name: String,
        /// The ids to forget; `None` or empty forgets the whole set.
        broker_ids: Option<BTreeSet<i64>>,
    },
}

impl Event {
    /// The broker set the event is about.
    pub fn broker_name(&self) -> &str {
        match self {
            Event::ApplyBrokerId { broker_name, .. }
            | Event::ElectMaster { broker_name, .. }
            | Event::AlterSyncStateSet { broker_name, .. }
            | Event::UpdateBrokerAddress { broker_name, .. }
            | Event::CleanBrokerData { broker_name, .. } => broker_name,
        }
    }
}

/// Every broker set the controllers know, keyed by `brokerName`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Broker sets by name.
    pub sets: BTreeMap<String, BrokerSet>,
}

impl ControllerState {
    /// The set named `broker_name`, if known.
    pub fn set(&self, broker_name: &str) -> Option<&BrokerSet> {
        self.sets.get(broker_name)
    }

    /// Applies one committed event. Deterministic; an event that no longer fits the state
    /// (its set is gone, it names an unregistered broker) changes nothing, as in Java.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ApplyBrokerId {
                cluster_name,
                broker_name,
                broker_address,
                new_broker_id,
                register_check_code,
            } => {
                if *new_broker_id < FIRST_BROKER_CONTROLLER_ID {
                    return;
                }
                if !self.sets.contains_key(broker_name) && self.sets.len() >= MAX_BROKER_SETS {
                    return;
                }
                let set = self.sets.entry(broker_name.clone()).or_insert_with(|| BrokerSet {
                    replicas: BrokerReplicaInfo {
                        cluster_name: cluster_name.clone(),
                        broker_name: broker_name.clone(),
                        next_assign_broker_id: FIRST_BROKER_CONTROLLER_ID,
                        brokers: BTreeMap::new(),
                    },
                    sync: SyncStateInfo {
                        master_epoch: 0,
                        sync_state_set_epoch: 0,
                        sync_state_set: BTreeSet::new(),
                        master_broker_id: None,
                    },
                });
                let replicas = &mut set.replicas;
                if replicas.brokers.contains_key(new_broker_id)
                    || replicas.brokers.len() >= MAX_BROKERS_PER_SET
                {
                    return;
                }
                replicas.brokers.insert(
                    *new_broker_id,
                    ReplicaAddress {
                        address: broker_address.clone(),
                        register_check_code: register_check_code.clone(),
                    },
                );
                // Java adds one to the counter; taking the maximum also keeps the next id
                // unassigned when a broker applied an id above the proposed one.
                replicas.next_assign_broker_id =
                    (replicas.next_assign_broker_id + 1).max(new_broker_id.saturating_add(1));
            }
            Event::ElectMaster { broker_name, new_master_broker_id } => {
                let Some(set) = self.sets.get_mut(broker_name) else { return };
                match new_master_broker_id {
                    Some(id) => {
                        if !set.replicas.brokers.contains_key(id) {
                            return;
                        }
                        set.sync.master_broker_id = Some(*id);
                        set.sync.master_epoch = set.sync.master_epoch.saturating_add(1);
                        set.sync.sync_state_set = BTreeSet::from([*id]);
                        set.sync.sync_state_set_epoch = set.sync.sync_state_set_epoch.saturating_add(1);
                    }
                    None => {
                        set.sync.master_broker_id = None;
                        set.sync.master_epoch = set.sync.master_epoch.saturating_add(1);
                    }
                }
            }
            Event::AlterSyncStateSet { broker_name, new_sync_state_set } => {
                let Some(set) = self.sets.get_mut(broker_name) else { return };
                let all_registered =
                    new_sync_state_set.iter().all(|id| set.replicas.brokers.contains_key(id));
                let keeps_master =
                    set.sync.master_broker_id.is_none_or(|master| new_sync_state_set.contains(&master));
                if !all_registered || !keeps_master {
                    return;
                }
                set.sync.sync_state_set = new_sync_state_set.clone();
                set.sync.sync_state_set_epoch = set.sync.sync_state_set_epoch.saturating_add(1);
            }
            Event::UpdateBrokerAddress { broker_name, broker_id, broker_address } => {
                if let Some(replica) =
                    self.sets.get_mut(broker_name).and_then(|set| set.replicas.brokers.get_mut(broker_id))
                {
                    replica.address = broker_address.clone();
                }
            }
            Event::CleanBrokerData { broker_name, broker_ids } => {
                let ids = match broker_ids {
                    Some(ids) if !ids.is_empty() => ids,
                    _ => {
                        self.sets.remove(broker_name);
                        return;
                    }
                };
                let Some(set) = self.sets.get_mut(broker_name) else { return };
                for id in ids {
                    set.replicas.brokers.remove(id);
                    set.sync.sync_state_set.remove(id);
                }
                // Java leaves a removed master in place; forgetting it (as an election that found
                // nobody does, with a new epoch) keeps the master inside the SyncStateSet.
                if set.sync.master_broker_id.is_some_and(|master| ids.contains(&master)) {
                    set.sync.master_broker_id = None;
                    set.sync.master_epoch = set.sync.master_epoch.saturating_add(1);
                }
                if set.replicas.brokers.is_empty() || set.sync.sync_state_set.is_empty() {
                    self.sets.remove(broker_name);
                }
            }
        }
    }

    /// Checks every invariant of the state; `Err` names the first one broken. Run after every
    /// apply in debug builds and by the property tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (name, set) in &self.sets {
            if &set.replicas.broker_name != name {
                return Err(format!("set {name} holds the replicas of {}", set.replicas.broker_name));
            }
            if set.replicas.brokers.is_empty() {
                return Err(format!("set {name} has no broker"));
            }
            if let Some((&last, _)) = set.replicas.brokers.last_key_value() {
                if set.replicas.next_assign_broker_id <= last {
                    return Err(format!(
                        "set {name}: next id {} is already assigned (largest {last})",
                        set.replicas.next_assign_broker_id
                    ));
                }
            }
            if set.replicas.brokers.keys().any(|id| *id < FIRST_BROKER_CONTROLLER_ID) {
                return Err(format!("set {name} holds an id below {FIRST_BROKER_CONTROLLER_ID}"));
            }
            if let Some(master) = set.sync.master_broker_id {
                if !set.sync.sync_state_set.contains(&master) {
                    return Err(format!("set {name}: master {master} is not in its SyncStateSet"));
                }
            }
            if let Some(stranger) =
                set.sync.sync_state_set.iter().find(|id| !set.replicas.brokers.contains_key(id))
            {
                return Err(format!("set {name}: SyncStateSet member {stranger} is not registered"));
            }
            if set.sync.master_epoch < 0 || set.sync.sync_state_set_epoch < 0 {
                return Err(format!("set {name}: negative epoch"));
            }
        }
        Ok(())
    }
}
