//! What the examples share: where the NameServer is, how arguments are read, the message the
//! producers send and how a run's failures become its exit code.
//!
//! Every example includes this module and uses a part of it.
#![allow(dead_code)]

use std::process::ExitCode;

use apogee_client::{Message, Producer};

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

/// Starts a producer of `group` on the NameServer of `NAMESRV_ADDR`.
pub async fn start_producer(group: &str) -> Result<Producer, ExitCode> {
    Producer::builder().group(group).namesrv(namesrv_from_env()).start().await.map_err(|error| {
        eprintln!("cannot start the producer: {error}");
        ExitCode::FAILURE
    })
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
