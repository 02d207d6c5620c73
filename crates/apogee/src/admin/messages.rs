//! Message commands: queryMsgById, queryMsgByKey, queryMsgByUniqueKey, queryMsgByOffset,
//! printMsg, sendMessage, consumeMessage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use apogee_client::admin::{PulledStatus, TOOLS_CONSUMER_GROUP};
use apogee_client::{Message, MessageExt, MessageQueue, Producer};
use clap::Args;

use super::inspect::{self, offset_range, read_queue, UNIQUE_KEY_MAX};
use super::table::{format_millis, parse_time_ms, Table};
use super::{call, describe, parse_bool, Ctx, Progress};

/// The body of `message` as text: UTF-8 (the only charset read; others are shown lossily).
fn body_text(message: &MessageExt) -> String {
    String::from_utf8_lossy(&message.message.body).into_owned()
}

/// Java's `Map.toString()` of a message's properties: `{K1=v1, K2=v2}`.
fn properties_text(message: &MessageExt) -> String {
    let entries: Vec<String> =
        message.message.properties.iter().map(|(key, value)| format!("{key}={value}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// Where mqadmin leaves a queried message's body: `<tmp>/rocketmq/msgbodys/<id>`.
fn store_body(id: &str, message: &MessageExt) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("rocketmq").join("msgbodys");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let safe_id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = dir.join(if safe_id.is_empty() { "message".to_owned() } else { safe_id });
    std::fs::write(&path, &message.message.body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// mqadmin's field block of one message (`%-20s %s` lines), with the body inline when
/// `body_inline` (the `-f` option), and the body file's path.
fn print_message(message: &MessageExt, offset_id: Option<&str>, body_inline: bool) -> Result<()> {
    let line = |name: &str, value: String| println!("{name:<20} {value}");
    if let Some(id) = offset_id {
        line("OffsetID:", id.to_owned());
    }
    line("Topic:", message.message.topic.to_string());
    line("Tags:", format!("[{}]", message.message.tags().unwrap_or("null")));
    let keys: Vec<&str> = message.message.keys().collect();
    line("Keys:", format!("[{}]", if keys.is_empty() { "null".to_owned() } else { keys.join(" ") }));
    line("Queue ID:", message.queue_id.to_string());
    line("Queue Offset:", message.queue_offset.to_string());
    line("CommitLog Offset:", message.commit_log_offset.to_string());
    line("Reconsume Times:", message.reconsume_times.to_string());
    line("Born Timestamp:", format_millis(message.born_timestamp));
    line("Store Timestamp:", format_millis(message.store_timestamp));
    line("Born Host:", message.born_host.to_string());
    line("Store Host:", message.store_host.to_string());
    line("System Flag:", message.sys_flag.to_string());
    line("Properties:", properties_text(message));
    let path = store_body(&message.msg_id(), message)?;
    line("Message Body Path:", path.display().to_string());
    if body_inline {
        line("Message Body:", body_text(message));
    }
    Ok(())
}

/// Java `MessageExt.toString()` as printMsg and consumeMessage print it.
fn message_ext_text(message: &MessageExt) -> String {
    format!(
        "MessageExt [brokerName=, queueId={}, storeSize={}, queueOffset={}, sysFlag={}, bornTimestamp={}, \
         bornHost=/{}, storeTimestamp={}, storeHost=/{}, msgId={}, commitLogOffset={}, bodyCRC={}, \
         reconsumeTimes={}, preparedTransactionOffset={}, toString()=Message{{topic='{}', flag={}, \
         properties={}, body=[{} bytes]}}]",
        message.queue_id,
        message.store_size,
        message.queue_offset,
        message.sys_flag,
        message.born_timestamp,
        message.born_host,
        message.store_timestamp,
        message.store_host,
        message.offset_msg_id(),
        message.commit_log_offset,
        message.body_crc,
        message.reconsume_times,
        message.prepared_transaction_offset,
        message.message.topic,
        message.message.flag,
        properties_text(message),
        message.message.body.len(),
    )
}

/// The `MSGID: <id> <MessageExt> BODY: <body>` line of printMsg and consumeMessage.
fn print_message_line(message: &MessageExt, print_body: bool) {
    let body = if print_body { body_text(message) } else { "NOT PRINT BODY".to_owned() };
    println!("MSGID: {} {} BODY: {body}", message.msg_id(), message_ext_text(message));
}

/// What the consumer groups of the message's topic did with it (Java's message track):
/// `WARN: No Consumer` when no group consumes the topic.
async fn print_track(ctx: &Ctx, message: &MessageExt) {
    match inspect::message_track(&ctx.admin, message).await {
        Ok(tracks) if tracks.is_empty() => println!("WARN: No Consumer"),
        Ok(tracks) => {
            for (group, track) in tracks {
                println!("MessageTrack [consumerGroup={group}, trackType={}]", track.java_name());
            }
        }
        Err(error) => {
            println!("WARN: the consumer groups of {} are unknown: {error:#}", message.message.topic)
        }
    }
}

/// Refuses the options that push a message to a client (-g/-d), which Apogee's admin does not do.
fn refuse_push(group: Option<&String>, client: Option<&String>) -> Result<()> {
    if group.is_some() || client.is_some() {
        bail!("-g/-d (consume the message directly on a client) is not supported by apogee admin");
    }
    Ok(())
}

/// `queryMsgById` options.
#[derive(Debug, Args)]
pub(super) struct QueryMsgById {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Message Id (offset ids, comma-separated)
    #[arg(short = 'i', long = "msgId")]
    msg_id: String,
    /// consumer group name (not supported)
    #[arg(short = 'g', long = "consumerGroup")]
    consumer_group: Option<String>,
    /// The consumer's client id (not supported)
    #[arg(short = 'd', long = "clientId")]
    client_id: Option<String>,
    /// resend message (not supported)
    #[arg(short = 's', long = "sendMessage")]
    send_message: Option<String>,
    /// unit name (not supported)
    #[arg(short = 'u', long = "unitName")]
    unit_name: Option<String>,
    /// print message body by the specified format (UTF-8)
    #[arg(short = 'f', long = "bodyFormat")]
    body_format: Option<String>,
    /// cluster name or lmq parent topic (accepted)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn query_by_id(ctx: &Ctx, args: QueryMsgById) -> Result<()> {
    refuse_push(args.consumer_group.as_ref(), args.client_id.as_ref())?;
    if args.send_message.is_some() || args.unit_name.is_some() {
        bail!("-s/-u (resend the message) are not supported by apogee admin");
    }
    for id in args.msg_id.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let message = inspect::message_by_id(&ctx.admin, &args.topic, id).await?;
        print_message(&message, Some(id), args.body_format.is_some())?;
        print_track(ctx, &message).await;
    }
    Ok(())
}

/// `queryMsgByKey` options.
#[derive(Debug, Args)]
pub(super) struct QueryMsgByKey {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Message Key
    #[arg(short = 'k', long = "msgKey")]
    msg_key: String,
    /// Begin timestamp(ms). default:0, eg:1676730526212
    #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
    begin_timestamp: i64,
    /// End timestamp(ms). default:Long.MAX_VALUE, eg:1676730526212
    #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
    end_timestamp: i64,
    /// The maximum number of messages returned by the query, default:64
    #[arg(short = 'm', long = "maxNum", default_value_t = 64)]
    max_num: i32,
    /// cluster name or lmq parent topic (accepted)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn query_by_key(ctx: &Ctx, args: QueryMsgByKey) -> Result<()> {
    let result = call(
        ctx.admin.query_messages_by_key(
            &args.topic,
            &args.msg_key,
            args.max_num,
            args.begin_timestamp,
            args.end_timestamp,
        ),
        format!("QUERY_MESSAGE (12) of key {} in {}", args.msg_key, args.topic),
    )
    .await?;
    let table = Table::start(&[("#Message ID", 50), ("#QID", 4), ("#Offset", 0)]);
    for message in &result.messages {
        table.row(&[message.msg_id(), message.queue_id.to_string(), message.queue_offset.to_string()]);
    }
    Ok(())
}

/// `queryMsgByUniqueKey` options.
#[derive(Debug, Args)]
pub(super) struct QueryMsgByUniqueKey {
    /// Message Id (the client's unique key)
    #[arg(short = 'i', long = "msgId")]
    msg_id: String,
    /// The name of topic
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// consumer group name (not supported)
    #[arg(short = 'g', long = "consumerGroup")]
    consumer_group: Option<String>,
    /// The consumer's client id (not supported)
    #[arg(short = 'd', long = "clientId")]
    client_id: Option<String>,
    /// Print all message, the limit is 32
    #[arg(short = 'a', long = "showAll")]
    show_all: bool,
    /// cluster name or lmq parent topic (accepted)
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

pub(super) async fn query_by_unique_key(ctx: &Ctx, args: QueryMsgByUniqueKey) -> Result<()> {
    refuse_push(args.consumer_group.as_ref(), args.client_id.as_ref())?;
    let found = call(
        ctx.admin.query_messages_by_unique_key(&args.topic, &args.msg_id, UNIQUE_KEY_MAX),
        format!("QUERY_MESSAGE (12) of unique key {} in {}", args.msg_id, args.topic),
    )
    .await?;
    if found.is_empty() {
        bail!("no message of {} has unique key {}", args.topic, args.msg_id);
    }
    let shown = if args.show_all { found.len() } else { 1 };
    for message in found.iter().take(shown) {
        print_message(message, None, false)?;
        print_track(ctx, message).await;
        println!();
    }
    Ok(())
}

/// `queryMsgByOffset` options.
#[derive(Debug, Args)]
pub(super) struct QueryMsgByOffset {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Broker Name
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
    /// Queue Id
    #[arg(short = 'i', long = "queueId")]
    queue_id: i32,
    /// Queue Offset
    #[arg(short = 'o', long = "offset")]
    offset: i64,
    /// print message body by the specified format (UTF-8)
    #[arg(short = 'f', long = "bodyFormat")]
    body_format: Option<String>,
}

pub(super) async fn query_by_offset(ctx: &Ctx, args: QueryMsgByOffset) -> Result<()> {
    let queue = MessageQueue::new(&args.topic, &args.broker_name, args.queue_id);
    let pulled = inspect::pull(&ctx.admin, TOOLS_CONSUMER_GROUP, &queue, "*", args.offset, 1).await?;
    if let Some(message) = pulled.messages.first().filter(|_| pulled.status == PulledStatus::Found) {
        print_message(message, Some(&message.offset_msg_id()), args.body_format.is_some())?;
    }
    Ok(())
}

/// `printMsg` options.
#[derive(Debug, Args)]
pub(super) struct PrintMsg {
    /// topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// CharsetName(eg: UTF-8,GBK); bodies are read as UTF-8
    #[arg(short = 'c', long = "charsetName", default_value = "UTF-8")]
    charset_name: String,
    /// subExpression (tags, eg: TagA || TagB)
    #[arg(short = 's', long = "subExpression", default_value = "*")]
    sub_expression: String,
    /// Begin timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
    #[arg(short = 'b', long = "beginTimestamp")]
    begin_timestamp: Option<String>,
    /// End timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
    #[arg(short = 'e', long = "endTimestamp")]
    end_timestamp: Option<String>,
    /// print body
    #[arg(short = 'd', long = "printBody", value_parser = parse_bool)]
    print_body: Option<bool>,
    /// lmq parent topic (not supported)
    #[arg(short = 'l', long = "lmqParentTopic")]
    lmq_parent_topic: Option<String>,
}

/// Optional time option as epoch milliseconds.
fn time_option(text: Option<&String>) -> Result<Option<i64>> {
    text.map(|text| parse_time_ms(text).map_err(anyhow::Error::msg)).transpose()
}

/// Java `MessageQueue.toString()`.
fn queue_text(queue: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        queue.topic, queue.broker_name, queue.queue_id
    )
}

/// Reads and prints `queue` from `from` up to `to` (exclusive) or `limit` messages, whichever
/// comes first; returns how many were printed, the last status and the next offset.
async fn print_queue(
    ctx: &Ctx,
    group: &str,
    queue: &MessageQueue,
    expression: &str,
    range: (i64, i64),
    limit: usize,
    print_body: bool,
) -> Result<(usize, PulledStatus, i64)> {
    let read = read_queue(&ctx.admin, group, queue, expression, range, limit, |message| {
        print_message_line(message, print_body)
    })
    .await?;
    Ok((read.visited, read.status, read.next_offset))
}

pub(super) async fn print_msg(ctx: &Ctx, args: PrintMsg) -> Result<()> {
    if args.lmq_parent_topic.is_some() {
        bail!("-l/--lmqParentTopic is not supported by apogee admin");
    }
    if !args.charset_name.eq_ignore_ascii_case("UTF-8") && !args.charset_name.eq_ignore_ascii_case("UTF8") {
        eprintln!("note: bodies are shown as UTF-8, not {}", args.charset_name);
    }
    let begin = time_option(args.begin_timestamp.as_ref())?;
    let end = time_option(args.end_timestamp.as_ref())?;
    let print_body = args.print_body.unwrap_or(true);
    let queues =
        call(ctx.admin.read_queues(&args.topic), format!("GET_ROUTEINFO_BY_TOPIC (105) of {}", args.topic))
            .await?;
    let mut progress = Progress::new("printMsg queues", queues.len());
    for (index, queue) in queues.iter().enumerate() {
        let (min, max) = offset_range(&ctx.admin, queue, begin, end).await?;
        println!("minOffset={min}, maxOffset={max}, {}", queue_text(queue));
        let (_, status, offset) = print_queue(
            ctx,
            TOOLS_CONSUMER_GROUP,
            queue,
            &args.sub_expression,
            (min, max),
            usize::MAX,
            print_body,
        )
        .await?;
        println!("{} print msg finished. status={}, offset={offset}", queue_text(queue), status.java_name());
        println!("--------------------------------------------------------");
        progress.step(index + 1, &queue_text(queue));
    }
    Ok(())
}

/// `sendMessage` options.
#[derive(Debug, Args)]
pub(super) struct SendMessage {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// UTF-8 string format of the message body
    #[arg(short = 'p', long = "body")]
    body: String,
    /// Message keys
    #[arg(short = 'k', long = "key")]
    key: Option<String>,
    /// Message tags
    #[arg(short = 'c', long = "tags")]
    tags: Option<String>,
    /// Send message to target broker (name); needs -i
    #[arg(short = 'b', long = "broker", requires = "qid")]
    broker: Option<String>,
    /// Send message to target queue; needs -b
    #[arg(short = 'i', long = "qid", requires = "broker")]
    qid: Option<i32>,
    /// Message Trace Enable, Default: false (not supported)
    #[arg(short = 'm', long = "msgTraceEnable", value_parser = parse_bool)]
    msg_trace_enable: Option<bool>,
}

/// Send timeout of sendMessage (Java's producer default).
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn send_message(ctx: &Ctx, args: SendMessage) -> Result<()> {
    if args.msg_trace_enable == Some(true) {
        bail!("-m/--msgTraceEnable true is not supported by apogee admin");
    }
    let mut message = Message::new(args.topic.as_str(), bytes::Bytes::from(args.body.clone().into_bytes()));
    if let Some(tags) = &args.tags {
        message.set_tags(tags.as_str());
    }
    if let Some(keys) = &args.key {
        message.set_keys(keys.split(' ').filter(|key| !key.is_empty()));
    }
    let producer = Producer::builder()
        .namesrv(ctx.namesrv.clone())
        .instance_name(apogee_common::time::now_ms().to_string())
        .group(apogee_common::time::now_ms().to_string())
        .send_timeout(SEND_TIMEOUT)
        .start()
        .await
        .map_err(|error| {
            anyhow!("starting a producer on NameServer {}: {}", ctx.namesrv, describe(&error))
        })?;
    let sent = match (&args.broker, args.qid) {
        (Some(broker), Some(qid)) => {
            producer.send_to_queue(message, MessageQueue::new(&args.topic, broker, qid)).await
        }
        _ => producer.send(message).await,
    };
    producer.shutdown().await;
    let table = Table::start(&[("#Broker Name", 32), ("#QID", 4), ("#Send Result", 20), ("#MsgId", 0)]);
    match sent {
        Ok(result) => {
            let status = match result.status {
                apogee_client::SendStatus::SendOk => "SEND_OK",
                apogee_client::SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
                apogee_client::SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
                apogee_client::SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
            };
            table.row(&[
                result.queue.broker_name.clone(),
                result.queue.queue_id.to_string(),
                status.to_owned(),
                result.msg_id.clone(),
            ]);
            Ok(())
        }
        Err(error) => {
            table.row(&["Unknown", "Unknown", "Failed", "None"]);
            bail!("SEND_MESSAGE_V2 (310) to {} failed: {}", args.topic, describe(&error))
        }
    }
}

/// `consumeMessage` options.
#[derive(Debug, Args)]
pub(super) struct ConsumeMessage {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Broker name
    #[arg(short = 'b', long = "brokerName")]
    broker_name: Option<String>,
    /// Queue Id; needs -b
    #[arg(short = 'i', long = "queueId", requires = "broker_name")]
    queue_id: Option<i32>,
    /// Queue offset; needs -b and -i
    #[arg(short = 'o', long = "offset", requires = "queue_id")]
    offset: Option<i64>,
    /// Consumer group name
    #[arg(short = 'g', long = "consumerGroup", default_value = TOOLS_CONSUMER_GROUP)]
    consumer_group: String,
    /// Begin timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
    #[arg(short = 's', long = "beginTimestamp")]
    begin_timestamp: Option<String>,
    /// End timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
    #[arg(short = 'e', long = "endTimestamp")]
    end_timestamp: Option<String>,
    /// Number of messages to be consumed
    #[arg(short = 'c', long = "MessageNumber", default_value_t = 128)]
    message_number: u64,
}

pub(super) async fn consume_message(ctx: &Ctx, args: ConsumeMessage) -> Result<()> {
    let begin = time_option(args.begin_timestamp.as_ref())?;
    let end = time_option(args.end_timestamp.as_ref())?;
    let limit = usize::try_from(args.message_number).unwrap_or(usize::MAX);
    let queues: Vec<MessageQueue> = match (&args.broker_name, args.queue_id) {
        (Some(broker), Some(queue_id)) => vec![MessageQueue::new(&args.topic, broker, queue_id)],
        (Some(broker), None) => {
            let all = call(
                ctx.admin.read_queues(&args.topic),
                format!("GET_ROUTEINFO_BY_TOPIC (105) of {}", args.topic),
            )
            .await?;
            all.into_iter().filter(|queue| &queue.broker_name == broker).collect()
        }
        _ => {
            call(
                ctx.admin.read_queues(&args.topic),
                format!("GET_ROUTEINFO_BY_TOPIC (105) of {}", args.topic),
            )
            .await?
        }
    };
    if queues.is_empty() {
        bail!("topic {} has no readable queue there", args.topic);
    }
    let mut consumed = 0;
    let mut progress = Progress::new("consumeMessage queues", queues.len());
    for (index, queue) in queues.iter().enumerate() {
        if consumed >= limit {
            break;
        }
        let (min, max) = offset_range(&ctx.admin, queue, begin, end).await?;
        // Not `clamp`: a begin time after the end time gives min > max (then nothing is read).
        let from = args.offset.map_or(min, |offset| offset.min(max).max(min));
        if args.offset.is_some_and(|offset| offset < min || offset > max) {
            println!(
                "The offset {} is outside [{min}, {max}] of {}; reading from {from}",
                args.offset.unwrap_or_default(),
                queue_text(queue)
            );
        }
        let (printed, _, _) =
            print_queue(ctx, &args.consumer_group, queue, "*", (from, max), limit - consumed, true).await?;
        consumed += printed;
        progress.step(index + 1, &format!("{} ({consumed} messages)", queue_text(queue)));
    }
    println!("Consume ok, {consumed} messages");
    Ok(())
}
