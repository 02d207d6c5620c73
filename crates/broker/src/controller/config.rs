//! Controller-mode settings, under Java's `BrokerConfig` names.

/// Most controllers `controllerAddr` may name (Java runs three or five).
pub const MAX_CONTROLLERS: usize = 9;

/// See the module documentation. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerModeConfig {
    /// `enableControllerMode`: the controllers assign the role; `brokerRole` and `brokerId`
    /// are ignored.
    pub enable_controller_mode: bool,
    /// `controllerAddr`: the controllers, `host:port;host:port`.
    pub controller_addr: Option<String>,
    /// `syncBrokerMetadataPeriod`: how often the broker asks the controllers who leads.
    pub sync_broker_metadata_period_ms: u64,
    /// `brokerHeartbeatInterval`: how often the broker tells every controller it lives.
    pub broker_heartbeat_interval_ms: u64,
    /// `controllerHeartBeatTimeoutMills`: how long the controllers wait for a heartbeat
    /// before they count the broker dead.
    pub controller_heartbeat_timeout_ms: u64,
    /// `brokerElectionPriority`: lower wins among equally fresh candidates.
    pub broker_election_priority: i32,
}

impl Default for ControllerModeConfig {
    fn default() -> Self {
        Self {
            enable_controller_mode: false,
            controller_addr: None,
            sync_broker_metadata_period_ms: 5_000,
            broker_heartbeat_interval_ms: 1_000,
            controller_heartbeat_timeout_ms: 10_000,
            broker_election_priority: i32::MAX,
        }
    }
}

/// Keys [`ControllerModeConfig::set`] takes.
const KEYS: &[&str] = &[
    "enableControllerMode",
    "controllerAddr",
    "syncBrokerMetadataPeriod",
    "brokerHeartbeatInterval",
    "controllerHeartBeatTimeoutMills",
    "brokerElectionPriority",
];

impl ControllerModeConfig {
    /// True when `key` is a controller-mode setting.
    pub fn is_key(key: &str) -> bool {
        KEYS.contains(&key)
    }

    /// Sets one setting by its Java name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let text = value.trim();
        let invalid = || format!("invalid value {value:?} for {key}");
        let millis = || text.parse::<u64>().map(|ms| ms.max(100)).map_err(|_| invalid());
        match key {
            "enableControllerMode" => self.enable_controller_mode = text.parse().map_err(|_| invalid())?,
            "controllerAddr" => self.controller_addr = Some(text.to_owned()).filter(|addr| !addr.is_empty()),
            "syncBrokerMetadataPeriod" => self.sync_broker_metadata_period_ms = millis()?,
            "brokerHeartbeatInterval" => self.broker_heartbeat_interval_ms = millis()?,
            "controllerHeartBeatTimeoutMills" => self.controller_heartbeat_timeout_ms = millis()?,
            "brokerElectionPriority" => {
                self.broker_election_priority = text.parse().map_err(|_| invalid())?
            }
            _ => return Err(format!("unknown controller-mode key {key}")),
        }
        Ok(())
    }

    /// The controllers' addresses; an error when controller mode has none, or too many.
    pub fn controller_addrs(&self) -> Result<Vec<String>, String> {
        let addrs = crate::config::split_addrs(self.controller_addr.as_deref());
        if addrs.is_empty() {
            return Err("enableControllerMode needs controllerAddr (host:port;host:port)".to_owned());
        }
        if addrs.len() > MAX_CONTROLLERS {
            return Err(format!(
                "controllerAddr names {} controllers; at most {MAX_CONTROLLERS}",
                addrs.len()
            ));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_addresses() {
        let mut config = ControllerModeConfig::default();
        assert!(config.controller_addrs().is_err(), "controller mode needs addresses");
        config.set("enableControllerMode", "true").unwrap();
        config.set("controllerAddr", " 127.0.0.1:9878;127.0.0.1:9868 ;").unwrap();
        assert_eq!(config.controller_addrs().unwrap(), ["127.0.0.1:9878", "127.0.0.1:9868"]);
        config.set("brokerHeartbeatInterval", "5").unwrap();
        assert_eq!(config.broker_heartbeat_interval_ms, 100, "clamped");
        assert!(config.set("brokerElectionPriority", "x").is_err());
        assert!(ControllerModeConfig::is_key("controllerAddr") && !ControllerModeConfig::is_key("brokerId"));
    }
}
