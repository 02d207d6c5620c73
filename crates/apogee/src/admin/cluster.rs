//! Cluster, broker and NameServer commands: clusterList, brokerStatus, getBrokerConfig,
//! updateBrokerConfig, wipeWritePerm, addWritePerm, getNamesrvConfig, updateNamesrvConfig,
//! statsAll.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use apogee_client::admin::BrokerStatsData;
use apogee_client::ClientError;
use apogee_common::topic;
use apogee_remoting::body::route::MASTER_ID;
use apogee_remoting::response_code;
use clap::{ArgGroup, Args};

use super::inspect::{self, count, figure, first_number, hours_kept};
use super::table::{print_config, Table};
use super::{call, describe, Ctx, Progress};

/// `clusterList` options.
#[derive(Debug, Args)]
pub(super) struct ClusterList {
    /// Print more stats
    #[arg(short = 'm', long = "moreStats")]
    more_stats: bool,
    /// specify intervals numbers, it is in seconds
    #[arg(short = 'i', long = "interval")]
    interval: Option<u64>,
    /// which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
}

pub(super) async fn cluster_list(ctx: &Ctx, args: ClusterList) -> Result<()> {
    loop {
        print_cluster_list(ctx, &args).await?;
        match args.interval {
            Some(seconds) if seconds > 0 => tokio::time::sleep(Duration::from_secs(seconds)).await,
            _ => return Ok(()),
        }
    }
}

async fn print_cluster_list(ctx: &Ctx, args: &ClusterList) -> Result<()> {
    let info = ctx.cluster_info().await?;
    let table = if args.more_stats {
        Table::start(&[
            ("#Cluster Name", 12),
            ("#Broker Name", 32),
            ("#InTotalYest", 14),
            ("#OutTotalYest", 14),
            ("#InTotalToday", 14),
            ("#OutTotalToday", 0),
        ])
    } else {
        Table::start(&[
            ("#Cluster Name", 22),
            ("#Broker Name", 22),
            ("#BID", 4),
            ("#Addr", 22),
            ("#Version", 16),
            ("#InTPS(LOAD)", 30),
            ("#OutTPS(LOAD)", 30),
            ("#Timer(Progress)", 22),
            ("#PCWait(ms)", 11),
            ("#Hour", 12),
            ("#SPACE", 8),
            ("#ACTIVATED", 0),
        ])
    };
    for member in inspect::members(&info, args.cluster_name.as_deref()) {
        let addr = &member.addr;
        let runtime = match ctx.admin.broker_runtime_info(addr).await {
            Ok(kv) => kv.table,
            Err(error) => {
                eprintln!("GET_BROKER_RUNTIME_INFO (28) to {addr} failed: {}", describe(&error));
                BTreeMap::new()
            }
        };
        let total = |key: &str| count(&runtime, key);
        if args.more_stats {
            table.row(&[
                member.cluster.clone(),
                member.broker_name.clone(),
                total("msgPutTotalTodayMorning")
                    .saturating_sub(total("msgPutTotalYesterdayMorning"))
                    .to_string(),
                total("msgGetTotalTodayMorning")
                    .saturating_sub(total("msgGetTotalYesterdayMorning"))
                    .to_string(),
                total("msgPutTotalTodayNow").saturating_sub(total("msgPutTotalTodayMorning")).to_string(),
                total("msgGetTotalTodayNow").saturating_sub(total("msgGetTotalTodayMorning")).to_string(),
            ]);
            continue;
        }
        let in_tps = format!(
            "{:9.2}({},{}ms)",
            first_number(&runtime, "putTps"),
            figure(&runtime, "sendThreadPoolQueueSize", "0"),
            figure(&runtime, "sendThreadPoolQueueHeadWaitTimeMills", "0")
        );
        let out_tps = format!(
            "{:9.2}({},{}ms|{},{}ms)",
            first_number(&runtime, "getTransferredTps"),
            figure(&runtime, "pullThreadPoolQueueSize", "0"),
            figure(&runtime, "pullThreadPoolQueueHeadWaitTimeMills", "0"),
            figure(&runtime, "ackThreadPoolQueueSize", "0"),
            figure(&runtime, "ackThreadPoolQueueHeadWaitTimeMills", "0")
        );
        let timer = match runtime.get("timerReadBehind") {
            Some(behind) => format!(
                "{behind}-{}({:.1}w, {}, {})",
                figure(&runtime, "timerOffsetBehind", "0"),
                total("timerCongestNum") as f64 / 10_000.0,
                first_number(&runtime, "timerEnqueueTps"),
                first_number(&runtime, "timerDequeueTps")
            ),
            None => "-".to_owned(),
        };
        let hours = hours_kept(&runtime, apogee_common::time::now_ms());
        let space = runtime.get("commitLogDiskRatio").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        table.row(&[
            member.cluster.clone(),
            member.broker_name.clone(),
            member.broker_id.to_string(),
            addr.clone(),
            figure(&runtime, "brokerVersionDesc", "").to_owned(),
            in_tps,
            out_tps,
            timer,
            figure(&runtime, "pageCacheLockTimeMills", "0").to_owned(),
            format!("{hours:.2}"),
            format!("{space:.4}"),
            figure(&runtime, "brokerActive", "false").to_owned(),
        ]);
    }
    Ok(())
}

/// `brokerStatus` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct BrokerStatus {
    /// Broker address
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
}

pub(super) async fn broker_status(ctx: &Ctx, args: BrokerStatus) -> Result<()> {
    let targets = ctx.targets(args.broker_addr.as_deref(), args.cluster_name.as_deref(), true).await?;
    for addr in targets {
        let runtime =
            call(ctx.admin.broker_runtime_info(&addr), format!("GET_BROKER_RUNTIME_INFO (28) to {addr}"))
                .await?;
        for (key, value) in &runtime.table {
            if args.cluster_name.is_some() {
                println!("{addr:<24} {key:<32}: {value}");
            } else {
                println!("{key:<32}: {value}");
            }
        }
    }
    Ok(())
}

/// `getBrokerConfig` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct GetBrokerConfig {
    /// get which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// get which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
}

pub(super) async fn get_broker_config(ctx: &Ctx, args: GetBrokerConfig) -> Result<()> {
    if let Some(addr) = &args.broker_addr {
        let config = call(ctx.admin.broker_config(addr), format!("GET_BROKER_CONFIG (26) to {addr}")).await?;
        println!("============{addr}============");
        print_config(&config);
        return Ok(());
    }
    let cluster = args.cluster_name.as_deref().unwrap_or_default();
    let info = ctx.cluster_info().await?;
    let Some(names) = info.cluster_addr_table.get(cluster) else {
        bail!("cluster {cluster:?} is unknown to NameServer {}", ctx.namesrv);
    };
    for name in names {
        let Some(broker) = info.broker_addr_table.get(name) else { continue };
        let master = broker.broker_addrs.get(&MASTER_ID);
        for (id, addr) in &broker.broker_addrs {
            let config =
                call(ctx.admin.broker_config(addr), format!("GET_BROKER_CONFIG (26) to {addr}")).await?;
            match master {
                Some(master) if *id != MASTER_ID => {
                    println!("============My Master: {master}=====Slave: {addr}============")
                }
                _ => println!("============Master: {addr}============"),
            }
            print_config(&config);
        }
    }
    Ok(())
}

/// `updateBrokerConfig` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct UpdateBrokerConfig {
    /// update which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// update which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
    /// update all brokers include slave of the cluster (with -c)
    #[arg(short = 'a', long = "updateAllBroker")]
    update_all_broker: bool,
    /// config key
    #[arg(short = 'k', long = "key")]
    key: String,
    /// config value
    #[arg(short = 'v', long = "value")]
    value: String,
}

pub(super) async fn update_broker_config(ctx: &Ctx, args: UpdateBrokerConfig) -> Result<()> {
    let entries = BTreeMap::from([(args.key.clone(), args.value.clone())]);
    let targets = ctx
        .targets(args.broker_addr.as_deref(), args.cluster_name.as_deref(), args.update_all_broker)
        .await?;
    for addr in targets {
        call(
            ctx.admin.update_broker_config(&addr, &entries),
            format!("UPDATE_BROKER_CONFIG (25) of {}={} to {addr}", args.key, args.value),
        )
        .await?;
        println!("update broker config success, {addr}");
    }
    Ok(())
}

/// `wipeWritePerm` and `addWritePerm` options.
#[derive(Debug, Args)]
pub(super) struct WritePerm {
    /// broker name
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
}

pub(super) async fn write_perm(ctx: &Ctx, args: WritePerm, add: bool) -> Result<()> {
    let mut failed = Vec::new();
    for namesrv in ctx.admin.namesrv_list() {
        let broker = &args.broker_name;
        let result = if add {
            ctx.admin.add_write_perm(&namesrv, broker).await
        } else {
            ctx.admin.wipe_write_perm(&namesrv, broker).await
        };
        let verb = if add { "add" } else { "wipe" };
        match result {
            Ok(count) => {
                println!("{verb} write perm of broker[{broker}] in name server[{namesrv}] OK, {count}")
            }
            Err(error) => {
                println!("{verb} write perm of broker[{broker}] in name server[{namesrv}] Failed");
                let request =
                    if add { "ADD_WRITE_PERM_OF_BROKER (327)" } else { "WIPE_WRITE_PERM_OF_BROKER (205)" };
                failed.push(format!("{request} to {namesrv}: {}", describe(&error)));
            }
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// `getNamesrvConfig` options: only the global `-n`.
#[derive(Debug, Args)]
pub(super) struct GetNamesrvConfig {}

pub(super) async fn get_namesrv_config(ctx: &Ctx) -> Result<()> {
    for namesrv in ctx.admin.namesrv_list() {
        let config =
            call(ctx.admin.namesrv_config(&namesrv), format!("GET_NAMESRV_CONFIG (319) to {namesrv}"))
                .await?;
        println!("============{namesrv}============");
        print_config(&config);
    }
    Ok(())
}

/// `updateNamesrvConfig` options.
#[derive(Debug, Args)]
pub(super) struct UpdateNamesrvConfig {
    /// config key
    #[arg(short = 'k', long = "key")]
    key: String,
    /// config value
    #[arg(short = 'v', long = "value")]
    value: String,
}

pub(super) async fn update_namesrv_config(ctx: &Ctx, args: UpdateNamesrvConfig) -> Result<()> {
    let entries = BTreeMap::from([(args.key.clone(), args.value.clone())]);
    let list = ctx.admin.namesrv_list();
    for namesrv in &list {
        call(
            ctx.admin.update_namesrv_config(namesrv, &entries),
            format!("UPDATE_NAMESRV_CONFIG (318) of {}={} to {namesrv}", args.key, args.value),
        )
        .await?;
    }
    println!("update name server config success!{list:?}");
    println!("{} : {}", args.key, args.value);
    Ok(())
}

/// `statsAll` options.
#[derive(Debug, Args)]
pub(super) struct StatsAll {
    /// print active topic only
    #[arg(short = 'a', long = "activeTopic")]
    active_topic: bool,
    /// print select topic only
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
}

/// Messages of a day from the stats data: the day's sum, else the hour's, else the minute's.
fn day_count(stats: &BrokerStatsData) -> i64 {
    [stats.stats_day.sum, stats.stats_hour.sum, stats.stats_minute.sum]
        .into_iter()
        .find(|sum| *sum > 0)
        .unwrap_or(0)
}

/// What statsAll knows of one statistic over the masters: TPS and 24 h count, or `None`
/// when a broker does not keep such statistics (VIEW_BROKER_STATS_DATA not supported).
async fn stats_over(ctx: &Ctx, masters: &[String], name: &str, key: &str) -> Result<Option<(f64, i64)>> {
    let (mut tps, mut count) = (0.0, 0);
    for addr in masters {
        match ctx.admin.broker_stats(addr, name, key).await {
            Ok(Some(stats)) => {
                tps += stats.stats_minute.tps;
                count += day_count(&stats);
            }
            Ok(None) => {}
            Err(ClientError::Broker { code: response_code::REQUEST_CODE_NOT_SUPPORTED, .. }) => {
                return Ok(None)
            }
            Err(error) => {
                bail!("VIEW_BROKER_STATS_DATA (315) of {name} {key} to {addr} failed: {}", describe(&error))
            }
        }
    }
    Ok(Some((tps, count)))
}

pub(super) async fn stats_all(ctx: &Ctx, args: StatsAll) -> Result<()> {
    let topics: Vec<String> = match &args.topic {
        Some(name) => vec![name.clone()],
        None => {
            let list = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
            let mut topics: Vec<String> = list
                .topic_list
                .into_iter()
                .filter(|name| {
                    !topic::is_retry_topic(name) && !name.starts_with(topic::DLQ_GROUP_TOPIC_PREFIX)
                })
                .collect();
            topics.sort();
            topics
        }
    };
    let table = Table::start(&[
        ("#Topic", 64),
        ("#Consumer Group", 64),
        ("#Accumulation", 12),
        ("#InTPS", 11),
        ("#OutTPS", 11),
        ("#InMsg24Hour", 14),
        ("#OutMsg24Hour", 0),
    ]);
    let mut unsupported = false;
    let mut progress = Progress::new("statsAll topics", topics.len());
    let show = |value: Option<(f64, i64)>| match value {
        Some((tps, count)) => (format!("{tps:.2}"), count.to_string()),
        None => ("-".to_owned(), "-".to_owned()),
    };
    for (index, name) in topics.iter().enumerate() {
        progress.step(index, name);
        let route =
            call(ctx.admin.topic_route(name), format!("GET_ROUTEINFO_BY_TOPIC (105) of {name}")).await?;
        let masters: Vec<String> = route
            .broker_datas
            .iter()
            .filter_map(|broker| broker.broker_addrs.get(&MASTER_ID).cloned())
            .collect();
        let put = stats_over(ctx, &masters, "TOPIC_PUT_NUMS", name).await?;
        unsupported |= put.is_none();
        let active = |value: Option<(f64, i64)>| value.is_none_or(|(tps, count)| tps > 0.0 || count > 0);
        let groups =
            call(ctx.admin.topic_consumed_by(name), format!("QUERY_TOPIC_CONSUME_BY_WHO (300) of {name}"))
                .await?;
        let (in_tps, in_count) = show(put);
        if groups.is_empty() {
            if !args.active_topic || active(put) {
                table.row(&[name.as_str(), "", "0", &in_tps, "", &in_count, "NO_CONSUMER"]);
            }
            continue;
        }
        for group in &groups {
            let accumulation = match ctx.admin.consume_stats(group, Some(name)).await {
                Ok(stats) => stats
                    .offset_table
                    .values()
                    .map(|offsets| offsets.broker_offset.saturating_sub(offsets.consumer_offset))
                    .fold(0_i64, i64::saturating_add)
                    .to_string(),
                Err(error) => {
                    eprintln!("GET_CONSUME_STATS (208) of {group} on {name} failed: {}", describe(&error));
                    "-".to_owned()
                }
            };
            let get = stats_over(ctx, &masters, "GROUP_GET_NUMS", &format!("{name}@{group}")).await?;
            unsupported |= get.is_none();
            if args.active_topic && !active(put) && !active(get) {
                continue;
            }
            let (out_tps, out_count) = show(get);
            table.row(&[name.as_str(), group, &accumulation, &in_tps, &out_tps, &in_count, &out_count]);
        }
    }
    progress.step(topics.len(), "done");
    if unsupported {
        eprintln!(
            "note: a broker does not serve VIEW_BROKER_STATS_DATA (315); its TPS and 24-hour columns show -"
        );
    }
    Ok(())
}
