//! Topic commands: updateTopic, deleteTopic, topicList, topicRoute, topicStatus,
//! topicClusterList, updateTopicPerm.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use apogee_common::{perm, topic, TopicConfig};
use apogee_remoting::body::route::TopicRouteData;
use clap::{ArgGroup, Args};

use super::inspect;
use super::table::{format_millis, Table};
use super::{call, parse_bool, Ctx, Progress};

/// Name-server KV namespace of ordered topics' queue layouts (Java `NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG`).
const ORDER_TOPIC_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

/// Java `TopicSysFlag`: the unit-topic bit.
const FLAG_UNIT: i32 = 1;
/// Java `TopicSysFlag`: the has-unit-subscription bit.
const FLAG_UNIT_SUB: i32 = 1 << 1;

/// `updateTopic` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster_name"])))]
pub(super) struct UpdateTopic {
    /// create topic to which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// create topic to which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// set read queue nums
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    read_queue_nums: i32,
    /// set write queue nums
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    write_queue_nums: i32,
    /// set topic's permission(2|4|6), intro[2:W 4:R; 6:RW]
    #[arg(short = 'p', long = "perm", default_value_t = 6)]
    perm: i32,
    /// set topic's order(true|false)
    #[arg(short = 'o', long = "order", value_parser = parse_bool)]
    order: Option<bool>,
    /// attribute(+a=b,+c=d,-e)
    #[arg(short = 'a', long = "attributes")]
    attributes: Option<String>,
    /// is unit topic (true|false)
    #[arg(short = 'u', long = "unit", value_parser = parse_bool)]
    unit: Option<bool>,
    /// has unit sub (true|false)
    #[arg(short = 's', long = "hasUnitSub", value_parser = parse_bool)]
    has_unit_sub: Option<bool>,
}

/// Reads `+a=b,+c=d,-e` into the map the SDK sends as the `attributes` header.
fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>> {
    let mut attributes = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        match key.chars().next() {
            Some('+') if key.len() > 1 && !value.is_empty() => {}
            Some('-') if key.len() > 1 && value.is_empty() => {}
            _ => bail!("attribute {entry:?} is neither +key=value nor -key"),
        }
        attributes.insert(key.to_owned(), value.to_owned());
    }
    Ok(attributes)
}

/// Java `TopicConfig.toString()`, which updateTopic prints.
fn topic_config_text(config: &TopicConfig) -> String {
    let attributes: Vec<String> =
        config.attributes.iter().map(|(key, value)| format!("{key}={value}")).collect();
    format!(
        "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType={}, \
         topicSysFlag={}, order={}, attributes={{{}}}]",
        config.topic_name,
        config.read_queue_nums,
        config.write_queue_nums,
        perm::to_rwx(config.perm),
        config.topic_filter_type.as_str(),
        config.topic_sys_flag,
        config.order,
        attributes.join(", ")
    )
}

pub(super) async fn update_topic(ctx: &Ctx, args: UpdateTopic) -> Result<()> {
    if !(0..=7).contains(&args.perm) {
        bail!("perm {} is not 2 (W), 4 (R) or 6 (RW)", args.perm);
    }
    let mut config =
        TopicConfig::with_queues(&args.topic, args.read_queue_nums, args.write_queue_nums, args.perm);
    config.order = args.order.unwrap_or(false);
    if let Some(text) = &args.attributes {
        config.attributes = parse_attributes(text)?;
    }
    if args.unit == Some(true) {
        config.topic_sys_flag |= FLAG_UNIT;
    }
    if args.has_unit_sub == Some(true) {
        config.topic_sys_flag |= FLAG_UNIT_SUB;
    }
    let target = args.broker_addr.as_deref().or(args.cluster_name.as_deref()).unwrap_or_default();
    let written = call(
        ctx.admin.create_topic(target, &config),
        format!("UPDATE_AND_CREATE_TOPIC (17) of {} to {target}", args.topic),
    )
    .await?;
    for addr in &written {
        println!("create topic to {addr} success.");
    }
    if config.order {
        let info = ctx.cluster_info().await?;
        let mut layout: Vec<String> = Vec::new();
        for addr in &written {
            let name = info
                .broker_addr_table
                .values()
                .find(|broker| broker.broker_addrs.values().any(|member| member == addr))
                .map(|broker| broker.broker_name.clone());
            if let Some(name) = name {
                layout.push(format!("{name}:{}", config.write_queue_nums));
            }
        }
        let value = layout.join(";");
        call(
            ctx.admin.put_kv_config(ORDER_TOPIC_NAMESPACE, &args.topic, &value),
            format!("PUT_KV_CONFIG (100) of {ORDER_TOPIC_NAMESPACE}/{}", args.topic),
        )
        .await?;
        println!("set topic[{}] order config to [{value}] in name server.", args.topic);
    }
    println!("{}", topic_config_text(&config));
    Ok(())
}

/// `deleteTopic` options.
#[derive(Debug, Args)]
pub(super) struct DeleteTopic {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// delete topic from which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: String,
}

pub(super) async fn delete_topic(ctx: &Ctx, args: DeleteTopic) -> Result<()> {
    call(
        ctx.admin.delete_topic(&args.cluster_name, &args.topic),
        format!(
            "DELETE_TOPIC_IN_BROKER (215) / DELETE_TOPIC_IN_NAMESRV (216) of {} in cluster {}",
            args.topic, args.cluster_name
        ),
    )
    .await?;
    println!("delete topic [{}] from cluster [{}] success.", args.topic, args.cluster_name);
    println!("delete topic [{}] from NameServer success.", args.topic);
    Ok(())
}

/// `topicList` options.
#[derive(Debug, Args)]
pub(super) struct TopicList {
    /// clusterModel: also show each topic's cluster and consumer groups
    #[arg(short = 'c', long = "clusterModel")]
    cluster_model: bool,
}

pub(super) async fn topic_list(ctx: &Ctx, args: TopicList) -> Result<()> {
    let list = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
    let mut topics: Vec<String> = list.topic_list.into_iter().collect();
    topics.sort();
    if !args.cluster_model {
        for name in topics {
            println!("{name}");
        }
        return Ok(());
    }
    let info = ctx.cluster_info().await?;
    let shown: Vec<String> = topics
        .into_iter()
        .filter(|name| !topic::is_retry_topic(name) && !name.starts_with(topic::DLQ_GROUP_TOPIC_PREFIX))
        .collect();
    let table = Table::start(&[("#Cluster Name", 20), ("#Topic", 48), ("#Consumer Group", 48)]);
    let mut progress = Progress::new("topicList", shown.len());
    for (index, name) in shown.iter().enumerate() {
        let route =
            call(ctx.admin.topic_route(name), format!("GET_ROUTEINFO_BY_TOPIC (105) of {name}")).await?;
        let cluster = route
            .broker_datas
            .first()
            .and_then(|broker| {
                info.cluster_addr_table
                    .iter()
                    .find(|(_, names)| names.contains(&broker.broker_name))
                    .map(|(cluster, _)| cluster.clone())
            })
            .unwrap_or_default();
        let groups =
            call(ctx.admin.topic_consumed_by(name), format!("QUERY_TOPIC_CONSUME_BY_WHO (300) of {name}"))
                .await?;
        if groups.is_empty() {
            table.row(&[cluster.as_str(), name, ""]);
        }
        for group in &groups {
            table.row(&[cluster.as_str(), name, group]);
        }
        progress.step(index + 1, name);
    }
    Ok(())
}

/// `topicRoute` options.
#[derive(Debug, Args)]
pub(super) struct TopicRoute {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Use list format to print data
    #[arg(short = 'l', long = "list")]
    list: bool,
}

/// The route of `name`, or an error naming the request.
async fn route_of(ctx: &Ctx, name: &str) -> Result<TopicRouteData> {
    call(ctx.admin.topic_route(name), format!("GET_ROUTEINFO_BY_TOPIC (105) of {name} from {}", ctx.namesrv))
        .await
}

pub(super) async fn topic_route(ctx: &Ctx, args: TopicRoute) -> Result<()> {
    let route = route_of(ctx, &args.topic).await?;
    if !args.list {
        println!("{}", serde_json::to_string_pretty(&route)?);
        return Ok(());
    }
    let columns = [
        ("#ClusterName", 45),
        ("#BrokerName", 32),
        ("#BrokerAddrs", 50),
        ("#ReadQueue", 10),
        ("#WriteQueue", 11),
        ("#Perm", 5),
    ];
    let table = Table::start(&columns);
    let (mut reads, mut writes) = (0_i32, 0_i32);
    let mut brokers = route.broker_datas.clone();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for broker in &brokers {
        let addrs: Vec<String> =
            broker.broker_addrs.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
        let queues = route.queue_datas.iter().find(|queue| queue.broker_name == broker.broker_name);
        let (read, write, perm) =
            queues.map_or((0, 0, 0), |q| (q.read_queue_nums, q.write_queue_nums, q.perm));
        reads = reads.saturating_add(read);
        writes = writes.saturating_add(write);
        table.row(&[
            broker.cluster.clone(),
            broker.broker_name.clone(),
            format!("{{{}}}", addrs.join(", ")),
            read.to_string(),
            write.to_string(),
            perm.to_string(),
        ]);
    }
    table.row(&[
        "Total:".to_owned(),
        brokers.len().to_string(),
        String::new(),
        reads.to_string(),
        writes.to_string(),
    ]);
    Ok(())
}

/// `topicStatus` options.
#[derive(Debug, Args)]
pub(super) struct TopicStatus {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// cluster name or lmq parent topic, lmq is used to find the route (accepted; the
    /// topic's own route is used)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn topic_status(ctx: &Ctx, args: TopicStatus) -> Result<()> {
    let stats =
        call(ctx.admin.topic_stats(&args.topic), format!("GET_TOPIC_STATS_INFO (202) of {}", args.topic))
            .await?;
    let table = Table::start(&[
        ("#Broker Name", 32),
        ("#QID", 4),
        ("#Min Offset", 20),
        ("#Max Offset", 20),
        ("#Last Updated", 0),
    ]);
    for (queue, offsets) in &stats.offset_table {
        let updated = if offsets.last_update_timestamp > 0 {
            format_millis(offsets.last_update_timestamp)
        } else {
            String::new()
        };
        table.row(&[
            queue.broker_name.clone(),
            queue.queue_id.to_string(),
            offsets.min_offset.to_string(),
            offsets.max_offset.to_string(),
            updated,
        ]);
    }
    println!("Topic Put TPS: {}", stats.topic_put_tps);
    Ok(())
}

/// `topicClusterList` options.
#[derive(Debug, Args)]
pub(super) struct TopicClusterList {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
}

pub(super) async fn topic_cluster_list(ctx: &Ctx, args: TopicClusterList) -> Result<()> {
    let route = route_of(ctx, &args.topic).await?;
    let info = ctx.cluster_info().await?;
    let Some(first) = route.broker_datas.first() else {
        bail!("topic {} has no broker in its route", args.topic);
    };
    for (cluster, names) in &info.cluster_addr_table {
        if names.contains(&first.broker_name) {
            println!("{cluster}");
        }
    }
    Ok(())
}

/// `updateTopicPerm` options.
#[derive(Debug, Args)]
pub(super) struct UpdateTopicPerm {
    /// create topic to which broker
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster_name")]
    broker_addr: Option<String>,
    /// create topic to which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster_name: Option<String>,
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// set topic's permission(2|4|6), intro[2:W; 4:R; 6:RW]
    #[arg(short = 'p', long = "perm")]
    perm: i32,
}

pub(super) async fn update_topic_perm(ctx: &Ctx, args: UpdateTopicPerm) -> Result<()> {
    if ![perm::WRITE, perm::READ, perm::READ_WRITE].contains(&args.perm) {
        bail!("perm {} is not 2 (W), 4 (R) or 6 (RW)", args.perm);
    }
    let route = route_of(ctx, &args.topic).await?;
    let Some(first) = route.queue_datas.first() else {
        bail!("topic {} has no queues in its route", args.topic);
    };
    let targets: Vec<(String, String)> = match (&args.broker_addr, &args.cluster_name) {
        (Some(addr), _) => {
            let broker = route.broker_datas.iter().find(|broker| {
                broker.broker_addrs.get(&apogee_remoting::body::route::MASTER_ID) == Some(addr)
            });
            let Some(broker) = broker else {
                bail!("broker {addr} is not a master serving topic {}", args.topic);
            };
            vec![(broker.broker_name.clone(), addr.clone())]
        }
        (None, Some(cluster)) => ctx.cluster_members(cluster, false).await?,
        (None, None) => bail!("one of -b (broker address) or -c (cluster name) is needed"),
    };
    for (name, addr) in targets {
        let queues = route.queue_datas.iter().find(|queue| queue.broker_name == name).unwrap_or(first);
        if queues.perm == args.perm {
            println!("new perm equals to the old one!");
            continue;
        }
        let mut config =
            TopicConfig::with_queues(&args.topic, queues.read_queue_nums, queues.write_queue_nums, args.perm);
        config.topic_sys_flag = queues.topic_sys_flag;
        call(
            ctx.admin.create_topic(&addr, &config),
            format!("UPDATE_AND_CREATE_TOPIC (17) of {} to {addr}", args.topic),
        )
        .await?;
        println!("update topic perm from {} to {} in {addr} success.", queues.perm, args.perm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_as_mqadmin_writes_them() {
        let parsed = parse_attributes("+message.type=FIFO, -old").unwrap();
        assert_eq!(parsed.get("+message.type").map(String::as_str), Some("FIFO"));
        assert_eq!(parsed.get("-old").map(String::as_str), Some(""));
        for bad in ["message.type=FIFO", "+k", "-k=v", "+=v"] {
            assert!(parse_attributes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_config_is_printed_as_java_does() {
        let config = TopicConfig::with_queues("T", 4, 2, 6);
        assert_eq!(
            topic_config_text(&config),
            "TopicConfig [topicName=T, readQueueNums=4, writeQueueNums=2, perm=RW-, \
             topicFilterType=SINGLE_TAG, topicSysFlag=0, order=false, attributes={}]"
        );
    }
}
