//! The one error type of the SDK.
//!
//! Every fallible call of the client returns [`ClientError`]. Broker and NameServer refusals
//! keep the peer's response code and remark unchanged, so callers can branch on the same codes
//! Java applications branch on (`apogee_remoting::response_code`).

use apogee_remoting::client::RemotingError;
use apogee_remoting::fastjson::BodyError;
use apogee_remoting::header::HeaderError;
use apogee_remoting::RemotingCommand;

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
    /// The time budget of a call (a send's `send_timeout`, all retries included) ran out
    /// before it could finish; Java reports this as "call timeout".
    #[error("{operation} did not finish within {timeout_ms} ms")]
    Timeout {
        /// What was being done, for the reader.
        operation: String,
        /// The budget that ran out, in milliseconds.
        timeout_ms: u64,
    },
    /// Too many asynchronous calls are already waiting; the new one was refused rather than
    /// queued without bound.
    #[error("too many requests in flight (limit {limit})")]
    TooManyRequests {
        /// The limit that was reached.
        limit: usize,
    },
}

impl ClientError {
    /// The error for a non-success `response` from `addr`, keeping its code and remark.
    pub fn from_response(response: &RemotingCommand, addr: &str) -> Self {
        ClientError::Broker {
            code: response.code,
            remark: response.remark.clone().unwrap_or_default(),
            addr: addr.to_owned(),
        }
    }

    /// The peer's response code when this is a refusal by a broker or NameServer.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the request never got an answer from its peer (connect failure, timeout,
    /// closed connection): the cases a producer retries on another broker.
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Remoting(_))
    }
}

impl From<HeaderError> for ClientError {
    fn from(error: HeaderError) -> Self {
        ClientError::Malformed(error.to_string())
    }
}

impl From<BodyError> for ClientError {
    fn from(error: BodyError) -> Self {
        ClientError::Malformed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_refusals_keep_code_and_remark() {
        let response = RemotingCommand::response(17, Some("topic[T] not exist, apply first please!".into()));
        let error = ClientError::from_response(&response, "127.0.0.1:10911");
        assert_eq!(error.response_code(), Some(17));
        assert!(!error.is_transport());
        assert_eq!(
            error.to_string(),
            "127.0.0.1:10911 answered code 17: topic[T] not exist, apply first please!"
        );
        assert!(ClientError::Remoting(RemotingError::Closed).is_transport());
        assert_eq!(ClientError::ShutDown.response_code(), None);
    }
}
