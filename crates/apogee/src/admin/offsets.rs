//! Offset commands: resetOffsetByTime, skipAccumulatedMessage.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use apogee_common::MessageQueue;
use clap::Args;

use super::table::{parse_time_ms, Table};
use super::{call, parse_bool, Ctx};

/// `resetOffsetByTime` options.
#[derive(Debug, Args)]
pub(super) struct ResetOffsetByTime {
    /// set the consumer group
    #[arg(short = 'g', long = "group")]
    group: String,
    /// set the topic
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// set the timestamp[now|currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
    #[arg(short = 's', long = "timestamp")]
    timestamp: String,
    /// set the force rollback by timestamp switch[true|false] (deprecated)
    #[arg(short = 'f', long = "force", value_parser = parse_bool)]
    force: Option<bool>,
    /// cluster name or lmq parent topic (accepted; the topic's own route is used)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
    /// set the broker address; with -q resets one queue only
    #[arg(short = 'b', long = "broker")]
    broker: Option<String>,
    /// set the queue id; needs -b
    #[arg(short = 'q', long = "queue", requires = "broker")]
    queue: Option<i32>,
    /// set the target offset of the one queue (-b and -q) instead of a time
    #[arg(short = 'o', long = "offset", requires = "queue")]
    offset: Option<i64>,
}

pub(super) async fn reset_offset_by_time(ctx: &Ctx, args: ResetOffsetByTime) -> Result<()> {
    let timestamp_ms = parse_time_ms(&args.timestamp).map_err(anyhow::Error::msg)?;
    let force = args.force.unwrap_or(true);
    if let (Some(addr), Some(queue_id)) = (&args.broker, args.queue) {
        return reset_one_queue(ctx, &args, addr, queue_id, timestamp_ms).await;
    }
    println!(
        "start reset consumer offset by specified, group[{}], topic[{}], force[{force}], timestamp(string)[{}], \
         timestamp(long)[{timestamp_ms}]",
        args.group, args.topic, args.timestamp
    );
    let offsets = call(
        ctx.admin.reset_offset_by_time(&args.group, &args.topic, timestamp_ms, force),
        format!("INVOKE_BROKER_TO_RESET_OFFSET (222) of {} on {}", args.group, args.topic),
    )
    .await?;
    print_offsets(&offsets);
    Ok(())
}

/// Single-queue mode (-b and -q): the offset given with -o, else the one at the time,
/// committed and reset on the broker.
async fn reset_one_queue(
    ctx: &Ctx,
    args: &ResetOffsetByTime,
    addr: &str,
    queue_id: i32,
    timestamp_ms: i64,
) -> Result<()> {
    let route =
        call(ctx.admin.topic_route(&args.topic), format!("GET_ROUTEINFO_BY_TOPIC (105) of {}", args.topic))
            .await?;
    let Some(broker) =
        route.broker_datas.iter().find(|broker| broker.broker_addrs.values().any(|member| member == addr))
    else {
        bail!("broker {addr} does not serve topic {}", args.topic);
    };
    let queue = MessageQueue::new(&args.topic, &broker.broker_name, queue_id);
    let offset = match args.offset {
        Some(offset) => offset,
        None => {
            call(
                ctx.admin.search_offset(&queue, timestamp_ms),
                format!("SEARCH_OFFSET_BY_TIMESTAMP (29) of {}:{queue_id} at {addr}", args.topic),
            )
            .await?
        }
    };
    call(
        ctx.admin.reset_queue_offset(&args.group, &queue, offset),
        format!(
            "UPDATE_CONSUMER_OFFSET (15) / INVOKE_BROKER_TO_RESET_OFFSET (222) of {} on {}:{queue_id} at {addr}",
            args.group, args.topic
        ),
    )
    .await?;
    println!("reset consumer offset to {offset}");
    Ok(())
}

/// The `#brokerName #queueId #offset` table of the queues moved.
fn print_offsets(offsets: &BTreeMap<MessageQueue, i64>) {
    let table = Table::start(&[("#brokerName", 40), ("#queueId", 40), ("#offset", 0)]);
    for (queue, offset) in offsets {
        table.row(&[queue.broker_name.clone(), queue.queue_id.to_string(), offset.to_string()]);
    }
}

/// `skipAccumulatedMessage` options.
#[derive(Debug, Args)]
pub(super) struct SkipAccumulatedMessage {
    /// set the consumer group
    #[arg(short = 'g', long = "group")]
    group: String,
    /// set the topic
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// set the force rollback by timestamp switch[true|false]
    #[arg(short = 'f', long = "force", value_parser = parse_bool)]
    force: Option<bool>,
    /// cluster name or lmq parent topic (accepted; the topic's own route is used)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn skip_accumulated(ctx: &Ctx, args: SkipAccumulatedMessage) -> Result<()> {
    // Timestamp −1: the broker moves every queue to its max offset.
    let offsets = call(
        ctx.admin.reset_offset_by_time(&args.group, &args.topic, -1, args.force.unwrap_or(true)),
        format!("INVOKE_BROKER_TO_RESET_OFFSET (222) of {} on {} to the end", args.group, args.topic),
    )
    .await?;
    print_offsets(&offsets);
    Ok(())
}
