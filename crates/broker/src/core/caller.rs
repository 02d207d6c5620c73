//! Who is asking: the little a core operation needs to know about the peer, whatever the
//! wire it came over.

use std::net::SocketAddr;

/// The peer behind a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The peer's address: stored as a message's born host, and named in remarks and logs.
    pub remote_addr: SocketAddr,
    /// The peer's session (the remoting connection id): held pulls of a session that ends are
    /// woken, and its registrations dropped.
    pub session_id: u64,
    /// The protocol version the peer speaks (RocketMQ's version ordinal); some rules depend on
    /// it (a retry send's `maxReconsumeTimes` counts from V3_4_9).
    pub version: i32,
}
