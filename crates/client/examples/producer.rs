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

use common::ProducerRun;

/// Producer group of this example.
const GROUP: &str = "example_producer_group";

#[tokio::main]
async fn main() -> ExitCode {
    let mut run = match ProducerRun::start(GROUP).await {
        Ok(run) => run,
        Err(code) => return code,
    };
    for index in 0..run.count {
        let message = common::example_message(&run.topic, format!("Hello Apogee {index}"), index);
        match run.producer.send(message).await {
            Ok(result) => println!(
                "SendResult [status={:?}, msgId={}, offsetMsgId={}, queue={}, queueOffset={}]",
                result.status,
                result.msg_id,
                result.offset_msg_id,
                common::queue_text(&result.queue),
                result.queue_offset
            ),
            Err(error) => run.failed(format!("SendFailed [index={index}, error={error}]")),
        }
    }
    run.finish(|run| format!("{} of {} sends failed", run.failures, run.count)).await
}
