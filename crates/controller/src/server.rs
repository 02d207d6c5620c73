//! [`Controller`]: one running controller. It serves brokers and its peers on one remoting port,
//! runs openraft over the other controllers, and scans broker liveness.
//!
//! Writes follow Java's single-thread event scheduler: on the raft leader one request at a
//! time reads the applied state (after `ensure_linearizable`, so a new leader has applied every
//! entry of earlier terms), decides its answer and events ([`crate::manager`]), and appends the
//! events as one raft entry; it answers only once that entry is committed and applied. A
//! controller that does not lead refuses with CONTROLLER_NOT_LEADER and names the leader.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::fastjson::Dialect;
use apogee_remoting::reply::{encode_body, Failure};
use apogee_remoting::router::Router;
use apogee_remoting::scan_clock::ScanClock;
use apogee_remoting::server::{RemotingServer, ServerConfig, ServerHandle};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::body::{ElectMasterResponseBody, SyncStateSet};
use crate::config::ControllerConfig;
use crate::elect::Liveness;
use crate::header::{
    ElectMasterRequestHeader, ElectMasterResponseHeader, NotifyBrokerRoleChangedRequestHeader,
};
use crate::heartbeat::HeartbeatManager;
use crate::manager::{self, Decision};
use crate::processor;
use crate::raft::log_store::LogStore;
use crate::raft::network::{self, Network, RAFT_CODES};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{ControllerRaft, EventBatch, NodeId, SharedState};
use crate::state::ControllerState;

/// Remark of CONTROLLER_NOT_LEADER (Java's words).
pub const NOT_LEADER_REMARK: &str = "The controller is not in leader state";
/// Extension field of a CONTROLLER_NOT_LEADER answer naming the leader's address, when known.
pub const LEADER_ADDRESS_FIELD: &str = "controllerLeaderAddress";
/// How long a NOTIFY_BROKER_ROLE_CHANGED push may take (Java: 3 s).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// Connect timeout of the controller's own client (raft RPCs and notifications).
const CLIENT_CONNECT_TIMEOUT_MS: u64 = 1_000;

/// What the request handlers, the scan and the raft RPC handlers share.
pub struct Shared {
    /// Settings.
    pub config: ControllerConfig,
    /// The raft node.
    pub raft: ControllerRaft,
    /// The applied replicated state.
    pub state: SharedState,
    /// Broker liveness seen by this controller.
    pub heartbeats: HeartbeatManager,
    /// One decision at a time (Java's single-thread event scheduler).
    scheduler: tokio::sync::Mutex<()>,
    /// Client for raft RPCs and role-change notifications.
    client: Arc<RemotingClient>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.config.id)
            .field("leader", &self.leader())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Whether this controller leads now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The leader's id and address, if one is known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.config.peers.get(&leader).map(|addr| (leader, addr.clone()))
    }

    /// The refusal of a controller that does not lead.
    pub fn not_leader(&self) -> Failure {
        let remark = match self.leader() {
            Some((id, addr)) => format!("{NOT_LEADER_REMARK}, leader: {id} at {addr}"),
            None => format!("{NOT_LEADER_REMARK}, no leader elected yet"),
        };
        Failure::new(response_code::CONTROLLER_NOT_LEADER, remark)
    }

    /// Decides a request on the leader and commits its events; see the module documentation.
    pub async fn decide<A>(
        &self,
        decide: impl FnOnce(&ControllerState, &dyn Liveness) -> Decision<A>,
    ) -> Result<Decision<A>, Failure> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        match tokio::time::timeout(timeout, self.decide_now(decide)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::system(format!(
                "the controllers did not commit the request within {} ms",
                self.config.request_timeout_ms
            ))),
        }
    }

    async fn decide_now<A>(
        &self,
        decide: impl FnOnce(&ControllerState, &dyn Liveness) -> Decision<A>,
    ) -> Result<Decision<A>, Failure> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let _turn = self.scheduler.lock().await;
        self.raft.ensure_linearizable().await.map_err(|error| self.raft_failure(error))?;
        let decision = {
            let state = self.state.read();
            decide(&state, &self.heartbeats)
        };
        if !decision.events.is_empty() {
            let batch = EventBatch { events: decision.events.clone() };
            self.raft.client_write(batch).await.map_err(|error| self.raft_failure(error))?;
        }
        Ok(decision)
    }

    /// A raft error as a refusal: lost leadership is CONTROLLER_NOT_LEADER.
    fn raft_failure<E: std::error::Error>(&self, error: RaftError<NodeId, E>) -> Failure {
        match error {
            RaftError::APIError(_) => self.not_leader(),
            RaftError::Fatal(fatal) => {
                Failure::system(format!("the controller's raft node stopped: {fatal}"))
            }
        }
    }

    /// Pushes NOTIFY_BROKER_ROLE_CHANGED to the live brokers of the set an election changed
    /// (oneway, in the background; a broker that misses it learns on its next poll).
    pub fn notify_role_changed(
        self: &Arc<Self>,
        header: &ElectMasterResponseHeader,
        body: &ElectMasterResponseBody,
    ) {
        if !self.config.notify_broker_role_changed {
            return;
        }
        let (Some(group), Some(_)) = (&body.broker_member_group, header.master_broker_id) else { return };
        let notify = NotifyBrokerRoleChangedRequestHeader {
            master_address: header.master_address.clone(),
            master_epoch: header.master_epoch,
            sync_state_set_epoch: header.sync_state_set_epoch,
            master_broker_id: header.master_broker_id,
        };
        let sync = SyncStateSet {
            sync_state_set: body.sync_state_set.clone(),
            sync_state_set_epoch: header.sync_state_set_epoch.unwrap_or_default(),
        };
        let Ok(bytes) = encode_body(&sync, Dialect::Fastjson) else { return };
        for (&id, addr) in &group.broker_addrs {
            if !self.heartbeats.is_alive(&group.cluster, &group.broker_name, id) {
                continue;
            }
            let request = RemotingCommand::request(request_code::NOTIFY_BROKER_ROLE_CHANGED)
                .with_header(&notify)
                .with_body(bytes.clone());
            let client = Arc::clone(&self.client);
            let addr = addr.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(NOTIFY_TIMEOUT, client.invoke_oneway(&addr, request)).await {
                    Ok(Ok(())) => tracing::info!(broker = %addr, "notified broker of its set's new master"),
                    Ok(Err(error)) => {
                        tracing::warn!(broker = %addr, %error, "role-change notification failed")
                    }
                    Err(_) => tracing::warn!(broker = %addr, "role-change notification timed out"),
                }
            });
        }
    }

    /// Elects a new master of `broker_name` on the controller's own initiative (its master
    /// stopped heartbeating), up to `electMasterMaxRetryCount` tries while the attempt fails
    /// to commit.
    async fn trigger_election(self: &Arc<Self>, broker_name: &str) {
        let cluster_name = match self.state.read().set(broker_name) {
            Some(set) => set.replicas.cluster_name.clone(),
            None => return,
        };
        let request = ElectMasterRequestHeader {
            cluster_name,
            broker_name: broker_name.to_owned(),
            broker_id: -1,
            designate_elect: false,
            invoke_time: None,
        };
        let unclean = self.config.enable_elect_unclean_master;
        for attempt in 1..=self.config.elect_master_max_retry_count.max(1) {
            let decided = self
                .decide(|state, liveness| manager::elect_master(state, liveness, &request, unclean))
                .await;
            match decided {
                Ok(decision) if decision.code == response_code::SUCCESS => {
                    let (header, body) = &decision.answer;
                    tracing::info!(
                        broker_name,
                        master = ?header.master_broker_id,
                        master_epoch = ?header.master_epoch,
                        "elected a new master after the old one went silent"
                    );
                    if let Some(body) = body {
                        self.notify_role_changed(header, body);
                    }
                    return;
                }
                Ok(decision) => {
                    tracing::warn!(broker_name, code = decision.code, remark = ?decision.remark, "election found no new master");
                    return;
                }
                Err(failure) => {
                    tracing::warn!(broker_name, attempt, remark = %failure.remark, "controller-triggered election failed")
                }
            }
        }
    }
}

/// A running controller.
#[derive(Debug)]
pub struct Controller {
    shared: Arc<Shared>,
    server: ServerHandle,
    stop_scan: watch::Sender<bool>,
    scan_task: JoinHandle<()>,
}

impl Controller {
    /// Binds `config.listen` and starts.
    pub async fn start(config: ControllerConfig) -> io::Result<Self> {
        let listener = RemotingServer::bind(config.listen)?;
        Self::start_on(listener, config).await
    }

    /// Starts on an already bound listener (its address must be this controller's entry in
    /// `config.peers`): tests bind every controller's port first, then tell each the others.
    ///
    /// This controller's own peer entry may name port 0 (a lone controller started on a port
    /// the system chooses): it is replaced by the address actually bound.
    pub async fn start_on(listener: TcpListener, mut config: ControllerConfig) -> io::Result<Self> {
        config.validate().map_err(io::Error::other)?;
        let bound = listener.local_addr()?;
        if let Some(own) = config.peers.get_mut(&config.id) {
            if own.parse::<SocketAddr>().is_ok_and(|addr| addr.port() == 0) {
                *own = bound.to_string();
            }
        }
        config.listen = bound;
        let raft_config = openraft::Config {
            cluster_name: config.group.clone(),
            heartbeat_interval: config.raft_heartbeat_interval_ms,
            election_timeout_min: config.raft_election_timeout_min_ms,
            election_timeout_max: config.raft_election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries.max(1)),
            max_in_snapshot_log_to_keep: config.snapshot_every_entries,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(io::Error::other)?;
        let log_store = LogStore::open(&config.data_dir)?;
        let state_machine = StateMachineStore::open(&config.data_dir)?;
        let state = state_machine.shared_state();
        let client = Arc::new(RemotingClient::new(
            ClientConfig { connect_timeout_ms: CLIENT_CONNECT_TIMEOUT_MS, ..ClientConfig::default() },
            Router::new(),
        ));
        let raft = ControllerRaft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(Arc::clone(&client)),
            log_store,
            state_machine,
        )
        .await
        .map_err(io::Error::other)?;

        let members: BTreeMap<NodeId, BasicNode> =
            config.peers.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(id = config.id, "raft group initialized"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!(id = config.id, "raft state found in the data directory; resuming")
            }
            Err(error) => return Err(io::Error::other(error)),
        }

        let shared = Arc::new(Shared {
            config,
            raft,
            state,
            heartbeats: HeartbeatManager::default(),
            scheduler: tokio::sync::Mutex::new(()),
            client,
        });
        let router = router(&shared);
        let server = RemotingServer::serve(listener, ServerConfig::default(), router)?;
        tracing::info!(id = shared.config.id, listen = %server.local_addr(), "controller started");
        let (stop_scan, stopped) = watch::channel(false);
        let scan_task = tokio::spawn(scan(Arc::clone(&shared), stopped));
        Ok(Self { shared, server, stop_scan, scan_task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// This controller's id.
    pub fn id(&self) -> NodeId {
        self.shared.config.id
    }

    /// Whether this controller leads the group now.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// The leader this controller knows of.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        self.shared.leader()
    }

    /// A copy of the applied replicated state (for tests and admin views).
    pub fn state(&self) -> ControllerState {
        self.shared.state.read().clone()
    }

    /// Index of the last raft entry applied here.
    pub fn applied_index(&self) -> Option<u64> {
        self.shared.raft.metrics().borrow().last_applied.map(|id| id.index)
    }

    /// Index of the last raft entry removed from the log because a snapshot covers it.
    pub fn purged_index(&self) -> Option<u64> {
        self.shared.raft.metrics().borrow().purged.map(|id| id.index)
    }

    /// Everything the handlers share (for embedding).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the scan, the server, the raft node and the client.
    pub async fn shutdown(self) {
        let _ = self.stop_scan.send(true);
        if let Err(error) = self.scan_task.await {
            tracing::warn!(%error, "controller scan ended abnormally");
        }
        self.server.shutdown().await;
        if let Err(error) = self.shared.raft.shutdown().await {
            tracing::warn!(%error, "raft node ended abnormally");
        }
        self.shared.client.shutdown().await;
        tracing::info!(id = self.shared.config.id, "controller stopped");
    }
}

/// Request code → handler: the broker-facing codes, the raft RPCs, and the disconnect hook.
fn router(shared: &Arc<Shared>) -> Router {
    let mut router = Router::new();
    for &code in processor::HANDLED_CODES {
        let shared = Arc::clone(shared);
        router.register(code, move |connection, request| {
            processor::process(Arc::clone(&shared), connection, request)
        });
    }
    for &code in RAFT_CODES {
        let raft = shared.raft.clone();
        router.register(code, move |_connection, request: RemotingCommand| {
            let raft = raft.clone();
            async move { Some(network::serve(&raft, &request).await) }
        });
    }
    let on_close = Arc::clone(shared);
    router.on_disconnect(move |connection| {
        for key in on_close.heartbeats.on_connection_closed(connection.id()) {
            tracing::info!(broker_name = %key.broker_name, broker_id = key.broker_id, "broker connection closed: inactive");
        }
    });
    router
}

/// Java's two scans in one loop: forget silent brokers; on the leader, elect a new master in
/// every set whose master is gone while another member lives. Elections wait for the liveness
/// warm-up after start (`liveness_warmup_ms`): until every live broker had time to heartbeat
/// this controller, a master missing from its table is not known to be dead.
async fn scan(shared: Arc<Shared>, stopped: watch::Receiver<bool>) {
    let started = Instant::now();
    let warmup = Duration::from_millis(shared.config.liveness_warmup_ms);
    let mut clock = ScanClock::new(shared.config.scan_period(), stopped);
    while clock.next_round().await {
        for key in shared.heartbeats.expire(Instant::now()) {
            tracing::warn!(
                broker_name = %key.broker_name,
                broker_id = key.broker_id,
                "broker expired: no heartbeat within its timeout"
            );
        }
        if !shared.is_leader() || started.elapsed() < warmup {
            continue;
        }
        let sets = {
            let state = shared.state.read();
            manager::sets_needing_election(&state, &shared.heartbeats)
        };
        for broker_name in sets {
            if clock.is_stopping() {
                return;
            }
            shared.trigger_election(&broker_name).await;
        }
    }
}
