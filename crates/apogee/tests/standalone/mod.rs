//! The real `apogee standalone` (from the testkit) for the tests that run the binary, and
//! running its commands with a time limit. Each test crate uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use apogee_testkit::ApogeeProcess;

/// Longest any one child process may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// `apogee standalone` on free loopback ports over a fresh data directory, serving when this
/// returns; stopped (SIGTERM) when dropped.
pub fn start() -> ApogeeProcess {
    ApogeeProcess::standalone(env!("CARGO_BIN_EXE_apogee"))
}

/// [`start`] with `broker_conf` (`key=value` lines) as its config file, written into
/// `config_dir`, which must outlive the process (restarts read it again).
pub fn start_configured(config_dir: &std::path::Path, broker_conf: &str) -> ApogeeProcess {
    let config = config_dir.join("broker.conf");
    std::fs::write(&config, broker_conf).expect("broker.conf written");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    ApogeeProcess::start(
        env!("CARGO_BIN_EXE_apogee"),
        &[
            "standalone",
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-port",
            "0",
            "--grpc-port",
            "0",
            "-c",
            &config,
        ],
    )
}

/// Runs `command` to completion within [`CHILD_TIMEOUT`].
pub fn run(command: Command) -> Output {
    apogee_testkit::run_bounded(command, CHILD_TIMEOUT)
}

/// A lite pull consumer of `group` reading `topic` from its first message: how the tests read
/// back what a broker stored.
pub async fn pull_consumer(
    apogee: &ApogeeProcess,
    group: &str,
    topic: &str,
) -> apogee_client::LitePullConsumer {
    let consumer = apogee_client::LitePullConsumer::builder()
        .group(group)
        .namesrv(apogee.namesrv_addr())
        .consume_from_where(apogee_client::consumer::lite_pull::ConsumeFromWhere::ConsumeFromFirstOffset)
        .start()
        .await
        .expect("consumer started");
    consumer.subscribe(topic, "*").await.expect("subscribed");
    consumer
}
