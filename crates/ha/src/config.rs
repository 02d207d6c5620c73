//! Replication settings, under Java's `MessageStoreConfig` names so a `broker.conf` carries
//! over.

use std::fmt;
use std::str::FromStr;

/// `brokerRole`: what a broker does in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerRole {
    /// Acknowledges sends once stored locally; slaves follow as fast as they can.
    #[default]
    AsyncMaster,
    /// Acknowledges sends once enough slaves hold them (`inSyncReplicas`).
    SyncMaster,
    /// Follows a master, serves reads, refuses writes.
    Slave,
}

impl BrokerRole {
    /// True for both master roles.
    pub fn is_master(self) -> bool {
        !matches!(self, Self::Slave)
    }

    /// Java's name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AsyncMaster => "ASYNC_MASTER",
            Self::SyncMaster => "SYNC_MASTER",
            Self::Slave => "SLAVE",
        }
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BrokerRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "ASYNC_MASTER" => Ok(Self::AsyncMaster),
            "SYNC_MASTER" => Ok(Self::SyncMaster),
            "SLAVE" => Ok(Self::Slave),
            other => Err(format!("unknown brokerRole {other:?} (ASYNC_MASTER, SYNC_MASTER or SLAVE)")),
        }
    }
}

/// Largest `haTransferBatchSize` accepted: a frame's body must fit the slave's append limit.
pub const MAX_TRANSFER_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Most slaves one master serves at once.
pub const MAX_SLAVE_CONNECTIONS: usize = 16;

/// Every replication setting. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// `brokerRole`.
    pub role: BrokerRole,
    /// `haListenPort`: `None` means `listenPort + 1`, as Java's `BrokerStartup` makes it;
    /// 0 binds a port the system chooses.
    pub listen_port: Option<u16>,
    /// `haMasterAddress`: where a slave connects; `None` means the address the NameServer
    /// returns at registration.
    pub master_address: Option<String>,
    /// `haSendHeartbeatInterval`: a quiet side sends a heartbeat this often.
    pub send_heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: a connection silent this long is closed.
    pub housekeeping_interval_ms: u64,
    /// `haTransferBatchSize`: most bytes per frame.
    pub transfer_batch_bytes: usize,
    /// `haMaxGapNotInSync`: a slave further behind than this is not in sync.
    pub max_gap_not_in_sync_bytes: u64,
    /// `slaveTimeout`: how long a SYNC_MASTER send waits for its slaves.
    pub slave_timeout_ms: u64,
    /// `inSyncReplicas`: copies (master included) a SYNC_MASTER send needs. `None` means 2
    /// for SYNC_MASTER (see [`Self::needed_acks`]).
    pub in_sync_replicas: Option<u32>,
    /// `haSyncFromLastFile` (Apogee's key; the controller mode's `syncFromLastFile`): an empty
    /// slave starts at the master's newest file instead of copying the whole log.
    pub sync_from_last_file: bool,
    /// `allAckInSyncStateSet` (controller mode): a send waits until every member of the
    /// SyncStateSet holds it, so whichever member the controllers elect has every
    /// acknowledged message.
    pub all_ack_in_sync_state_set: bool,
    /// `minInSyncReplicas` (controller mode): a send is refused with
    /// IN_SYNC_REPLICAS_NOT_ENOUGH while the SyncStateSet is smaller.
    pub min_in_sync_replicas: u32,
    /// `haMaxTimeSlaveNotCatchup` (controller mode): a member that has not caught up for this
    /// long leaves the SyncStateSet.
    pub max_time_slave_not_catchup_ms: u64,
    /// `checkSyncStateSetPeriod` (controller mode): how often the master looks for members to
    /// drop.
    pub check_sync_state_set_period_ms: u64,
    /// Set in controller mode: connections speak AutoSwitch HA (storage spec §7.8), and the
    /// master keeps a SyncStateSet. Not a key: the broker sets it with its controller id.
    pub auto_switch: Option<AutoSwitch>,
}

/// What AutoSwitch HA needs to know of the broker it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoSwitch {
    /// The broker's id from the controllers: a slave sends it in its handshake; a master is
    /// this member of its SyncStateSet.
    pub local_broker_id: i64,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            role: BrokerRole::AsyncMaster,
            listen_port: None,
            master_address: None,
            send_heartbeat_interval_ms: 5_000,
            housekeeping_interval_ms: 20_000,
            transfer_batch_bytes: 32 * 1024,
            max_gap_not_in_sync_bytes: 256 * 1024 * 1024,
            slave_timeout_ms: 3_000,
            in_sync_replicas: None,
            sync_from_last_file: false,
            all_ack_in_sync_state_set: false,
            min_in_sync_replicas: 1,
            max_time_slave_not_catchup_ms: 15_000,
            check_sync_state_set_period_ms: 5_000,
            auto_switch: None,
        }
    }
}

/// Keys [`HaConfig::set`] takes.
const KEYS: &[&str] = &[
    "brokerRole",
    "haListenPort",
    "haMasterAddress",
    "haSendHeartbeatInterval",
    "haHousekeepingInterval",
    "haTransferBatchSize",
    "haMaxGapNotInSync",
    "slaveTimeout",
    "inSyncReplicas",
    "haSyncFromLastFile",
    "allAckInSyncStateSet",
    "minInSyncReplicas",
    "haMaxTimeSlaveNotCatchup",
    "checkSyncStateSetPeriod",
];

impl HaConfig {
    /// True when `key` is a replication setting.
    pub fn is_key(key: &str) -> bool {
        KEYS.contains(&key)
    }

    /// Sets one setting by its Java name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let text = value.trim();
        let invalid = || format!("invalid value {value:?} for {key}");
        let number = || text.parse::<u64>().map_err(|_| invalid());
        match key {
            "brokerRole" => self.role = text.parse()?,
            // Java treats a port ≤ 0 as "derive it"; Apogee keeps 0 for "any free port".
            "haListenPort" => self.listen_port = Some(text.parse().map_err(|_| invalid())?),
            "haMasterAddress" => self.master_address = Some(text.to_owned()).filter(|addr| !addr.is_empty()),
            "haSendHeartbeatInterval" => self.send_heartbeat_interval_ms = number()?.max(1),
            "haHousekeepingInterval" => self.housekeeping_interval_ms = number()?.max(1),
            "haTransferBatchSize" => {
                let bytes = number()? as usize;
                if bytes == 0 || bytes > MAX_TRANSFER_BATCH_BYTES {
                    return Err(format!("{key} must be 1..={MAX_TRANSFER_BATCH_BYTES}, not {bytes}"));
                }
                self.transfer_batch_bytes = bytes;
            }
            "haMaxGapNotInSync" => self.max_gap_not_in_sync_bytes = number()?,
            "slaveTimeout" => self.slave_timeout_ms = number()?,
            "inSyncReplicas" => self.in_sync_replicas = Some(text.parse().map_err(|_| invalid())?),
            "haSyncFromLastFile" => {
                self.sync_from_last_file = text.parse().map_err(|_| invalid())?;
            }
            "allAckInSyncStateSet" => {
                self.all_ack_in_sync_state_set = text.parse().map_err(|_| invalid())?;
            }
            "minInSyncReplicas" => self.min_in_sync_replicas = text.parse().map_err(|_| invalid())?,
            "haMaxTimeSlaveNotCatchup" => self.max_time_slave_not_catchup_ms = number()?.max(1),
            "checkSyncStateSetPeriod" => self.check_sync_state_set_period_ms = number()?.max(100),
            _ => return Err(format!("unknown HA key {key}")),
        }
        Ok(())
    }

    /// The HA port for a broker listening on `listen_port`.
    pub fn ha_port(&self, listen_port: u16) -> u16 {
        self.listen_port.unwrap_or_else(|| listen_port.wrapping_add(1))
    }

    /// Copies a SYNC_MASTER send needs, the master's included; ≤ 1 means no wait.
    ///
    /// Java 5.x reads `inSyncReplicas` (default 1) even under SYNC_MASTER, so a stock
    /// SYNC_MASTER there does not wait for its slave; 4.x did. Apogee keeps what the role
    /// promises: unless `inSyncReplicas` is set, a SYNC_MASTER waits for one slave.
    ///
    /// In controller mode Java's default (1) holds: there `allAckInSyncStateSet` is what
    /// makes a send wait.
    pub fn needed_acks(&self) -> u32 {
        if self.auto_switch.is_some() {
            return if self.role.is_master() { self.in_sync_replicas.unwrap_or(1) } else { 1 };
        }
        match self.role {
            BrokerRole::SyncMaster => self.in_sync_replicas.unwrap_or(2),
            BrokerRole::AsyncMaster | BrokerRole::Slave => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roles_and_acks() {
        let mut config = HaConfig::default();
        assert_eq!(config.needed_acks(), 1);
        assert_eq!(config.ha_port(10911), 10912);
        config.set("brokerRole", "SYNC_MASTER").unwrap();
        assert_eq!(config.needed_acks(), 2);
        config.set("inSyncReplicas", "1").unwrap();
        assert_eq!(config.needed_acks(), 1);
        config.set("haListenPort", "0").unwrap();
        assert_eq!(config.ha_port(10911), 0);
        assert!(config.set("brokerRole", "LEADER").is_err());
        assert!(config.set("haTransferBatchSize", "0").is_err());
        assert!(HaConfig::is_key("haMasterAddress") && !HaConfig::is_key("brokerName"));
        config.set("brokerRole", "SLAVE").unwrap();
        assert!(!config.role.is_master());
    }
}
