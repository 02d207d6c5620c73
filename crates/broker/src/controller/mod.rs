//! Controller mode (RIP-44, storage spec §7): the controllers decide which broker of a set is
//! master, and this module (Java's `ReplicasManager`) carries their decisions out.
//!
//! The broker starts fenced ([`crate::replication`]). It obtains its controller id
//! ([`identity`]), registers with the controllers, and then, until it stops:
//! - tells every controller it lives every `brokerHeartbeatInterval`, with its newest epoch
//!   and log end, which the controllers weigh in an election;
//! - asks who is master every `syncBrokerMetadataPeriod`, and at once when a controller says
//!   the role changed (NOTIFY_BROKER_ROLE_CHANGED);
//! - nominates itself while the set has no master;
//! - carries its SyncStateSet proposals, as master, to the controllers.
//!
//! A decision is applied on the blocking pool (role changes join threads and write files),
//! then the broker registers with the NameServers under its new id, which is how clients find
//! the new master.

pub mod config;
pub mod identity;

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use apogee_controller::body::SyncStateSet;
use apogee_controller::client::{ControllerClient, ControllerClientConfig};
use apogee_ha::{AutoSwitch, SyncStateListener};
use apogee_remoting::code::response_code;
use apogee_remoting::header::namesrv::BrokerHeartbeatRequestHeader;
use parking_lot::Mutex;

use crate::BrokerState;

/// Pause between two attempts to obtain an id or to register.
const RETRY_PAUSE_MS: u64 = 1_000;
/// How often a slave that does not know its master's HA address registers again with the
/// NameServers, which tell it once the master registered.
const MASTER_ADDRESS_POLL_MS: u64 = 500;

/// What this broker last applied of the controllers' decisions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Applied {
    master_id: Option<i64>,
    master_epoch: i32,
}

/// A decision to apply: who is master of which epoch, and the SyncStateSet.
#[derive(Debug, Clone)]
struct Decision {
    master_id: Option<i64>,
    master_addr: Option<String>,
    master_epoch: i32,
    sync_state_set: Option<SyncStateSet>,
}

/// See the module documentation.
struct Manager {
    state: Arc<BrokerState>,
    client: Arc<ControllerClient>,
    broker_id: i64,
    applied: Mutex<Applied>,
}

/// Runs controller mode until the broker stops.
pub async fn run(state: Arc<BrokerState>) {
    let addrs = match state.config.controller.controller_addrs() {
        Ok(addrs) => addrs,
        Err(error) => {
            tracing::error!(%error, "controller mode cannot start; the broker stays fenced");
            return;
        }
    };
    let client = Arc::new(ControllerClient::new(addrs, ControllerClientConfig::default()));
    let mut stopping = state.stopping.clone();
    let broker_id = loop {
        match identity::obtain(&state, &client).await {
            Ok(id) => break id,
            Err(error) => tracing::warn!(%error, "no controller id yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)) => {}
            _ = stopping.changed() => return,
        }
    };
    let manager = Arc::new(Manager { state, client, broker_id, applied: Mutex::new(Applied::default()) });
    let heartbeats = tokio::spawn(Arc::clone(&manager).send_heartbeats());
    manager.register().await;
    manager.follow().await;
    let _ = heartbeats.await;
    manager.client.shutdown().await;
}

impl Manager {
    fn auto_switch(&self) -> AutoSwitch {
        AutoSwitch { local_broker_id: self.broker_id }
    }

    fn stopping(&self) -> bool {
        *self.state.stopping.borrow()
    }

    /// Tells every controller this broker lives, until the broker stops.
    async fn send_heartbeats(self: Arc<Self>) {
        let period = Duration::from_millis(self.state.config.controller.broker_heartbeat_interval_ms);
        let mut stopping = self.state.stopping.clone();
        loop {
            let header = self.heartbeat();
            self.client.heartbeat(&header).await;
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    fn heartbeat(&self) -> BrokerHeartbeatRequestHeader {
        let config = &self.state.config;
        let store = &self.state.store;
        BrokerHeartbeatRequestHeader {
            cluster_name: config.broker_cluster_name.clone(),
            broker_addr: self.state.store_host.to_string(),
            broker_name: config.broker_name.clone(),
            broker_id: Some(self.broker_id),
            epoch: Some(store.epochs().lock().last_epoch().unwrap_or(0)),
            max_offset: Some(store.commit_log_max_offset() as i64),
            confirm_offset: Some(self.state.replication.confirm_offset() as i64),
            heartbeat_timeout_mills: Some(config.controller.controller_heartbeat_timeout_ms as i64),
            election_priority: Some(config.controller.broker_election_priority),
        }
    }

    /// CONTROLLER_REGISTER_BROKER, retried until it is answered, then its decision applied.
    async fn register(&self) {
        let config = &self.state.config;
        let address = self.state.store_host.to_string();
        while !self.stopping() {
            let reply = self
                .client
                .register_broker(&config.broker_cluster_name, &config.broker_name, self.broker_id, &address)
                .await;
            match reply {
                Ok(reply) if reply.is_success() => {
                    tracing::info!(broker_id = self.broker_id, "registered with the controllers");
                    let header = reply.header;
                    self.apply(Decision {
                        master_id: header.master_broker_id,
                        master_addr: header.master_address,
                        master_epoch: header.master_epoch.unwrap_or(0),
                        sync_state_set: reply.body,
                    })
                    .await;
                    return;
                }
                Ok(reply) => tracing::warn!(
                    code = reply.code,
                    remark = reply.remark.as_deref().unwrap_or(""),
                    "the controllers refused the registration; retrying"
                ),
                Err(error) => tracing::warn!(%error, "registration with the controllers failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
    }

    /// Polls the controllers' decision and follows it until the broker stops.
    async fn follow(&self) {
        let period = Duration::from_millis(self.state.config.controller.sync_broker_metadata_period_ms);
        let mut stopping = self.state.stopping.clone();
        loop {
            if self.stopping() {
                return;
            }
            self.poll().await;
            if self.state.replication.awaits_master_address() {
                crate::register::register_all(&self.state).await;
            }
            let pause =
                if self.state.replication.awaits_master_address() || !self.state.replication.has_role() {
                    Duration::from_millis(MASTER_ADDRESS_POLL_MS)
                } else {
                    period
                };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.state.controller_notified.notified() => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// One look at the decision: CONTROLLER_GET_REPLICA_INFO, and a self-nomination while the
    /// set has no master.
    async fn poll(&self) {
        let reply = match self.client.get_replica_info(&self.state.config.broker_name).await {
            Ok(reply) if reply.is_success() => reply,
            Ok(reply) if reply.code == response_code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED => {
                self.register().await;
                return;
            }
            Ok(reply) => {
                tracing::warn!(
                    code = reply.code,
                    remark = reply.remark.as_deref().unwrap_or(""),
                    "no replica info"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "the controllers did not answer");
                return;
            }
        };
        let decision = Decision {
            master_id: reply.header.master_broker_id,
            master_addr: reply.header.master_address,
            master_epoch: reply.header.master_epoch.unwrap_or(0),
            sync_state_set: reply.body,
        };
        if decision.master_id.is_some() {
            self.apply(decision).await;
        } else {
            self.nominate().await;
        }
    }

    /// CONTROLLER_ELECT_MASTER naming this broker; the answer, whoever won, is applied.
    async fn nominate(&self) {
        let config = &self.state.config;
        let reply = match self
            .client
            .elect_master(&config.broker_cluster_name, &config.broker_name, self.broker_id, false)
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%error, "election request not answered");
                return;
            }
        };
        let won_or_kept = reply.is_success() || reply.code == response_code::CONTROLLER_MASTER_STILL_EXIST;
        if !won_or_kept {
            tracing::info!(
                code = reply.code,
                remark = reply.remark.as_deref().unwrap_or(""),
                "not elected; the set has no master yet"
            );
            return;
        }
        let header = reply.header;
        let sync_state_set = reply.body.map(|body| SyncStateSet {
            sync_state_set: body.sync_state_set,
            sync_state_set_epoch: header.sync_state_set_epoch.unwrap_or(0),
        });
        self.apply(Decision {
            master_id: header.master_broker_id,
            master_addr: header.master_address,
            master_epoch: header.master_epoch.unwrap_or(0),
            sync_state_set,
        })
        .await;
    }

    /// Makes this broker what `decision` says, if that is news, then registers with the
    /// NameServers under its role.
    async fn apply(&self, decision: Decision) {
        let replication = &self.state.replication;
        let applied = self.applied.lock().clone();
        let news = decision.master_epoch > applied.master_epoch || decision.master_id != applied.master_id;
        match decision.master_id {
            Some(master) if master == self.broker_id => {
                if news || !replication.is_master() {
                    let set = decision.sync_state_set.clone().map_or_else(
                        || (BTreeSet::from([self.broker_id]), 0),
                        |set| (set.sync_state_set, set.sync_state_set_epoch),
                    );
                    let proposer = Arc::new(Proposer {
                        state: Arc::downgrade(&self.state),
                        client: Arc::clone(&self.client),
                        broker_id: self.broker_id,
                        master_epoch: decision.master_epoch,
                        runtime: tokio::runtime::Handle::current(),
                    });
                    let (state, auto_switch, epoch) =
                        (Arc::clone(&self.state), self.auto_switch(), decision.master_epoch);
                    let changed = tokio::task::spawn_blocking(move || {
                        state.replication.become_master(auto_switch, epoch, set, proposer)
                    })
                    .await;
                    if !Self::changed(changed, "master") {
                        return;
                    }
                } else if let Some(set) = &decision.sync_state_set {
                    replication.apply_sync_state_set(set.sync_state_set.clone(), set.sync_state_set_epoch);
                }
            }
            Some(master) => {
                let Some(master_addr) = decision.master_addr.clone().filter(|addr| !addr.is_empty()) else {
                    return;
                };
                if news || !replication.is_slave() {
                    let (state, auto_switch) = (Arc::clone(&self.state), self.auto_switch());
                    let changed = tokio::task::spawn_blocking(move || {
                        state.replication.become_slave(auto_switch, &master_addr)
                    })
                    .await;
                    if !Self::changed(changed, "slave") {
                        return;
                    }
                    tracing::info!(
                        master_id = master,
                        epoch = decision.master_epoch,
                        "following the elected master"
                    );
                }
            }
            None => {
                if news && replication.is_master() {
                    let state = Arc::clone(&self.state);
                    let _ = tokio::task::spawn_blocking(move || state.replication.fence()).await;
                    tracing::warn!(epoch = decision.master_epoch, "deposed without a successor; fenced");
                }
            }
        }
        *self.applied.lock() = Applied { master_id: decision.master_id, master_epoch: decision.master_epoch };
        if news {
            crate::register::register_all(&self.state).await;
        }
    }

    /// Logs a role change's outcome; false when it failed (the broker is fenced then, and the
    /// next poll tries again).
    fn changed(outcome: Result<std::io::Result<()>, tokio::task::JoinError>, role: &str) -> bool {
        let error = match outcome {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        // A failed change leaves the broker fenced (the change fences first).
        tracing::error!(%error, role, "role change failed; the broker stays fenced and retries");
        false
    }
}

/// Carries a master's SyncStateSet proposals to the controllers
/// (CONTROLLER_ALTER_SYNC_STATE_SET) and hands the answer back to the HA service.
struct Proposer {
    /// Weak: the HA service that holds this lives inside the broker state.
    state: Weak<BrokerState>,
    client: Arc<ControllerClient>,
    broker_id: i64,
    master_epoch: i32,
    runtime: tokio::runtime::Handle,
}

impl SyncStateListener for Proposer {
    fn propose(&self, members: BTreeSet<i64>, based_on_epoch: i32) {
        let (state, client) = (self.state.clone(), Arc::clone(&self.client));
        let (broker_id, master_epoch) = (self.broker_id, self.master_epoch);
        self.runtime.spawn(async move {
            let Some(state) = state.upgrade() else { return };
            let reply = client
                .alter_sync_state_set(
                    &state.config.broker_name,
                    broker_id,
                    master_epoch,
                    members,
                    based_on_epoch,
                )
                .await;
            match reply {
                Ok(reply) if reply.is_success() => {
                    let epoch = reply.header.new_sync_state_set_epoch;
                    match (reply.body, epoch) {
                        (Some(set), _) => state
                            .replication
                            .apply_sync_state_set(set.sync_state_set, set.sync_state_set_epoch),
                        _ => state.replication.sync_state_set_refused(),
                    }
                }
                Ok(reply) => {
                    tracing::warn!(
                        code = reply.code,
                        remark = reply.remark.as_deref().unwrap_or(""),
                        "the controllers refused the SyncStateSet"
                    );
                    state.replication.sync_state_set_refused();
                    // A fenced epoch means another master leads: the next poll finds out now.
                    state.controller_notified.notify_one();
                }
                Err(error) => {
                    tracing::warn!(%error, "SyncStateSet proposal not answered");
                    state.replication.sync_state_set_refused();
                }
            }
        });
    }
}
