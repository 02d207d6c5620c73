//! Command-line surface: one subcommand per process kind.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use std::sync::Arc;

use apogee_broker::{Broker, BrokerConfig};
use apogee_controller::{Controller, ControllerConfig};
use apogee_grpc::GrpcServer;
use apogee_namesrv::{NameServer, NamesrvConfig};
use clap::{Args, Parser, Subcommand};

use crate::dashboard::Dashboard;
use crate::ports_file::BoundAddrs;

/// Apogee: a RocketMQ-compatible message queue.
#[derive(Debug, Parser)]
#[command(name = "apogee", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// NameServer and broker in one process, data under ./data: the quick start.
    Standalone(StandaloneArgs),
    /// The NameServer: the route registry brokers register with and clients ask.
    Namesrv(NamesrvArgs),
    /// A controller of controller mode (RIP-44): broker ids, SyncStateSets and master
    /// elections per broker set, replicated by raft among the controllers named in `--peers`.
    Controller(ControllerArgs),
    /// A broker: stores messages and serves producers and consumers.
    Broker(BrokerArgs),
    /// The gRPC 5.x endpoint in front of every broker group a NameServer knows (Apache's
    /// "cluster" proxy mode), reaching the brokers over remoting.
    Proxy(ProxyArgs),
    /// Load generators: produce, consume, e2e.
    Bench(apogee_bench::BenchArgs),
    /// mqadmin's commands (`apogee admin updateTopic -n ADDR -c CLUSTER -t TOPIC`).
    Admin(crate::admin::AdminArgs),
    /// The web dashboard of the cluster behind a NameServer (rocketmq-dashboard's pages).
    Dashboard(DashboardArgs),
}

/// `apogee dashboard`: the web dashboard on its own.
#[derive(Debug, Args)]
struct DashboardArgs {
    /// NameServer addresses, `host:port` separated by `;` [env NAMESRV_ADDR].
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// The address the dashboard listens on (port 0: one the system chooses). It has no login:
    /// bind it where only operators reach it.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], crate::dashboard::DEFAULT_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

/// `apogee proxy`: one gRPC endpoint in front of many broker groups.
#[derive(Debug, Args)]
struct ProxyArgs {
    /// NameServer addresses, `host:port` separated by `;` (else `namesrvAddr` in the config
    /// file, else the `NAMESRV_ADDR` environment variable).
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// A proxy.conf of Java `ProxyConfig` keys (`proxyMode`, `namesrvAddr`, `grpcServerPort`,
    /// the endpoint's TLS and renewal settings, `maxMessageSize`, `enableACL` with
    /// `rocketmq.acl.plain.file` and `aclFileWatchIntervalMs`).
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// The gRPC port (`grpcServerPort`, 8081; 0 lets the system choose).
    #[arg(long)]
    grpc_port: Option<u16>,
    /// The address the endpoint listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_addr: std::net::IpAddr,
    /// Where the generated self-signed TLS certificate is written (`<dir>/tls`) when no
    /// `tlsCertPath`/`tlsKeyPath` is configured.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

#[derive(Debug, Args)]
struct StandaloneArgs {
    /// Data directory (store under `<dir>/store`, NameServer KV config under `<dir>/namesrv`).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// NameServer listen address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv_listen: SocketAddr,
    /// Broker port (`listenPort`); the broker also listens on this port − 2. 0 picks free
    /// ports (see `--ports-file`).
    #[arg(long, default_value_t = apogee_broker::config::DEFAULT_LISTEN_PORT)]
    broker_port: u16,
    /// A broker.conf or broker.toml applied to the embedded broker.
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// Port of the gRPC 5.x endpoint (`grpcServerPort`; 0 picks a free port) [default: the
    /// config file's, else 8081].
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Port of the web dashboard, on the NameServer's listen address (0 picks a free port).
    #[arg(long, default_value_t = crate::dashboard::DEFAULT_PORT)]
    dashboard_port: u16,
    /// Do not serve the web dashboard.
    #[arg(long, conflicts_with = "dashboard_port")]
    no_dashboard: bool,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

/// `--ports-file`, shared by the server commands.
#[derive(Debug, Args)]
struct PortsFileArg {
    /// Once serving, write the bound addresses here as JSON
    /// (`{"namesrv":"ip:port","broker":"ip:port","brokerFast":"ip:port","grpc":"ip:port",
    /// "metrics":"ip:port","dashboard":"ip:port","controller":"ip:port"}`, those that apply),
    /// atomically: for supervisors of a process started on port 0.
    #[arg(long = "ports-file")]
    path: Option<PathBuf>,
}

impl PortsFileArg {
    fn write(&self, addrs: &BoundAddrs) -> Result<()> {
        match &self.path {
            Some(path) => addrs.write(path),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Args)]
struct BrokerArgs {
    /// NameServer addresses, `;`-separated (`namesrvAddr`).
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// A broker.conf (Java properties) or broker.toml with Apache RocketMQ key names; the
    /// flags override it.
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// `listenPort` (0 picks free ports; see `--ports-file`).
    #[arg(long)]
    listen_port: Option<u16>,
    /// `storePathRootDir`.
    #[arg(long)]
    store_dir: Option<PathBuf>,
    /// Port of the gRPC 5.x endpoint (`grpcServerPort`; 0 picks a free port).
    #[arg(long)]
    grpc_port: Option<u16>,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

#[derive(Debug, Args)]
struct NamesrvArgs {
    /// A namesrv.conf (Java properties, Apache RocketMQ key names); flags below override it.
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:9876].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// KV config file (`kvConfigPath`) [default: ~/namesrv/kvConfig.json].
    #[arg(long)]
    kv_config_path: Option<PathBuf>,
    /// Period of the scan that expires silent brokers (`scanNotActiveBrokerInterval`) [default: 5000].
    #[arg(long)]
    scan_interval_ms: Option<u64>,
    /// Expiry of brokers that do not announce their own heartbeat timeout [default: 120000].
    #[arg(long)]
    broker_expiry_ms: Option<u64>,
    /// Put `orderTopicConf` into routes (`orderMessageEnable`).
    #[arg(long)]
    order_message_enable: bool,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

/// Reads the properties file at `path`, if any, and applies it with `apply`; errors name the
/// file.
fn apply_config_file<E: std::fmt::Display>(
    path: Option<&std::path::Path>,
    apply: impl FnOnce(&str) -> std::result::Result<(), E>,
) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    apply(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

/// `apogee controller`.
#[derive(Debug, Args)]
struct ControllerArgs {
    /// A controller.conf (Java `ControllerConfig` keys: `controllerDLegerPeers`,
    /// `controllerDLegerSelfId`, `controllerStorePath`, `scanNotActiveBrokerInterval`,
    /// `enableElectUncleanMaster`, …); flags below override it.
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// Listen address [default: this controller's entry in `--peers`, else 127.0.0.1:9878].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// This controller's id (`1`, or DLedger's `n1`).
    #[arg(long)]
    id: Option<String>,
    /// Every controller, this one included: `1=host:port,2=host:port,3=host:port`.
    #[arg(long)]
    peers: Option<String>,
    /// Where the raft log, vote and snapshots live (`controllerStorePath`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    ports_file: PortsFileArg,
}

impl ControllerArgs {
    fn to_config(&self) -> Result<ControllerConfig> {
        let mut config = ControllerConfig::default();
        apply_config_file(self.config_file.as_deref(), |text| config.apply_properties(text, |_| false))?;
        if let Some(id) = &self.id {
            config.id = apogee_controller::config::parse_id(id)
                .ok_or_else(|| anyhow::anyhow!("--id {id:?} is not a controller id"))?;
        }
        if let Some(peers) = &self.peers {
            config.peers = apogee_controller::config::parse_peers(peers)
                .map_err(|error| anyhow::anyhow!("--{error}"))?;
        }
        match self.listen {
            Some(listen) => config.listen = listen,
            None => {
                if let Some(own) =
                    config.peers.get(&config.id).and_then(|addr| addr.parse::<SocketAddr>().ok())
                {
                    config.listen = own;
                }
            }
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        config.validate().map_err(|error| anyhow::anyhow!("controller settings: {error}"))?;
        Ok(config)
    }
}

impl NamesrvArgs {
    fn to_config(&self) -> Result<NamesrvConfig> {
        let mut config = NamesrvConfig::default();
        // A namesrv.conf may also carry the keys of the controller it embeds
        // (`enableControllerInNamesrv`), as Java's NamesrvStartup reads both from one file.
        apply_config_file(self.config_file.as_deref(), |text| {
            config.apply_properties(text, ControllerConfig::understands)
        })?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(path) = &self.kv_config_path {
            config.kv_config_path = path.clone();
        }
        if let Some(period) = self.scan_interval_ms {
            config.scan_not_active_broker_interval_ms = period;
        }
        if let Some(expiry) = self.broker_expiry_ms {
            config.broker_expiry_ms = expiry;
        }
        config.order_message_enable |= self.order_message_enable;
        Ok(config)
    }
}

impl Cli {
    /// Runs the chosen process until SIGINT or SIGTERM.
    /// Worker threads for the async runtime: the bench's `--threads`, otherwise one per core.
    pub fn runtime_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Bench(args) => Some(args.threads.max(1)),
            _ => None,
        }
    }

    /// The log level when `APOGEE_LOG` is unset: `warn` for `admin`, whose output is the
    /// tables on standard output, `info` for the servers.
    pub fn default_log_level(&self) -> &'static str {
        match &self.command {
            Command::Admin(_) => crate::admin::DEFAULT_LOG_LEVEL,
            _ => "info",
        }
    }

    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Namesrv(args) => run_namesrv(&args).await,
            Command::Controller(args) => run_controller(args.to_config()?, &args.ports_file).await,
            Command::Standalone(args) => run_standalone(args).await,
            Command::Proxy(args) => run_proxy(args).await,
            Command::Bench(args) => args.run().await,
            Command::Admin(args) => args.run().await,
            Command::Dashboard(args) => run_dashboard(args).await,
            Command::Broker(args) => {
                let mut config = BrokerConfig::default();
                if let Some(path) = &args.config_file {
                    config.load_file(path)?;
                }
                if let Some(addr) = args.namesrv_addr {
                    config.namesrv_addr = Some(addr);
                }
                if let Some(port) = args.listen_port {
                    config.listen_port = port;
                }
                if let Some(dir) = args.store_dir {
                    config.store.store_path_root_dir = dir;
                }
                if let Some(port) = args.grpc_port {
                    config.proxy.grpc_server_port = port;
                }
                if config.namesrv_addrs().is_empty() {
                    anyhow::bail!(
                        "no NameServer: pass -n ADDR, set namesrvAddr in the config file, or NAMESRV_ADDR"
                    );
                }
                run_broker(config, &args.ports_file).await
            }
        }
    }
}

async fn run_namesrv(args: &NamesrvArgs) -> Result<()> {
    let config = args.to_config()?;
    let listen = config.listen;
    // Java's NamesrvStartup starts the embedded controller first, from the same file.
    let controller = match config.enable_controller_in_namesrv {
        true => Some(start_embedded_controller(args).await?),
        false => None,
    };
    let namesrv = match NameServer::start(config).await {
        Ok(namesrv) => namesrv,
        Err(error) => {
            if let Some(controller) = controller {
                controller.shutdown().await;
            }
            return Err(error).with_context(|| format!("starting the name server on {listen}"));
        }
    };
    // Scripts and tests read this line (or the ports file) to learn the bound port.
    println!("apogee namesrv listening on {}", namesrv.local_addr());
    if let Some(metrics) = namesrv.metrics_addr() {
        println!("apogee namesrv metrics listening on http://{metrics}/metrics");
    }
    let written = args.ports_file.write(&BoundAddrs {
        namesrv: Some(namesrv.local_addr()),
        metrics: namesrv.metrics_addr(),
        controller: controller.as_ref().map(Controller::local_addr),
        ..BoundAddrs::default()
    });
    if written.is_ok() {
        wait_for_shutdown_signal().await?;
    }
    namesrv.shutdown().await;
    if let Some(controller) = controller {
        controller.shutdown().await;
    }
    written
}

/// The controller `enableControllerInNamesrv` embeds: the namesrv.conf's controller keys
/// (`controllerDLegerPeers`, `controllerDLegerSelfId`, `controllerStorePath`…), on this
/// controller's own peer address; a file without peers runs a lone controller on 127.0.0.1:9878.
async fn start_embedded_controller(args: &NamesrvArgs) -> Result<Controller> {
    let mut config = ControllerConfig::default();
    apply_config_file(args.config_file.as_deref(), |text| {
        config.apply_properties(text, NamesrvConfig::understands)
    })?;
    if let Some(own) = config.peers.get(&config.id).and_then(|addr| addr.parse::<SocketAddr>().ok()) {
        config.listen = own;
    }
    config.validate().map_err(|error| anyhow::anyhow!("embedded controller settings: {error}"))?;
    let listen = config.listen;
    let controller = Controller::start(config)
        .await
        .with_context(|| format!("starting the embedded controller on {listen}"))?;
    println!("apogee controller {} listening on {}", controller.id(), controller.local_addr());
    Ok(controller)
}

async fn run_controller(config: ControllerConfig, ports_file: &PortsFileArg) -> Result<()> {
    let listen = config.listen;
    let controller =
        Controller::start(config).await.with_context(|| format!("starting the controller on {listen}"))?;
    // Scripts and tests read this line (or the ports file) to learn the bound port.
    println!("apogee controller {} listening on {}", controller.id(), controller.local_addr());
    if let Err(error) =
        ports_file.write(&BoundAddrs { controller: Some(controller.local_addr()), ..BoundAddrs::default() })
    {
        controller.shutdown().await;
        return Err(error);
    }
    wait_for_shutdown_signal().await?;
    controller.shutdown().await;
    Ok(())
}

/// A broker with its gRPC endpoint.
struct RunningBroker {
    broker: Broker,
    grpc: GrpcServer,
}

impl RunningBroker {
    async fn shutdown(self) {
        self.grpc.shutdown().await;
        self.broker.shutdown().await;
    }
}

async fn start_broker(config: BrokerConfig) -> Result<RunningBroker> {
    let addr = config.broker_addr();
    let grpc_addr = SocketAddr::new(config.broker_ip1, config.proxy.grpc_server_port);
    let broker = Broker::start(config).await.with_context(|| format!("starting the broker on {addr}"))?;
    // The address registered with the NameServers, with the port actually bound.
    println!("apogee broker listening on {}", broker.state().store_host);
    let grpc = match GrpcServer::start(Arc::clone(broker.state()), grpc_addr).await {
        Ok(grpc) => grpc,
        Err(error) => {
            broker.shutdown().await;
            return Err(error).with_context(|| format!("starting the gRPC endpoint on {grpc_addr}"));
        }
    };
    println!("apogee grpc listening on {}", grpc.local_addr());
    if let Some(metrics) = broker.metrics_addr() {
        println!("apogee metrics listening on http://{metrics}/metrics");
    }
    Ok(RunningBroker { broker, grpc })
}

fn broker_addrs(running: &RunningBroker) -> BoundAddrs {
    BoundAddrs {
        broker: running.broker.local_addr(),
        broker_fast: running.broker.fast_channel_addr(),
        grpc: Some(running.grpc.local_addr()),
        metrics: running.broker.metrics_addr(),
        ..BoundAddrs::default()
    }
}

async fn run_broker(config: BrokerConfig, ports_file: &PortsFileArg) -> Result<()> {
    let running = start_broker(config).await?;
    if let Err(error) = ports_file.write(&broker_addrs(&running)) {
        running.shutdown().await;
        return Err(error);
    }
    wait_for_shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

async fn run_standalone(args: StandaloneArgs) -> Result<()> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config_file {
        config.load_file(path)?;
    }
    let namesrv_config = NamesrvConfig {
        listen: args.namesrv_listen,
        kv_config_path: args.data_dir.join("namesrv").join("kvConfig.json"),
        // One process, one set of tls.* keys for both servers.
        tls: config.tls.clone(),
        ..NamesrvConfig::default()
    };
    let listen = namesrv_config.listen;
    let namesrv = NameServer::start(namesrv_config)
        .await
        .with_context(|| format!("starting the name server on {listen}"))?;
    println!("apogee namesrv listening on {}", namesrv.local_addr());

    config.listen_port = args.broker_port;
    config.namesrv_addr = Some(namesrv.local_addr().to_string());
    config.store.store_path_root_dir = args.data_dir.join("store");
    if let Some(port) = args.grpc_port {
        config.proxy.grpc_server_port = port;
    }
    let running = match start_broker(config).await {
        Ok(running) => running,
        Err(error) => {
            namesrv.shutdown().await;
            return Err(error);
        }
    };
    let dashboard = if args.no_dashboard {
        None
    } else {
        let listen = SocketAddr::new(namesrv.local_addr().ip(), args.dashboard_port);
        match Dashboard::start(&namesrv.local_addr().to_string(), listen).await {
            Ok(dashboard) => {
                println!("apogee dashboard listening on http://{}/", dashboard.local_addr());
                Some(dashboard)
            }
            Err(error) => {
                running.shutdown().await;
                namesrv.shutdown().await;
                return Err(error.context("starting the dashboard (--dashboard-port, or --no-dashboard)"));
            }
        }
    };
    let addrs = BoundAddrs {
        namesrv: Some(namesrv.local_addr()),
        dashboard: dashboard.as_ref().map(Dashboard::local_addr),
        ..broker_addrs(&running)
    };
    let written = args.ports_file.write(&addrs);
    if written.is_ok() {
        wait_for_shutdown_signal().await?;
    }
    if let Some(dashboard) = dashboard {
        dashboard.shutdown().await;
    }
    running.shutdown().await;
    namesrv.shutdown().await;
    written
}

async fn run_dashboard(args: DashboardArgs) -> Result<()> {
    let namesrv = args
        .namesrv_addr
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .map(|list| list.trim().to_owned())
        .filter(|list| !list.is_empty())
        .context("no NameServer: pass -n host:port[;host:port] or set NAMESRV_ADDR")?;
    let dashboard = Dashboard::start(&namesrv, args.listen).await?;
    println!("apogee dashboard listening on http://{}/", dashboard.local_addr());
    let written = args
        .ports_file
        .write(&BoundAddrs { dashboard: Some(dashboard.local_addr()), ..BoundAddrs::default() });
    if written.is_ok() {
        wait_for_shutdown_signal().await?;
    }
    dashboard.shutdown().await;
    written
}

/// The settings of `apogee proxy`, from its config file and arguments.
#[derive(Debug)]
struct ProxySettings {
    namesrv_addr: String,
    endpoint: apogee_broker::proxy_config::ProxyConfig,
    max_message_size_bytes: usize,
    /// `enableACL`: every call is checked against the proxy's own `plain_acl.yml`, as Java's
    /// proxy checks ACL 1.0 itself from its own config.
    acl_enable: bool,
    /// `rocketmq.acl.plain.file`; a relative path is under the parent of `--data-dir`, as the
    /// broker's is under the parent of its store.
    acl_plain_file: PathBuf,
    /// `aclFileWatchIntervalMs`: how often the file is read again.
    acl_file_watch_interval_ms: u64,
}

/// The body limit of a proxy without `maxMessageSize` (RocketMQ's 4 MiB).
const DEFAULT_MAX_MESSAGE_SIZE_BYTES: usize = 4 * 1024 * 1024;

impl ProxyArgs {
    fn to_settings(&self) -> Result<ProxySettings> {
        let mut endpoint = apogee_broker::proxy_config::ProxyConfig::default();
        let mut namesrv_addr = None;
        let mut max_message_size_bytes = DEFAULT_MAX_MESSAGE_SIZE_BYTES;
        let mut acl_enable = false;
        let mut acl_plain_file = PathBuf::from(apogee_broker::acl::DEFAULT_PLAIN_FILE);
        let mut acl_file_watch_interval_ms = DEFAULT_ACL_WATCH_INTERVAL_MS;
        if let Some(path) = &self.config_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let entries = apogee_common::properties::parse(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
            for (key, value) in entries {
                let value = value.trim();
                match key.as_str() {
                    "proxyMode" if value.eq_ignore_ascii_case("cluster") => {}
                    "proxyMode" => anyhow::bail!(
                        "{}: proxyMode {value} is not served by `apogee proxy` (local mode is the endpoint \
                         `apogee broker` runs itself)",
                        path.display()
                    ),
                    "namesrvAddr" => namesrv_addr = Some(value.to_owned()),
                    "maxMessageSize" => {
                        max_message_size_bytes = value
                            .parse()
                            .with_context(|| format!("{}: maxMessageSize {value}", path.display()))?
                    }
                    "enableACL" => {
                        acl_enable = value.parse().with_context(|| {
                            format!("{}: enableACL {value} (true or false)", path.display())
                        })?
                    }
                    "rocketmq.acl.plain.file" => acl_plain_file = PathBuf::from(value),
                    "aclFileWatchIntervalMs" => {
                        acl_file_watch_interval_ms = value
                            .parse()
                            .with_context(|| format!("{}: aclFileWatchIntervalMs {value}", path.display()))?
                    }
                    key if apogee_broker::proxy_config::is_proxy_key(key) => endpoint
                        .set(key, value)
                        .map_err(|_| anyhow::anyhow!("{}: {key} cannot be {value:?}", path.display()))?,
                    other => tracing::warn!(key = other, "proxy setting not used by apogee proxy"),
                }
            }
        }
        if let Some(port) = self.grpc_port {
            endpoint.grpc_server_port = port;
        }
        let namesrv_addr = self
            .namesrv_addr
            .clone()
            .or(namesrv_addr)
            .or_else(|| std::env::var("NAMESRV_ADDR").ok())
            .filter(|addr| !addr.trim().is_empty())
            .context("no NameServer: pass -n ADDR, set namesrvAddr in the config file, or NAMESRV_ADDR")?;
        if acl_plain_file.is_relative() {
            let root = self.data_dir.parent().unwrap_or(&self.data_dir);
            acl_plain_file = root.join(acl_plain_file);
        }
        Ok(ProxySettings {
            namesrv_addr,
            endpoint,
            max_message_size_bytes,
            acl_enable,
            acl_plain_file,
            acl_file_watch_interval_ms,
        })
    }

    /// The proxy's ACL when `enableACL` is on; a file that does not parse fails the start.
    fn acl(settings: &ProxySettings) -> Result<Option<apogee_grpc::server::ProxyAcl>> {
        if !settings.acl_enable {
            return Ok(None);
        }
        let validator = apogee_broker::acl::AclValidator::load(&settings.acl_plain_file)
            .map_err(|error| anyhow::anyhow!("enableACL: {error}"))?;
        Ok(Some(apogee_grpc::server::ProxyAcl {
            validator: std::sync::Arc::new(validator),
            watch_interval: std::time::Duration::from_millis(settings.acl_file_watch_interval_ms),
        }))
    }
}

/// Java polls the ACL file every 5 s.
const DEFAULT_ACL_WATCH_INTERVAL_MS: u64 = 5_000;

async fn run_proxy(args: ProxyArgs) -> Result<()> {
    let settings = args.to_settings()?;
    let acl = ProxyArgs::acl(&settings)?;
    let grpc_addr = SocketAddr::new(args.bind_addr, settings.endpoint.grpc_server_port);
    let listener = std::net::TcpListener::bind(grpc_addr)
        .with_context(|| format!("binding the gRPC endpoint on {grpc_addr}"))?;
    let advertised = if args.bind_addr.is_unspecified() {
        apogee_client::instance::local_ip().to_string()
    } else {
        args.bind_addr.to_string()
    };
    let certificate = match (&settings.endpoint.tls_cert_path, &settings.endpoint.tls_key_path) {
        (Some(cert), Some(key)) => {
            apogee_grpc::tls::CertificateSource::Files { cert: cert.clone(), key: key.clone() }
        }
        _ => apogee_grpc::tls::CertificateSource::SelfSigned {
            hosts: apogee_grpc::tls::self_signed_hosts(&advertised),
            write_to: apogee_grpc::tls::self_signed_path(&args.data_dir),
        },
    };
    let client_config = apogee_client::ClientConfig::new(settings.namesrv_addr.clone())
        .with_instance_name(format!("apogee-proxy-{}", std::process::id()));
    let relay = apogee_client::Relay::start(&client_config)
        .await
        .with_context(|| format!("starting the relay to {}", settings.namesrv_addr))?;
    let grpc = GrpcServer::start_proxy(
        listener,
        relay,
        settings.endpoint,
        advertised,
        &certificate,
        settings.max_message_size_bytes,
        acl,
    )
    .with_context(|| format!("starting the gRPC endpoint on {grpc_addr}"))?;
    println!("apogee grpc listening on {}", grpc.local_addr());
    let addrs = BoundAddrs { grpc: Some(grpc.local_addr()), ..BoundAddrs::default() };
    if let Err(error) = args.ports_file.write(&addrs) {
        grpc.shutdown().await;
        return Err(error);
    }
    wait_for_shutdown_signal().await?;
    grpc.shutdown().await;
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown signal received");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy_args(line: &[&str]) -> ProxyArgs {
        let cli = Cli::try_parse_from(line).expect("arguments parse");
        match cli.command {
            Command::Proxy(args) => args,
            other => panic!("not the proxy command: {other:?}"),
        }
    }

    /// Writes `text` to the config file `name` in `dir` and returns its path as `-c` takes it.
    fn write_conf(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn controller_config(line: &[&str]) -> Result<ControllerConfig> {
        let cli = Cli::try_parse_from(line).expect("arguments parse");
        match cli.command {
            Command::Controller(args) => args.to_config(),
            other => panic!("not the controller command: {other:?}"),
        }
    }

    #[test]
    fn controller_settings_come_from_the_config_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let conf_arg = write_conf(
            &dir,
            "controller.conf",
            "controllerDLegerPeers=n0-127.0.0.1:9878;n1-127.0.0.1:9868;n2-127.0.0.1:9858
             controllerDLegerSelfId=n1
controllerStorePath=/var/controller
enableElectUncleanMaster=true
",
        );
        let config = controller_config(&["apogee", "controller", "-c", &conf_arg]).unwrap();
        assert_eq!((config.id, config.peers.len()), (1, 3));
        assert_eq!(config.listen.to_string(), "127.0.0.1:9868");
        assert_eq!(config.data_dir, PathBuf::from("/var/controller"));
        assert!(config.enable_elect_unclean_master);
        let flags = [
            "apogee",
            "controller",
            "--id",
            "2",
            "--peers",
            "1=127.0.0.1:1,2=127.0.0.1:2",
            "--data-dir",
            "d",
        ];
        let config = controller_config(&flags).unwrap();
        assert_eq!((config.id, config.listen.port()), (2, 2));
        assert_eq!(config.data_dir, PathBuf::from("d"));
        let stranger = ["apogee", "controller", "--id", "3", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"];
        assert!(controller_config(&stranger).is_err());
        assert!(controller_config(&["apogee", "controller", "--peers", "1=nowhere"]).is_err());
    }

    #[test]
    fn proxy_settings_come_from_the_config_file_and_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let conf_arg = write_conf(
            &dir,
            "proxy.conf",
            "proxyMode=cluster\nnamesrvAddr=10.0.0.1:9876\ngrpcServerPort=9081\nmaxMessageSize=1024\n\
             enableTopicMessageTypeCheck=false\n",
        );
        let settings = proxy_args(&["apogee", "proxy", "-c", &conf_arg]).to_settings().unwrap();
        assert_eq!(settings.namesrv_addr, "10.0.0.1:9876");
        assert_eq!(settings.endpoint.grpc_server_port, 9081);
        assert_eq!(settings.max_message_size_bytes, 1024);
        assert!(!settings.endpoint.enable_topic_message_type_check);
        assert!(!settings.acl_enable);
        write_conf(
            &dir,
            "proxy.conf",
            "enableACL=true\nrocketmq.acl.plain.file=conf/proxy_acl.yml\naclFileWatchIntervalMs=250\n",
        );
        let with_acl =
            proxy_args(&["apogee", "proxy", "-n", "x:1", "-c", &conf_arg, "--data-dir", "/srv/proxy/data"])
                .to_settings()
                .unwrap();
        assert!(with_acl.acl_enable);
        assert_eq!(with_acl.acl_plain_file, PathBuf::from("/srv/proxy/conf/proxy_acl.yml"));
        assert_eq!(with_acl.acl_file_watch_interval_ms, 250);
        write_conf(
            &dir,
            "proxy.conf",
            "proxyMode=cluster\nnamesrvAddr=10.0.0.1:9876\ngrpcServerPort=9081\nmaxMessageSize=1024\n",
        );
        let overridden =
            proxy_args(&["apogee", "proxy", "-c", &conf_arg, "-n", "127.0.0.1:1", "--grpc-port", "0"])
                .to_settings()
                .unwrap();
        assert_eq!(overridden.namesrv_addr, "127.0.0.1:1");
        assert_eq!(overridden.endpoint.grpc_server_port, 0);
    }

    #[test]
    fn a_local_proxy_mode_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = write_conf(&dir, "local.conf", "proxyMode=LOCAL\n");
        let error = proxy_args(&["apogee", "proxy", "-n", "x:1", "-c", &local]).to_settings().unwrap_err();
        assert!(error.to_string().contains("proxyMode LOCAL"), "{error}");
        let bad = write_conf(&dir, "bad.conf", "renewAheadTimeMillis=soon\n");
        let error = proxy_args(&["apogee", "proxy", "-n", "x:1", "-c", &bad]).to_settings().unwrap_err();
        assert!(error.to_string().contains("renewAheadTimeMillis"), "{error}");
    }
}
