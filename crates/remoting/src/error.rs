//! `RemotingError`: why a call over the transport did not produce a response.

use std::io;

use crate::frame::FrameError;

/// The failure of an `invoke` or `invoke_oneway`, on a [`crate::connection::Connection`] or
/// through a [`crate::client::RemotingClient`]. Callers branch on it to decide whether to
/// retry elsewhere (connect failures, timeouts, closed connections) or give up (frame errors).
#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    /// The TCP connection to `addr` could not be established.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address as the caller gave it.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection to `addr` was not established within the connect timeout.
    #[error("connecting to {addr} timed out after {timeout_ms} ms")]
    ConnectTimeout {
        /// The address as the caller gave it.
        addr: String,
        /// The connect timeout that elapsed.
        timeout_ms: u64,
    },
    /// No response arrived within the call's timeout; the pending entry has been removed,
    /// so a late response is logged and dropped.
    #[error("request to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        /// The peer's address.
        addr: String,
        /// The call's timeout.
        timeout_ms: u64,
    },
    /// The connection closed before the request was written or answered.
    #[error("connection closed")]
    Closed,
    /// The client was shut down; it makes no new connections.
    #[error("client shut down")]
    Shutdown,
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The request could not be encoded (for instance it exceeds the frame limit).
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
}
