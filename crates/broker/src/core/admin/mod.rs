//! Admin operations (behaviour spec §9): what `mqadmin`, the dashboard and slaves ask a
//! broker, by concern: [`topics`] and [`groups`] maintenance (changes persist through their
//! managers, which also re-register with the NameServers), [`stats`] (queue offsets, group
//! progress, live connections, who consumes what) and [`broker`] (runtime figures,
//! configuration, delay progress, maintenance).

pub mod attributes;
pub mod broker;
pub mod groups;
pub mod paging;
pub mod stats;
pub mod topics;

use apogee_remoting::code::response_code;

use super::error::Error;

/// Most read or write queues a topic may be given here: stats walk every queue, and 16 384
/// queues already make a 2 MiB stats body.
pub const MAX_QUEUE_NUMS: i32 = 16_384;

/// INVALID_PARAMETER with `remark`.
fn invalid(remark: impl Into<String>) -> Error {
    Error::new(response_code::INVALID_PARAMETER, remark)
}
