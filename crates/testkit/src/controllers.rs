//! [`ControllerGroup`]: N controllers (controller mode, RIP-44) in this process, each on a
//! loopback port the system chose, with test-speed raft and liveness timings, data in a
//! temporary directory. A controller can be stopped and restarted on its address and data
//! directory, to test leader loss and recovery from disk.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use apogee_controller::{Controller, ControllerConfig};
use apogee_remoting::server::RemotingServer;
use tempfile::TempDir;

use crate::config::LOOPBACK;
use crate::data_dir::data_dir;
use crate::wait::eventually;

/// How long [`ControllerGroup::wait_leader`] waits for the controllers to agree on a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(20);

/// One controller of the group, running or stopped.
struct Member {
    config: ControllerConfig,
    running: Option<Controller>,
}

/// Controllers in this process; see the module documentation.
pub struct ControllerGroup {
    members: Vec<Member>,
    _dir: TempDir,
}

impl fmt::Debug for ControllerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerGroup").field("addrs", &self.addrs()).finish_non_exhaustive()
    }
}

/// Test-speed timings: raft heartbeats every 50 ms, elections after 300–600 ms of silence, the
/// liveness scan every 100 ms, a liveness warm-up of 1 s (brokers in tests heartbeat every
/// 100 ms or so).
pub fn controller_test_config(config: &mut ControllerConfig) {
    config.raft_heartbeat_interval_ms = 50;
    config.raft_election_timeout_min_ms = 300;
    config.raft_election_timeout_max_ms = 600;
    config.scan_not_active_broker_interval_ms = 100;
    config.scan_inactive_master_interval_ms = 100;
    config.liveness_warmup_ms = 1_000;
    config.request_timeout_ms = 5_000;
}

impl ControllerGroup {
    /// Starts `count` controllers with ids 1..=count; `configure` may change each one's
    /// settings after the test defaults ([`controller_test_config`]) are applied.
    pub async fn start(count: usize, configure: impl Fn(&mut ControllerConfig)) -> io::Result<Self> {
        let dir = data_dir();
        let mut listeners = Vec::with_capacity(count);
        for _ in 0..count {
            listeners.push(RemotingServer::bind(SocketAddr::new(LOOPBACK, 0))?);
        }
        let mut peers = std::collections::BTreeMap::new();
        for (index, listener) in listeners.iter().enumerate() {
            peers.insert(index as u64 + 1, listener.local_addr()?.to_string());
        }
        let mut members = Vec::with_capacity(count);
        for (index, listener) in listeners.into_iter().enumerate() {
            let id = index as u64 + 1;
            let mut config = ControllerConfig {
                listen: listener.local_addr()?,
                id,
                peers: peers.clone(),
                data_dir: dir.path().join(format!("controller-{id}")),
                ..ControllerConfig::default()
            };
            controller_test_config(&mut config);
            configure(&mut config);
            let running = Controller::start_on(listener, config.clone()).await?;
            members.push(Member { config, running: Some(running) });
        }
        Ok(Self { members, _dir: dir })
    }

    /// Every controller's address, running or not, in id order.
    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(|member| member.config.listen.to_string()).collect()
    }

    /// The controller at `index` (id `index + 1`), if running.
    pub fn controller(&self, index: usize) -> Option<&Controller> {
        self.members.get(index).and_then(|member| member.running.as_ref())
    }

    /// The data directory of the controller at `index`.
    pub fn data_dir(&self, index: usize) -> Option<PathBuf> {
        self.members.get(index).map(|member| member.config.data_dir.clone())
    }

    /// Waits until a running controller leads and every running one knows it; returns its index.
    pub async fn wait_leader(&self) -> usize {
        eventually("a controller leader every running controller knows", LEADER_WAIT, || async {
            let running: Vec<&Controller> =
                self.members.iter().filter_map(|member| member.running.as_ref()).collect();
            let leader = running.iter().find(|controller| controller.is_leader())?;
            let leader_id = leader.id();
            running
                .iter()
                .all(|controller| controller.leader().is_some_and(|(id, _)| id == leader_id))
                .then(|| leader_id as usize - 1)
        })
        .await
    }

    /// Stops the controller at `index` (its data stays).
    pub async fn stop(&mut self, index: usize) {
        if let Some(controller) = self.members.get_mut(index).and_then(|member| member.running.take()) {
            controller.shutdown().await;
        }
    }

    /// Starts the stopped controller at `index` again, on its address and data directory.
    pub async fn restart(&mut self, index: usize) -> io::Result<()> {
        let member = self.members.get_mut(index).ok_or_else(|| io::Error::other("no such controller"))?;
        if member.running.is_some() {
            return Err(io::Error::other("the controller is running"));
        }
        let listener = RemotingServer::bind(member.config.listen)?;
        member.running = Some(Controller::start_on(listener, member.config.clone()).await?);
        Ok(())
    }

    /// Stops every controller.
    pub async fn shutdown(mut self) {
        for index in 0..self.members.len() {
            self.stop(index).await;
        }
    }
}
