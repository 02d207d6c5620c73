//! Sends messages with tags, keys and a user property, one synchronous send each.
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example producer -- [TOPIC] [COUNT]
//! ```
//!
//! TOPIC defaults to `TopicTest`, COUNT to 10. Prints one line per send; exits non-zero if any
//! send failed.

use std::process::ExitCode;

use apogee_client::{Message, Producer};

/// Producer group of this example.
const GROUP: &str = "example_producer_group";

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
    for index in 0..count {
        let message = Message::new(topic.as_str(), format!("Hello Apogee {index}").into_bytes())
            .with_tags("TagA")
            .with_keys([format!("KEY{index}")])
            .with_property("origin", "apogee-rust-example");
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
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} of {count} sends failed");
        ExitCode::FAILURE
    }
}
