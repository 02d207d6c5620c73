//! Broker settings, named as in Apache RocketMQ's `BrokerConfig` so a `broker.conf` carries
//! over. The store's settings (`MessageStoreConfig`) ride along in [`BrokerConfig::store`]; a
//! config file may mix both, as Java's does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use apogee_common::perm;
use apogee_store::config::StoreConfigError;
use apogee_store::StoreConfig;

/// Every broker setting. Times in milliseconds unless the name says otherwise.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `brokerClusterName`.
    pub broker_cluster_name: String,
    /// `brokerName`: the broker group.
    pub broker_name: String,
    /// `brokerId`: 0 for a master.
    pub broker_id: i64,
    /// `brokerIP1`: the address clients reach and message ids carry.
    pub broker_ip1: IpAddr,
    /// `listenPort`; the fast ("VIP") channel listens on `listenPort - 2`. 0 binds a port the
    /// system chooses; once started, the broker's config holds the port it got.
    pub listen_port: u16,
    /// `fastChannelEnable` (default true): also listen on `listenPort - 2`, where Java clients
    /// ≤ 4.4 send everything but pulls. With `listenPort` 0 it gets a free port of its own.
    pub fast_channel_enable: bool,
    /// `namesrvAddr`: `;`-separated NameServer addresses.
    pub namesrv_addr: Option<String>,
    /// `autoCreateTopicEnable`: unknown topics are created from TBW102 on first send.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums`: queues of TBW102.
    pub default_topic_queue_nums: i32,
    /// `autoCreateSubscriptionGroup`.
    pub auto_create_subscription_group: bool,
    /// `brokerPermission`.
    pub broker_permission: i32,
    /// `clusterTopicEnable`: a topic named after the cluster.
    pub cluster_topic_enable: bool,
    /// `brokerTopicEnable`: a topic named after the broker.
    pub broker_topic_enable: bool,
    /// `registerNameServerPeriod`.
    pub register_name_server_period_ms: u64,
    /// `registerBrokerTimeoutMills`.
    pub register_broker_timeout_ms: u64,
    /// `longPollingEnable`: pulls with the suspend flag are held until a message arrives.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills`: hold time when long polling is off.
    pub short_polling_time_ms: u64,
    /// `channelExpiredTimeout`: clients silent this long are dropped.
    pub channel_expired_timeout_ms: u64,
    /// `notifyConsumerIdsChangedEnable`.
    pub notify_consumer_ids_changed_enable: bool,
    /// `flushConsumerOffsetInterval`: how often consumer offsets are persisted.
    pub flush_consumer_offset_interval_ms: u64,
    /// `flushDelayOffsetInterval`: how often delay-level progress is persisted.
    pub flush_delay_offset_interval_ms: u64,
    /// `regionId`, returned in send responses as `MSG_REGION`.
    pub region_id: String,
    /// `traceOn`, returned in send responses as `TRACE_ON`.
    pub trace_on: bool,
    /// `rejectTransactionMessage`: refuse half messages (NO_PERMISSION).
    pub reject_transaction_message: bool,
    /// `transactionTimeOut`: a half younger than this is not asked about.
    pub transaction_timeout_ms: u64,
    /// `transactionCheckMax`: how often a half is asked about before it is parked in
    /// `TRANS_CHECK_MAX_TIME_TOPIC`.
    pub transaction_check_max: u32,
    /// `transactionCheckInterval`: the period of the check-back service.
    pub transaction_check_interval_ms: u64,
    /// The embedded gRPC endpoint's settings (their own keys, see [`crate::proxy_config`]).
    pub proxy: crate::proxy_config::ProxyConfig,
    /// `metricsExporterType`, `metricsPromExporterHost`/`Port`, `metricsLabel`.
    pub metrics: apogee_metrics::MetricsSettings,
    /// `storeReplyMessageEnable`: a reply is stored in the reply topic as well as pushed to
    /// its requester.
    pub store_reply_message_enable: bool,
    /// `useServerSideResetOffset`: an admin's offset reset waits for the group's next pull
    /// (true, the 5.x way) instead of being pushed to its online consumers.
    pub use_server_side_reset_offset: bool,
    /// `enablePropertyFilter`: SQL92 subscriptions.
    pub enable_property_filter: bool,
    /// `maxReconsumeTimes` default of groups (`retryMaxTimes` of a subscription group wins).
    pub default_max_reconsume_times: i32,
    /// `aclEnable`: check every remoting request against `plain_acl.yml` (see [`crate::acl`]).
    pub acl_enable: bool,
    /// `rocketmq.acl.plain.file` (Java's system property of the same name): the ACL file. A
    /// relative path is resolved against the parent of `storePathRootDir`, which stands in
    /// for Java's RocketMQ home: by default `<storePathRootDir>/../conf/plain_acl.yml`.
    pub acl_plain_file: PathBuf,
    /// `aclFileWatchIntervalMs` (Apogee's own; Java polls every 5 s): how often the ACL file
    /// is checked for changes.
    pub acl_file_watch_interval_ms: u64,
    /// TLS of both remoting ports and of the connections to the NameServers: Java's
    /// `TlsSystemConfig` keys (`tls.server.mode`, `tls.server.certPath`, `tls.enable`…).
    pub tls: apogee_remoting::tls::TlsSettings,
    /// Replication: `brokerRole`, `haListenPort`, `haMasterAddress`, `slaveTimeout`,
    /// `inSyncReplicas`… (Java keeps them in `MessageStoreConfig`).
    pub ha: apogee_ha::HaConfig,
    /// `slaveReadEnable`: consumers may be sent to a slave when they fall far behind.
    pub slave_read_enable: bool,
    /// Controller mode: `enableControllerMode`, `controllerAddr`… (Java's `BrokerConfig`).
    pub controller: crate::controller::config::ControllerModeConfig,
    /// The store's settings.
    pub store: StoreConfig,
    /// POP consumption settings (their own keys, see [`crate::core::pop::PopConfig`]).
    pub pop: crate::core::pop::PopConfig,
    /// Timer message settings (Java's `timer*` store keys and `recallMessageEnable`, see
    /// [`crate::core::timer::TimerConfig`]).
    pub timer: crate::core::timer::TimerConfig,
}

/// Default broker remoting port.
pub const DEFAULT_LISTEN_PORT: u16 = 10911;

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            broker_cluster_name: "DefaultCluster".to_owned(),
            broker_name: default_broker_name(),
            broker_id: 0,
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen_port: DEFAULT_LISTEN_PORT,
            fast_channel_enable: true,
            namesrv_addr: std::env::var("NAMESRV_ADDR").ok(),
            auto_create_topic_enable: true,
            default_topic_queue_nums: 8,
            auto_create_subscription_group: true,
            broker_permission: perm::READ_WRITE,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            register_name_server_period_ms: 30_000,
            register_broker_timeout_ms: 24_000,
            long_polling_enable: true,
            short_polling_time_ms: 1_000,
            channel_expired_timeout_ms: 120_000,
            notify_consumer_ids_changed_enable: true,
            flush_consumer_offset_interval_ms: 5_000,
            flush_delay_offset_interval_ms: 10_000,
            region_id: "DefaultRegion".to_owned(),
            trace_on: true,
            reject_transaction_message: false,
            transaction_timeout_ms: 6_000,
            transaction_check_max: 15,
            transaction_check_interval_ms: 30_000,
            proxy: crate::proxy_config::ProxyConfig::default(),
            metrics: apogee_metrics::MetricsSettings::default(),
            store_reply_message_enable: true,
            use_server_side_reset_offset: true,
            enable_property_filter: false,
            default_max_reconsume_times: 16,
            acl_enable: false,
            acl_plain_file: PathBuf::from(crate::acl::DEFAULT_PLAIN_FILE),
            acl_file_watch_interval_ms: 5_000,
            tls: apogee_remoting::tls::TlsSettings::default(),
            ha: apogee_ha::HaConfig::default(),
            slave_read_enable: false,
            controller: crate::controller::config::ControllerModeConfig::default(),
            store: StoreConfig::default(),
            pop: crate::core::pop::PopConfig::default(),
            timer: crate::core::timer::TimerConfig::default(),
        }
    }
}

/// Java's default broker name is the host name.
fn default_broker_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|byte| *byte == 0).unwrap_or(0);
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if result == 0 && !name.is_empty() => name.to_owned(),
        _ => "broker-a".to_owned(),
    }
}

/// Why a setting could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Neither a broker nor a store setting.
    #[error("unknown broker config key {0}")]
    UnknownKey(String),
    /// The value does not parse.
    #[error("invalid value {value:?} for broker config key {key}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Text given.
        value: String,
    },
    /// The file could not be read or parsed.
    #[error("{0}")]
    File(String),
}

impl BrokerConfig {
    /// Sets one setting by its Apache RocketMQ name; store keys go to [`Self::store`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let text = value.trim();
        let invalid = || ConfigError::InvalidValue { key: key.to_owned(), value: value.to_owned() };
        let flag = || match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid()),
        };
        let number = || text.parse::<u64>().map_err(|_| invalid());
        match key {
            "brokerClusterName" => self.broker_cluster_name = text.to_owned(),
            "brokerName" => self.broker_name = text.to_owned(),
            "brokerId" => self.broker_id = text.parse().map_err(|_| invalid())?,
            "brokerIP1" => self.broker_ip1 = text.parse().map_err(|_| invalid())?,
            "listenPort" => self.listen_port = text.parse().map_err(|_| invalid())?,
            "namesrvAddr" => self.namesrv_addr = Some(text.to_owned()).filter(|addr| !addr.is_empty()),
            "autoCreateTopicEnable" => self.auto_create_topic_enable = flag()?,
            "defaultTopicQueueNums" => self.default_topic_queue_nums = text.parse().map_err(|_| invalid())?,
            "autoCreateSubscriptionGroup" => self.auto_create_subscription_group = flag()?,
            "brokerPermission" => self.broker_permission = text.parse().map_err(|_| invalid())?,
            "clusterTopicEnable" => self.cluster_topic_enable = flag()?,
            "brokerTopicEnable" => self.broker_topic_enable = flag()?,
            "registerNameServerPeriod" => self.register_name_server_period_ms = number()?,
            "registerBrokerTimeoutMills" => self.register_broker_timeout_ms = number()?,
            "longPollingEnable" => self.long_polling_enable = flag()?,
            "shortPollingTimeMills" => self.short_polling_time_ms = number()?,
            "channelExpiredTimeout" => self.channel_expired_timeout_ms = number()?,
            "notifyConsumerIdsChangedEnable" => self.notify_consumer_ids_changed_enable = flag()?,
            "flushConsumerOffsetInterval" => self.flush_consumer_offset_interval_ms = number()?,
            "flushDelayOffsetInterval" => self.flush_delay_offset_interval_ms = number()?,
            "regionId" => self.region_id = text.to_owned(),
            "traceOn" => self.trace_on = flag()?,
            "rejectTransactionMessage" => self.reject_transaction_message = flag()?,
            "transactionTimeOut" => self.transaction_timeout_ms = number()?,
            "transactionCheckMax" => self.transaction_check_max = text.parse().map_err(|_| invalid())?,
            "transactionCheckInterval" => self.transaction_check_interval_ms = number()?,
            "storeReplyMessageEnable" => self.store_reply_message_enable = flag()?,
            "useServerSideResetOffset" => self.use_server_side_reset_offset = flag()?,
            "enablePropertyFilter" => self.enable_property_filter = flag()?,
            "fastChannelEnable" => self.fast_channel_enable = flag()?,
            "aclEnable" => self.acl_enable = flag()?,
            "rocketmq.acl.plain.file" => self.acl_plain_file = PathBuf::from(text),
            "aclFileWatchIntervalMs" => self.acl_file_watch_interval_ms = number()?,
            "slaveReadEnable" => self.slave_read_enable = flag()?,
            _ if crate::controller::config::ControllerModeConfig::is_key(key) => {
                self.controller.set(key, text).map_err(|error| {
                    tracing::error!(%error, "controller-mode setting refused");
                    invalid()
                })?
            }
            _ if apogee_ha::HaConfig::is_key(key) => self.ha.set(key, text).map_err(|error| {
                tracing::error!(%error, "replication setting refused");
                invalid()
            })?,
            _ if apogee_remoting::tls::TlsSettings::is_key(key) => {
                self.tls.set(key, text).map_err(|error| {
                    tracing::error!(%error, "TLS setting refused");
                    invalid()
                })?
            }
            _ if self.metrics.set(key, text).map_err(|_| invalid())? => {}
            _ if crate::proxy_config::is_proxy_key(key) => {
                self.proxy.set(key, text).map_err(|_| invalid())?
            }
            _ if crate::core::timer::config::is_timer_key(key) => {
                self.timer.set(key, text).map_err(|_| invalid())?
            }
            _ if crate::core::pop::config::is_pop_key(key) => {
                self.pop.set(key, text).map_err(|_| invalid())?
            }
            _ => {
                return self.store.set(key, value).map_err(|error| match error {
                    StoreConfigError::UnknownKey(key) => ConfigError::UnknownKey(key),
                    StoreConfigError::InvalidValue { key, value } => ConfigError::InvalidValue { key, value },
                })
            }
        }
        Ok(())
    }

    /// Applies `key=value` entries, logging and skipping keys Apogee does not have (so a Java
    /// `broker.conf` loads), failing on values that do not parse.
    pub fn apply<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        for (key, value) in entries {
            match self.set(key, value) {
                Ok(()) => {}
                Err(ConfigError::UnknownKey(key)) => {
                    tracing::warn!(%key, "broker config key not supported; ignored")
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Reads a config file: Apache RocketMQ's `broker.conf` (Java properties), or TOML when
    /// the name ends in `.toml` (flat keys with the same names; numbers and booleans may be
    /// written bare).
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::File(format!("reading {}: {error}", path.display())))?;
        if path.extension().is_some_and(|extension| extension == "toml") {
            let table: toml::Table =
                text.parse().map_err(|error| ConfigError::File(format!("{}: {error}", path.display())))?;
            let entries: Vec<(String, String)> = table
                .into_iter()
                .map(|(key, value)| {
                    let text = match value {
                        toml::Value::String(text) => text,
                        other => other.to_string(),
                    };
                    (key, text)
                })
                .collect();
            self.apply(entries.iter().map(|(key, value)| (key.as_str(), value.as_str())))
        } else {
            let entries = apogee_common::properties::parse(&text)
                .map_err(|error| ConfigError::File(format!("{}: {error}", path.display())))?;
            self.apply(entries.iter().map(|(key, value)| (key.as_str(), value.as_str())))
        }
    }

    /// Checks the role against the id, as Java's `BrokerStartup` does: a master is always
    /// id 0, a slave needs an id above 0.
    ///
    /// In controller mode the controllers assign both; `controllerAddr` must name them.
    pub fn check_role(&mut self) -> Result<(), ConfigError> {
        if self.controller.enable_controller_mode {
            return self.controller.controller_addrs().map(drop).map_err(|error| ConfigError::InvalidValue {
                key: "controllerAddr".to_owned(),
                value: error,
            });
        }
        if self.ha.role.is_master() {
            if self.broker_id != 0 {
                tracing::warn!(broker_id = self.broker_id, role = %self.ha.role, "a master's brokerId is 0; using 0");
                self.broker_id = 0;
            }
        } else if self.broker_id <= 0 {
            return Err(ConfigError::InvalidValue {
                key: "brokerId".to_owned(),
                value: format!("{} (a SLAVE's brokerId must be above 0)", self.broker_id),
            });
        }
        Ok(())
    }

    /// The address message ids and registrations carry: `brokerIP1:listenPort`.
    pub fn broker_addr(&self) -> SocketAddr {
        SocketAddr::new(self.broker_ip1, self.listen_port)
    }

    /// The NameServer addresses.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        split_addrs(self.namesrv_addr.as_deref())
    }

    /// The ACL file: `rocketmq.acl.plain.file`, a relative one under the parent of
    /// `storePathRootDir`.
    pub fn acl_plain_file_path(&self) -> PathBuf {
        if self.acl_plain_file.is_absolute() {
            return self.acl_plain_file.clone();
        }
        let root = &self.store.store_path_root_dir;
        root.parent().unwrap_or(root).join(&self.acl_plain_file)
    }

    /// Where a generated remoting TLS certificate is written: `<storePathRootDir>/tls/`.
    pub fn remoting_self_signed_cert_path(&self) -> PathBuf {
        self.store.store_path_root_dir.join("tls").join(apogee_remoting::tls::SELF_SIGNED_CERT_FILE)
    }

    /// Where topics, groups and offsets are persisted (`<storePathRootDir>/config`).
    pub fn config_dir(&self) -> PathBuf {
        self.store.store_path_root_dir.join("config")
    }
}

#[cfg(test)]
impl BrokerConfig {
    /// The default settings with every store and config file under `root`, for unit tests.
    pub(crate) fn stored_under(root: &std::path::Path) -> Self {
        let mut config = Self::default();
        config.store.store_path_root_dir = root.to_path_buf();
        config
    }
}

/// Java's address lists (`namesrvAddr`, `controllerAddr`): `host:port;host:port`, blanks
/// skipped.
pub fn split_addrs(list: Option<&str>) -> Vec<String> {
    list.unwrap_or("").split(';').map(str::trim).filter(|addr| !addr.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_conf_with_broker_and_store_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.conf");
        std::fs::write(
            &path,
            "brokerClusterName = C1\nbrokerName=broker-x\nbrokerId=0\nlistenPort=10921\n\
             namesrvAddr=127.0.0.1:9876;127.0.0.1:9877\ndeleteWhen=04\nfileReservedTime=48\n\
             flushDiskType=SYNC_FLUSH\nbrokerRole=ASYNC_MASTER\n",
        )
        .unwrap();
        let mut config = BrokerConfig::default();
        config.load_file(&path).unwrap();
        assert_eq!(config.broker_cluster_name, "C1");
        assert_eq!(config.broker_addr().port(), 10921);
        assert_eq!(config.namesrv_addrs(), vec!["127.0.0.1:9876", "127.0.0.1:9877"]);
        assert_eq!(config.store.file_reserved_time_hours, 48);
        assert_eq!(config.store.flush_disk_type, apogee_store::FlushDiskType::SyncFlush);
    }

    #[test]
    fn toml_with_bare_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, "brokerName = \"b\"\nlistenPort = 10931\nautoCreateTopicEnable = false\n")
            .unwrap();
        let mut config = BrokerConfig::default();
        config.load_file(&path).unwrap();
        assert_eq!((config.broker_name.as_str(), config.listen_port), ("b", 10931));
        assert!(!config.auto_create_topic_enable);
        assert!(config.clone().set("listenPort", "x").is_err());
    }

    #[test]
    fn acl_file_defaults_beside_the_store() {
        let mut config = BrokerConfig::default();
        config.store.store_path_root_dir = PathBuf::from("/srv/rocketmq/store");
        assert!(!config.acl_enable);
        assert_eq!(config.acl_plain_file_path(), PathBuf::from("/srv/rocketmq/conf/plain_acl.yml"));
        config.set("rocketmq.acl.plain.file", "conf/acl/mine.yml").unwrap();
        assert_eq!(config.acl_plain_file_path(), PathBuf::from("/srv/rocketmq/conf/acl/mine.yml"));
        config.set("rocketmq.acl.plain.file", "/etc/acl.yml").unwrap();
        config.set("aclEnable", "true").unwrap();
        assert_eq!((config.acl_plain_file_path(), config.acl_enable), (PathBuf::from("/etc/acl.yml"), true));
    }
}
