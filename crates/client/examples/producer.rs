//! Sends messages with tags, keys and a user property, one synchronous send each.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example producer -- [TOPIC] [COUNT]
//! ```
//!
//! TOPIC defaults to `TopicTest`, COUNT to 10. Prints one line per send; exits non-zero if any
//! send failed.

mod common;

use std::process::ExitCode;

/// Producer group of this example.
const GROUP: &str = "example_producer_group";

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
    for index in 0..count {
        let message = common::example_message(&topic, format!("Hello Apogee {index}"), index);
        match producer.send(message).await {
            Ok(result) => println!(
                "SendResult [status={:?}, msgId={}, offsetMsgId={}, queue={}:{}:{}, queueOffset={}]",
                result.status,
                result.msg_id,
                result.offset_msg_id,
                result.queue.topic,
                result.queue.broker_name,
                result.queue.queue_id,
                result.queue_offset
            ),
            Err(error) => {
                failures += 1;
                println!("SendFailed [index={index}, error={error}]");
            }
        }
    }
    producer.shutdown().await;
    common::exit_code(failures, || format!("{failures} of {count} sends failed"))
}
