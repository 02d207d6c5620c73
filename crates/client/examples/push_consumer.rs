//! A concurrent push consumer that prints what it receives until Ctrl-C.
//!
//! ```text
//! cargo run -p apogee-client --example push_consumer -- [namesrv] [topic] [group] [expression]
//! ```
//!
//! Defaults: `$NAMESRV_ADDR` or `127.0.0.1:9876`, `TopicTest`, `example-push-group`, `*`.

use apogee_client::{ConsumeResult, MessageExt, PushConsumer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let namesrv = args
        .next()
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9876".to_owned());
    let topic = args.next().unwrap_or_else(|| "TopicTest".to_owned());
    let group = args.next().unwrap_or_else(|| "example-push-group".to_owned());
    let expression = args.next().unwrap_or_else(|| "*".to_owned());

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
    println!("consuming as {}; Ctrl-C to stop", consumer.client_id());
    tokio::signal::ctrl_c().await?;
    consumer.shutdown().await;
    Ok(())
}
