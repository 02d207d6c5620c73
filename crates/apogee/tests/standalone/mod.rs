//! `apogee standalone` for the tests that run the real binary, and running its commands
//! with a time limit.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any one child process may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// `apogee standalone` on free loopback ports; killed (SIGTERM) when dropped.
pub struct Standalone {
    child: Child,
    /// The NameServer's address.
    pub namesrv: String,
    broker_port: u16,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    _data: Option<tempfile::TempDir>,
}

/// A port P with P and P − 2 free (the broker listens on both).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port > 1026
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port - 2)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair");
}

impl Standalone {
    /// Starts one on a fresh data directory; returns once the broker listens.
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut standalone = Self::start_on(data.path(), None);
        standalone._data = Some(data);
        standalone
    }

    /// Starts one on `data_dir` (kept when it stops), with an optional broker.conf.
    pub fn start_on(data_dir: &Path, config_file: Option<&Path>) -> Self {
        let namesrv_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let namesrv = SocketAddr::from(([127, 0, 0, 1], namesrv_port)).to_string();
        let broker_port = free_port_pair();
        let child = spawn_standalone(data_dir, config_file, &namesrv, broker_port);
        Self {
            child,
            namesrv,
            broker_port,
            data_dir: data_dir.to_path_buf(),
            config_file: config_file.map(Path::to_path_buf),
            _data: None,
        }
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts the process again on the same data and ports (after [`Self::kill_9`]).
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "restart of a running standalone");
        self.child =
            spawn_standalone(&self.data_dir, self.config_file.as_deref(), &self.namesrv, self.broker_port);
    }
}

/// Spawns `apogee standalone` and returns once its broker listens.
fn spawn_standalone(data_dir: &Path, config_file: Option<&Path>, namesrv: &str, broker_port: u16) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apogee"));
    command.args(["standalone", "--data-dir"]).arg(data_dir).args([
        "--namesrv-listen",
        namesrv,
        "--broker-port",
        &broker_port.to_string(),
    ]);
    if let Some(config_file) = config_file {
        command.arg("-c").arg(config_file);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "standalone did not start");
        match lines.next() {
            Some(Ok(line)) if line.contains("broker listening") => break,
            Some(_) => {}
            None => panic!("standalone exited during start"),
        }
    }
    child
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to completion within [`CHILD_TIMEOUT`].
pub fn run(mut command: Command) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning a child");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            panic!("{command:?} ran longer than {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
