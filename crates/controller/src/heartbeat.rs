//! Broker liveness as this controller sees it (Java `DefaultBrokerHeartbeatManager`, spec §7.4).
//!
//! Brokers heartbeat every controller, so any controller that becomes leader already knows who
//! is alive. Not replicated: liveness is each controller's own observation. A broker's reported
//! (epoch, maxOffset) only ever moves forward, so a delayed heartbeat cannot make a broker look
//! more behind, or ahead, than it was.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::elect::{LiveInfo, Liveness};

/// Most brokers tracked at once; heartbeats of further brokers are refused.
pub const MAX_TRACKED_BROKERS: usize = 65_536;

/// Which broker a heartbeat is from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerKey {
    /// Cluster name.
    pub cluster_name: String,
    /// Broker set name.
    pub broker_name: String,
    /// Controller-assigned id.
    pub broker_id: i64,
}

/// One heartbeat, as decoded from BROKER_HEARTBEAT.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Who sent it.
    pub key: BrokerKey,
    /// Where it listens.
    pub broker_addr: String,
    /// The connection it came on: its close makes the broker inactive at once.
    pub connection_id: Option<u64>,
    /// `heartbeatTimeoutMills`, else the controller's default.
    pub timeout: Duration,
    /// Last master epoch the broker knows (-1 unknown).
    pub epoch: i32,
    /// Its commit-log max offset (-1 unknown).
    pub max_offset: i64,
    /// Its confirm offset (-1 unknown).
    pub confirm_offset: i64,
    /// `brokerElectionPriority` (lower preferred).
    pub election_priority: i32,
}

/// What is kept of a broker between heartbeats.
#[derive(Debug, Clone)]
struct LiveBroker {
    broker_addr: String,
    connection_id: Option<u64>,
    last_update: Instant,
    timeout: Duration,
    epoch: i32,
    max_offset: i64,
    confirm_offset: i64,
    election_priority: i32,
}

impl LiveBroker {
    fn alive_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_update) <= self.timeout
    }
}

/// The liveness table.
#[derive(Debug, Default)]
pub struct HeartbeatManager {
    table: Mutex<HashMap<BrokerKey, LiveBroker>>,
}

/// A heartbeat was refused: the table is full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the controller already tracks {MAX_TRACKED_BROKERS} brokers")]
pub struct TableFull;

impl HeartbeatManager {
    /// Records `heartbeat`, received at `now`.
    pub fn on_heartbeat(&self, heartbeat: Heartbeat, now: Instant) -> Result<(), TableFull> {
        let mut table = self.table.lock();
        match table.get_mut(&heartbeat.key) {
            Some(known) => {
                known.last_update = now;
                known.timeout = heartbeat.timeout;
                known.election_priority = heartbeat.election_priority;
                known.broker_addr = heartbeat.broker_addr;
                known.connection_id = heartbeat.connection_id;
                let newer = heartbeat.epoch > known.epoch
                    || (heartbeat.epoch == known.epoch && heartbeat.max_offset > known.max_offset);
                if newer {
                    known.epoch = heartbeat.epoch;
                    known.max_offset = heartbeat.max_offset;
                    known.confirm_offset = heartbeat.confirm_offset;
                }
            }
            None => {
                if table.len() >= MAX_TRACKED_BROKERS {
                    return Err(TableFull);
                }
                table.insert(
                    heartbeat.key,
                    LiveBroker {
                        broker_addr: heartbeat.broker_addr,
                        connection_id: heartbeat.connection_id,
                        last_update: now,
                        timeout: heartbeat.timeout,
                        epoch: heartbeat.epoch,
                        max_offset: heartbeat.max_offset,
                        confirm_offset: heartbeat.confirm_offset,
                        election_priority: heartbeat.election_priority,
                    },
                );
            }
        }
        Ok(())
    }

    /// Forgets the brokers whose heartbeats came on `connection_id`, which closed.
    pub fn on_connection_closed(&self, connection_id: u64) -> Vec<BrokerKey> {
        let mut table = self.table.lock();
        let gone: Vec<BrokerKey> = table
            .iter()
            .filter(|(_, live)| live.connection_id == Some(connection_id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            table.remove(key);
        }
        gone
    }

    /// Forgets every broker silent past its timeout at `now`; returns them.
    pub fn expire(&self, now: Instant) -> Vec<BrokerKey> {
        let mut table = self.table.lock();
        let expired: Vec<BrokerKey> =
            table.iter().filter(|(_, live)| !live.alive_at(now)).map(|(key, _)| key.clone()).collect();
        for key in &expired {
            table.remove(key);
        }
        expired
    }

    /// Whether the broker is alive at `now`.
    pub fn is_alive_at(&self, key: &BrokerKey, now: Instant) -> bool {
        self.table.lock().get(key).is_some_and(|live| live.alive_at(now))
    }
}

fn key(cluster_name: &str, broker_name: &str, broker_id: i64) -> BrokerKey {
    BrokerKey { cluster_name: cluster_name.to_owned(), broker_name: broker_name.to_owned(), broker_id }
}

impl Liveness for HeartbeatManager {
    fn is_alive(&self, cluster_name: &str, broker_name: &str, broker_id: i64) -> bool {
        self.is_alive_at(&key(cluster_name, broker_name, broker_id), Instant::now())
    }

    fn live_info(&self, cluster_name: &str, broker_name: &str, broker_id: i64) -> Option<LiveInfo> {
        self.table.lock().get(&key(cluster_name, broker_name, broker_id)).map(|live| LiveInfo {
            epoch: live.epoch,
            max_offset: live.max_offset,
            election_priority: live.election_priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(epoch: i32, max_offset: i64, connection_id: u64) -> Heartbeat {
        Heartbeat {
            key: key("c", "b", 1),
            broker_addr: "127.0.0.1:1".into(),
            connection_id: Some(connection_id),
            timeout: Duration::from_millis(100),
            epoch,
            max_offset,
            confirm_offset: max_offset,
            election_priority: 0,
        }
    }

    #[test]
    fn epoch_and_offset_never_move_back() {
        let manager = HeartbeatManager::default();
        let now = Instant::now();
        manager.on_heartbeat(beat(2, 500, 7), now).unwrap();
        manager.on_heartbeat(beat(1, 900, 7), now).unwrap();
        manager.on_heartbeat(beat(2, 400, 7), now).unwrap();
        let info = manager.live_info("c", "b", 1).unwrap();
        assert_eq!((info.epoch, info.max_offset), (2, 500));
        manager.on_heartbeat(beat(3, 10, 7), now).unwrap();
        let info = manager.live_info("c", "b", 1).unwrap();
        assert_eq!((info.epoch, info.max_offset), (3, 10));
    }

    #[test]
    fn silence_and_a_closed_connection_end_liveness() {
        let manager = HeartbeatManager::default();
        let now = Instant::now();
        manager.on_heartbeat(beat(1, 1, 7), now).unwrap();
        assert!(manager.is_alive_at(&key("c", "b", 1), now + Duration::from_millis(100)));
        assert!(!manager.is_alive_at(&key("c", "b", 1), now + Duration::from_millis(101)));
        assert_eq!(manager.expire(now + Duration::from_millis(50)), vec![]);
        assert_eq!(manager.expire(now + Duration::from_millis(150)), vec![key("c", "b", 1)]);
        manager.on_heartbeat(beat(1, 1, 8), now).unwrap();
        assert_eq!(manager.on_connection_closed(7), vec![]);
        assert_eq!(manager.on_connection_closed(8), vec![key("c", "b", 1)]);
    }
}
