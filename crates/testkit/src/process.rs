//! The real `apogee` binary as a child process, for whole-system tests: started on port 0,
//! waited for through its `--ports-file`, killed with SIGKILL and restarted on the same data.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Longest a start waits for the ports file.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Longest a graceful stop (SIGTERM) waits before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Pause between two looks at a child.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// Name of the ports file inside the process directory.
const PORTS_FILE: &str = "ports.json";
/// Name of the file that receives the child's stdout and stderr.
const LOG_FILE: &str = "apogee.log";

/// The `apogee` binary of this build: from `CARGO_BIN_EXE_apogee` when the test was built
/// with it, else beside the test executable's `deps` directory (`target/<profile>/apogee`).
/// Tests of the `apogee` crate pass `env!("CARGO_BIN_EXE_apogee")` instead, which is exact.
pub fn apogee_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_apogee") {
        return PathBuf::from(path);
    }
    let test_exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_exe.parent().and_then(Path::parent).expect("a target/<profile>/deps layout");
    profile_dir.join("apogee")
}

/// `standalone` with every listener on a free loopback port, then `extra` (a config file, say).
pub fn standalone_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["standalone", "--namesrv-listen", "127.0.0.1:0", "--broker-port", "0", "--grpc-port", "0"];
    args.extend_from_slice(extra);
    args
}

/// The addresses a child reported in its ports file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundAddrs {
    /// The NameServer's `ip:port` (`apogee standalone`, `apogee namesrv`).
    pub namesrv: Option<String>,
    /// The broker's `ip:port` (`apogee standalone`, `apogee broker`).
    pub broker: Option<String>,
    /// The gRPC endpoint's `ip:port` (`apogee standalone`, `apogee broker`).
    pub grpc: Option<String>,
    /// The Prometheus endpoint's `ip:port`, when metrics are exported.
    pub metrics: Option<String>,
    /// The web dashboard's `ip:port` (`apogee standalone`, `apogee dashboard`).
    pub dashboard: Option<String>,
    /// The controller's `ip:port` (`apogee controller`).
    pub controller: Option<String>,
}

impl BoundAddrs {
    /// Reads a complete ports file; `None` while it is not there (it is renamed into place
    /// whole, so a file that exists is complete).
    fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        let field = |key: &str| json.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
        Some(Self {
            namesrv: field("namesrv"),
            broker: field("broker"),
            grpc: field("grpc"),
            metrics: field("metrics"),
            dashboard: field("dashboard"),
            controller: field("controller"),
        })
    }
}

/// One `apogee` child process (a command such as `standalone` with its arguments) over a data
/// directory that outlives restarts. Every listener is on port 0; the child is killed when
/// this is dropped.
#[derive(Debug)]
pub struct ApogeeProcess {
    binary: PathBuf,
    args: Vec<String>,
    // Holds the data, the ports file and the log; removed on drop, after the child is gone.
    dir: TempDir,
    /// Where the data lives when not under `dir` (a volume a test mounted, say).
    data_dir: Option<PathBuf>,
    child: Option<Child>,
    addrs: BoundAddrs,
}

impl ApogeeProcess {
    /// `apogee standalone` (NameServer and broker) on free loopback ports over a fresh data
    /// directory; returns once both serve.
    pub fn standalone(binary: impl Into<PathBuf>) -> Self {
        Self::start(binary, &standalone_args(&[]))
    }

    /// `apogee` with `args` (`standalone`, `namesrv`, `broker` or `dashboard` and its options, the ports
    /// on 0); the data directory and `--ports-file` are added. Returns once the ports file is written.
    pub fn start(binary: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self::start_with_data(binary, args, None)
    }

    /// [`Self::start`] with the data in `data_dir`, which the caller owns (a small volume a
    /// test mounted, for example); the ports file and the log stay in a temporary directory.
    pub fn start_on(binary: impl Into<PathBuf>, args: &[&str], data_dir: &Path) -> Self {
        Self::start_with_data(binary, args, Some(data_dir.to_path_buf()))
    }

    fn start_with_data(binary: impl Into<PathBuf>, args: &[&str], data_dir: Option<PathBuf>) -> Self {
        let dir = crate::data_dir();
        let mut process = Self {
            binary: binary.into(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            dir,
            data_dir,
            child: None,
            addrs: BoundAddrs::default(),
        };
        process.spawn();
        process
    }

    /// True while the child runs (false once it exited or was killed).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The NameServer address the child reported.
    pub fn namesrv_addr(&self) -> &str {
        self.addrs.namesrv.as_deref().expect("the process runs a name server")
    }

    /// The broker address the child reported.
    pub fn broker_addr(&self) -> &str {
        self.addrs.broker.as_deref().expect("the process runs a broker")
    }

    /// The gRPC endpoint address the child reported.
    pub fn grpc_addr(&self) -> &str {
        self.addrs.grpc.as_deref().expect("the process runs a gRPC endpoint")
    }

    /// The controller address the child reported.
    pub fn controller_addr(&self) -> &str {
        self.addrs.controller.as_deref().expect("the process runs a controller")
    }

    /// The Prometheus endpoint address the child reported; `None` unless it exports metrics
    /// (`metricsExporterType=PROM`).
    pub fn metrics_addr(&self) -> Option<&str> {
        self.addrs.metrics.as_deref()
    }

    /// The web dashboard's address the child reported; `None` for commands without one.
    pub fn dashboard_addr(&self) -> Option<&str> {
        self.addrs.dashboard.as_deref()
    }

    /// The data directory (`--data-dir`), kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// What the child wrote to stdout and stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// Kills the child with SIGKILL (no flush, no unregistering) and waits for it to end.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the child with SIGTERM (a clean shutdown), SIGKILL if it takes longer than
    /// [`STOP_LIMIT`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL_PAUSE);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the same command again on the same data directory (killing the child first if
    /// it still runs). The ports are new ones: read the addresses again afterwards.
    pub fn restart(&mut self) {
        self.kill_9();
        self.spawn();
    }

    /// Spawns the child and waits, at most [`START_LIMIT`], for its ports file.
    fn spawn(&mut self) {
        let ports_file = self.dir.path().join(PORTS_FILE);
        let _ = std::fs::remove_file(&ports_file);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(LOG_FILE))
            .expect("the process log file");
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .args(dashboard_port_args(&self.args))
            .args(data_dir_args(self.args.first().map(String::as_str), &self.data_dir()))
            .arg("--ports-file")
            .arg(&ports_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the process log file"))
            .stderr(log);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("{} does not start: {error}", self.binary.display()),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(addrs) = BoundAddrs::read(&ports_file) {
                self.addrs = addrs;
                return;
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("apogee {:?} exited during start ({status}):\n{}", self.args, self.log());
            }
            if Instant::now() >= deadline {
                self.kill_9();
                panic!("apogee {:?} did not serve within {START_LIMIT:?}:\n{}", self.args, self.log());
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }
}

/// `--dashboard-port 0` for a `standalone` that names no dashboard port of its own: its
/// default (8080) would be shared by every process a test suite starts at once.
fn dashboard_port_args(args: &[String]) -> Vec<&'static str> {
    let standalone = args.first().is_some_and(|command| command == "standalone");
    let chosen = args.iter().any(|arg| arg.starts_with("--dashboard-port") || arg == "--no-dashboard");
    if standalone && !chosen {
        vec!["--dashboard-port", "0"]
    } else {
        Vec::new()
    }
}

/// The options that put a command's data under `data_dir`: each server command names its
/// own (`standalone --data-dir`, `broker --store-dir`, `namesrv --kv-config-path`; none for
/// `dashboard`).
fn data_dir_args(command: Option<&str>, data_dir: &Path) -> Vec<std::ffi::OsString> {
    let (option, path) = match command {
        // The dashboard keeps no data.
        Some("dashboard") => return Vec::new(),
        Some("broker") => ("--store-dir", data_dir.to_path_buf()),
        Some("namesrv") => ("--kv-config-path", data_dir.join("kvConfig.json")),
        _ => ("--data-dir", data_dir.to_path_buf()),
    };
    vec![option.into(), path.into_os_string()]
}

impl Drop for ApogeeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `command` to completion, capturing its output; kills it and fails the test if it runs
/// longer than `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning a child");
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("the child's output"),
            Ok(None) => {}
            Err(error) => panic!("waiting for {command:?}: {error}"),
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} ran longer than {limit:?}");
        }
        std::thread::sleep(POLL_PAUSE);
    }
}
