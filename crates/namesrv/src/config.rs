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
    /// `metricsExporterType`, `metricsPromExporterHost`/`Port`, `metricsLabel`.
    pub metrics: apogee_metrics::MetricsSettings,
    /// TLS of the remoting port: Java's `TlsSystemConfig` keys (`tls.server.mode`…). A
    /// generated certificate is written beside the KV config, under `tls/`.
    pub tls: apogee_remoting::tls::TlsSettings,
    /// `enableControllerInNamesrv`: a controller runs in the NameServer's process, on its own
    /// port (this controller's `controllerDLegerPeers` entry, as Java's embedded controller
    /// serves on its DLedger port); its settings come from the same file, and `apogee namesrv`
    /// starts it.
    pub enable_controller_in_namesrv: bool,
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
            metrics: apogee_metrics::MetricsSettings::default(),
            tls: apogee_remoting::tls::TlsSettings::default(),
            enable_controller_in_namesrv: false,
        }
    }
}

/// Keys UPDATE_NAMESRV_CONFIG may never change (Java's default `configBlackList`).
pub const CONFIG_BLACK_LIST: &[&str] =
    &["configBlackList", "configStorePath", "kvConfigPath", "rocketmqHome"];

/// Why a config key could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key is not a NameServer setting.
    #[error("unknown name server config key {0}")]
    UnknownKey(String),
    /// The value does not parse for that key.
    #[error("invalid value {value:?} for name server config key {key}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Text given.
        value: String,
    },
}

impl NamesrvConfig {
    /// Sets one setting by its Apache RocketMQ name (as in `namesrv.conf`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = || ConfigError::InvalidValue { key: key.to_owned(), value: value.to_owned() };
        let flag = || match value.trim() {
            text if text.eq_ignore_ascii_case("true") => Ok(true),
            text if text.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid()),
        };
        let number = || value.trim().parse::<u64>().map_err(|_| invalid());
        if self.metrics.set(key, value).map_err(|_| invalid())? {
            return Ok(());
        }
        match key {
            "listenPort" => {
                let port = value.trim().parse::<u16>().map_err(|_| invalid())?;
                self.listen.set_port(port);
            }
            "bindAddress" => {
                self.listen.set_ip(value.trim().parse().map_err(|_| invalid())?);
            }
            "kvConfigPath" => self.kv_config_path = PathBuf::from(value.trim()),
            "scanNotActiveBrokerInterval" => self.scan_not_active_broker_interval_ms = number()?,
            "orderMessageEnable" => self.order_message_enable = flag()?,
            "returnOrderTopicConfigToBroker" => self.return_order_topic_config_to_broker = flag()?,
            "enableAllTopicList" => self.enable_all_topic_list = flag()?,
            "enableTopicList" => self.enable_topic_list = flag()?,
            "deleteTopicWithBrokerRegistration" => self.delete_topic_with_broker_registration = flag()?,
            "enableControllerInNamesrv" => self.enable_controller_in_namesrv = flag()?,
            "serverChannelMaxIdleTimeSeconds" => self.idle_timeout_ms = number()?.saturating_mul(1000),
            _ if apogee_remoting::tls::TlsSettings::is_key(key) => {
                self.tls.set(key, value).map_err(|error| {
                    tracing::error!(%error, "TLS setting refused");
                    invalid()
                })?
            }
            _ => return Err(ConfigError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }

    /// Reads a `namesrv.conf` (Java properties). Unknown keys are logged and skipped, so a
    /// file written for Apache RocketMQ loads even where it names settings Apogee lacks. Keys
    /// for which `read_elsewhere` is true belong to another reader of the same file (the
    /// controller `enableControllerInNamesrv` embeds) and are skipped without a warning.
    pub fn apply_properties(
        &mut self,
        text: &str,
        read_elsewhere: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let entries = apogee_common::properties::parse(text).map_err(|error| error.to_string())?;
        for (key, value) in entries {
            match self.set(&key, &value) {
                Ok(()) => {}
                Err(ConfigError::UnknownKey(key)) if read_elsewhere(&key) => {}
                Err(ConfigError::UnknownKey(key)) => tracing::warn!(%key, "name server config key ignored"),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(())
    }

    /// Whether `key` is a NameServer setting, whatever its value: one GET_NAMESRV_CONFIG
    /// reports, or a TLS key. Decided by name alone, so asking sets and logs nothing.
    pub fn understands(key: &str) -> bool {
        apogee_remoting::tls::TlsSettings::is_key(key)
            || Self::default().to_properties().iter().any(|(name, _)| *name == key)
    }

    /// Every setting by its Apache RocketMQ name, as GET_NAMESRV_CONFIG reports them.
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        let mut properties = vec![
            ("bindAddress", self.listen.ip().to_string()),
            ("deleteTopicWithBrokerRegistration", self.delete_topic_with_broker_registration.to_string()),
            ("enableAllTopicList", self.enable_all_topic_list.to_string()),
            ("enableControllerInNamesrv", self.enable_controller_in_namesrv.to_string()),
            ("enableTopicList", self.enable_topic_list.to_string()),
            ("kvConfigPath", self.kv_config_path.display().to_string()),
            ("listenPort", self.listen.port().to_string()),
            ("orderMessageEnable", self.order_message_enable.to_string()),
            ("returnOrderTopicConfigToBroker", self.return_order_topic_config_to_broker.to_string()),
            ("scanNotActiveBrokerInterval", self.scan_not_active_broker_interval_ms.to_string()),
            ("serverChannelMaxIdleTimeSeconds", (self.idle_timeout_ms / 1000).to_string()),
        ];
        properties.extend(self.metrics.entries());
        properties.sort_by_key(|(key, _)| *key);
        properties
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_conf_keys_carry_over() {
        let mut config = NamesrvConfig::default();
        config
            .apply_properties("listenPort=9877\norderMessageEnable=true\nscanNotActiveBrokerInterval=1000\nrocketmqHome=/x\n", |_| false)
            .unwrap();
        assert_eq!(config.listen.port(), 9877);
        assert!(config.order_message_enable);
        assert_eq!(config.scan_not_active_broker_interval_ms, 1000);
        assert!(config.apply_properties("enableTopicList=maybe", |_| false).is_err());
        let rendered = apogee_common::properties::render(config.to_properties());
        assert!(rendered.contains("orderMessageEnable=true\n"), "{rendered}");
    }

    #[test]
    fn understands_its_keys_whatever_their_values() {
        for key in ["enableControllerInNamesrv", "listenPort", "enableTopicList", "tls.server.mode"] {
            assert!(NamesrvConfig::understands(key), "{key}");
        }
        assert!(!NamesrvConfig::understands("controllerDLegerPeers"));
        // `understands` reads the reported keys: each must be one `set` takes back.
        let mut config = NamesrvConfig::default();
        for (key, value) in NamesrvConfig::default().to_properties() {
            config.set(key, &value).unwrap_or_else(|error| panic!("{key}={value}: {error}"));
        }
    }
}
