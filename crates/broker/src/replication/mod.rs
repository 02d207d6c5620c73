//! The broker's role in its group (`brokerRole`, storage spec §6): a master runs the HA
//! service its slaves connect to; a slave follows its master's commit log (the HA address
//! comes from `haMasterAddress` or from the NameServer at each registration), refuses
//! writes, leaves the writing services (delay levels, timers, transaction checks, POP
//! revive) to the master, and copies the master's metadata ([`sync`]).

pub mod sync;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use apogee_ha::{BrokerRole, HaMaster, HaSlave};
use apogee_store::MessageStore;
use parking_lot::Mutex;

use crate::config::BrokerConfig;

/// A broker's replication, by role.
#[derive(Debug)]
pub enum Replication {
    /// ASYNC_MASTER or SYNC_MASTER: slaves connect to this.
    Master(HaMaster),
    /// SLAVE: follows a master.
    Slave {
        /// The HA client.
        client: HaSlave,
        /// The master's remoting address, for metadata sync (from the NameServer).
        master_addr: Mutex<Option<String>>,
    },
}

impl Replication {
    /// Starts the role's side of replication over `store`. A master's HA port is
    /// `haListenPort` (default `listenPort + 1`; 0 for any free port) on `listen_ip`.
    pub fn start(
        config: &BrokerConfig,
        store: &Arc<MessageStore>,
        listen_ip: std::net::IpAddr,
    ) -> io::Result<Self> {
        let ha = config.ha.clone();
        match ha.role {
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster => {
                let bind = SocketAddr::new(listen_ip, ha.ha_port(config.listen_port));
                Ok(Self::Master(HaMaster::start(Arc::clone(store), ha, bind)?))
            }
            BrokerRole::Slave => {
                let master = ha.master_address.clone();
                let client = HaSlave::start(Arc::clone(store), ha, master)?;
                Ok(Self::Slave { client, master_addr: Mutex::new(None) })
            }
        }
    }

    /// True on a slave.
    pub fn is_slave(&self) -> bool {
        matches!(self, Self::Slave { .. })
    }

    /// The HA port registered with the NameServers: the one a master bound, or what a
    /// slave's settings say.
    pub fn ha_port(&self, config: &BrokerConfig) -> u16 {
        match self {
            Self::Master(master) => master.local_addr().port(),
            Self::Slave { .. } => config.ha.ha_port(config.listen_port),
        }
    }

    /// What a NameServer answered a registration: a slave learns where its master is.
    pub fn registered(&self, config: &BrokerConfig, ha_server_addr: Option<&str>, master_addr: Option<&str>) {
        let Self::Slave { client, master_addr: known } = self else { return };
        let master_addr = master_addr.filter(|addr| !addr.is_empty()).map(str::to_owned);
        let mut known = known.lock();
        if *known != master_addr {
            tracing::info!(master = ?master_addr, "master address from the name server");
            *known = master_addr;
        }
        drop(known);
        // A configured haMasterAddress wins, as Java's updateMasterHAServerAddrPeriodically.
        if config.ha.master_address.is_none() {
            if let Some(ha) = ha_server_addr.filter(|addr| !addr.is_empty()) {
                client.set_master(Some(ha.to_owned()));
            }
        }
    }

    /// True on a slave connected to its master's HA port (and on a master, trivially).
    pub fn is_following(&self) -> bool {
        match self {
            Self::Master(_) => true,
            Self::Slave { client, .. } => client.is_connected(),
        }
    }

    /// True on a slave whose NameServer names a live master (no copy of the address made).
    pub fn has_master(&self) -> bool {
        match self {
            Self::Master(_) => false,
            Self::Slave { master_addr, .. } => master_addr.lock().is_some(),
        }
    }

    /// The master's remoting address, on a slave that knows it.
    pub fn master_addr(&self) -> Option<String> {
        match self {
            Self::Master(_) => None,
            Self::Slave { master_addr, .. } => master_addr.lock().clone(),
        }
    }

    /// Stops the HA threads (before the store shuts down).
    pub fn shutdown(&self) {
        match self {
            Self::Master(master) => master.shutdown(),
            Self::Slave { client, .. } => client.shutdown(),
        }
    }
}
