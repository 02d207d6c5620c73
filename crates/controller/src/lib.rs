//! apogee-controller: the controller of RocketMQ 5.x controller mode (RIP-44, storage-ha spec §7).
//!
//! Per broker set it hands out broker ids, records the SyncStateSet and elects a master when
//! the old one stops heartbeating. Three controllers replicate that state with openraft; only
//! the raft leader decides and writes.
//!
//! - [`state`]: the replicated state and the events that change it (pure, deterministic);
//! - [`elect`]: the election policy; [`manager`]: request validation that yields events;
//! - [`heartbeat`]: broker liveness as this controller sees it;
//! - [`raft`]: openraft's storage, state machine and network;
//! - [`header`] and [`body`]: the wire types, with Java's field names;
//! - [`processor`]: the remoting handlers; [`server`]: [`Controller`], wiring it all;
//! - [`client`]: what a broker uses to talk to the controllers;
//! - [`config`]: the settings, with Java's `ControllerConfig` keys.

pub mod body;
pub mod client;
pub mod config;
pub mod elect;
pub mod header;
pub mod heartbeat;
pub mod manager;
pub mod processor;
pub mod raft;
pub mod server;
pub mod state;

pub use config::ControllerConfig;
pub use server::Controller;
