//! The Prometheus scrape endpoint: `GET /metrics` (and `/`, as Java's exporter answers both) in
//! the OpenMetrics text format, and `/-/healthy` for liveness probes.

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;

use crate::http::HttpServer;
use crate::settings::{ExporterType, MetricsSettings};

/// Starts the endpoint `settings` ask for, serving `collectors` under `node_labels` plus the
/// settings' `metricsLabel` pairs and the process figures; `None` unless
/// `metricsExporterType=PROM`. A blank `metricsPromExporterHost` binds `default_host`.
pub async fn start_configured(
    settings: &MetricsSettings,
    default_host: IpAddr,
    node_labels: Vec<(String, String)>,
    collectors: Vec<Box<dyn Collector>>,
) -> io::Result<Option<PromExporter>> {
    match settings.exporter_type {
        ExporterType::Prom => {}
        ExporterType::Disable => return Ok(None),
        other => {
            tracing::warn!(
                exporter = other.name(),
                "only the PROM metrics exporter is built; metrics not exported"
            );
            return Ok(None);
        }
    }
    let host = match settings.prom_host.as_str() {
        "" => default_host,
        host => host.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("metricsPromExporterHost '{host}' is not an IP address"),
            )
        })?,
    };
    let labels = node_labels
        .into_iter()
        .chain(settings.labels.iter().cloned())
        .map(|(key, value)| (Cow::Owned(key), Cow::Owned(value)));
    let mut registry = Registry::with_labels(labels);
    for collector in collectors {
        registry.register_collector(collector);
    }
    registry.register_collector(Box::new(crate::process::ProcessCollector));
    PromExporter::start(SocketAddr::new(host, settings.prom_port), registry).await.map(Some)
}

/// Content type of the text the endpoint serves.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running scrape endpoint; stops with [`PromExporter::shutdown`] or when dropped.
#[derive(Debug)]
pub struct PromExporter {
    server: HttpServer,
}

impl PromExporter {
    /// Binds `addr` (port 0: one the system chooses) and serves `registry` from it.
    pub async fn start(addr: SocketAddr, registry: Registry) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let registry = Arc::new(registry);
        let scrape = move || {
            let registry = Arc::clone(&registry);
            async move { scrape(&registry) }
        };
        let router = Router::new()
            .route("/metrics", get(scrape.clone()))
            .route("/", get(scrape))
            .route("/-/healthy", get(|| async { "Exporter is healthy.\n" }));
        let server = HttpServer::serve(listener, router, "metrics endpoint")?;
        tracing::info!(addr = %server.local_addr(), "metrics endpoint serving Prometheus text on /metrics");
        Ok(Self { server })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops serving and waits for the listener to close.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// One scrape: the registry as text, or a 500 naming the failure.
fn scrape(registry: &Registry) -> axum::response::Response {
    let mut text = String::with_capacity(16 * 1024);
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics could not be encoded: {error}\n"))
                .into_response()
        }
    }
}
