//! (stub, owned by the core/producer work) The one error type of the SDK.

use apogee_remoting::client::RemotingError;

/// Everything an SDK call can fail with. Broker refusals carry the broker's response code
/// and remark unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker or NameServer answered with an error code.
    #[error("{addr} answered code {code}: {remark}")]
    Broker {
        /// Response code (`apogee_remoting::response_code`).
        code: i32,
        /// The remark it gave.
        remark: String,
        /// Who answered.
        addr: String,
    },
    /// The request did not get an answer (connect, timeout, closed connection).
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// No NameServer knows a route for the topic.
    #[error("no route for topic {topic}")]
    NoRoute {
        /// Topic.
        topic: String,
    },
    /// A broker name in a route has no usable address.
    #[error("no address for broker {broker_name}")]
    NoBroker {
        /// Broker name.
        broker_name: String,
    },
    /// The caller passed something unusable (empty topic, oversized message, ...).
    #[error("illegal argument: {0}")]
    IllegalArgument(String),
    /// A response could not be decoded.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The client (or its instance) was shut down.
    #[error("client is shut down")]
    ShutDown,
}
