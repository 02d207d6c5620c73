//! [`ControllerClient`]: what a broker (its future `ReplicasManager`) uses to talk to the
//! controllers: typed requests over one remoting client, sent to the leader, which is found
//! through CONTROLLER_GET_METADATA_INFO and followed when a controller answers
//! CONTROLLER_NOT_LEADER. Heartbeats go to every controller, as Java brokers send them.
//!
//! A controller's answer is returned whole as a [`Reply`], whatever its code: several refusals
//! carry data the broker acts on (CONTROLLER_MASTER_STILL_EXIST names the master). Only
//! failing to reach a leader in time is an error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_remoting::client::{ClientConfig, RemotingClient, RemotingError};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::namesrv::BrokerHeartbeatRequestHeader;
use apogee_remoting::header::CommandHeader;
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::body::{BrokerReplicasInfo, ElectMasterResponseBody, SyncStateSet};
use crate::header::*;
use crate::server::LEADER_ADDRESS_FIELD;

/// Why a request got no controller answer.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// No controller led (or none was reachable) within the client's leader wait.
    #[error("no controller leader answered within {waited_ms} ms; last problem: {last}")]
    NoLeader {
        /// How long the client tried.
        waited_ms: u64,
        /// The last failure seen.
        last: String,
    },
    /// The answer's header or body did not decode.
    #[error("malformed controller answer: {0}")]
    Malformed(String),
    /// The body could not be encoded.
    #[error("cannot encode the request body: {0}")]
    Encode(String),
}

/// A controller's answer: code, remark, typed header and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<H, B = ()> {
    /// Response code.
    pub code: i32,
    /// Remark, usually set on refusals.
    pub remark: Option<String>,
    /// The typed header.
    pub header: H,
    /// The typed body, when the answer has one.
    pub body: Option<B>,
}

impl<H, B> Reply<H, B> {
    /// Whether the code is SUCCESS.
    pub fn is_success(&self) -> bool {
        self.code == response_code::SUCCESS
    }
}

/// How the client waits.
#[derive(Debug, Clone)]
pub struct ControllerClientConfig {
    /// One request's timeout (Java brokers use 3 s).
    pub request_timeout: Duration,
    /// How long a request keeps looking for a leader (elections take a few seconds).
    pub leader_wait: Duration,
    /// Pause between two attempts while no leader is known.
    pub retry_pause: Duration,
}

impl Default for ControllerClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(3),
            leader_wait: Duration::from_secs(10),
            retry_pause: Duration::from_millis(100),
        }
    }
}

/// Typed requests to a group of controllers.
#[derive(Debug)]
pub struct ControllerClient {
    remoting: Arc<RemotingClient>,
    addrs: Vec<String>,
    leader: Mutex<Option<String>>,
    config: ControllerClientConfig,
}

impl ControllerClient {
    /// A client of the controllers at `addrs` (`host:port`, Java's `controllerAddr` split on `;`).
    pub fn new(addrs: Vec<String>, config: ControllerClientConfig) -> Self {
        let remoting = Arc::new(RemotingClient::new(ClientConfig::default(), Router::new()));
        Self::with_remoting(remoting, addrs, config)
    }

    /// A client sharing an existing remoting client (a broker's).
    pub fn with_remoting(
        remoting: Arc<RemotingClient>,
        addrs: Vec<String>,
        config: ControllerClientConfig,
    ) -> Self {
        Self { remoting, addrs, leader: Mutex::new(None), config }
    }

    /// The controllers' addresses.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// CONTROLLER_GET_METADATA_INFO asked of one controller.
    pub async fn metadata(&self, addr: &str) -> Result<Reply<GetMetaDataResponseHeader>, RemotingError> {
        let request = RemotingCommand::request(request_code::CONTROLLER_GET_METADATA_INFO);
        let response = self.remoting.invoke(addr, request, self.config.request_timeout).await?;
        let header = response.decode_header().unwrap_or_default();
        Ok(Reply { code: response.code, remark: response.remark, header, body: None })
    }

    /// The leader's address, asking the controllers when none is cached.
    pub async fn leader(&self) -> Option<String> {
        if let Some(leader) = self.leader.lock().clone() {
            return Some(leader);
        }
        for addr in &self.addrs {
            let Ok(reply) = self.metadata(addr).await else { continue };
            if let Some(leader) = reply.header.controller_leader_address.filter(|leader| !leader.is_empty()) {
                *self.leader.lock() = Some(leader.clone());
                return Some(leader);
            }
        }
        None
    }

    /// Sends `request` to the leader, following CONTROLLER_NOT_LEADER and retrying while no
    /// leader answers, up to the leader wait.
    pub async fn call(&self, request: RemotingCommand) -> Result<RemotingCommand, ControllerError> {
        let started = Instant::now();
        let mut last = String::from("no controller tried");
        while started.elapsed() < self.config.leader_wait {
            let Some(addr) = self.leader().await else {
                last = "no controller names a leader".to_owned();
                tokio::time::sleep(self.config.retry_pause).await;
                continue;
            };
            match self.remoting.invoke(&addr, request.clone(), self.config.request_timeout).await {
                Ok(response) if response.code == response_code::CONTROLLER_NOT_LEADER => {
                    let named =
                        response.ext(LEADER_ADDRESS_FIELD).filter(|named| *named != addr).map(str::to_owned);
                    last = format!("{addr}: {}", response.remark.unwrap_or_default());
                    let follow = named.is_some();
                    *self.leader.lock() = named;
                    if !follow {
                        tokio::time::sleep(self.config.retry_pause).await;
                    }
                }
                Ok(response) => return Ok(response),
                Err(error) => {
                    last = format!("{addr}: {error}");
                    *self.leader.lock() = None;
                    tokio::time::sleep(self.config.retry_pause).await;
                }
            }
        }
        Err(ControllerError::NoLeader { waited_ms: self.config.leader_wait.as_millis() as u64, last })
    }

    /// Sends a request with `header` (and `body`) to the leader and decodes the answer.
    async fn request<Q: CommandHeader, H: CommandHeader + Default, B: DeserializeOwned>(
        &self,
        code: i32,
        header: &Q,
        body: Option<Vec<u8>>,
    ) -> Result<Reply<H, B>, ControllerError> {
        let mut request = RemotingCommand::request(code).with_header(header);
        if let Some(body) = body {
            request = request.with_body(body);
        }
        let response = self.call(request).await?;
        let header = if response.ext_fields.is_some() {
            response.decode_header::<H>().map_err(|error| ControllerError::Malformed(error.to_string()))?
        } else {
            H::default()
        };
        let body = if response.body.is_empty() {
            None
        } else {
            Some(
                fastjson::from_slice(&response.body)
                    .map_err(|error| ControllerError::Malformed(error.to_string()))?,
            )
        };
        Ok(Reply { code: response.code, remark: response.remark, header, body })
    }

    /// CONTROLLER_GET_NEXT_BROKER_ID.
    pub async fn get_next_broker_id(
        &self,
        cluster_name: &str,
        broker_name: &str,
    ) -> Result<Reply<GetNextBrokerIdResponseHeader>, ControllerError> {
        let header = GetNextBrokerIdRequestHeader {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
        };
        self.request(request_code::CONTROLLER_GET_NEXT_BROKER_ID, &header, None).await
    }

    /// CONTROLLER_APPLY_BROKER_ID.
    pub async fn apply_broker_id(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: i64,
        register_check_code: &str,
    ) -> Result<Reply<ApplyBrokerIdResponseHeader>, ControllerError> {
        let header = ApplyBrokerIdRequestHeader {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            applied_broker_id: broker_id,
            register_check_code: register_check_code.to_owned(),
        };
        self.request(request_code::CONTROLLER_APPLY_BROKER_ID, &header, None).await
    }

    /// CONTROLLER_REGISTER_BROKER.
    pub async fn register_broker(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: i64,
        broker_address: &str,
    ) -> Result<Reply<RegisterBrokerToControllerResponseHeader, SyncStateSet>, ControllerError> {
        let header = RegisterBrokerToControllerRequestHeader {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_id,
            broker_address: broker_address.to_owned(),
            invoke_time: Some(now_ms()),
        };
        self.request(request_code::CONTROLLER_REGISTER_BROKER, &header, None).await
    }

    /// CONTROLLER_ELECT_MASTER: `broker_id` nominates itself (`designate` forces it if it is a
    /// candidate).
    pub async fn elect_master(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: i64,
        designate: bool,
    ) -> Result<Reply<ElectMasterResponseHeader, ElectMasterResponseBody>, ControllerError> {
        let header = ElectMasterRequestHeader {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_id,
            designate_elect: designate,
            invoke_time: Some(now_ms()),
        };
        self.request(request_code::CONTROLLER_ELECT_MASTER, &header, None).await
    }

    /// CONTROLLER_ALTER_SYNC_STATE_SET: the master proposes `members`, based on the set of
    /// epoch `sync_state_set_epoch`.
    pub async fn alter_sync_state_set(
        &self,
        broker_name: &str,
        master_broker_id: i64,
        master_epoch: i32,
        members: BTreeSet<i64>,
        sync_state_set_epoch: i32,
    ) -> Result<Reply<AlterSyncStateSetResponseHeader, SyncStateSet>, ControllerError> {
        let header = AlterSyncStateSetRequestHeader {
            broker_name: broker_name.to_owned(),
            master_broker_id,
            master_epoch,
            invoke_time: Some(now_ms()),
        };
        let body = SyncStateSet { sync_state_set: members, sync_state_set_epoch };
        let bytes = fastjson::to_vec(&body, Dialect::Fastjson)
            .map_err(|error| ControllerError::Encode(error.to_string()))?;
        self.request(request_code::CONTROLLER_ALTER_SYNC_STATE_SET, &header, Some(bytes)).await
    }

    /// CONTROLLER_GET_REPLICA_INFO.
    pub async fn get_replica_info(
        &self,
        broker_name: &str,
    ) -> Result<Reply<GetReplicaInfoResponseHeader, SyncStateSet>, ControllerError> {
        let header = GetReplicaInfoRequestHeader { broker_name: broker_name.to_owned() };
        self.request(request_code::CONTROLLER_GET_REPLICA_INFO, &header, None).await
    }

    /// CONTROLLER_GET_SYNC_STATE_DATA.
    pub async fn get_sync_state_data(
        &self,
        broker_names: &[String],
    ) -> Result<Reply<EmptyHeader, BrokerReplicasInfo>, ControllerError> {
        let bytes = fastjson::to_vec(broker_names, Dialect::Fastjson)
            .map_err(|error| ControllerError::Encode(error.to_string()))?;
        self.request(request_code::CONTROLLER_GET_SYNC_STATE_DATA, &EmptyHeader {}, Some(bytes)).await
    }

    /// CLEAN_BROKER_DATA.
    pub async fn clean_broker_data(
        &self,
        header: &CleanControllerBrokerDataRequestHeader,
    ) -> Result<Reply<EmptyHeader>, ControllerError> {
        self.request(request_code::CLEAN_BROKER_DATA, header, None).await
    }

    /// BROKER_HEARTBEAT to every controller; returns how many accepted it.
    pub async fn heartbeat(&self, header: &BrokerHeartbeatRequestHeader) -> usize {
        let mut accepted = 0;
        for addr in &self.addrs {
            let request = RemotingCommand::request(request_code::BROKER_HEARTBEAT).with_header(header);
            match self.remoting.invoke(addr, request, self.config.request_timeout).await {
                Ok(response) if response.code == response_code::SUCCESS => accepted += 1,
                Ok(response) => {
                    tracing::debug!(controller = %addr, code = response.code, "heartbeat refused")
                }
                Err(error) => tracing::debug!(controller = %addr, %error, "heartbeat not delivered"),
            }
        }
        accepted
    }

    /// Closes the connections.
    pub async fn shutdown(&self) {
        self.remoting.shutdown().await;
    }
}

/// Milliseconds since the Unix epoch, for `invokeTime`.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}
