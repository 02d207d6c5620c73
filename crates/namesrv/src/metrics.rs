//! The NameServer's Prometheus endpoint (`metricsExporterType=PROM`, as on the broker). Java's
//! NameServer has no metrics of its own; this one exports its process figures and what its
//! route table holds, under `node_type="namesrv"`, so one scrape config covers both roles.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use apogee_metrics::prometheus_client::collector::Collector;
use apogee_metrics::prometheus_client::encoding::DescriptorEncoder;
use apogee_metrics::prometheus_client::metrics::MetricType;
use apogee_metrics::prometheus_client::registry::Registry;
use apogee_metrics::{ExporterType, PromExporter};

use crate::NamesrvState;

/// Reads the route table when scraped.
#[derive(Debug)]
struct RouteCollector {
    state: Weak<NamesrvState>,
}

impl Collector for RouteCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(state) = self.state.upgrade() else { return Ok(()) };
        let cluster = state.routes.cluster_info();
        let brokers: i64 =
            cluster.broker_addr_table.values().map(|group| group.broker_addrs.len() as i64).sum();
        let figures = [
            (
                "rocketmq_namesrv_clusters",
                "Clusters with a registered broker.",
                cluster.cluster_addr_table.len() as i64,
            ),
            (
                "rocketmq_namesrv_broker_groups",
                "Broker groups (broker names) registered.",
                cluster.broker_addr_table.len() as i64,
            ),
            ("rocketmq_namesrv_brokers", "Broker processes registered (masters and slaves).", brokers),
            ("rocketmq_namesrv_topics", "Topics in the route table.", state.routes.all_topics().len() as i64),
        ];
        for (name, help, value) in figures {
            encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)?;
        }
        Ok(())
    }
}

/// Starts the endpoint when the config asks for it; `None` otherwise.
pub(crate) async fn start_exporter(
    state: &Arc<NamesrvState>,
    listen: SocketAddr,
) -> std::io::Result<Option<PromExporter>> {
    let settings = state.config.read().metrics.clone();
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
        "" => listen.ip(),
        host => host.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("metricsPromExporterHost '{host}' is not an IP address"),
            )
        })?,
    };
    let mut labels =
        vec![("node_type".into(), "namesrv".into()), ("node_id".into(), listen.to_string().into())];
    labels.extend(settings.labels.iter().map(|(key, value)| (key.clone().into(), value.clone().into())));
    let mut registry = Registry::with_labels(labels.into_iter());
    registry.register_collector(Box::new(RouteCollector { state: Arc::downgrade(state) }));
    registry.register_collector(Box::new(apogee_metrics::process::ProcessCollector));
    PromExporter::start(SocketAddr::new(host, settings.prom_port), registry).await.map(Some)
}
