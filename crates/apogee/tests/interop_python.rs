//! Runs the Python interop suites in tests/interop against the real `apogee` binary.
//!
//! The Python peers share no code with Apogee, so these tests check the wire protocol
//! itself. The interpreter is `$APOGEE_PYTHON` when set, else the repository's `.venv` that
//! `scripts/test` makes, else `python3`.

mod python;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a suite may run before it is killed and failed.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

fn run_python_suite(script: &str) {
    run_suite_with(&python::interpreter(), script);
}

fn run_suite_with(python: &str, script: &str) {
    let interop_dir = python::interop_dir();
    let mut child = Command::new(python)
        .arg("-u")
        .arg(interop_dir.join(script))
        .arg(env!("CARGO_BIN_EXE_apogee"))
        .current_dir(&interop_dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {python}: {error}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the suite") {
            assert!(status.success(), "{script} failed: {status}");
            return;
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} ran longer than {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn namesrv_speaks_rocketmq_to_an_independent_python_peer() {
    run_python_suite("namesrv_interop.py");
}

#[test]
fn broker_serves_the_official_cpp_client() {
    run_python_suite("broker_cpp_client.py");
}

#[test]
fn broker_checks_acl_signatures_of_the_official_cpp_client() {
    run_python_suite("broker_cpp_acl.py");
}

#[test]
fn broker_serves_transactions_and_replies_to_a_raw_protocol_peer() {
    run_python_suite("broker_wire_peer.py");
}

#[test]
fn grpc_endpoint_serves_the_official_python_5x_client() {
    run_suite_with(&python::grpc_interpreter(), "grpc_python_client.py");
}

#[test]
fn grpc_endpoint_checks_acl_of_the_official_python_5x_client() {
    run_suite_with(&python::grpc_interpreter(), "grpc_python_acl.py");
}

#[test]
fn grpc_proxy_serves_the_official_python_5x_client_over_two_broker_groups() {
    run_suite_with(&python::grpc_interpreter(), "grpc_python_cluster.py");
}

#[test]
fn controller_failover_keeps_every_message_the_official_cpp_client_was_acknowledged() {
    run_python_suite("failover_cpp.py");
}
