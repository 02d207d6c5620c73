//! Controller settings, read from a controller.conf with Java `ControllerConfig` keys where
//! they exist and overridden by `apogee controller`'s flags.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::raft::NodeId;

/// Default listen port of a controller (Java's DLedger controller port).
pub const DEFAULT_LISTEN_PORT: u16 = 9878;
/// Most controllers in one group.
pub const MAX_PEERS: usize = 9;

/// Why a setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value does not parse.
    #[error("{key}: invalid value {value:?}")]
    Invalid {
        /// The key.
        key: String,
        /// The text given.
        value: String,
    },
    /// The peer list is unusable.
    #[error("peers: {0}")]
    Peers(String),
    /// The properties text does not parse.
    #[error("{0}")]
    Properties(String),
}

/// Everything a controller needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// Remoting address brokers and the other controllers reach this one on.
    pub listen: SocketAddr,
    /// This controller's id (`controllerDLegerSelfId`, `n0` or `0`).
    pub id: NodeId,
    /// Every controller of the group, id → `host:port` (`controllerDLegerPeers`,
    /// `n0-host:port;n1-host:port`); includes this one.
    pub peers: BTreeMap<NodeId, String>,
    /// Where the raft log, vote and snapshot live (`controllerStorePath`).
    pub data_dir: PathBuf,
    /// Raft group name (`controllerDLegerGroup`), reported by GET_METADATA_INFO.
    pub group: String,
    /// Period of the liveness scan (`scanNotActiveBrokerInterval`, 5 s).
    pub scan_not_active_broker_interval_ms: u64,
    /// Period of the leader's dead-master scan (`scanInactiveMasterInterval`, 5 s).
    pub scan_inactive_master_interval_ms: u64,
    /// Attempts of a controller-triggered election (`electMasterMaxRetryCount`, 3).
    pub elect_master_max_retry_count: u32,
    /// Elect outside the SyncStateSet when nobody in it is alive (`enableElectUncleanMaster`).
    pub enable_elect_unclean_master: bool,
    /// Push NOTIFY_BROKER_ROLE_CHANGED to a set's live brokers after an election
    /// (`notifyBrokerRoleChanged`).
    pub notify_broker_role_changed: bool,
    /// Liveness timeout of brokers that send none (Java `DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`).
    pub default_heartbeat_timeout_ms: u64,
    /// After start, how long this controller watches heartbeats before it may call a master
    /// dead: its liveness table starts empty, and a slave heard before its master must not
    /// look like a set whose master died.
    pub liveness_warmup_ms: u64,
    /// How long a request may wait for its events to commit (Java waits 5 s).
    pub request_timeout_ms: u64,
    /// Raft leader heartbeat period.
    pub raft_heartbeat_interval_ms: u64,
    /// Raft election timeout range (a follower that hears no leader for a random time in it
    /// stands for election).
    pub raft_election_timeout_min_ms: u64,
    /// Upper end of the election timeout range.
    pub raft_election_timeout_max_ms: u64,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_every_entries: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_LISTEN_PORT));
        Self {
            listen,
            id: 0,
            peers: BTreeMap::from([(0, listen.to_string())]),
            data_dir: PathBuf::from("./data/controller"),
            group: "DefaultControllerGroup".to_owned(),
            scan_not_active_broker_interval_ms: 5_000,
            scan_inactive_master_interval_ms: 5_000,
            elect_master_max_retry_count: 3,
            enable_elect_unclean_master: false,
            notify_broker_role_changed: true,
            default_heartbeat_timeout_ms: 10_000,
            liveness_warmup_ms: 10_000,
            request_timeout_ms: 5_000,
            raft_heartbeat_interval_ms: 300,
            raft_election_timeout_min_ms: 1_500,
            raft_election_timeout_max_ms: 3_000,
            snapshot_every_entries: 1_000,
        }
    }
}

/// Parses a controller id: `3` or DLedger's `n3`.
pub fn parse_id(text: &str) -> Option<NodeId> {
    let text = text.trim();
    text.strip_prefix('n').unwrap_or(text).parse().ok()
}

/// Parses a peer list: `1=host:port,2=host:port` (the flag) or `n1-host:port;n2-host:port`
/// (`controllerDLegerPeers`).
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for part in text.split([',', ';']).map(str::trim).filter(|part| !part.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .or_else(|| part.split_once('-'))
            .ok_or_else(|| ConfigError::Peers(format!("{part:?} is not id=host:port")))?;
        let id = parse_id(id).ok_or_else(|| ConfigError::Peers(format!("{id:?} is not a controller id")))?;
        let addr = addr.trim();
        if addr.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
            return Err(ConfigError::Peers(format!("{addr:?} is not host:port")));
        }
        if peers.insert(id, addr.to_owned()).is_some() {
            return Err(ConfigError::Peers(format!("controller {id} is named twice")));
        }
    }
    if peers.is_empty() || peers.len() > MAX_PEERS {
        return Err(ConfigError::Peers(format!(
            "1 to {MAX_PEERS} controllers are needed, got {}",
            peers.len()
        )));
    }
    Ok(peers)
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid { key: key.to_owned(), value: value.to_owned() })
}

impl ControllerConfig {
    /// Applies one `key=value` setting; unknown keys are returned as `Ok(false)` for the caller
    /// to warn about.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "listenPort" => self.listen.set_port(number(key, value)?),
            "controllerDLegerGroup" => self.group = value.trim().to_owned(),
            "controllerDLegerPeers" => self.peers = parse_peers(value)?,
            "controllerDLegerSelfId" => {
                self.id = parse_id(value)
                    .ok_or_else(|| ConfigError::Invalid { key: key.to_owned(), value: value.to_owned() })?
            }
            "controllerStorePath" => self.data_dir = PathBuf::from(value.trim()),
            "scanNotActiveBrokerInterval" => self.scan_not_active_broker_interval_ms = number(key, value)?,
            "scanInactiveMasterInterval" => self.scan_inactive_master_interval_ms = number(key, value)?,
            "electMasterMaxRetryCount" => self.elect_master_max_retry_count = number(key, value)?,
            "enableElectUncleanMaster" => self.enable_elect_unclean_master = number(key, value)?,
            "notifyBrokerRoleChanged" => self.notify_broker_role_changed = number(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether `key` is a controller setting, whatever its value.
    pub fn understands(key: &str) -> bool {
        !matches!(Self::default().set(key, ""), Ok(false))
    }

    /// Applies a controller.conf (Java properties text). Unknown keys are logged and skipped,
    /// except those for which `read_elsewhere` is true: they belong to another reader of the
    /// same file (the NameServer that embeds this controller).
    pub fn apply_properties(
        &mut self,
        text: &str,
        read_elsewhere: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        let entries = apogee_common::properties::parse(text)
            .map_err(|error| ConfigError::Properties(error.to_string()))?;
        for (key, value) in &entries {
            if !self.set(key, value)? && !read_elsewhere(key) {
                tracing::warn!(%key, "controller config: unknown key ignored");
            }
        }
        Ok(())
    }

    /// Checks that the settings can run: this controller among the peers, sane periods.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.peers.contains_key(&self.id) {
            return Err(ConfigError::Peers(format!(
                "this controller's id {} is not among the peers",
                self.id
            )));
        }
        let positive = [
            ("scanNotActiveBrokerInterval", self.scan_not_active_broker_interval_ms),
            ("scanInactiveMasterInterval", self.scan_inactive_master_interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("raft_heartbeat_interval_ms", self.raft_heartbeat_interval_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid { key: key.to_owned(), value: "0".to_owned() });
            }
        }
        if self.raft_election_timeout_min_ms <= self.raft_heartbeat_interval_ms
            || self.raft_election_timeout_max_ms <= self.raft_election_timeout_min_ms
        {
            return Err(ConfigError::Invalid {
                key: "raft election timeout".to_owned(),
                value: format!(
                    "{}..{}",
                    self.raft_election_timeout_min_ms, self.raft_election_timeout_max_ms
                ),
            });
        }
        Ok(())
    }

    /// Period of the one scan loop that does both of Java's scans.
    pub fn scan_period(&self) -> Duration {
        Duration::from_millis(
            self.scan_not_active_broker_interval_ms.min(self.scan_inactive_master_interval_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_keys_and_both_peer_forms() {
        let mut config = ControllerConfig::default();
        config
            .apply_properties(
                "controllerDLegerGroup=group1\ncontrollerDLegerPeers=n0-127.0.0.1:9878;n1-127.0.0.1:9868\n\
                 controllerDLegerSelfId=n1\nlistenPort=9868\nenableElectUncleanMaster=true\nsomethingElse=1\n",
                |_| false,
            )
            .unwrap();
        assert_eq!(config.group, "group1");
        assert_eq!(config.id, 1);
        assert_eq!(config.listen.port(), 9868);
        assert!(config.enable_elect_unclean_master);
        assert_eq!(config.peers.get(&0).map(String::as_str), Some("127.0.0.1:9878"));
        config.validate().unwrap();
        assert_eq!(parse_peers("1=a:1,2=b:2").unwrap().len(), 2);
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("1=nohost").is_err());
        assert!(config.set("scanNotActiveBrokerInterval", "soon").is_err());
    }

    #[test]
    fn understands_its_keys_whatever_their_values() {
        for key in ["controllerDLegerPeers", "controllerDLegerSelfId", "controllerStorePath", "listenPort"] {
            assert!(ControllerConfig::understands(key), "{key}");
        }
        assert!(!ControllerConfig::understands("enableControllerInNamesrv"));
    }
}
