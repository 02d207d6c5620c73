//! The election policy (storage-ha spec §7.5, Java `DefaultElectPolicy`): which broker of a set
//! becomes master. Pure: liveness and the brokers' reported epochs and offsets come in through
//! [`Liveness`].

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// What the heartbeats say of one broker, for ordering candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveInfo {
    /// Last master epoch the broker reported (-1 when unknown).
    pub epoch: i32,
    /// Its commit-log max offset (-1 when unknown).
    pub max_offset: i64,
    /// `brokerElectionPriority`: lower is preferred.
    pub election_priority: i32,
}

/// Which brokers are alive and what they last reported: the heartbeat manager in a running
/// controller, a table in tests.
pub trait Liveness {
    /// Whether broker `broker_id` of set `broker_name` has a current heartbeat.
    fn is_alive(&self, cluster_name: &str, broker_name: &str, broker_id: i64) -> bool;
    /// Its last report, if it ever sent one.
    fn live_info(&self, cluster_name: &str, broker_name: &str, broker_id: i64) -> Option<LiveInfo>;
}

/// Orders candidates: epoch descending, then max offset descending, then priority ascending,
/// then id ascending (so the choice never depends on iteration order).
fn better(a: (i64, LiveInfo), b: (i64, LiveInfo)) -> Ordering {
    b.1.epoch
        .cmp(&a.1.epoch)
        .then(b.1.max_offset.cmp(&a.1.max_offset))
        .then(a.1.election_priority.cmp(&b.1.election_priority))
        .then(a.0.cmp(&b.0))
}

/// The best of `brokers` that is alive: the old master if it qualifies and nobody is
/// designated; the designated broker if it qualifies (else nobody); otherwise the best by
/// [`better`]. `None` when none is alive.
fn try_elect(
    liveness: &dyn Liveness,
    cluster_name: &str,
    broker_name: &str,
    brokers: &BTreeSet<i64>,
    old_master: Option<i64>,
    prefer: Option<i64>,
) -> Option<i64> {
    let alive: Vec<i64> =
        brokers.iter().copied().filter(|id| liveness.is_alive(cluster_name, broker_name, *id)).collect();
    if alive.is_empty() {
        return None;
    }
    if let Some(old) = old_master {
        if alive.contains(&old) && prefer.is_none_or(|preferred| preferred == old) {
            return Some(old);
        }
    }
    if let Some(preferred) = prefer {
        return alive.contains(&preferred).then_some(preferred);
    }
    let unknown = LiveInfo { epoch: -1, max_offset: -1, election_priority: i32::MAX };
    alive
        .into_iter()
        .map(|id| (id, liveness.live_info(cluster_name, broker_name, id).unwrap_or(unknown)))
        .min_by(|a, b| better(*a, *b))
        .map(|(id, _)| id)
}

/// Elects from the SyncStateSet, then (only when unclean election is enabled, `all_replicas`
/// is `Some`) from every registered broker.
pub fn elect(
    liveness: &dyn Liveness,
    cluster_name: &str,
    broker_name: &str,
    sync_state_set: &BTreeSet<i64>,
    all_replicas: Option<&BTreeSet<i64>>,
    old_master: Option<i64>,
    prefer: Option<i64>,
) -> Option<i64> {
    try_elect(liveness, cluster_name, broker_name, sync_state_set, old_master, prefer).or_else(|| {
        all_replicas.and_then(|all| try_elect(liveness, cluster_name, broker_name, all, old_master, prefer))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Table(BTreeMap<i64, LiveInfo>);

    impl Liveness for Table {
        fn is_alive(&self, _: &str, _: &str, id: i64) -> bool {
            self.0.contains_key(&id)
        }
        fn live_info(&self, _: &str, _: &str, id: i64) -> Option<LiveInfo> {
            self.0.get(&id).copied()
        }
    }

    fn info(epoch: i32, max_offset: i64, election_priority: i32) -> LiveInfo {
        LiveInfo { epoch, max_offset, election_priority }
    }

    #[test]
    fn orders_by_epoch_then_offset_then_priority() {
        let set = BTreeSet::from([1, 2, 3]);
        let table = Table(BTreeMap::from([(1, info(2, 100, 0)), (2, info(3, 10, 5)), (3, info(3, 10, 1))]));
        assert_eq!(elect(&table, "c", "b", &set, None, None, None), Some(3));
        let table = Table(BTreeMap::from([(1, info(3, 100, 9)), (2, info(3, 10, 0))]));
        assert_eq!(elect(&table, "c", "b", &set, None, None, None), Some(1));
    }

    #[test]
    fn keeps_a_live_old_master_and_honours_a_designated_one() {
        let set = BTreeSet::from([1, 2]);
        let table = Table(BTreeMap::from([(1, info(1, 0, 0)), (2, info(9, 9, 0))]));
        assert_eq!(elect(&table, "c", "b", &set, None, Some(1), None), Some(1));
        assert_eq!(elect(&table, "c", "b", &set, None, Some(1), Some(2)), Some(2));
        assert_eq!(elect(&table, "c", "b", &set, None, Some(1), Some(7)), None);
    }

    #[test]
    fn unclean_election_only_when_all_replicas_are_given() {
        let sync = BTreeSet::from([1]);
        let all = BTreeSet::from([1, 2]);
        let table = Table(BTreeMap::from([(2, info(1, 0, 0))]));
        assert_eq!(elect(&table, "c", "b", &sync, None, None, None), None);
        assert_eq!(elect(&table, "c", "b", &sync, Some(&all), None, None), Some(2));
    }
}
