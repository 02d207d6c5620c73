//! (stub) Delay levels: `SCHEDULE_TOPIC_XXXX` and `config/delayOffset.json`.

use std::io;
use std::sync::Arc;

use crate::{BrokerConfig, BrokerState};

/// Delivery progress per delay level.
#[derive(Debug, Default)]
pub struct ScheduleMessageService {}

impl ScheduleMessageService {
    /// Loads `config/delayOffset.json`.
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self {})
    }
    /// Writes the progress to disk.
    pub fn persist(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Delivers due messages of every level, until the broker stops.
pub async fn run(_state: Arc<BrokerState>) {}
