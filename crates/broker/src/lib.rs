//! apogee-broker: the RocketMQ broker over the Apogee store.
//!
//! [`Broker::start`] opens the store, loads the persisted metadata (topics, subscription
//! groups, consumer offsets, delay progress), serves the remoting protocol on `listenPort`
//! (and `listenPort - 2` for old clients), registers with every NameServer and runs the
//! background services. Handlers live in [`processor`]; each piece of state has its own
//! module:
//!
//! - [`topic_config`]: topics (`config/topics.json`), auto-creation from TBW102;
//! - [`subscription_group`]: consumer group settings (`config/subscriptionGroup.json`);
//! - [`offset`]: committed consumer offsets (`config/consumerOffset.json`);
//! - [`client_manager`]: live producers and consumers by group, heartbeat expiry;
//! - [`lock`]: ordered-consumption queue locks;
//! - [`long_polling`]: pulls parked until a message arrives;
//! - [`schedule`]: delay levels (`SCHEDULE_TOPIC_XXXX`, `config/delayOffset.json`);
//! - [`register`]: registration with the NameServers;
//! - [`message`]: storing messages from async code.

pub mod client_manager;
pub mod config;
pub mod core;
pub mod lock;
pub mod long_polling;
pub mod message;
pub mod offset;
pub mod processor;
pub mod register;
pub mod schedule;
pub mod subscription_group;
pub mod topic_config;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::router::Router;
use apogee_remoting::server::{RemotingServer, ServerConfig, ServerHandle};
use apogee_store::MessageStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::BrokerConfig;

/// Everything the broker's handlers and services share.
#[derive(Debug)]
pub struct BrokerState {
    /// Settings.
    pub config: BrokerConfig,
    /// The message store.
    pub store: Arc<MessageStore>,
    /// `brokerIP1:listenPort`, written into every stored record and message id.
    pub store_host: SocketAddr,
    /// Topics.
    pub topics: topic_config::TopicConfigManager,
    /// Subscription groups.
    pub groups: subscription_group::SubscriptionGroupManager,
    /// Consumer offsets.
    pub offsets: offset::ConsumerOffsetManager,
    /// Live clients.
    pub clients: client_manager::ClientManager,
    /// Ordered-consumption locks.
    pub locks: lock::RebalanceLockManager,
    /// Parked pulls.
    pub pulls: Arc<long_polling::PullRequestHoldService>,
    /// Delay levels.
    pub schedule: schedule::ScheduleMessageService,
    /// Outbound connections to the NameServers.
    pub namesrv_client: RemotingClient,
    /// Flips to true when the broker stops; services watch it.
    pub stopping: watch::Receiver<bool>,
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    state: Arc<BrokerState>,
    servers: Vec<ServerHandle>,
    stop: watch::Sender<bool>,
    services: Vec<JoinHandle<()>>,
}

/// How long shutdown lets in-flight requests (held pulls included) finish.
const SHUTDOWN_GRACE_MS: u64 = 3_000;

impl Broker {
    /// Opens the store, loads the metadata, starts serving and registers with the
    /// NameServers.
    pub async fn start(config: BrokerConfig) -> io::Result<Self> {
        let store_config = config.store.clone();
        let store = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        let store = Arc::new(store);
        let (stop, stopping) = watch::channel(false);
        let pulls = Arc::new(long_polling::PullRequestHoldService::new());
        store.set_arrival_listener(Arc::clone(&pulls) as Arc<dyn apogee_store::ArrivalListener>);

        let state = Arc::new(BrokerState {
            store_host: config.broker_addr(),
            topics: topic_config::TopicConfigManager::load(&config)?,
            groups: subscription_group::SubscriptionGroupManager::load(&config)?,
            offsets: offset::ConsumerOffsetManager::load(&config)?,
            clients: client_manager::ClientManager::new(&config),
            locks: lock::RebalanceLockManager::new(),
            pulls,
            schedule: schedule::ScheduleMessageService::load(&config)?,
            namesrv_client: RemotingClient::new(ClientConfig::default(), Router::new()),
            config,
            store,
            stopping,
        });

        let mut servers = Vec::new();
        let mut ports = vec![(state.config.listen_port, false)];
        if state.config.fast_channel_enable && state.config.listen_port > 2 {
            ports.push((state.config.listen_port - 2, true));
        }
        for (port, fast_channel) in ports {
            let mut router = Router::new();
            processor::register(&mut router, &state, fast_channel);
            let server_config = ServerConfig {
                listen: SocketAddr::new(listen_ip(&state.config), port),
                idle_timeout_ms: state.config.channel_expired_timeout_ms,
                shutdown_grace_ms: SHUTDOWN_GRACE_MS,
                ..ServerConfig::default()
            };
            servers.push(RemotingServer::start(server_config, router).await?);
        }
        // As Java's broker does, the first registration completes before the broker counts as
        // started: a client that asks the NameServer right after finds its routes.
        if !state.config.namesrv_addrs().is_empty() {
            register::register_all(&state).await;
        }
        tracing::info!(
            broker = %state.config.broker_name,
            cluster = %state.config.broker_cluster_name,
            addr = %state.store_host,
            "broker started"
        );

        let services = vec![
            tokio::spawn(register::run(Arc::clone(&state))),
            tokio::spawn(client_manager::run_expiry(Arc::clone(&state))),
            tokio::spawn(long_polling::run_checker(Arc::clone(&state))),
            tokio::spawn(schedule::run(Arc::clone(&state))),
            tokio::spawn(persist_offsets(Arc::clone(&state))),
        ];
        Ok(Self { state, servers, stop, services })
    }

    /// The shared state (embedding, tests).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// The address the main port is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.servers.first().map(ServerHandle::local_addr)
    }

    /// Unregisters from the NameServers, stops serving, persists metadata and shuts the
    /// store down cleanly (flush, checkpoint).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        register::unregister_all(&self.state).await;
        for server in self.servers {
            server.shutdown().await;
        }
        for service in self.services {
            if let Err(error) = service.await {
                tracing::warn!(%error, "broker service ended abnormally");
            }
        }
        let state = Arc::clone(&self.state);
        let persisted = tokio::task::spawn_blocking(move || {
            if let Err(error) = state.offsets.persist() {
                tracing::error!(%error, "consumer offsets not persisted at shutdown");
            }
            if let Err(error) = state.schedule.persist() {
                tracing::error!(%error, "delay offsets not persisted at shutdown");
            }
            state.store.shutdown();
        })
        .await;
        if let Err(error) = persisted {
            tracing::error!(%error, "broker shutdown task failed");
        }
        self.state.namesrv_client.shutdown().await;
        tracing::info!("broker stopped");
    }
}

/// Listens on every interface unless `brokerIP1` is loopback (then loopback only), so a
/// standalone broker on a laptop is not exposed.
fn listen_ip(config: &BrokerConfig) -> std::net::IpAddr {
    if config.broker_ip1.is_loopback() {
        config.broker_ip1
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

/// Persists consumer offsets every `flushConsumerOffsetInterval`.
async fn persist_offsets(state: Arc<BrokerState>) {
    let period = Duration::from_millis(state.config.flush_consumer_offset_interval_ms.max(100));
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopping.changed() => return,
        }
        let owner = Arc::clone(&state);
        let result = tokio::task::spawn_blocking(move || owner.offsets.persist()).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "consumer offsets not persisted"),
            Err(error) => tracing::error!(%error, "consumer offset writer failed"),
        }
    }
}
