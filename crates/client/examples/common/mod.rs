//! What the examples share: where the NameServer is, how arguments are read, the message the
//! producers send and how a run's failures become its exit code.
//!
//! Every example includes this module and uses a part of it.
#![allow(dead_code)]

use std::process::ExitCode;

use apogee_client::{Message, MessageQueue, Producer, PushConsumer};

/// NameServer used when neither an argument nor `NAMESRV_ADDR` names one.
const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";

/// `NAMESRV_ADDR`, or the local default.
pub fn namesrv_from_env() -> String {
    std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| DEFAULT_NAMESRV.to_owned())
}

/// The next argument, else `NAMESRV_ADDR`, else the local default.
pub fn namesrv_from_args(args: &mut impl Iterator<Item = String>) -> String {
    args.next().unwrap_or_else(namesrv_from_env)
}

/// The next argument, or `default` when there is none.
pub fn arg_or(args: &mut impl Iterator<Item = String>, default: &str) -> String {
    args.next().unwrap_or_else(|| default.to_owned())
}

/// Logs as `RUST_LOG` asks.
pub fn init_logs() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
}

/// The producers' `[TOPIC] [COUNT]` arguments (defaults `TopicTest` and 10); exit code 2 when
/// COUNT is not a number.
pub fn topic_and_count() -> Result<(String, usize), ExitCode> {
    let mut args = std::env::args().skip(1);
    let topic = arg_or(&mut args, "TopicTest");
    match args.next().map(|text| text.parse()) {
        None => Ok((topic, 10)),
        Some(Ok(count)) => Ok((topic, count)),
        Some(Err(error)) => {
            eprintln!("COUNT must be a number: {error}");
            Err(ExitCode::from(2))
        }
    }
}

/// The pull-style consumers' `<topic> <count> [group]` arguments (`default_group` when no
/// group is named); exit code 2, after printing `example`'s usage, when they are off.
pub fn topic_count_group(example: &str, default_group: &str) -> Result<(String, usize, String), ExitCode> {
    let mut args = std::env::args().skip(1);
    let (Some(topic), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: {example} <topic> <count> [group]");
        return Err(ExitCode::from(2));
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("count must be a number, not {count:?}");
        return Err(ExitCode::from(2));
    };
    Ok((topic, count, arg_or(&mut args, default_group)))
}

/// The started consumer, or the failure exit code after saying why it did not start.
pub fn started<C>(consumer: Result<C, impl std::fmt::Display>) -> Result<C, ExitCode> {
    consumer.map_err(|error| {
        eprintln!("consumer did not start: {error}");
        ExitCode::FAILURE
    })
}

/// A producer example's run: what to send, the producer and the sends that failed so far.
pub struct ProducerRun {
    /// Topic sent to.
    pub topic: String,
    /// Messages to send.
    pub count: usize,
    /// The started producer.
    pub producer: Producer,
    /// Sends (or batches) that failed.
    pub failures: usize,
}

impl ProducerRun {
    /// Reads the producers' arguments and starts a producer of `group` on the NameServer of
    /// `NAMESRV_ADDR`, or says which code to exit with.
    pub async fn start(group: &str) -> Result<Self, ExitCode> {
        let (topic, count) = topic_and_count()?;
        match Producer::builder().group(group).namesrv(namesrv_from_env()).start().await {
            Ok(producer) => Ok(Self { topic, count, producer, failures: 0 }),
            Err(error) => {
                eprintln!("cannot start the producer: {error}");
                Err(ExitCode::FAILURE)
            }
        }
    }

    /// Counts a failed send and prints `report` about it.
    pub fn failed(&mut self, report: String) {
        self.failures += 1;
        println!("{report}");
    }

    /// Shuts the producer down; fails the run, printing `failed`, if any send failed.
    pub async fn finish(self, failed: impl FnOnce(&Self) -> String) -> ExitCode {
        self.producer.shutdown().await;
        exit_code(self.failures, || failed(&self))
    }
}

/// A send's queue as `topic:broker:queueId`.
pub fn queue_text(queue: &MessageQueue) -> String {
    format!("{}:{}:{}", queue.topic, queue.broker_name, queue.queue_id)
}

/// The push consumers' `[namesrv] [topic] [group]` arguments, with the given defaults; the
/// remaining arguments follow.
pub fn consumer_args(
    default_topic: &str,
    default_group: &str,
) -> (String, String, String, impl Iterator<Item = String>) {
    init_logs();
    let mut args = std::env::args().skip(1);
    let namesrv = namesrv_from_args(&mut args);
    let topic = arg_or(&mut args, default_topic);
    let group = arg_or(&mut args, default_group);
    (namesrv, topic, group, args)
}

/// Lets a push consumer run until Ctrl-C, then shuts it down.
pub async fn consume_until_ctrl_c(
    consumer: PushConsumer,
    how: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("consuming {how}as {}; Ctrl-C to stop", consumer.client_id());
    tokio::signal::ctrl_c().await?;
    consumer.shutdown().await;
    Ok(())
}

/// The producers' message number `index`: tag `TagA`, key `KEY<index>` and an `origin`
/// property.
pub fn example_message(topic: &str, body: String, index: usize) -> Message {
    Message::new(topic, body.into_bytes())
        .with_tags("TagA")
        .with_keys([format!("KEY{index}")])
        .with_property("origin", "apogee-rust-example")
}

/// Success when nothing failed; otherwise prints `failed` and fails.
pub fn exit_code(failures: usize, failed: impl FnOnce() -> String) -> ExitCode {
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", failed());
        ExitCode::FAILURE
    }
}
