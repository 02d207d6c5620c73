//! `apogee bench` against the real `apogee standalone`: what it reports having sent is what
//! the broker stored, and what it consumes is all of it.

mod standalone;

use std::process::Command;

use serde_json::Value;
use standalone::run;

/// Runs `apogee bench ARGS` against `namesrv` and returns its JSON summary line.
fn bench(namesrv: &str, args: &[&str]) -> Value {
    bench_with_output(namesrv, args).0
}

/// [`bench`], and everything it printed.
fn bench_with_output(namesrv: &str, args: &[&str]) -> (Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apogee"));
    command.arg("bench").args(args).args(["-n", namesrv, "--quiet"]);
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line =
        stdout.lines().find(|line| line.contains("\"kind\":\"apogee-bench\"")).expect("a JSON summary line");
    let summary: Value = serde_json::from_str(line).unwrap();
    assert_eq!(summary["errors"], serde_json::json!({}), "bench {args:?} reported errors");
    (summary, stdout.into_owned())
}

fn messages(summary: &Value) -> u64 {
    summary["messages"].as_u64().expect("a message count")
}

#[test]
fn every_message_the_bench_sends_is_stored_and_consumed() {
    let standalone = standalone::start();
    let namesrv = standalone.namesrv_addr();
    let single =
        bench(namesrv, &["produce", "-t", "BenchCheck", "-s", "64", "-c", "3", "-i", "8", "-d", "1s"]);
    let batched = bench(
        namesrv,
        &["produce", "-t", "BenchCheck", "-s", "64", "-c", "2", "-i", "2", "-b", "5", "-d", "1s"],
    );
    let sent = messages(&single) + messages(&batched);
    assert!(messages(&single) > 0 && messages(&batched) > 0);
    assert_eq!(messages(&batched) % 5, 0, "whole batches");
    let consumed = bench(namesrv, &["consume", "-t", "BenchCheck", "--until-drained", "-d", "60s"]);
    assert_eq!(messages(&consumed), sent, "consumed exactly what was acknowledged");
    // POP groups, each acking what it pops: each gets every message once too.
    for (group, ack) in [("bench-pop-batch", "batch"), ("bench-pop-single", "single")] {
        let popped = bench(
            namesrv,
            &["pop", "-t", "BenchCheck", "-g", group, "--ack", ack, "--until-drained", "-d", "60s"],
        );
        assert_eq!(messages(&popped), sent, "{group} popped and acked exactly what was stored");
    }
}

#[test]
fn grpc_send_and_receive_account_for_every_message() {
    let standalone = standalone::start();
    let namesrv = standalone.namesrv_addr();
    let grpc = standalone.grpc_addr();
    let sent = bench(
        namesrv,
        &[
            "grpc-send",
            "--grpc",
            grpc,
            "-t",
            "BenchGrpc",
            "-s",
            "64",
            "-c",
            "2",
            "-i",
            "2",
            "-b",
            "2",
            "-d",
            "300ms",
        ],
    );
    assert!(messages(&sent) > 0);
    assert_eq!(messages(&sent) % 2, 0, "whole batches");
    for figure in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(sent[figure].as_f64().is_some_and(|ms| ms > 0.0), "{figure} in {sent}");
    }
    // Stored: what grpc-send counted, and the one send it makes before the clock starts.
    let stored = messages(&sent) + 1;
    let consumed = bench(namesrv, &["consume", "-t", "BenchGrpc", "--until-drained", "-d", "60s"]);
    assert_eq!(messages(&consumed), stored, "pulled exactly what was sent over gRPC");
    // New groups read from the first message, each receiving and acking every message once.
    for (group, ack) in [("bench-grpc-batch", "batch"), ("bench-grpc-single", "single")] {
        let args = ["grpc-receive", "--grpc", grpc, "-t", "BenchGrpc", "-g", group, "--ack", ack];
        let received =
            bench(namesrv, &[&args[..], &["--receive-batch", "16", "--until-drained", "-d", "60s"]].concat());
        assert_eq!(messages(&received), stored, "{group} received and acked exactly what was stored");
        // Everything was acked: the group's next run finds nothing.
        let again = bench(namesrv, &[&args[..], &["--until-drained", "-d", "60s"]].concat());
        assert_eq!(messages(&again), 0, "{group} received acked messages again");
    }
}

#[test]
fn a_fixed_rate_sends_one_message_per_due_time() {
    let standalone = standalone::start();
    let namesrv = standalone.namesrv_addr();
    // 500/s for 2 s: requests fall due every 2 ms, 1000 of them before the deadline.
    let paced =
        bench(namesrv, &["produce", "-t", "BenchPaced", "-c", "2", "-i", "4", "-r", "500", "-d", "2s"]);
    assert!((999..=1001).contains(&messages(&paced)), "sent {}", messages(&paced));
}

#[test]
fn e2e_consumes_every_message_it_stamped() {
    let standalone = standalone::start();
    let namesrv = standalone.namesrv_addr();
    let (summary, stdout) = bench_with_output(
        namesrv,
        &["e2e", "-t", "BenchE2e", "-s", "32", "-c", "2", "-i", "4", "-r", "1000", "-d", "1s"],
    );
    let sent: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("sent ")?.strip_suffix(" messages")?.parse().ok())
        .expect("a sent line");
    assert!(sent > 0);
    assert_eq!(summary["messages"].as_u64(), Some(sent), "every stamped message arrived");
    // Produce-to-consume latency comes from the stamp: a garbled stamp reads as years.
    assert!(summary["max_ms"].as_f64().unwrap() < 60_000.0, "{summary}");
}

#[test]
fn messages_acknowledged_before_a_kill_9_are_consumed_after_a_restart() {
    let mut standalone = standalone::start();
    let sent =
        bench(standalone.namesrv_addr(), &["produce", "-t", "BenchCrash", "-s", "64", "-c", "2", "-d", "1s"]);
    assert!(messages(&sent) > 0);
    standalone.kill_9();
    standalone.restart();
    let consumed =
        bench(standalone.namesrv_addr(), &["consume", "-t", "BenchCrash", "--until-drained", "-d", "60s"]);
    assert_eq!(messages(&consumed), messages(&sent), "{}", standalone.log());
}
