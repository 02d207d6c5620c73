//! apogee-broker: the RocketMQ broker over the Apogee store.
//!
//! [`Broker::start`] opens the store, loads the persisted metadata (topics, subscription
//! groups, consumer offsets, delay progress), serves the remoting protocol on `listenPort`
//! (0 picks a free port; and `listenPort - 2` for old clients unless `fastChannelEnable` is
//! off), registers with every NameServer and runs the
//! background services. The operations are plain functions in [`core`], over typed requests
//! and results; [`processor`] is the remoting front that adapts them to the wire. Each piece
//! of state has its own module:
//!
//! - [`topic_config`]: topics (`config/topics.json`), auto-creation from TBW102;
//! - [`subscription_group`]: consumer group settings (`config/subscriptionGroup.json`);
//! - [`offset`]: committed consumer offsets (`config/consumerOffset.json`);
//! - [`client_manager`]: live producers and consumers by group, heartbeat expiry;
//! - [`lock`]: ordered-consumption queue locks;
//! - [`long_polling`]: pulls parked until a message arrives;
//! - [`schedule`]: delay levels (`SCHEDULE_TOPIC_XXXX`, `config/delayOffset.json`);
//! - [`core::timer`]: timer messages (`timerlog/`, `timerwheel`, `config/timercheck`);
//! - [`register`]: registration with the NameServers;
//! - [`replication`]: the broker's role in its group (`brokerRole`): master or slave;
//! - [`controller`]: controller mode, where the controllers elect the master;
//! - [`message`]: storing messages from async code;
//! - [`acl`]: ACL 1.0 (`aclEnable`, `plain_acl.yml`) checked before every remoting request.

pub mod acl;
pub mod client_manager;
pub mod config;
pub mod controller;
pub mod core;
pub mod lock;
pub mod long_polling;
pub mod message;
pub mod metrics;
pub mod offset;
pub mod processor;
pub mod proxy_config;
pub mod register;
pub mod replication;
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
    /// Transactions decided lately, so none is decided twice.
    pub transactions: core::transaction::decided::Decided,
    /// Fronts other than remoting that the core calls back into (the gRPC endpoint).
    pub fronts: core::fronts::Fronts,
    /// POP consumption: busy queues, orderly batches, parked pops.
    pub pop: core::pop::PopState,
    /// Timer messages: the timer store and its figures.
    pub timer: core::timer::TimerState,
    /// Outbound connections to the NameServers.
    pub namesrv_client: RemotingClient,
    /// Flips to true when the broker stops; services watch it.
    pub stopping: watch::Receiver<bool>,
    /// Traffic counters for the metrics endpoint (counting only when it is on).
    pub metrics: metrics::BrokerMetrics,
    /// The ACL check of every remoting request and of every call to the embedded gRPC
    /// endpoint, when `aclEnable` is on.
    pub acl: Option<Arc<acl::AclValidator>>,
    /// The settings an admin may change while the broker runs (UPDATE_BROKER_CONFIG); they
    /// start as `config` has them and are read from here, not from `config`.
    pub runtime: core::admin::broker::RuntimeSettings,
    /// The broker's side of replication: the HA service of a master, or a slave's client.
    pub replication: replication::Replication,
    /// Controller mode: woken by NOTIFY_BROKER_ROLE_CHANGED, so the broker asks the
    /// controllers at once instead of at its next poll.
    pub controller_notified: tokio::sync::Notify,
}

impl BrokerState {
    /// `brokerPermission` as it is now: the configured value until an admin changes it.
    pub fn broker_permission(&self) -> i32 {
        self.runtime.broker_permission()
    }
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    state: Arc<BrokerState>,
    servers: Vec<ServerHandle>,
    stop: watch::Sender<bool>,
    services: Vec<JoinHandle<()>>,
    metrics_exporter: Option<apogee_metrics::PromExporter>,
    /// The timer service's own thread (it reads the mapped commit log and waits for the
    /// store), joined at shutdown.
    timer_thread: Option<std::thread::JoinHandle<()>>,
}

/// How long shutdown lets in-flight requests (held pulls included) finish.
const SHUTDOWN_GRACE_MS: u64 = 3_000;

impl Broker {
    /// Opens the store, loads the metadata, starts serving and registers with the
    /// NameServers.
    pub async fn start(mut config: BrokerConfig) -> io::Result<Self> {
        config.check_role().map_err(io::Error::other)?;
        let listeners = Listeners::bind(&config)?;
        // A broker on a port the system chose takes any free HA port too: `listenPort + 1` of
        // a chosen port may well be taken.
        if config.listen_port == 0 && config.ha.listen_port.is_none() {
            config.ha.listen_port = Some(0);
        }
        // From here on `listenPort` is the port actually bound, so what is registered with the
        // NameServers, written into records and shown by admin calls is reachable.
        config.listen_port = listeners.main.local_addr()?.port();
        let store_config = config.store.clone();
        let store = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        let store = Arc::new(store);
        let replication = replication::Replication::start(&config, &store, listen_ip(&config))?;
        let (timer_root, timer_config) = (config.store.store_path_root_dir.clone(), config.timer.clone());
        let timer =
            tokio::task::spawn_blocking(move || core::timer::TimerState::open(&timer_root, &timer_config))
                .await
                .map_err(io::Error::other)??;
        let (stop, stopping) = watch::channel(false);
        let pulls = Arc::new(long_polling::PullRequestHoldService::new());
        let pop = core::pop::PopState::default();
        let server_tls = config
            .tls
            .server(
                apogee_remoting::tls::self_signed_hosts(&config.broker_ip1.to_string()),
                config.remoting_self_signed_cert_path(),
            )?
            .map(Arc::new);
        let namesrv_tls = config.tls.client()?.map(Arc::new);
        let acl = if config.acl_enable {
            let validator =
                acl::AclValidator::load(&config.acl_plain_file_path()).map_err(io::Error::other)?;
            Some(Arc::new(validator))
        } else {
            None
        };
        store.set_arrival_listener(Arc::new(core::pop::polling::Arrivals {
            listeners: vec![Arc::clone(&pulls) as _, Arc::clone(&pop.polling) as _],
        }));

        let state = Arc::new(BrokerState {
            store_host: config.broker_addr(),
            topics: topic_config::TopicConfigManager::load(&config)?,
            groups: subscription_group::SubscriptionGroupManager::load(&config)?,
            offsets: offset::ConsumerOffsetManager::load(&config)?,
            clients: client_manager::ClientManager::new(&config),
            locks: lock::RebalanceLockManager::new(),
            pulls,
            schedule: schedule::ScheduleMessageService::load(&config)?,
            transactions: core::transaction::decided::Decided::default(),
            fronts: core::fronts::Fronts::default(),
            pop,
            timer,
            namesrv_client: RemotingClient::new(
                ClientConfig { tls: namesrv_tls, ..ClientConfig::default() },
                Router::new(),
            ),
            metrics: metrics::BrokerMetrics::new(config.metrics.serves_prometheus()),
            acl,
            runtime: core::admin::broker::RuntimeSettings::new(&config),
            replication,
            controller_notified: tokio::sync::Notify::new(),
            config,
            store,
            stopping,
        });

        let metrics_exporter = metrics::start_exporter(&state).await?;
        // Before anyone pops: offsets past what the stored check points handed out.
        core::pop::revive::recover(&state).await;
        let mut servers = Vec::new();
        let fast = listeners.fast.map(|listener| (listener, true));
        for (listener, fast_channel) in std::iter::once((listeners.main, false)).chain(fast) {
            let mut router = Router::new();
            processor::register(&mut router, &state, fast_channel);
            if let Some(observer) = state.metrics.request_observer() {
                router.observe_requests(observer);
            }
            if let Some(validator) = &state.acl {
                router.guard_requests(Arc::clone(validator) as _);
            }
            let server_config = ServerConfig {
                idle_timeout_ms: state.config.channel_expired_timeout_ms,
                shutdown_grace_ms: SHUTDOWN_GRACE_MS,
                tls: server_tls.clone(),
                ..ServerConfig::default()
            };
            servers.push(RemotingServer::serve(listener, server_config, router)?);
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

        let mut services = vec![
            tokio::spawn(register::run(Arc::clone(&state))),
            tokio::spawn(client_manager::run_expiry(Arc::clone(&state))),
            tokio::spawn(long_polling::run_checker(Arc::clone(&state))),
            tokio::spawn(persist_offsets(Arc::clone(&state))),
        ];
        // The services that write belong to the master; a slave's store refuses writes, and
        // Java starts none of them on a slave. In controller mode the role comes later and may
        // change: they start at the first promotion and pause while the broker is not master.
        let mut timer_thread = None;
        if state.replication.is_controller_mode() {
            services.extend([
                tokio::spawn(controller::run(Arc::clone(&state))),
                tokio::spawn(replication::sync::run(Arc::clone(&state))),
                tokio::spawn(run_master_services_once_promoted(Arc::clone(&state))),
            ]);
        } else if state.replication.is_master() {
            services.extend(spawn_master_services(&state));
            timer_thread = core::timer::service::start(&state);
        } else {
            services.push(tokio::spawn(replication::sync::run(Arc::clone(&state))));
        }
        if let Some(validator) = &state.acl {
            let interval = Duration::from_millis(state.config.acl_file_watch_interval_ms);
            services.push(tokio::spawn(acl::watch_file(
                Arc::clone(validator),
                interval,
                state.stopping.clone(),
            )));
        }
        Ok(Self { state, servers, stop, services, metrics_exporter, timer_thread })
    }

    /// The shared state (embedding, tests).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// The address the main port is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.servers.first().map(ServerHandle::local_addr)
    }

    /// The address of the Prometheus endpoint, when `metricsExporterType=PROM`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_exporter.as_ref().map(apogee_metrics::PromExporter::local_addr)
    }

    /// The address the fast ("VIP") channel is bound to; `None` when `fastChannelEnable` is
    /// off.
    pub fn fast_channel_addr(&self) -> Option<SocketAddr> {
        self.servers.get(1).map(ServerHandle::local_addr)
    }

    /// Unregisters from the NameServers, stops serving, persists metadata and shuts the
    /// store down cleanly (flush, checkpoint).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        register::unregister_all(&self.state).await;
        if let Some(exporter) = self.metrics_exporter {
            exporter.shutdown().await;
        }
        for server in self.servers {
            server.shutdown().await;
        }
        for service in self.services {
            if let Err(error) = service.await {
                tracing::warn!(%error, "broker service ended abnormally");
            }
        }
        if let Some(thread) = self.timer_thread {
            // It finishes its step, flushes and returns once it sees the stop.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::warn!("timer service ended abnormally");
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
            state.replication.shutdown();
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

/// The broker's listening sockets, bound before anything else starts so that the ports the
/// operating system chose (for `listenPort` 0) are known to the rest of the start.
struct Listeners {
    main: tokio::net::TcpListener,
    fast: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds `listenPort` and, with `fastChannelEnable`, the fast channel: on `listenPort - 2`
    /// as Java does, or on a port of its own choosing when `listenPort` is 0 (Java clients that
    /// derive port − 2 cannot find it then; [`Broker::fast_channel_addr`] tells where it is).
    fn bind(config: &BrokerConfig) -> io::Result<Self> {
        let ip = listen_ip(config);
        let main = RemotingServer::bind(SocketAddr::new(ip, config.listen_port))?;
        let fast_port = match config.listen_port {
            _ if !config.fast_channel_enable => None,
            0 => Some(0),
            port => port.checked_sub(2).filter(|&fast| fast > 0),
        };
        let fast = fast_port.map(|port| RemotingServer::bind(SocketAddr::new(ip, port))).transpose()?;
        Ok(Self { main, fast })
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

/// The services only a master runs: delay levels, transaction checks, POP revive.
fn spawn_master_services(state: &Arc<BrokerState>) -> [JoinHandle<()>; 3] {
    [
        tokio::spawn(schedule::run(Arc::clone(state))),
        tokio::spawn(core::transaction::check::run(Arc::clone(state))),
        tokio::spawn(core::pop::revive::run(Arc::clone(state))),
    ]
}

/// Controller mode: waits for the first promotion, then runs the master's services (and the
/// timer thread) until the broker stops; they pause themselves while it is not master.
async fn run_master_services_once_promoted(state: Arc<BrokerState>) {
    let mut stopping = state.stopping.clone();
    while !state.replication.is_master() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(replication::ROLE_POLL_MS)) => {}
            _ = stopping.changed() => return,
        }
    }
    let timer_thread = core::timer::service::start(&state);
    for service in spawn_master_services(&state) {
        if let Err(error) = service.await {
            tracing::warn!(%error, "master service ended abnormally");
        }
    }
    if let Some(thread) = timer_thread {
        if !matches!(tokio::task::spawn_blocking(move || thread.join()).await, Ok(Ok(()))) {
            tracing::warn!("timer service ended abnormally");
        }
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
