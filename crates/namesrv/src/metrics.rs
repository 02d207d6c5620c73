//! The NameServer's Prometheus endpoint (`metricsExporterType=PROM`, as on the broker). Java's
//! NameServer has no metrics of its own; this one exports its process figures and what its
//! route table holds, under `node_type="namesrv"`, so one scrape config covers both roles.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use apogee_metrics::prometheus_client::collector::Collector;
use apogee_metrics::prometheus_client::encoding::DescriptorEncoder;
use apogee_metrics::prometheus_client::metrics::MetricType;
use apogee_metrics::PromExporter;

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
    let node =
        vec![("node_type".to_owned(), "namesrv".to_owned()), ("node_id".to_owned(), listen.to_string())];
    let collector = Box::new(RouteCollector { state: Arc::downgrade(state) });
    apogee_metrics::exporter::start_configured(&settings, listen.ip(), node, vec![collector]).await
}
