//! The metrics settings of broker.conf (Java `BrokerConfig`), under Java's key names.

use std::fmt;

/// Java's `MetricsExporterType`: where metrics go. Only [`ExporterType::Prom`] exports here;
/// the others are accepted so a Java broker.conf loads, and export nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExporterType {
    /// No export (Java's default).
    #[default]
    Disable,
    /// OpenTelemetry push over gRPC: not built; the broker logs that and exports nothing.
    OtlpGrpc,
    /// A Prometheus scrape endpoint.
    Prom,
    /// OTLP JSON into the log: not built, as OtlpGrpc.
    Log,
}

impl ExporterType {
    /// Parses the name (`PROM`) or the ordinal (`2`), as Java's config loader accepts both.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let by_number = match text {
            "0" => Some(Self::Disable),
            "1" => Some(Self::OtlpGrpc),
            "2" => Some(Self::Prom),
            "3" => Some(Self::Log),
            _ => None,
        };
        by_number.or_else(|| match text.to_ascii_uppercase().as_str() {
            "DISABLE" => Some(Self::Disable),
            "OTLP_GRPC" => Some(Self::OtlpGrpc),
            "PROM" => Some(Self::Prom),
            "LOG" => Some(Self::Log),
            _ => None,
        })
    }

    /// Java's constant name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "DISABLE",
            Self::OtlpGrpc => "OTLP_GRPC",
            Self::Prom => "PROM",
            Self::Log => "LOG",
        }
    }
}

/// Java's default `metricsPromExporterPort`.
pub const DEFAULT_PROM_PORT: u16 = 5557;

/// The `metrics*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `metricsExporterType`.
    pub exporter_type: ExporterType,
    /// `metricsPromExporterHost`: blank binds the server's advertised address.
    pub prom_host: String,
    /// `metricsPromExporterPort` (0: a port the system chooses, for tests).
    pub prom_port: u16,
    /// `metricsLabel`: constant labels on every point, from `key:value,key:value`.
    pub labels: Vec<(String, String)>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            exporter_type: ExporterType::Disable,
            prom_host: String::new(),
            prom_port: DEFAULT_PROM_PORT,
            labels: Vec::new(),
        }
    }
}

/// A metrics setting whose value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The key.
    pub key: String,
    /// The value given.
    pub value: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value '{}' for {}", self.value, self.key)
    }
}

impl std::error::Error for InvalidSetting {}

impl MetricsSettings {
    /// Applies `key = value` when `key` is a metrics setting: `Ok(true)` when applied,
    /// `Ok(false)` when the key is not one of these.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, InvalidSetting> {
        let invalid = || InvalidSetting { key: key.to_owned(), value: value.to_owned() };
        match key {
            "metricsExporterType" => self.exporter_type = ExporterType::parse(value).ok_or_else(invalid)?,
            "metricsPromExporterHost" => self.prom_host = value.trim().to_owned(),
            "metricsPromExporterPort" => self.prom_port = value.trim().parse().map_err(|_| invalid())?,
            "metricsLabel" => self.labels = parse_labels(value),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The settings as `(key, value)` pairs, for GET_BROKER_CONFIG.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let labels: Vec<String> = self.labels.iter().map(|(key, value)| format!("{key}:{value}")).collect();
        vec![
            ("metricsExporterType", self.exporter_type.name().to_owned()),
            ("metricsPromExporterHost", self.prom_host.clone()),
            ("metricsPromExporterPort", self.prom_port.to_string()),
            ("metricsLabel", labels.join(",")),
        ]
    }

    /// Whether a Prometheus endpoint is to be served.
    pub fn serves_prometheus(&self) -> bool {
        self.exporter_type == ExporterType::Prom
    }
}

/// `key:value` pairs separated by commas; a pair without both sides is skipped with a
/// warning, as Java does.
pub fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        match pair.split_once(':') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                labels.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            _ => tracing::warn!(pair, "metricsLabel pair is not key:value, skipped"),
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_type_by_name_or_ordinal() {
        assert_eq!(ExporterType::parse("PROM"), Some(ExporterType::Prom));
        assert_eq!(ExporterType::parse(" 2 "), Some(ExporterType::Prom));
        assert_eq!(ExporterType::parse("otlp_grpc"), Some(ExporterType::OtlpGrpc));
        assert_eq!(ExporterType::parse("0"), Some(ExporterType::Disable));
        assert_eq!(ExporterType::parse("prometheus"), None);
        assert_eq!(ExporterType::parse("7"), None);
    }

    #[test]
    fn settings_by_java_key() {
        let mut settings = MetricsSettings::default();
        assert_eq!(settings.prom_port, 5557);
        assert_eq!(settings.set("metricsExporterType", "PROM"), Ok(true));
        assert_eq!(settings.set("metricsPromExporterPort", "0"), Ok(true));
        assert_eq!(settings.set("metricsLabel", "dc:east, bad ,rack:r1"), Ok(true));
        assert_eq!(settings.set("listenPort", "10911"), Ok(false));
        assert!(settings.set("metricsPromExporterPort", "70000").is_err());
        assert!(settings.serves_prometheus());
        assert_eq!(settings.prom_port, 0);
        assert_eq!(settings.labels, vec![("dc".into(), "east".into()), ("rack".into(), "r1".into())]);
    }
}
