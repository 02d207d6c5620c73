//! A concurrent push consumer that prints what it receives until Ctrl-C.
//!
//! ```text
//! cargo run -p apogee-client --example push_consumer -- [namesrv] [topic] [group] [expression]
//! ```
//!
//! Defaults: `$NAMESRV_ADDR` or `127.0.0.1:9876`, `TopicTest`, `example-push-group`, `*`.

mod common;

use apogee_client::{ConsumeResult, MessageExt, PushConsumer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, topic, group, mut args) = common::consumer_args("TopicTest", "example-push-group");
    let expression = common::arg_or(&mut args, "*");

    let consumer = PushConsumer::builder()
        .group(group)
        .namesrv(namesrv)
        .subscribe(topic, expression)
        .consume_batch_max_size(8)
        .start(|messages: Vec<MessageExt>| async move {
            for message in &messages {
                println!(
                    "{} queue={} offset={} tags={} reconsumed={} body={}",
                    message.msg_id(),
                    message.queue_id,
                    message.queue_offset,
                    message.message.tags().unwrap_or("-"),
                    message.reconsume_times,
                    String::from_utf8_lossy(&message.message.body),
                );
            }
            ConsumeResult::Success
        })
        .await?;
    common::consume_until_ctrl_c(consumer, "").await
}
