//! The real `apogee standalone` (from the testkit) for the tests that run the binary, and
//! running its commands with a time limit.

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

/// Runs `command` to completion within [`CHILD_TIMEOUT`].
pub fn run(command: Command) -> Output {
    apogee_testkit::run_bounded(command, CHILD_TIMEOUT)
}
