//! The controllers' consensus: openraft replicates [`EventBatch`]es among the controllers.
//!
//! - [`log_store`]: the raft log and vote, persisted under the data directory;
//! - [`state_machine`]: applies committed batches to the [`ControllerState`], persists snapshots;
//! - [`network`]: raft RPCs between controllers over the remoting port they already serve
//!   (three private request codes), as Java's DLedger controller shares its port too;
//! - [`file`]: atomic, durable file replacement used by both stores.

pub mod file;
pub mod log_store;
pub mod network;
pub mod state_machine;

// `declare_raft_types!` names `Cursor` unqualified as the default snapshot data type.
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{ControllerState, Event};

/// The events one request produced, appended as one raft entry so they commit together (Java
/// appends a request's events as one batch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Events in the order they are applied.
    pub events: Vec<Event>,
}

/// What applying one entry returns: nothing beyond success (a request's answer is decided
/// before its events are proposed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied;

openraft::declare_raft_types!(
    /// openraft's type configuration of the controllers: node ids are the controller ids,
    /// nodes carry the controller's remoting address.
    pub TypeConfig:
        D = EventBatch,
        R = Applied,
);

/// The openraft instance of a controller.
pub type ControllerRaft = openraft::Raft<TypeConfig>;

/// A controller id (`--id`, `controllerDLegerSelfId`).
pub type NodeId = u64;

/// The storage error of this configuration.
pub type StorageError = openraft::StorageError<NodeId>;

/// Shared read access to the applied state, for request handlers.
pub type SharedState = std::sync::Arc<parking_lot::RwLock<ControllerState>>;
