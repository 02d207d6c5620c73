//! Who is calling (spec §2.3): the `x-mq-*` headers every client sends, read leniently. Only
//! `x-mq-client-id` is required; language and version strings differ between clients and are
//! kept as sent.

use std::net::{Ipv4Addr, SocketAddr};

use apogee_broker::core::Caller;
use tonic::Request;

use crate::pb::Code;
use crate::status::Refusal;

/// Header naming the client instance; required on every call.
pub const CLIENT_ID: &str = "x-mq-client-id";
/// Header naming the SDK language.
pub const LANGUAGE: &str = "x-mq-language";
/// Header naming the SDK version.
pub const CLIENT_VERSION: &str = "x-mq-client-version";
/// Longest client id accepted, in bytes: ids are table keys.
pub const MAX_CLIENT_ID_BYTES: usize = 512;
/// The protocol version ordinal the broker core sees for gRPC callers (V5_3_3, the newest the
/// remoting front knows): a gRPC client is a 5.x client.
const GRPC_CALLER_VERSION: i32 = apogee_remoting::command::CURRENT_VERSION;

/// The caller of one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// `x-mq-client-id`.
    pub client_id: String,
    /// `x-mq-language`, as sent (empty when absent).
    pub language: String,
    /// `x-mq-client-version`, as sent (empty when absent).
    pub client_version: String,
    /// The peer's address (unspecified when the transport does not say).
    pub remote_addr: SocketAddr,
}

impl CallContext {
    /// Reads the caller of `request`; CLIENT_ID_REQUIRED without a usable client id. RPCs
    /// call it through [`Messaging::admit`](crate::Messaging::admit), which adds the ACL check.
    pub(crate) fn of<T>(request: &Request<T>) -> Result<Self, Refusal> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let client_id = header(CLIENT_ID);
        if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(Refusal::new(Code::ClientIdRequired, "client id cannot be empty"));
        }
        Ok(CallContext {
            client_id,
            language: header(LANGUAGE),
            client_version: header(CLIENT_VERSION),
            remote_addr: request.remote_addr().unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        })
    }

    /// The caller as the broker core knows callers. gRPC calls have no remoting session; the
    /// session id 0 is never a live connection's.
    pub fn caller(&self) -> Caller {
        Caller { remote_addr: self.remote_addr, session_id: 0, version: GRPC_CALLER_VERSION }
    }
}
