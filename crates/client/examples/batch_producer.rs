//! Sends messages in batches (one SEND_BATCH_MESSAGE request per batch), each message with
//! tags, keys and a user property.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example batch_producer -- [TOPIC] [COUNT]
//! ```
//!
//! TOPIC defaults to `TopicTest`, COUNT (messages in all) to 10. Prints one line per batch;
//! exits non-zero if any batch failed.

use std::process::ExitCode;

use apogee_client::{Message, Producer};

/// Producer group of this example.
const GROUP: &str = "example_batch_producer_group";

/// Most messages in one batch; small bodies keep every batch far below the 4 MiB limit.
const MESSAGES_PER_BATCH: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".to_owned());
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "TopicTest".to_owned());
    let count: usize = match args.next().map(|text| text.parse()) {
        None => 10,
        Some(Ok(count)) => count,
        Some(Err(error)) => {
            eprintln!("COUNT must be a number: {error}");
            return ExitCode::from(2);
        }
    };

    let producer = match Producer::builder().group(GROUP).namesrv(&namesrv).start().await {
        Ok(producer) => producer,
        Err(error) => {
            eprintln!("cannot start the producer: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut failures = 0usize;
    let mut next = 0usize;
    while next < count {
        let end = count.min(next + MESSAGES_PER_BATCH);
        let batch: Vec<Message> = (next..end)
            .map(|index| {
                Message::new(topic.as_str(), format!("Hello Apogee batch {index}").into_bytes())
                    .with_tags("TagA")
                    .with_keys([format!("KEY{index}")])
                    .with_property("origin", "apogee-rust-example")
            })
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
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} batches failed");
        ExitCode::FAILURE
    }
}
