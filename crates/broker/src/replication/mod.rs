//! The broker's role in its group (storage spec §6–§7): a master runs the HA service its
//! slaves connect to; a slave follows its master's commit log (the HA address comes from
//! `haMasterAddress` or from the NameServer at each registration), refuses writes, leaves
//! the writing services (delay levels, timers, transaction checks, POP revive) to the master,
//! and copies the master's metadata ([`sync`]).
//!
//! With `brokerRole` the role is fixed at start. In controller mode
//! (`enableControllerMode`, [`crate::controller`]) the controllers assign it and may change it
//! at any time: the broker starts fenced (its store refuses writes), and
//! [`Replication::become_master`] / [`Replication::become_slave`] switch it, over AutoSwitch
//! HA and the store's epoch file.
//!
//! Invariants: a broker writes only as master; the store is replica-only in every other
//! role, and is made so before a master's HA service stops.

pub mod sync;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, Ordering};
use std::sync::Arc;

use apogee_ha::{AutoSwitch, BrokerRole, HaConfig, HaMaster, HaSlave, SyncStateListener};
use apogee_store::MessageStore;
use parking_lot::{Mutex, RwLock};

use crate::config::BrokerConfig;

/// How often a paused master service looks whether the broker is master again.
pub const ROLE_POLL_MS: u64 = 200;

/// What the broker is now.
#[derive(Debug)]
enum Role {
    /// Controller mode before the controllers gave a role, or after they deposed this
    /// master without naming another: nothing is written.
    Fenced,
    /// ASYNC_MASTER or SYNC_MASTER: slaves connect to this.
    Master(HaMaster),
    /// SLAVE: follows a master.
    Slave(HaSlave),
}

/// A broker's replication, by role. See the module documentation.
#[derive(Debug)]
pub struct Replication {
    store: Arc<MessageStore>,
    /// The settings; in controller mode the role and the AutoSwitch id change with the role.
    ha: HaConfig,
    listen_ip: IpAddr,
    role: RwLock<Role>,
    /// Mirrors `role` for the hot paths (pulls ask on every request).
    is_master: AtomicBool,
    is_slave: AtomicBool,
    /// The HA port: the configured one, then the one a master bound (so a broker that loses
    /// and regains mastership keeps its address).
    ha_port: AtomicU16,
    /// The id registered with the NameServers: `brokerId`, or in controller mode 0 as master
    /// and the controller's id otherwise.
    registered_id: AtomicI64,
    /// The master's remoting address, for metadata sync (from the NameServer, or the
    /// controllers).
    master_addr: Mutex<Option<String>>,
    /// Controller mode: the master the controllers named, whose NameServer registration
    /// alone may set `master_addr` and the HA address followed.
    expected_master: Mutex<Option<String>>,
    controller_mode: bool,
}

impl Replication {
    /// Starts the role's side of replication over `store`. A master's HA port is
    /// `haListenPort` (default `listenPort + 1`; 0 for any free port) on `listen_ip`. In
    /// controller mode nothing starts: the broker is fenced until the controllers speak.
    pub fn start(config: &BrokerConfig, store: &Arc<MessageStore>, listen_ip: IpAddr) -> io::Result<Self> {
        let ha = config.ha.clone();
        let controller_mode = config.controller.enable_controller_mode;
        let replication = Self {
            store: Arc::clone(store),
            ha_port: AtomicU16::new(ha.ha_port(config.listen_port)),
            ha: ha.clone(),
            listen_ip,
            role: RwLock::new(Role::Fenced),
            is_master: AtomicBool::new(false),
            is_slave: AtomicBool::new(false),
            registered_id: AtomicI64::new(config.broker_id),
            master_addr: Mutex::new(None),
            expected_master: Mutex::new(None),
            controller_mode,
        };
        if controller_mode {
            store.set_replica_only(true);
            return Ok(replication);
        }
        let role = match ha.role {
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster => Role::Master(replication.start_master(ha)?),
            BrokerRole::Slave => {
                let master = ha.master_address.clone();
                Role::Slave(HaSlave::start(Arc::clone(store), ha, master)?)
            }
        };
        replication.set_role(role);
        Ok(replication)
    }

    fn start_master(&self, ha: HaConfig) -> io::Result<HaMaster> {
        let bind = SocketAddr::new(self.listen_ip, self.ha_port.load(Ordering::Acquire));
        let master = HaMaster::start(Arc::clone(&self.store), ha, bind)?;
        self.ha_port.store(master.local_addr().port(), Ordering::Release);
        Ok(master)
    }

    /// Installs `role` and stops the one it replaces.
    fn set_role(&self, role: Role) {
        let (master, slave) = match &role {
            Role::Fenced => (false, false),
            Role::Master(_) => (true, false),
            Role::Slave(_) => (false, true),
        };
        let old = std::mem::replace(&mut *self.role.write(), role);
        self.is_master.store(master, Ordering::Release);
        self.is_slave.store(slave, Ordering::Release);
        stop(old);
    }

    /// True while this broker writes: a master, by configuration or by election.
    pub fn is_master(&self) -> bool {
        self.is_master.load(Ordering::Acquire)
    }

    /// True on a slave (fenced brokers are neither).
    pub fn is_slave(&self) -> bool {
        self.is_slave.load(Ordering::Acquire)
    }

    /// True once the broker has a role (always, outside controller mode).
    pub fn has_role(&self) -> bool {
        self.is_master() || self.is_slave()
    }

    /// True in controller mode.
    pub fn is_controller_mode(&self) -> bool {
        self.controller_mode
    }

    /// The id to register with the NameServers.
    pub fn registered_id(&self) -> i64 {
        self.registered_id.load(Ordering::Acquire)
    }

    /// The HA port registered with the NameServers.
    pub fn ha_port(&self) -> u16 {
        self.ha_port.load(Ordering::Acquire)
    }

    /// Controller mode: becomes master of `epoch` (storage spec §7.7, changeToMaster). Drops
    /// a record cut by the last replicated frame, records the epoch at the log's end (unless
    /// this broker already holds that epoch: nobody else wrote in it), starts the HA service,
    /// and only then takes writes. Blocking.
    pub fn become_master(
        &self,
        auto_switch: AutoSwitch,
        epoch: i32,
        sync_state_set: (BTreeSet<i64>, i32),
        listener: Arc<dyn SyncStateListener>,
    ) -> io::Result<()> {
        assert!(self.controller_mode, "roles change only in controller mode");
        self.set_role(Role::Fenced);
        self.store.set_replica_only(true);
        let end = self.store.commit_log_max_offset();
        let end = self.store.truncate_to(end).map_err(io::Error::other)?;
        {
            let mut epochs = self.store.epochs().lock();
            match epochs.last_epoch() {
                Some(last) if last > epoch => {
                    return Err(io::Error::other(format!(
                        "asked to lead epoch {epoch}, but this broker already saw epoch {last}"
                    )))
                }
                Some(last) if last == epoch => {}
                _ => epochs.append(epoch, end).map_err(io::Error::other)?,
            }
        }
        let ha = HaConfig { role: BrokerRole::SyncMaster, auto_switch: Some(auto_switch), ..self.ha.clone() };
        let master = self.start_master(ha)?;
        master.set_sync_state_listener(listener);
        master.apply_sync_state_set(sync_state_set.0, sync_state_set.1);
        self.registered_id.store(0, Ordering::Release);
        *self.master_addr.lock() = None;
        *self.expected_master.lock() = None;
        self.set_role(Role::Master(master));
        self.store.set_replica_only(false);
        tracing::info!(epoch, end, "became master");
        Ok(())
    }

    /// Controller mode: becomes a slave of the master at `master_addr` (remoting address;
    /// its HA address comes with the next NameServer registration). Blocking.
    pub fn become_slave(&self, auto_switch: AutoSwitch, master_addr: &str) -> io::Result<()> {
        assert!(self.controller_mode, "roles change only in controller mode");
        self.store.set_replica_only(true);
        self.set_role(Role::Fenced);
        let ha = HaConfig { role: BrokerRole::Slave, auto_switch: Some(auto_switch), ..self.ha.clone() };
        let client = HaSlave::start(Arc::clone(&self.store), ha, self.ha.master_address.clone())?;
        self.registered_id.store(auto_switch.local_broker_id, Ordering::Release);
        *self.master_addr.lock() = None;
        *self.expected_master.lock() = Some(master_addr.to_owned());
        self.set_role(Role::Slave(client));
        tracing::info!(master = master_addr, "became slave");
        Ok(())
    }

    /// Controller mode: stops writing without a new role (the controllers named no master).
    /// Blocking.
    pub fn fence(&self) {
        self.store.set_replica_only(true);
        self.set_role(Role::Fenced);
        *self.master_addr.lock() = None;
    }

    /// What a NameServer answered a registration: a slave learns where its master is.
    pub fn registered(&self, ha_server_addr: Option<&str>, master_addr: Option<&str>) {
        let role = self.role.read();
        let Role::Slave(client) = &*role else { return };
        let master_addr = master_addr.filter(|addr| !addr.is_empty()).map(str::to_owned);
        if self.controller_mode && *self.expected_master.lock() != master_addr {
            // The NameServer still names an older master (or none yet): wait for the one the
            // controllers elected to register.
            return;
        }
        let mut known = self.master_addr.lock();
        if *known != master_addr {
            tracing::info!(master = ?master_addr, "master address from the name server");
            *known = master_addr.clone();
        }
        drop(known);
        // A configured haMasterAddress wins, as Java's updateMasterHAServerAddrPeriodically.
        if self.ha.master_address.is_none() && master_addr.is_some() {
            if let Some(ha) = ha_server_addr.filter(|addr| !addr.is_empty()) {
                client.set_master(Some(ha.to_owned()));
            }
        }
    }

    /// Controller mode: true on a slave that does not yet know its master's HA address.
    pub fn awaits_master_address(&self) -> bool {
        self.is_slave() && self.master_addr.lock().is_none()
    }

    /// True on a slave connected to its master's HA port (and on a master or a fenced
    /// broker, which have nothing to follow).
    pub fn is_following(&self) -> bool {
        match &*self.role.read() {
            Role::Slave(client) => client.is_connected(),
            Role::Master(_) | Role::Fenced => true,
        }
    }

    /// True on a slave whose NameServer names a live master (no copy of the address made).
    pub fn has_master(&self) -> bool {
        self.is_slave() && self.master_addr.lock().is_some()
    }

    /// The master's remoting address, on a slave that knows it.
    pub fn master_addr(&self) -> Option<String> {
        if !self.is_slave() {
            return None;
        }
        self.master_addr.lock().clone()
    }

    /// A master's confirm offset (what its SyncStateSet holds); the log's end otherwise.
    pub fn confirm_offset(&self) -> u64 {
        match &*self.role.read() {
            Role::Master(master) => master.confirm_offset(),
            Role::Slave(_) | Role::Fenced => self.store.commit_log_max_offset(),
        }
    }

    /// Controller mode: adopts a SyncStateSet the controllers decided (a master only).
    pub fn apply_sync_state_set(&self, members: BTreeSet<i64>, epoch: i32) {
        if let Role::Master(master) = &*self.role.read() {
            master.apply_sync_state_set(members, epoch);
        }
    }

    /// Controller mode: the controllers refused the master's last proposal.
    pub fn sync_state_set_refused(&self) {
        if let Role::Master(master) = &*self.role.read() {
            master.sync_state_set_refused();
        }
    }

    /// Stops the HA threads (before the store shuts down). Blocking.
    pub fn shutdown(&self) {
        self.set_role(Role::Fenced);
    }
}

fn stop(role: Role) {
    match role {
        Role::Master(master) => master.shutdown(),
        Role::Slave(client) => client.shutdown(),
        Role::Fenced => {}
    }
}
