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
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: SocketAddr,
    /// KV config file (`kvConfigPath`); default ~/namesrv/kvConfig.json.
    #[arg(long)]
    kv_config_path: Option<PathBuf>,
    /// Period of the scan that expires silent brokers (`scanNotActiveBrokerInterval`).
    #[arg(long, default_value_t = 5_000)]
    scan_interval_ms: u64,
    /// Expiry of brokers that do not announce their own heartbeat timeout.
    #[arg(long, default_value_t = 120_000)]
    broker_expiry_ms: u64,
    /// Put `orderTopicConf` into routes (`orderMessageEnable`).
    #[arg(long)]
    order_message_enable: bool,
}

impl Cli {
    /// Runs the chosen process until SIGINT or SIGTERM.
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Namesrv(args) => {
                let mut config = NamesrvConfig {
                    listen: args.listen,
                    scan_not_active_broker_interval_ms: args.scan_interval_ms,
                    broker_expiry_ms: args.broker_expiry_ms,
                    order_message_enable: args.order_message_enable,
                    ..NamesrvConfig::default()
                };
                if let Some(path) = args.kv_config_path {
                    config.kv_config_path = path;
                }
                run_namesrv(config).await
            }
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
