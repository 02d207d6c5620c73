//! Client settings (Java `ClientConfig`): what every producer and consumer of one client
//! instance shares. Field names follow Java's (`namesrvAddr` → `namesrv_addr`), defaults too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apogee_remoting::acl::SessionCredentials;
use apogee_remoting::tls::ServerTrust;

use crate::ClientError;

/// The instance name Java clients start with (`rocketmq.client.name` unset). Producers and
/// clustering consumers replace it by `<pid>#<nanos>` at start (see
/// [`ClientConfig::change_instance_name_to_pid`]) so two processes on one host never share a
/// client id.
pub const DEFAULT_INSTANCE_NAME: &str = "DEFAULT";

/// NameServer address used when neither the caller nor `NAMESRV_ADDR` gives one.
pub const DEFAULT_NAMESRV_ADDR: &str = "127.0.0.1:9876";

/// Shortest period accepted for the background tasks; a zero period would spin.
pub const MIN_TASK_INTERVAL: Duration = Duration::from_millis(10);

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
    /// ACL 1.0 credentials; when set, every request of the instance is signed (protocol §5).
    pub credentials: Option<SessionCredentials>,
    /// TLS to the NameServers and brokers (Java `useTLS`), and which servers to believe:
    /// [`ServerTrust::Certificates`] verifies them against a CA file, [`ServerTrust::Anything`]
    /// (Java's `tls.test.mode.enable`) accepts any certificate. `None`: plaintext.
    pub tls: Option<ServerTrust>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addr: std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| DEFAULT_NAMESRV_ADDR.to_owned()),
            instance_name: DEFAULT_INSTANCE_NAME.to_owned(),
            api_timeout: Duration::from_secs(3),
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
            credentials: None,
            tls: None,
        }
    }
}

impl ClientConfig {
    /// The defaults with NameServer addresses `namesrv_addr` (`;`-separated).
    pub fn new(namesrv_addr: impl Into<String>) -> Self {
        Self { namesrv_addr: namesrv_addr.into(), ..Self::default() }
    }

    /// Builder form: sets `namesrv_addr`.
    pub fn with_namesrv_addr(mut self, namesrv_addr: impl Into<String>) -> Self {
        self.namesrv_addr = namesrv_addr.into();
        self
    }

    /// Builder form: sets `instance_name`.
    pub fn with_instance_name(mut self, instance_name: impl Into<String>) -> Self {
        self.instance_name = instance_name.into();
        self
    }

    /// Builder form: sets `api_timeout`.
    pub fn with_api_timeout(mut self, api_timeout: Duration) -> Self {
        self.api_timeout = api_timeout;
        self
    }

    /// Builder form: sets `poll_name_server_interval`.
    pub fn with_poll_name_server_interval(mut self, interval: Duration) -> Self {
        self.poll_name_server_interval = interval;
        self
    }

    /// Builder form: sets `heartbeat_broker_interval`.
    pub fn with_heartbeat_broker_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_broker_interval = interval;
        self
    }

    /// Builder form: sets `persist_consumer_offset_interval`.
    pub fn with_persist_consumer_offset_interval(mut self, interval: Duration) -> Self {
        self.persist_consumer_offset_interval = interval;
        self
    }

    /// Builder form: signs every request with these ACL credentials.
    pub fn with_credentials(mut self, credentials: SessionCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Builder form: connects over TLS, believing servers by `trust`.
    pub fn with_tls(mut self, trust: ServerTrust) -> Self {
        self.tls = Some(trust);
        self
    }

    /// The NameServer addresses, trimmed, empty entries dropped.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|addr| !addr.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Java `changeInstanceNameToPID`: while the instance name is still
    /// [`DEFAULT_INSTANCE_NAME`], replaces it by `<pid>#<nanos>`, so each producer (and each
    /// clustering consumer) gets a client instance and client id of its own. Broadcasting
    /// consumers keep `DEFAULT`: their offset file path contains the client id.
    pub fn change_instance_name_to_pid(&mut self) {
        if self.instance_name == DEFAULT_INSTANCE_NAME {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
            self.instance_name = format!("{}#{nanos}", std::process::id());
        }
    }

    /// Checks what the client instance relies on: at least one NameServer address, a non-empty
    /// instance name and non-zero timeouts and periods.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.namesrv_addrs().is_empty() {
            return Err(ClientError::IllegalArgument("no NameServer address (namesrv_addr is empty)".into()));
        }
        if self.instance_name.trim().is_empty() {
            return Err(ClientError::IllegalArgument("instance_name is empty".into()));
        }
        for (name, value) in [
            ("api_timeout", self.api_timeout),
            ("poll_name_server_interval", self.poll_name_server_interval),
            ("heartbeat_broker_interval", self.heartbeat_broker_interval),
            ("persist_consumer_offset_interval", self.persist_consumer_offset_interval),
        ] {
            if value.is_zero() {
                return Err(ClientError::IllegalArgument(format!("{name} must be positive")));
            }
        }
        Ok(())
    }
}

/// The setters of the client-instance part every client builder shares (`namesrv`,
/// `instance_name`, `api_timeout`, `credentials`, `client_config`), writing to the builder's
/// [`ClientConfig`] field `$field`. Producers, both consumers and the admin client join a client
/// instance the same way, so they are set up with the same methods, defined once here.
macro_rules! client_config_setters {
    ($field:ident) => {
        /// NameServer addresses, `;`-separated (default: `NAMESRV_ADDR` or `127.0.0.1:9876`).
        pub fn namesrv(mut self, addr: impl Into<String>) -> Self {
            self.$field.namesrv_addr = addr.into();
            self
        }

        /// The instance name, part of the client id: clients of one process with the same name
        /// and NameServers share one client instance, so two members of one group in one process
        /// need different names. Producers and clustering push consumers left at `DEFAULT` take
        /// `<pid>#<nanos>` at start; the admin client's default is `ADMIN`, which keeps its
        /// connections apart from the application's.
        pub fn instance_name(mut self, name: impl Into<String>) -> Self {
            self.$field.instance_name = name.into();
            self
        }

        /// Timeout of route, heartbeat and admin calls (default 3 s).
        pub fn api_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$field.api_timeout = timeout;
            self
        }

        /// Signs every request with ACL 1.0 credentials.
        pub fn credentials(mut self, credentials: apogee_remoting::acl::SessionCredentials) -> Self {
            self.$field.credentials = Some(credentials);
            self
        }

        /// Connects over TLS (Java `useTLS`), believing servers by `trust`: a CA file, or any
        /// certificate ([`apogee_remoting::tls::ServerTrust::Anything`], Java's
        /// `tls.test.mode.enable`).
        pub fn tls(mut self, trust: apogee_remoting::tls::ServerTrust) -> Self {
            self.$field.tls = Some(trust);
            self
        }

        /// All client-instance settings at once (NameServers, instance name, timeouts, periods,
        /// ACL), for callers that keep a [`ClientConfig`](crate::ClientConfig) of their own.
        pub fn client_config(mut self, config: crate::ClientConfig) -> Self {
            self.$field = config;
            self
        }
    };
}
pub(crate) use client_config_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_defaults() {
        let config = ClientConfig::new("a:1");
        assert_eq!(config.instance_name, "DEFAULT");
        assert_eq!(config.api_timeout, Duration::from_secs(3));
        assert_eq!(config.poll_name_server_interval, Duration::from_secs(30));
        assert_eq!(config.heartbeat_broker_interval, Duration::from_secs(30));
        assert_eq!(config.persist_consumer_offset_interval, Duration::from_secs(5));
        assert!(config.credentials.is_none());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn namesrv_list_is_split_and_trimmed() {
        let config = ClientConfig::new(" a:1; ;b:2;");
        assert_eq!(config.namesrv_addrs(), ["a:1", "b:2"]);
        assert!(matches!(ClientConfig::new(" ; ").validate(), Err(ClientError::IllegalArgument(_))));
    }

    #[test]
    fn default_instance_name_becomes_pid_and_nanos() {
        let mut config = ClientConfig::new("a:1");
        config.change_instance_name_to_pid();
        let (pid, nanos) = config.instance_name.split_once('#').expect("pid#nanos");
        assert_eq!(pid, std::process::id().to_string());
        assert!(nanos.parse::<u128>().is_ok());
        let mut named = ClientConfig::new("a:1").with_instance_name("mine");
        named.change_instance_name_to_pid();
        assert_eq!(named.instance_name, "mine");
    }

    #[test]
    fn zero_periods_are_refused() {
        let config = ClientConfig::new("a:1").with_heartbeat_broker_interval(Duration::ZERO);
        assert!(matches!(config.validate(), Err(ClientError::IllegalArgument(_))));
    }
}
