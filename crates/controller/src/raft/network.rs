//! Raft RPCs between controllers over remoting.
//!
//! Each controller already serves remoting on its listen port, as Java's DLedger controller
//! serves DLedger's RPCs beside the broker requests on one port. The three raft RPCs travel as
//! requests with Apogee-private codes ([`RAFT_APPEND_ENTRIES`], [`RAFT_VOTE`],
//! [`RAFT_INSTALL_SNAPSHOT`], far from RocketMQ's codes), the openraft request as JSON in the
//! body; the answer carries openraft's `Result` as JSON. Only controllers send these codes.

use std::sync::Arc;
use std::time::Duration;

use apogee_remoting::client::RemotingClient;
use apogee_remoting::RemotingCommand;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ControllerRaft, NodeId, TypeConfig};

/// Request code of AppendEntries (Apogee-private).
pub const RAFT_APPEND_ENTRIES: i32 = 40_001;
/// Request code of Vote (Apogee-private).
pub const RAFT_VOTE: i32 = 40_002;
/// Request code of InstallSnapshot (Apogee-private).
pub const RAFT_INSTALL_SNAPSHOT: i32 = 40_003;
/// Every raft request code, for the router.
pub const RAFT_CODES: &[i32] = &[RAFT_APPEND_ENTRIES, RAFT_VOTE, RAFT_INSTALL_SNAPSHOT];
/// The longest any raft RPC waits, whatever openraft's option says.
const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes one [`Peer`] per target; all share the controller's remoting client.
#[derive(Debug, Clone)]
pub struct Network {
    client: Arc<RemotingClient>,
}

impl Network {
    /// A network whose RPCs go through `client`.
    pub fn new(client: Arc<RemotingClient>) -> Self {
        Self { client }
    }
}

/// The RPC channel to one other controller.
#[derive(Debug)]
pub struct Peer {
    client: Arc<RemotingClient>,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer { client: Arc::clone(&self.client), target, addr: node.addr.clone() }
    }
}

impl Peer {
    /// Sends `request` under `code` and decodes openraft's answer.
    async fn call<Q, A, E>(
        &self,
        code: i32,
        request: &Q,
        option: &RPCOption,
    ) -> Result<A, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body =
            serde_json::to_vec(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let command = RemotingCommand::request(code).with_body(body);
        let timeout = option.hard_ttl().min(MAX_RPC_TIMEOUT);
        let response = self
            .client
            .invoke(&self.addr, command, timeout)
            .await
            .map_err(|error| RPCError::Unreachable(Unreachable::new(&error)))?;
        if response.code != apogee_remoting::response_code::SUCCESS {
            let remark = response.remark.unwrap_or_default();
            let error = std::io::Error::other(format!(
                "controller {} answered {}: {remark}",
                self.target, response.code
            ));
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        let answer: Result<A, RaftError<NodeId, E>> = serde_json::from_slice(&response.body)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        answer.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RAFT_APPEND_ENTRIES, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(RAFT_INSTALL_SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RAFT_VOTE, &rpc, &option).await
    }
}

/// Serves one raft RPC received on the remoting port: decodes the openraft request, hands it
/// to the local raft, answers with openraft's result as JSON.
pub async fn serve(raft: &ControllerRaft, request: &RemotingCommand) -> RemotingCommand {
    let body = &request.body;
    let answer = match request.code {
        RAFT_APPEND_ENTRIES => match decode(body) {
            Ok(rpc) => encode(&raft.append_entries(rpc).await),
            Err(remark) => Err(remark),
        },
        RAFT_VOTE => match decode(body) {
            Ok(rpc) => encode(&raft.vote(rpc).await),
            Err(remark) => Err(remark),
        },
        RAFT_INSTALL_SNAPSHOT => match decode(body) {
            Ok(rpc) => encode(&raft.install_snapshot(rpc).await),
            Err(remark) => Err(remark),
        },
        other => Err(format!("not a raft request code: {other}")),
    };
    match answer {
        Ok(bytes) => RemotingCommand::success_for(request).with_body(bytes),
        Err(remark) => RemotingCommand::respond_to(
            request,
            apogee_remoting::response_code::CONTROLLER_INVALID_REQUEST,
            Some(remark),
        ),
    }
}

/// The openraft request in a body.
fn decode<Q: DeserializeOwned>(body: &[u8]) -> Result<Q, String> {
    serde_json::from_slice(body).map_err(|error| format!("malformed raft request: {error}"))
}

/// openraft's result as a body.
fn encode<T: Serialize>(result: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(result).map_err(|error| format!("cannot encode raft answer: {error}"))
}
