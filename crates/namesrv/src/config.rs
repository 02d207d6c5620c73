//! NameServer settings, named as in Apache RocketMQ's `NamesrvConfig` so a `namesrv.conf`
//! carries over.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the NameServer can be told. Defaults are Apache RocketMQ's (behaviour spec §10.2).
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// Where to listen for remoting connections; 127.0.0.1:9876 by default.
    pub listen: SocketAddr,
    /// Period of the scan that expires silent brokers (`scanNotActiveBrokerInterval`).
    pub scan_not_active_broker_interval_ms: u64,
    /// Expiry used when a broker does not announce its own `heartbeatTimeoutMillis`.
    pub broker_expiry_ms: u64,
    /// Where the KV config is persisted (`kvConfigPath`).
    pub kv_config_path: PathBuf,
    /// Put `orderTopicConf` into routes (`orderMessageEnable`).
    pub order_message_enable: bool,
    /// Return the ORDER_TOPIC_CONFIG namespace to registering brokers (`returnOrderTopicConfigToBroker`).
    pub return_order_topic_config_to_broker: bool,
    /// Answer GET_ALL_TOPIC_LIST_FROM_NAMESERVER (`enableAllTopicList`).
    pub enable_all_topic_list: bool,
    /// Answer the per-cluster and unit topic lists (`enableTopicList`).
    pub enable_topic_list: bool,
    /// Drop this broker's queues from topics missing in its full registration
    /// (`deleteTopicWithBrokerRegistration`).
    pub delete_topic_with_broker_registration: bool,
    /// Connections silent this long are closed (`serverChannelMaxIdleTimeSeconds`).
    pub idle_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
}

/// Default NameServer port.
pub const DEFAULT_PORT: u16 = 9876;

impl Default for NamesrvConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            scan_not_active_broker_interval_ms: 5_000,
            broker_expiry_ms: 120_000,
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            delete_topic_with_broker_registration: false,
            idle_timeout_ms: 120_000,
            shutdown_grace_ms: 3_000,
        }
    }
}
