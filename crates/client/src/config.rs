//! (stub, owned by the core/producer work) Client settings (Java `ClientConfig`).

use std::time::Duration;

/// Settings shared by producers and consumers of one client instance.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// NameServer addresses, `;`-separated (`namesrvAddr`).
    pub namesrv_addr: String,
    /// `instanceName`: part of the client id; instances with the same name share a
    /// [`crate::instance::ClientInstance`].
    pub instance_name: String,
    /// Timeout of route, heartbeat and admin calls (`mqClientApiTimeout`).
    pub api_timeout: Duration,
    /// Route refresh period (`pollNameServerInterval`).
    pub poll_name_server_interval: Duration,
    /// Heartbeat period (`heartbeatBrokerInterval`).
    pub heartbeat_broker_interval: Duration,
    /// Offset commit period (`persistConsumerOffsetInterval`).
    pub persist_consumer_offset_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addr: std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".to_owned()),
            instance_name: "DEFAULT".to_owned(),
            api_timeout: Duration::from_secs(3),
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
        }
    }
}
