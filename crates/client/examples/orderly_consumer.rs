//! An orderly push consumer: each queue's messages arrive one batch at a time, in queue
//! order, while this client holds the queue's broker lock. Prints until Ctrl-C.
//!
//! ```text
//! cargo run -p apogee-client --example orderly_consumer -- [namesrv] [topic] [group]
//! ```
//!
//! Defaults: `$NAMESRV_ADDR` or `127.0.0.1:9876`, `OrderTopicTest`, `example-orderly-group`.
//! A message whose body is `fail` is retried in place (the queue pauses for a second) until
//! its third delivery succeeds.

mod common;

use apogee_client::{ConsumeResult, MessageExt, PushConsumer};

/// Deliveries of a `fail` message before it is accepted.
const FAILURES_BEFORE_SUCCESS: i32 = 2;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, topic, group, _) = common::consumer_args("OrderTopicTest", "example-orderly-group");

    let consumer = PushConsumer::builder()
        .group(group)
        .namesrv(namesrv)
        .subscribe(topic, "*")
        .start_orderly(|messages: Vec<MessageExt>| async move {
            for message in &messages {
                let body = String::from_utf8_lossy(&message.message.body);
                println!(
                    "queue={} offset={} attempt={} body={body}",
                    message.queue_id,
                    message.queue_offset,
                    message.reconsume_times + 1
                );
                if body == "fail" && message.reconsume_times < FAILURES_BEFORE_SUCCESS {
                    return ConsumeResult::ReconsumeLater;
                }
            }
            ConsumeResult::Success
        })
        .await?;
    common::consume_until_ctrl_c(consumer, "in order ").await
}
