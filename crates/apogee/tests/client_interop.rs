//! The Rust SDK end to end: its examples run against the real `apogee standalone`, and its
//! messages cross both ways with the official Apache C++ client (PyPI `rocketmq`).

mod python;
mod standalone;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use standalone::run;

/// A compiled example of apogee-client (`cargo test --workspace` builds them), to run with
/// `args` against the NameServer `namesrv`.
fn example(name: &str, namesrv: &str, args: &[&str]) -> Command {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_apogee")).parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; run the workspace's tests (cargo test --workspace)",
        path.display()
    );
    let mut command = Command::new(path);
    command.env("NAMESRV_ADDR", namesrv).args(args);
    command
}

/// The C++ client peer (tests/interop/cpp_peer.py) under the interop Python.
fn cpp_peer(mode: &str, namesrv: &str, topic: &str, count: usize) -> Command {
    let interop = python::interop_dir();
    let python = python::interpreter();
    let mut command = Command::new(python);
    command.arg(interop.join("cpp_peer.py")).args([mode, namesrv, topic, &count.to_string()]);
    command
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn rust_producer_to_cpp_push_consumer() {
    let apogee = standalone::start();
    let sent = run(example("producer", apogee.namesrv_addr(), &["RustToCpp", "20"]));
    assert!(sent.status.success(), "producer example failed: {}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(
        stdout_lines(&sent).iter().filter(|line| line.starts_with("SendResult [status=SendOk")).count(),
        20
    );

    let consumed = run(cpp_peer("consume", apogee.namesrv_addr(), "RustToCpp", 20));
    assert!(consumed.status.success(), "C++ consumer: {}", String::from_utf8_lossy(&consumed.stderr));
    // The peer prints every delivery, a redelivery too: each index exactly once.
    let mut seen = BTreeSet::new();
    for line in stdout_lines(&consumed) {
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        let index: usize = record["keys"].as_str().unwrap().trim_start_matches("KEY").parse().unwrap();
        assert_eq!(record["topic"], "RustToCpp");
        assert_eq!(record["tags"], "TagA");
        assert_eq!(record["body"], format!("Hello Apogee {index}"));
        assert_eq!(record["origin"], "apogee-rust-example");
        assert_eq!(record["id"].as_str().unwrap().len(), 32, "UNIQ_KEY ids are 32 hex characters");
        assert!(seen.insert(index), "delivered twice: {line}");
    }
    assert_eq!(seen, (0..20).collect::<BTreeSet<usize>>());
}

#[test]
fn batch_producer_then_lite_pull_consumer() {
    let apogee = standalone::start();
    let sent = run(example("batch_producer", apogee.namesrv_addr(), &["BatchTopic", "40"]));
    assert!(
        sent.status.success(),
        "batch producer example failed: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let polled = run(example("lite_pull_consumer", apogee.namesrv_addr(), &["BatchTopic", "40"]));
    assert!(polled.status.success(), "lite pull example failed: {}", String::from_utf8_lossy(&polled.stderr));
    // One line per delivery, `queueId queueOffset msgId tags body`: each of the 40 bodies
    // exactly once, with the producer's tag, and no queue offset delivered twice.
    let lines = stdout_lines(&polled);
    let mut bodies = BTreeSet::new();
    let mut positions = BTreeSet::new();
    for line in &lines {
        let fields: Vec<&str> = line.splitn(5, ' ').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert!(positions.insert((fields[0].to_owned(), fields[1].to_owned())), "delivered twice: {line}");
        assert_eq!(fields[3], "TagA", "{line}");
        assert!(bodies.insert(fields[4].to_owned()), "body delivered twice: {line}");
    }
    let expected: BTreeSet<String> = (0..40).map(|index| format!("Hello Apogee batch {index}")).collect();
    assert_eq!(bodies, expected, "{lines:?}");
}

/// Runs a long-running example until it printed `wanted` lines matching `keep` (or the
/// timeout), then stops it with SIGINT as a user would; returns the matching lines.
fn read_until(mut command: Command, keep: impl Fn(&str) -> bool, wanted: usize) -> Vec<String> {
    let mut child =
        command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawning an example");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while lines.len() < wanted && Instant::now() < deadline {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if keep(&line) => lines.push(line),
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < stop_deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// The value after `key=` in an example's output line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("{key}=")).map(|at| at + key.len() + 1).unwrap_or(line.len());
    let rest = &line[start..];
    if key == "body" {
        return rest;
    }
    rest.split(' ').next().unwrap_or("")
}

#[test]
fn cpp_producer_to_rust_push_consumer() {
    let apogee = standalone::start();
    let sent = run(cpp_peer("produce", apogee.namesrv_addr(), "CppToRust", 20));
    assert!(sent.status.success(), "C++ producer: {}", String::from_utf8_lossy(&sent.stderr));
    let lines = read_until(
        example(
            "push_consumer",
            apogee.namesrv_addr(),
            &[apogee.namesrv_addr(), "CppToRust", "rust-push-group", "TagB"],
        ),
        |line| line.contains(" queue="),
        20,
    );
    // 20 deliveries of 20 distinct bodies: each sent message once, none twice.
    let bodies: BTreeSet<String> = lines.iter().map(|line| field(line, "body").to_owned()).collect();
    let expected: BTreeSet<String> = (0..20).map(|index| format!("Hello from C++ {index}")).collect();
    assert_eq!(bodies, expected, "{lines:?}");
    for line in &lines {
        assert_eq!(field(line, "tags"), "TagB", "{line}");
        assert!(field(line, "body").starts_with("Hello from C++ "), "{line}");
        assert_eq!(line.split(' ').next().unwrap().len(), 32, "msg id is the C++ client's UNIQ_KEY: {line}");
    }
}

#[test]
fn orderly_consumer_example_keeps_queue_order() {
    let apogee = standalone::start();
    let sent = run(example("producer", apogee.namesrv_addr(), &["OrderTopicTest", "40"]));
    assert!(sent.status.success());
    let lines = read_until(
        example(
            "orderly_consumer",
            apogee.namesrv_addr(),
            &[apogee.namesrv_addr(), "OrderTopicTest", "rust-orderly-group"],
        ),
        |line| line.starts_with("queue="),
        40,
    );
    assert_eq!(lines.len(), 40, "{lines:?}");
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for line in &lines {
        let queue = field(line, "queue").to_owned();
        let offset: i64 = field(line, "offset").parse().unwrap();
        if let Some(previous) = last.insert(queue.clone(), offset) {
            assert!(offset > previous, "queue {queue} went from {previous} to {offset}");
        }
    }
}
