//! Command-line surface: one subcommand per process kind.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use apogee_namesrv::{NameServer, NamesrvConfig};
use clap::{Args, Parser, Subcommand};

/// Apogee: a RocketMQ-compatible message queue.
#[derive(Debug, Parser)]
#[command(name = "apogee", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process, data under ./data (today: the NameServer on 127.0.0.1:9876).
    Standalone(StandaloneArgs),
    /// The NameServer: the route registry brokers register with and clients ask.
    Namesrv(NamesrvArgs),
}

#[derive(Debug, Args)]
struct StandaloneArgs {
    /// Data directory.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// NameServer listen address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv_listen: SocketAddr,
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
}

impl NamesrvArgs {
    fn into_config(self) -> Result<NamesrvConfig> {
        let mut config = NamesrvConfig::default();
        if let Some(path) = &self.config_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            config.apply_properties(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(path) = self.kv_config_path {
            config.kv_config_path = path;
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
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Namesrv(args) => run_namesrv(args.into_config()?).await,
            Command::Standalone(args) => {
                let config = NamesrvConfig {
                    listen: args.namesrv_listen,
                    kv_config_path: args.data_dir.join("namesrv").join("kvConfig.json"),
                    ..NamesrvConfig::default()
                };
                run_namesrv(config).await
            }
        }
    }
}

async fn run_namesrv(config: NamesrvConfig) -> Result<()> {
    let listen = config.listen;
    let namesrv =
        NameServer::start(config).await.with_context(|| format!("starting the name server on {listen}"))?;
    // Scripts and tests read this line to learn the bound port.
    println!("apogee namesrv listening on {}", namesrv.local_addr());
    wait_for_shutdown_signal().await?;
    namesrv.shutdown().await;
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
