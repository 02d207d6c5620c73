//! apogee-remoting: RocketMQ's classic "remoting" TCP protocol.
//!
//! - [`frame`]: the frame codec, with both header serializations ([`json_header`],
//!   [`binary_header`]);
//! - [`command`]: the decoded command;
//! - [`code`]: every request and response code;
//! - [`header`]: typed custom headers to and from `extFields`, and [`flags`], the bit sets
//!   they carry;
//! - [`body`] and [`fastjson`]: request and response bodies in the JSON dialect Java peers use;
//! - [`server`] and [`client`]: the tokio transport, and [`scan_clock`], the schedule of a
//!   server's background scan;
//! - [`acl`]: ACL 1.0 request signing;
//! - [`tls`]: TLS on the remoting port (Java's `TlsSystemConfig` settings).

pub mod acl;
pub mod binary_header;
pub mod body;
pub mod client;
pub mod code;
pub mod command;
pub mod connection;
pub mod dispatch;
pub mod error;
pub mod ext_fields;
pub mod fastjson;
pub mod flags;
pub mod frame;
pub mod header;
pub mod json_header;
pub mod language;
pub mod recall;
pub mod receipt;
pub mod reply;
pub mod responder;
pub mod router;
pub mod scan_clock;
pub mod server;
pub mod tls;

pub use code::{request_code, response_code};
pub use command::{RemotingCommand, SerializeType, CURRENT_VERSION};
pub use ext_fields::ExtFields;
pub use frame::{FrameError, RemotingCodec};
pub use language::LanguageCode;
