//! Sends messages in batches (one SEND_BATCH_MESSAGE request per batch), each message with
//! tags, keys and a user property.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example batch_producer -- [TOPIC] [COUNT]
//! ```
//!
//! TOPIC defaults to `TopicTest`, COUNT (messages in all) to 10. Prints one line per batch;
//! exits non-zero if any batch failed.

mod common;

use std::process::ExitCode;

use apogee_client::Message;

/// Producer group of this example.
const GROUP: &str = "example_batch_producer_group";

/// Most messages in one batch; small bodies keep every batch far below the 4 MiB limit.
const MESSAGES_PER_BATCH: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let (topic, count) = match common::topic_and_count() {
        Ok(arguments) => arguments,
        Err(code) => return code,
    };
    let producer = match common::start_producer(GROUP).await {
        Ok(producer) => producer,
        Err(code) => return code,
    };
    let mut failures = 0usize;
    let mut next = 0usize;
    while next < count {
        let end = count.min(next + MESSAGES_PER_BATCH);
        let batch: Vec<Message> = (next..end)
            .map(|index| common::example_message(&topic, format!("Hello Apogee batch {index}"), index))
            .collect();
        match producer.send_batch(batch).await {
            Ok(result) => println!(
                "SendResult [status={:?}, messages={}, msgIds={}, queue={}:{}:{}, queueOffset={}]",
                result.status,
                end - next,
                result.msg_id,
                result.queue.topic,
                result.queue.broker_name,
                result.queue.queue_id,
                result.queue_offset
            ),
            Err(error) => {
                failures += 1;
                println!("SendFailed [messages={next}..{end}, error={error}]");
            }
        }
        next = end;
    }
    producer.shutdown().await;
    common::exit_code(failures, || format!("{failures} batches failed"))
}
