//! Polls a topic with the lite pull consumer and prints what arrives.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example lite_pull_consumer -- <topic> <count> [group]
//! ```
//!
//! Subscribes to every tag of `<topic>` (starting from the first message for a new group),
//! polls until `<count>` distinct messages arrived or 30 s passed, printing one line per
//! delivery (a redelivery too, so a caller can see it) — `queueId queueOffset msgId tags body`
//! — then commits and exits 0 if it got `<count>` distinct messages.

mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apogee_client::consumer::lite_pull::ConsumeFromWhere;
use apogee_client::LitePullConsumer;

/// How long the example polls at most.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// Wait of one poll.
const POLL_WAIT: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    let (topic, count, group) = match common::topic_count_group("lite_pull_consumer", "lite_pull_example") {
        Ok(args) => args,
        Err(code) => return code,
    };
    let namesrv = common::namesrv_from_env();

    let consumer = match common::started(
        LitePullConsumer::builder()
            .group(group)
            .namesrv(namesrv)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .auto_commit(false)
            .start()
            .await,
    ) {
        Ok(consumer) => consumer,
        Err(code) => return code,
    };
    if let Err(error) = consumer.subscribe(&topic, "*").await {
        eprintln!("subscribe failed: {error}");
        consumer.shutdown().await;
        return ExitCode::FAILURE;
    }

    let deadline = Instant::now() + RUN_LIMIT;
    // A message is its queue and offset: a redelivery is not counted again.
    let mut distinct: HashSet<(i32, i64)> = HashSet::new();
    while distinct.len() < count && Instant::now() < deadline {
        for message in consumer.poll(POLL_WAIT).await {
            distinct.insert((message.queue_id, message.queue_offset));
            println!(
                "{} {} {} {} {}",
                message.queue_id,
                message.queue_offset,
                message.msg_id(),
                message.message.tags().unwrap_or(""),
                String::from_utf8_lossy(&message.message.body)
            );
        }
    }
    if let Err(error) = consumer.commit_sync().await {
        eprintln!("commit failed: {error}");
    }
    consumer.shutdown().await;
    let received = distinct.len();
    let missing = count.saturating_sub(received);
    common::exit_code(missing, || {
        format!("got {received} of {count} distinct messages in {} s", RUN_LIMIT.as_secs())
    })
}
