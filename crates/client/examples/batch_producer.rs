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
use common::ProducerRun;

/// Producer group of this example.
const GROUP: &str = "example_batch_producer_group";

/// Most messages in one batch; small bodies keep every batch far below the 4 MiB limit.
const MESSAGES_PER_BATCH: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let mut run = match ProducerRun::start(GROUP).await {
        Ok(run) => run,
        Err(code) => return code,
    };
    let mut next = 0usize;
    while next < run.count {
        let end = run.count.min(next + MESSAGES_PER_BATCH);
        let batch: Vec<Message> = (next..end)
            .map(|index| common::example_message(&run.topic, format!("Hello Apogee batch {index}"), index))
            .collect();
        match run.producer.send_batch(batch).await {
            Ok(result) => println!(
                "SendResult [status={:?}, messages={}, msgIds={}, queue={}, queueOffset={}]",
                result.status,
                end - next,
                result.msg_id,
                common::queue_text(&result.queue),
                result.queue_offset
            ),
            Err(error) => run.failed(format!("SendFailed [messages={next}..{end}, error={error}]")),
        }
        next = end;
    }
    run.finish(|run| format!("{} batches failed", run.failures)).await
}
