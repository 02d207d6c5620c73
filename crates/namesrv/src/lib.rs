//! apogee-namesrv: the NameServer, Apogee's route registry.
//!
//! Brokers register their topics here every 30 s; clients ask which broker serves which
//! topic queue. The state is in memory (only the KV config is persisted) and is rebuilt by
//! the brokers' next registrations after a restart.
//!
//! - [`route`]: the route table and its invariants;
//! - [`kv`]: the persisted KV config;
//! - [`processor`]: one handler per request code;
//! - [`NameServer`]: wires them to a remoting server and runs the expiry scan.

pub mod config;
pub mod kv;
mod metrics;
pub mod processor;
pub mod route;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_remoting::router::Router;
use apogee_remoting::scan_clock::ScanClock;
use apogee_remoting::server::{RemotingServer, ServerConfig, ServerHandle};
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::NamesrvConfig;
use kv::KvConfig;
use route::RouteTable;

/// Everything the request handlers share.
#[derive(Debug)]
pub struct NamesrvState {
    /// Settings; UPDATE_NAMESRV_CONFIG changes them at run time.
    pub config: RwLock<NamesrvConfig>,
    /// Brokers and topic routes.
    pub routes: RouteTable,
    /// Persisted KV config.
    pub kv: KvConfig,
}

/// A running NameServer.
#[derive(Debug)]
pub struct NameServer {
    server: ServerHandle,
    state: Arc<NamesrvState>,
    stop_scan: watch::Sender<bool>,
    scan_task: JoinHandle<()>,
    metrics_exporter: Option<apogee_metrics::PromExporter>,
}

impl NameServer {
    /// Loads the KV config, binds the listener and starts serving.
    pub async fn start(config: NamesrvConfig) -> io::Result<Self> {
        let kv = KvConfig::load(&config.kv_config_path)?;
        let routes = RouteTable::new(
            Duration::from_millis(config.broker_expiry_ms),
            config.delete_topic_with_broker_registration,
        );
        let tls_dir = config
            .kv_config_path
            .parent()
            .map_or_else(|| std::path::PathBuf::from("tls"), |dir| dir.join("tls"));
        let tls = config
            .tls
            .server(
                apogee_remoting::tls::self_signed_hosts(&config.listen.ip().to_string()),
                tls_dir.join(apogee_remoting::tls::SELF_SIGNED_CERT_FILE),
            )?
            .map(Arc::new);
        let server_config = ServerConfig {
            listen: config.listen,
            tls,
            idle_timeout_ms: config.idle_timeout_ms,
            shutdown_grace_ms: config.shutdown_grace_ms,
            ..ServerConfig::default()
        };
        let scan_period = Duration::from_millis(config.scan_not_active_broker_interval_ms.max(1));
        let state = Arc::new(NamesrvState { config: RwLock::new(config), routes, kv });

        let mut router = Router::new();
        for &code in processor::HANDLED_CODES {
            let state = Arc::clone(&state);
            router.register(code, move |connection, request| {
                processor::process(Arc::clone(&state), connection, request)
            });
        }
        let on_close = Arc::clone(&state);
        router.on_disconnect(move |connection| {
            for removed in on_close.routes.unregister_connection(connection.id()) {
                tracing::info!(
                    cluster = %removed.cluster_name,
                    broker = %removed.broker_addr,
                    "broker connection closed, unregistered"
                );
            }
        });

        let server = RemotingServer::start(server_config, router).await?;
        tracing::info!(listen = %server.local_addr(), "name server started");

        let (stop_scan, stopped) = watch::channel(false);
        let scan_task = tokio::spawn(scan_not_active_brokers(Arc::clone(&state), scan_period, stopped));
        let metrics_exporter = match metrics::start_exporter(&state, server.local_addr()).await {
            Ok(exporter) => exporter,
            Err(error) => {
                let _ = stop_scan.send(true);
                server.shutdown().await;
                return Err(error);
            }
        };
        Ok(Self { server, state, stop_scan, scan_task, metrics_exporter })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The address of the Prometheus endpoint, when `metricsExporterType=PROM`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_exporter.as_ref().map(apogee_metrics::PromExporter::local_addr)
    }

    /// The shared state, for embedding (standalone mode) and tests.
    pub fn state(&self) -> &Arc<NamesrvState> {
        &self.state
    }

    /// Stops the expiry scan and the server, letting in-flight requests finish.
    pub async fn shutdown(self) {
        let _ = self.stop_scan.send(true);
        if let Some(exporter) = self.metrics_exporter {
            exporter.shutdown().await;
        }
        if let Err(error) = self.scan_task.await {
            tracing::warn!(%error, "broker expiry scan ended abnormally");
        }
        self.server.shutdown().await;
        tracing::info!("name server stopped");
    }
}

/// Every `scanNotActiveBrokerInterval` (read at start), unregisters brokers silent past their
/// timeout.
async fn scan_not_active_brokers(state: Arc<NamesrvState>, period: Duration, stopped: watch::Receiver<bool>) {
    let mut clock = ScanClock::new(period, stopped);
    while clock.next_round().await {
        for removed in state.routes.scan_not_active_brokers(Instant::now()) {
            tracing::warn!(
                cluster = %removed.cluster_name,
                broker = %removed.broker_addr,
                "broker expired: no registration within its heartbeat timeout"
            );
        }
    }
}
