//! Receives a topic's messages with the simple (POP) consumer, acknowledging each one.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example simple_consumer -- <topic> <count> [group]
//! ```
//!
//! Subscribes to every tag of `<topic>` (a new group starts at each queue's first message),
//! receives until `<count>` distinct messages were acknowledged or 30 s passed, printing one
//! line per delivery — `reconsumeTimes queueId queueOffset msgId body` — and exits 0 if it
//! acknowledged `<count>` distinct messages. A message whose ack fails comes back after the
//! invisible duration (15 s here), with one more reconsume time.

mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apogee_client::consumer::simple::ConsumeFromWhere;
use apogee_client::{FilterExpression, SimpleConsumer};

/// How long the example receives at most.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long one receive waits for a message.
const AWAIT: Duration = Duration::from_secs(2);
/// How long received messages stay invisible to the rest of the group.
const INVISIBLE: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> ExitCode {
    let (topic, count, group) = match common::topic_count_group("simple_consumer", "simple_consumer_example")
    {
        Ok(args) => args,
        Err(code) => return code,
    };
    let consumer = match common::started(
        SimpleConsumer::builder()
            .group(group)
            .namesrv(common::namesrv_from_env())
            .subscribe(&topic, FilterExpression::tag("*"))
            .await_duration(AWAIT)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .start()
            .await,
    ) {
        Ok(consumer) => consumer,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut acked = HashSet::new();
    while acked.len() < count && started.elapsed() < RUN_LIMIT {
        let received = match consumer.receive(16, INVISIBLE).await {
            Ok(received) => received,
            Err(error) => {
                eprintln!("receive failed: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in received {
            let ext = message.message();
            println!(
                "{} {} {} {} {}",
                message.reconsume_times(),
                ext.queue_id,
                ext.queue_offset,
                ext.msg_id(),
                String::from_utf8_lossy(&ext.message.body)
            );
            match consumer.ack(&message).await {
                Ok(()) => {
                    acked.insert(ext.msg_id().to_string());
                }
                Err(error) => eprintln!("ack failed (the message comes back later): {error}"),
            }
        }
    }
    consumer.shutdown().await;
    if acked.len() >= count {
        ExitCode::SUCCESS
    } else {
        eprintln!("acknowledged {} of {count} messages in {RUN_LIMIT:?}", acked.len());
        ExitCode::FAILURE
    }
}
