//! `--ports-file`: where a process started with port 0 tells its supervisor (a test, a script)
//! which addresses it got. The file appears only once every listener is bound and the broker
//! has registered, and it appears whole: it is written beside its final name and renamed.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};

/// The addresses one process listens on; absent ones are left out of the file.
#[derive(Debug, Default)]
pub struct BoundAddrs {
    /// The NameServer.
    pub namesrv: Option<SocketAddr>,
    /// The broker's main port (`listenPort`).
    pub broker: Option<SocketAddr>,
    /// The broker's fast channel, when `fastChannelEnable` is on.
    pub broker_fast: Option<SocketAddr>,
    /// The gRPC 5.x endpoint.
    pub grpc: Option<SocketAddr>,
    /// The Prometheus endpoint, when `metricsExporterType=PROM`.
    pub metrics: Option<SocketAddr>,
    /// The web dashboard (`apogee standalone`, `apogee dashboard`).
    pub dashboard: Option<SocketAddr>,
    /// The controller (`apogee controller`).
    pub controller: Option<SocketAddr>,
}

impl BoundAddrs {
    /// The JSON object written:
    /// `{"namesrv":"ip:port","broker":"ip:port","brokerFast":"ip:port","grpc":"ip:port",
    /// "metrics":"ip:port","dashboard":"ip:port","controller":"ip:port"}`.
    fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        let entries = [
            ("namesrv", self.namesrv),
            ("broker", self.broker),
            ("brokerFast", self.broker_fast),
            ("grpc", self.grpc),
            ("metrics", self.metrics),
            ("dashboard", self.dashboard),
            ("controller", self.controller),
        ];
        for (key, addr) in entries {
            if let Some(addr) = addr {
                object.insert(key.to_owned(), addr.to_string().into());
            }
        }
        object.into()
    }

    /// Writes the file at `path` atomically (a temporary file in the same directory, renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = Path::new(&temporary);
        let text = self.to_json().to_string();
        std::fs::write(temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(temporary, path).with_context(|| format!("renaming to {}", path.display()))
    }
}
