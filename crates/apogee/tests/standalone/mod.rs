//! The real `apogee standalone` (from the testkit) for the tests that run the binary, and
//! running its commands with a time limit. Each test crate uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use apogee_testkit::{standalone_args, ApogeeProcess};

/// Longest an HTTP request to the binary may take.
const HTTP_LIMIT: Duration = Duration::from_secs(10);

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
    ApogeeProcess::start(env!("CARGO_BIN_EXE_apogee"), &standalone_args(&["-c", &config]))
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

/// `GET path` over HTTP/1.1 (`Connection: close`) with a time limit: the status line and the
/// body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("HTTP endpoint reachable");
    stream.set_read_timeout(Some(HTTP_LIMIT)).unwrap();
    stream.set_write_timeout(Some(HTTP_LIMIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("a whole response");
    let response = String::from_utf8(response).expect("UTF-8 text");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}
