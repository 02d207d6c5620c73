//! `apogee standalone` for the tests that run the real binary, and running its commands
//! with a time limit.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any one child process may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// `apogee standalone` on free loopback ports; killed (SIGTERM) when dropped.
pub struct Standalone {
    child: Child,
    /// The NameServer's address.
    pub namesrv: String,
    _data: tempfile::TempDir,
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
        let namesrv_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let namesrv = SocketAddr::from(([127, 0, 0, 1], namesrv_port)).to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_apogee"))
            .args(["standalone", "--data-dir"])
            .arg(data.path())
            .args(["--namesrv-listen", &namesrv, "--broker-port", &free_port_pair().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
        Self { child, namesrv, _data: data }
    }
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
