//! The RocketMQ 5.x gRPC endpoint: `apache.rocketmq.v2.MessagingService`, the only protocol the
//! official 5.x clients speak (spec grpc-v5.md). It is a second front beside the broker's
//! remoting processors: each RPC decodes its protobuf, asks its [`backend`] and encodes the
//! result. In "local" mode (inside the broker process) the backend calls
//! `apogee_broker::core` directly and the route it gives is this broker's; in "cluster" mode
//! (`apogee proxy`) it reaches every broker group a NameServer knows over remoting.
//!
//! Modules: [`context`] (who calls: the `x-mq-*` headers), [`acl`] (ACL 1.0 on every call), [`status`] (body statuses and the
//! broker-code mapping), [`names`] (topic and group rules), [`route`] (QueryRoute,
//! QueryAssignment), [`send`] (SendMessage), [`consume`] (ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue over POP), [`transaction`] (EndTransaction), [`clients`]
//! (Settings, heartbeats, command streams), [`convert`] (stored messages as protocol messages),
//! [`service`] (the tonic service and Telemetry), [`server`] (the listener) and [`tls`]
//! (plaintext and TLS on one port).

pub mod acl;
pub mod backend;
pub mod clients;
pub mod consume;
pub mod context;
pub mod convert;
#[cfg(test)]
mod malformed_tests;
pub mod metrics;
pub mod names;
pub mod recall;
pub mod renew;
pub mod route;
pub mod send;
pub mod server;
pub mod service;
pub mod status;
pub mod tls;
pub mod topic_type;
pub mod transaction;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use apogee_broker::acl::AclValidator;
use apogee_broker::proxy_config::ProxyConfig;
use apogee_broker::BrokerState;

use crate::backend::{Brokers, Local, Remote};

pub use server::GrpcServer;

/// The generated protocol types and service traits (`apogee-grpc-proto`).
pub use apogee_grpc_proto as pb;

/// Where clients reach this endpoint: the host the broker advertises and the gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host or IP address (the broker's `brokerIP1`).
    pub host: String,
    /// The gRPC port.
    pub port: u16,
}

/// The state behind every RPC: the front's own tables and the backend its calls go to.
#[derive(Debug)]
pub struct Messaging {
    backend: Brokers,
    /// The endpoint's settings (Java `ProxyConfig` names).
    settings: ProxyConfig,
    endpoint: Endpoint,
    clients: clients::Clients,
    /// Round-robin position among a topic's producers for transaction checks.
    check_turn: AtomicU64,
    /// Per-RPC counters and latencies.
    metrics: metrics::RpcMetrics,
    /// Receipt handles renewed for their consumers.
    renewals: renew::Renewals,
    /// The ACL check of every call, when ACL is on (the broker's validator embedded, the
    /// proxy's own as a proxy).
    acl: Option<Arc<AclValidator>>,
}

impl Messaging {
    /// The service over the broker `state` it runs in (local mode), reached at `endpoint`.
    pub fn new(state: Arc<BrokerState>, endpoint: Endpoint) -> Self {
        let settings = state.config.proxy.clone();
        let acl = state.acl.clone();
        Self::with_backend(Brokers::Local(Local::new(state)), settings, endpoint, acl)
    }

    /// The service in front of the broker groups `relay` reaches (cluster mode), reached at
    /// `endpoint`, taking bodies up to `max_body_bytes`, checking calls with `acl` when given.
    pub fn cluster(
        relay: apogee_client::Relay,
        settings: ProxyConfig,
        endpoint: Endpoint,
        max_body_bytes: usize,
        acl: Option<Arc<AclValidator>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|messaging| {
            let remote = Remote::new(relay, messaging.clone(), max_body_bytes);
            Self::with_backend(Brokers::Remote(Box::new(remote)), settings, endpoint, acl)
        })
    }

    fn with_backend(
        backend: Brokers,
        settings: ProxyConfig,
        endpoint: Endpoint,
        acl: Option<Arc<AclValidator>>,
    ) -> Self {
        Self {
            backend,
            settings,
            endpoint,
            clients: clients::Clients::default(),
            check_turn: AtomicU64::new(0),
            metrics: metrics::RpcMetrics::default(),
            renewals: renew::Renewals::default(),
            acl,
        }
    }

    /// Every RPC's first step: who calls (the `x-mq-*` headers) and, with ACL on, whether the
    /// call's signature and the request's topics and groups pass the policy. No RPC reads
    /// its caller any other way, so none is served unchecked.
    pub fn admit<T: acl::Guarded>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<context::CallContext, status::Refusal> {
        let context = context::CallContext::of(request)?;
        // Without ACL the headers are not even read.
        if self.acl.is_some() {
            self.judge(&context, &acl::CallSignature::of(request.metadata()), request.get_ref())?;
        }
        Ok(context)
    }

    /// The ACL check of one request of a call (each command of a Telemetry stream is judged
    /// with the headers of the call that opened it); `Ok` when ACL is off.
    pub fn judge(
        &self,
        context: &context::CallContext,
        signature: &acl::CallSignature,
        request: &impl acl::Guarded,
    ) -> Result<(), status::Refusal> {
        match &self.acl {
            Some(validator) => acl::check(validator, context.remote_addr.ip(), signature, request),
            None => Ok(()),
        }
    }

    /// Per-RPC counters and latencies, for the metrics exporter.
    pub fn metrics(&self) -> &metrics::RpcMetrics {
        &self.metrics
    }

    /// The clients this endpoint knows.
    pub fn clients(&self) -> &clients::Clients {
        &self.clients
    }

    /// The backend the calls go to.
    pub fn backend(&self) -> &Brokers {
        &self.backend
    }

    /// The endpoint's settings.
    pub fn settings(&self) -> &ProxyConfig {
        &self.settings
    }
}
