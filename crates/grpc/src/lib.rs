//! The RocketMQ 5.x gRPC endpoint: `apache.rocketmq.v2.MessagingService`, the only protocol the
//! official 5.x clients speak (spec grpc-v5.md). It is a second front beside the broker's
//! remoting processors: each RPC decodes its protobuf, calls `apogee_broker::core` and encodes
//! the result, and it never builds a remoting command. It runs inside the broker process, as
//! Apache's proxy does in "local" mode, so the route it gives is this broker's.
//!
//! Modules: [`context`] (who calls: the `x-mq-*` headers), [`status`] (body statuses and the
//! broker-code mapping), [`names`] (topic and group rules), [`route`] (QueryRoute,
//! QueryAssignment), [`send`] (SendMessage), [`consume`] (ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue over POP), [`transaction`] (EndTransaction), [`clients`]
//! (Settings, heartbeats, command streams), [`convert`] (stored messages as protocol messages),
//! [`service`] (the tonic service and Telemetry), [`server`] (the listener) and [`tls`]
//! (plaintext and TLS on one port).

pub mod clients;
pub mod consume;
pub mod context;
pub mod convert;
pub mod metrics;
pub mod names;
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

use apogee_broker::BrokerState;

pub use server::GrpcServer;

/// The generated protocol types and service traits.
#[allow(missing_docs, clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("apache.rocketmq.v2");
}

/// Where clients reach this endpoint: the host the broker advertises and the gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host or IP address (the broker's `brokerIP1`).
    pub host: String,
    /// The gRPC port.
    pub port: u16,
}

/// The state behind every RPC.
#[derive(Debug)]
pub struct Messaging {
    state: Arc<BrokerState>,
    endpoint: Endpoint,
    clients: clients::Clients,
    /// Round-robin position of sends without a message group.
    send_turn: AtomicU64,
    /// Per-RPC counters and latencies.
    metrics: metrics::RpcMetrics,
    /// Receipt handles renewed for their consumers.
    renewals: renew::Renewals,
}

impl Messaging {
    /// The service over `state`, reached at `endpoint`.
    pub fn new(state: Arc<BrokerState>, endpoint: Endpoint) -> Self {
        Self {
            state,
            endpoint,
            clients: clients::Clients::default(),
            send_turn: AtomicU64::new(0),
            metrics: metrics::RpcMetrics::default(),
            renewals: renew::Renewals::default(),
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
}
