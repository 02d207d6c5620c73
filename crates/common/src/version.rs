//! `DataVersion`: how brokers and NameServers tell whether a topic table changed.

use serde::{Deserialize, Serialize};

use crate::time::now_ms;

/// Version stamp of a broker's topic table. Equality compares all three fields, as Java does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Bumped on every change.
    pub counter: i64,
    /// Epoch of the state (controller mode); 0 otherwise.
    pub state_version: i64,
    /// Milliseconds since the epoch of the last change.
    pub timestamp: i64,
}

impl DataVersion {
    /// A fresh version stamped now.
    pub fn new() -> Self {
        Self { counter: 0, state_version: 0, timestamp: now_ms() }
    }

    /// Records one change: counter + 1, timestamp = now.
    pub fn next_version(&mut self) {
        self.counter += 1;
        self.timestamp = now_ms();
    }
}
