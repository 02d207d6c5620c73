//! Group commands: updateSubGroup, deleteSubGroup, consumerProgress, consumerConnection,
//! producerConnection.

use anyhow::{bail, Context as _, Result};
use apogee_common::topic;
use apogee_remoting::body::admin::{GroupRetryPolicy, SubscriptionGroupConfig};
use clap::{ArgGroup, Args};

use super::inspect;
use super::table::{format_seconds, version_desc, Table};
use super::{call, describe, parse_bool, Ctx, Progress};

/// `updateSubGroup` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct UpdateSubGroup {
    /// create subscription group to which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// create subscription group to which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
    /// consumer group name
    #[arg(short = 'g', long = "groupName")]
    group_name: String,
    /// consume enable
    #[arg(short = 's', long = "consumeEnable", value_parser = parse_bool)]
    consume_enable: Option<bool>,
    /// from min offset
    #[arg(short = 'm', long = "consumeFromMinEnable", value_parser = parse_bool)]
    consume_from_min_enable: Option<bool>,
    /// broadcast
    #[arg(short = 'd', long = "consumeBroadcastEnable", value_parser = parse_bool)]
    consume_broadcast_enable: Option<bool>,
    /// consume message orderly
    #[arg(short = 'o', long = "consumeMessageOrderly", value_parser = parse_bool)]
    consume_message_orderly: Option<bool>,
    /// retry queue nums
    #[arg(short = 'q', long = "retryQueueNums")]
    retry_queue_nums: Option<i32>,
    /// retry max times
    #[arg(short = 'r', long = "retryMaxTimes")]
    retry_max_times: Option<i32>,
    /// retry policy, JSON such as {"type":"EXPONENTIAL","exponentialRetryPolicy":{...}}
    #[arg(short = 'p', long = "groupRetryPolicy")]
    group_retry_policy: Option<String>,
    /// consumer from which broker id
    #[arg(short = 'i', long = "brokerId")]
    broker_id: Option<i64>,
    /// which broker id when consume slowly
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    which_broker_when_consume_slowly: Option<i64>,
    /// notify consumerId changed
    #[arg(short = 'a', long = "notifyConsumerIdsChanged", value_parser = parse_bool)]
    notify_consumer_ids_changed: Option<bool>,
    /// attribute(+a=b,+c=d,-e)
    #[arg(long = "attributes")]
    attributes: Option<String>,
}

/// Java `SubscriptionGroupConfig.toString()`, which updateSubGroup prints.
fn group_config_text(config: &SubscriptionGroupConfig) -> String {
    format!(
        "SubscriptionGroupConfig [groupName={}, consumeEnable={}, consumeFromMinEnable={}, \
         consumeBroadcastEnable={}, consumeMessageOrderly={}, retryQueueNums={}, retryMaxTimes={}, \
         brokerId={}, whichBrokerWhenConsumeSlowly={}, notifyConsumerIdsChangedEnable={}, \
         groupSysFlag={}, consumeTimeoutMinute={}, attributes={:?}]",
        config.group_name,
        config.consume_enable,
        config.consume_from_min_enable,
        config.consume_broadcast_enable,
        config.consume_message_orderly,
        config.retry_queue_nums,
        config.retry_max_times,
        config.broker_id,
        config.which_broker_when_consume_slowly,
        config.notify_consumer_ids_changed_enable,
        config.group_sys_flag,
        config.consume_timeout_minute,
        config.attributes,
    )
}

/// Sets `field` to `given` when mqadmin's option was given; else the group config keeps its
/// own default, as mqadmin sets only the options on its command line.
fn set_if_given<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

pub(super) async fn update_sub_group(ctx: &Ctx, args: UpdateSubGroup) -> Result<()> {
    let mut config = SubscriptionGroupConfig::new(&args.group_name);
    // mqadmin's own defaults for these two.
    config.consume_from_min_enable = args.consume_from_min_enable.unwrap_or(false);
    config.consume_broadcast_enable = args.consume_broadcast_enable.unwrap_or(false);
    set_if_given(&mut config.consume_enable, args.consume_enable);
    set_if_given(&mut config.consume_message_orderly, args.consume_message_orderly);
    set_if_given(&mut config.retry_queue_nums, args.retry_queue_nums);
    set_if_given(&mut config.retry_max_times, args.retry_max_times);
    if let Some(text) = &args.group_retry_policy {
        config.group_retry_policy = serde_json::from_str::<GroupRetryPolicy>(text)
            .with_context(|| format!("groupRetryPolicy {text:?} is not a retry policy JSON"))?;
    }
    set_if_given(&mut config.broker_id, args.broker_id);
    set_if_given(&mut config.which_broker_when_consume_slowly, args.which_broker_when_consume_slowly);
    set_if_given(&mut config.notify_consumer_ids_changed_enable, args.notify_consumer_ids_changed);
    if let Some(text) = &args.attributes {
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            if !(key.starts_with('+') || key.starts_with('-')) || key.len() < 2 {
                bail!("attribute {entry:?} is neither +key=value nor -key");
            }
            config.attributes.insert(key.to_owned(), value.to_owned());
        }
    }
    let targets = ctx.targets(args.broker_addr.as_deref(), args.cluster_name.as_deref(), false).await?;
    for addr in targets {
        call(
            ctx.admin.create_subscription_group(&addr, &config),
            format!("UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) of {} to {addr}", args.group_name),
        )
        .await?;
        println!("create subscription group to {addr} success.");
    }
    println!("{}", group_config_text(&config));
    Ok(())
}

/// `deleteSubGroup` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct DeleteSubGroup {
    /// delete subscription group from which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// delete subscription group from which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
    /// subscription group name
    #[arg(short = 'g', long = "groupName")]
    group_name: String,
    /// remove offset
    #[arg(short = 'r', long = "removeOffset", value_parser = parse_bool)]
    remove_offset: Option<bool>,
}

pub(super) async fn delete_sub_group(ctx: &Ctx, args: DeleteSubGroup) -> Result<()> {
    let clean_offset = args.remove_offset.unwrap_or(false);
    let group = &args.group_name;
    let targets = ctx.targets(args.broker_addr.as_deref(), args.cluster_name.as_deref(), false).await?;
    for addr in &targets {
        call(
            ctx.admin.delete_subscription_group(addr, group, clean_offset),
            format!("DELETE_SUBSCRIPTIONGROUP (207) of {group} to {addr}"),
        )
        .await?;
        match &args.cluster_name {
            Some(cluster) => println!(
                "delete subscription group [{group}] from broker [{addr}] in cluster [{cluster}] success."
            ),
            None => println!("delete subscription group [{group}] from broker [{addr}] success."),
        }
    }
    if let Some(cluster) = &args.cluster_name {
        // As mqadmin does with -c: the group's retry and dead-letter topics go too.
        for name in [topic::retry_topic(group), topic::dlq_topic(group)] {
            match ctx.admin.delete_topic(cluster, &name).await {
                Ok(()) => println!("delete topic [{name}] from cluster [{cluster}] success."),
                Err(error) => {
                    println!("delete topic [{name}] from cluster [{cluster}] failed: {}", describe(&error))
                }
            }
        }
    }
    Ok(())
}

/// `consumerProgress` options.
#[derive(Debug, Args)]
pub(super) struct ConsumerProgress {
    /// consumer group name
    #[arg(short = 'g', long = "groupName")]
    group_name: Option<String>,
    /// topic name
    #[arg(short = 't', long = "topicName")]
    topic_name: Option<String>,
    /// Show client ip (not supported: needs GET_CONSUMER_RUNNING_INFO from each client)
    #[arg(short = 's', long = "showClientIP")]
    show_client_ip: Option<String>,
    /// cluster name or lmq parent topic (accepted; the group's own routes are used)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn consumer_progress(ctx: &Ctx, args: ConsumerProgress) -> Result<()> {
    if args.show_client_ip.as_deref().is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        bail!("-s/--showClientIP is not supported by apogee admin (it needs each client's running info)");
    }
    let Some(group) = &args.group_name else {
        return all_groups_progress(ctx).await;
    };
    let progress = call(
        ctx.admin.consumer_progress(group, args.topic_name.as_deref()),
        format!("GET_CONSUME_STATS (208) of group {group}"),
    )
    .await?;
    let table = Table::start(&[
        ("#Topic", 64),
        ("#Broker Name", 32),
        ("#QID", 4),
        ("#Broker Offset", 20),
        ("#Consumer Offset", 20),
        ("#Diff", 20),
        ("#Inflight", 20),
        ("#LastTime", 0),
    ]);
    let mut inflight_total = 0_i64;
    for line in &progress.queues {
        let inflight = line.pull_offset.saturating_sub(line.consumer_offset);
        inflight_total = inflight_total.saturating_add(inflight);
        let last =
            if line.last_timestamp == 0 { "N/A".to_owned() } else { format_seconds(line.last_timestamp) };
        table.row(&[
            line.queue.topic.clone(),
            line.queue.broker_name.clone(),
            line.queue.queue_id.to_string(),
            line.broker_offset.to_string(),
            line.consumer_offset.to_string(),
            line.lag.to_string(),
            inflight.to_string(),
            last,
        ]);
    }
    println!();
    println!("Consume TPS: {:.2}", progress.consume_tps);
    println!("Consume Diff Total: {}", progress.total_lag());
    println!("Consume Inflight Total: {inflight_total}");
    Ok(())
}

/// consumerProgress without -g: one row per group that has a retry topic.
async fn all_groups_progress(ctx: &Ctx) -> Result<()> {
    let list = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
    let groups = inspect::consumer_groups(&list);
    let table = Table::start(&[
        ("#Group", 64),
        ("#Count", 6),
        ("#Version", 24),
        ("#Type", 5),
        ("#Model", 14),
        ("#TPS", 7),
        ("#Diff Total", 0),
    ]);
    let mut progress = Progress::new("consumerProgress", groups.len());
    for (index, group) in groups.iter().enumerate() {
        let summary = inspect::group_summary(&ctx.admin, group).await;
        if let Some(error) = &summary.error {
            eprintln!("{error}");
        }
        table.row(&[
            summary.group,
            summary.count.to_string(),
            summary.version,
            summary.consume_type.to_owned(),
            summary.message_model.to_owned(),
            format!("{:.0}", summary.consume_tps),
            summary.diff_total.to_string(),
        ]);
        progress.step(index + 1, group);
    }
    Ok(())
}

/// `consumerConnection` options.
#[derive(Debug, Args)]
pub(super) struct ConsumerConnection {
    /// consumer group name
    #[arg(short = 'g', long = "consumerGroup")]
    consumer_group: String,
    /// broker address to ask (default: a broker of the group's retry topic)
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
}

pub(super) async fn consumer_connection(ctx: &Ctx, args: ConsumerConnection) -> Result<()> {
    let group = &args.consumer_group;
    let connection = match &args.broker_addr {
        Some(addr) => {
            call(
                ctx.admin.consumer_connections_at(addr, group),
                format!("GET_CONSUMER_CONNECTION_LIST (203) of {group} to {addr}"),
            )
            .await?
        }
        None => {
            call(
                ctx.admin.consumer_connections(group),
                format!("GET_CONSUMER_CONNECTION_LIST (203) of {group}"),
            )
            .await?
        }
    };
    let table = Table::start(&[("#ClientId", 36), ("#ClientAddr", 22), ("#Language", 10), ("#Version", 0)]);
    for client in &connection.connection_set {
        table.row(&[
            client.client_id.clone(),
            client.client_addr.clone(),
            client.language.map(|language| language.name().to_owned()).unwrap_or_default(),
            version_desc(client.version),
        ]);
    }
    println!();
    println!("Below is subscription:");
    let table = Table::start(&[("#Topic", 20), ("#SubExpression", 0)]);
    for (name, subscription) in &connection.subscription_table {
        table.row(&[name.as_str(), subscription.sub_string.as_str()]);
    }
    println!();
    println!("ConsumeType: {}", connection.consume_type.map(|kind| kind.name()).unwrap_or(""));
    println!("MessageModel: {}", connection.message_model.map(|model| model.name()).unwrap_or(""));
    println!("ConsumeFromWhere: {}", connection.consume_from_where.map(|from| from.name()).unwrap_or(""));
    Ok(())
}

/// `producerConnection` options.
#[derive(Debug, Args)]
pub(super) struct ProducerConnection {
    /// producer group name
    #[arg(short = 'g', long = "producerGroup")]
    producer_group: String,
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
}

pub(super) async fn producer_connection(ctx: &Ctx, args: ProducerConnection) -> Result<()> {
    let connection = call(
        ctx.admin.producer_connections(&args.producer_group, &args.topic),
        format!("GET_PRODUCER_CONNECTION_LIST (204) of {} via topic {}", args.producer_group, args.topic),
    )
    .await?;
    for (index, client) in connection.connection_set.iter().enumerate() {
        println!(
            "{:04}  {:<32} {:<22} {:<8} {}",
            index + 1,
            client.client_id,
            client.client_addr,
            client.language.map(|language| language.name()).unwrap_or(""),
            version_desc(client.version)
        );
    }
    Ok(())
}
