//! Settings of the embedded gRPC 5.x endpoint, under the key names of Java's `ProxyConfig`
//! (spec grpc-v5.md §8). They live apart from [`BrokerConfig`](crate::BrokerConfig)'s own fields
//! so the endpoint's keys are added in one place; the broker reads them from the same file.

use std::path::PathBuf;

/// Default port of the gRPC endpoint (`grpcServerPort`).
pub const DEFAULT_GRPC_SERVER_PORT: u16 = 8081;

/// The endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `grpcServerPort`: the port (0 lets the system choose).
    pub grpc_server_port: u16,
    /// `tlsCertPath`: the certificate chain (PEM); without it and `tlsKeyPath` a self-signed
    /// certificate is generated.
    pub tls_cert_path: Option<PathBuf>,
    /// `tlsKeyPath`: the private key of `tlsCertPath` (PEM).
    pub tls_key_path: Option<PathBuf>,
    /// `enableTopicMessageTypeCheck`: sends must match the topic's `message.type`.
    pub enable_topic_message_type_check: bool,
    /// `enableProxyAutoRenew`: receipt handles of receives asking for it are renewed.
    pub enable_proxy_auto_renew: bool,
    /// `defaultInvisibleTimeMills`: invisible time of a receive whose handles are renewed.
    pub default_invisible_time_ms: u64,
    /// `renewSchedulePeriodMillis`: how often handles due for renewal are looked for.
    pub renew_schedule_period_ms: u64,
    /// `renewAheadTimeMillis`: a handle visible again within this is renewed.
    pub renew_ahead_time_ms: u64,
    /// `renewMaxTimeMillis`: a message held this long since its pop is renewed no more.
    pub renew_max_time_ms: u64,
    /// `maxRenewRetryTimes`: failed renewals after which a handle is given up.
    pub max_renew_retry_times: u32,
    /// `invisibleTimeMillisWhenClear`: invisible time left to the handles of a departed client.
    pub invisible_time_ms_when_clear: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            grpc_server_port: DEFAULT_GRPC_SERVER_PORT,
            tls_cert_path: None,
            tls_key_path: None,
            enable_topic_message_type_check: true,
            enable_proxy_auto_renew: true,
            default_invisible_time_ms: 60_000,
            renew_schedule_period_ms: 5_000,
            renew_ahead_time_ms: 10_000,
            renew_max_time_ms: 3 * 3_600 * 1_000,
            max_renew_retry_times: 3,
            invisible_time_ms_when_clear: 1_000,
        }
    }
}

/// The Java names of the endpoint's settings.
pub const KEYS: [&str; 11] = [
    "grpcServerPort",
    "tlsCertPath",
    "tlsKeyPath",
    "enableTopicMessageTypeCheck",
    "enableProxyAutoRenew",
    "defaultInvisibleTimeMills",
    "renewSchedulePeriodMillis",
    "renewAheadTimeMillis",
    "renewMaxTimeMillis",
    "maxRenewRetryTimes",
    "invisibleTimeMillisWhenClear",
];

/// Whether `key` names one of the endpoint's settings.
pub fn is_proxy_key(key: &str) -> bool {
    KEYS.contains(&key)
}

/// A setting whose text does not parse (or a key that is not one of [`KEYS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSetting;

impl ProxyConfig {
    /// Sets the setting `key` (one of [`KEYS`]) from its text.
    pub fn set(&mut self, key: &str, text: &str) -> Result<(), InvalidSetting> {
        let number = || text.parse::<u64>().map_err(|_| InvalidSetting);
        let flag = || match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(InvalidSetting),
        };
        match key {
            "grpcServerPort" => self.grpc_server_port = text.parse().map_err(|_| InvalidSetting)?,
            "tlsCertPath" => self.tls_cert_path = Some(PathBuf::from(text)),
            "tlsKeyPath" => self.tls_key_path = Some(PathBuf::from(text)),
            "enableTopicMessageTypeCheck" => self.enable_topic_message_type_check = flag()?,
            "enableProxyAutoRenew" => self.enable_proxy_auto_renew = flag()?,
            "defaultInvisibleTimeMills" => self.default_invisible_time_ms = number()?,
            "renewSchedulePeriodMillis" => self.renew_schedule_period_ms = number()?,
            "renewAheadTimeMillis" => self.renew_ahead_time_ms = number()?,
            "renewMaxTimeMillis" => self.renew_max_time_ms = number()?,
            "maxRenewRetryTimes" => self.max_renew_retry_times = text.parse().map_err(|_| InvalidSetting)?,
            "invisibleTimeMillisWhenClear" => self.invisible_time_ms_when_clear = number()?,
            _ => return Err(InvalidSetting),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_sets_and_bad_values_are_refused() {
        let mut config = ProxyConfig::default();
        for key in KEYS {
            let value = match key {
                "tlsCertPath" | "tlsKeyPath" => "/x",
                "enableTopicMessageTypeCheck" | "enableProxyAutoRenew" => "false",
                _ => "7",
            };
            assert_eq!(config.set(key, value), Ok(()), "{key}");
        }
        assert_eq!(config.grpc_server_port, 7);
        assert!(!config.enable_proxy_auto_renew);
        assert_eq!(config.set("renewAheadTimeMillis", "soon"), Err(InvalidSetting));
        assert_eq!(config.set("grpcServerPort", "70000"), Err(InvalidSetting));
    }
}
