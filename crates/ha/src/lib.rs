//! apogee-ha: classic master/slave replication of the commit log (storage spec §6).
//!
//! A master ([`HaMaster`]) listens on `haListenPort`; each slave ([`HaSlave`]) connects,
//! reports how far its commit log reaches, and receives the master's commit log from there
//! as verbatim byte ranges, which it writes through the store's single writer
//! ([`apogee_store::MessageStore::append_replica`]). The slave acknowledges by reporting its
//! new end; under SYNC_MASTER an acknowledged send waits for those reports
//! ([`transfer`]).
//!
//! The wire format is RocketMQ's ([`wire`]), so an Apogee slave can follow a Java master and
//! the other way round. Everything runs on plain threads with blocking sockets: a master
//! has a handful of slaves, and a slave one master, each streaming in bulk.
//!
//! - [`config`]: `brokerRole` and the `ha*` keys;
//! - [`wire`]: frames and acknowledgements;
//! - [`auto_wire`]: controller mode's AutoSwitch format (handshake with epochs, then frames
//!   that carry their epoch); a master keeps a SyncStateSet ([`sync_state`]) and a slave
//!   truncates to the point it agrees on with its master before it takes frames;
//! - [`master`] and [`connection`]: the master's listener and one sender/reader per slave;
//! - [`transfer`]: appends waiting for slaves;
//! - [`slave`]: the slave's client.

pub mod auto_wire;
pub mod config;
pub mod connection;
pub mod master;
mod signal;
pub mod slave;
pub mod sync_state;
pub mod transfer;
pub mod wire;

pub use config::{AutoSwitch, BrokerRole, HaConfig};
pub use master::HaMaster;
pub use slave::HaSlave;
pub use sync_state::SyncStateListener;
