//! A controller-mode master's SyncStateSet (storage spec §7.6): the replicas that hold
//! everything the master acknowledged, so that the controllers may elect any of them.
//!
//! The master proposes changes; the controllers decide. A slave joins once it has caught up
//! with the master (its ack reaches the master's end as of the last frame sent to it, and the
//! start of the master's epoch); a member leaves when its connection closes or when it has not
//! caught up for `haMaxTimeSlaveNotCatchup`. One proposal is in flight at a time, through a
//! [`SyncStateListener`]; until the controllers answer, acks are counted against the union of
//! the current and the proposed set, so a send is never acknowledged with fewer copies than
//! either set demands.
//!
//! Invariants: the master's own id is always a member; `epoch` only grows.

use std::collections::BTreeSet;
use std::sync::Arc;

/// Who carries a master's proposals to the controllers (the broker's replicas manager).
pub trait SyncStateListener: Send + Sync + 'static {
    /// The master wants its SyncStateSet to be `members`, changing the set of epoch
    /// `based_on_epoch`. The listener must answer, once, with
    /// [`crate::HaMaster::apply_sync_state_set`] or [`crate::HaMaster::sync_state_set_refused`].
    fn propose(&self, members: BTreeSet<i64>, based_on_epoch: i32);
}

/// A proposal to hand to the listener, outside any lock.
pub(crate) struct Proposal {
    pub listener: Arc<dyn SyncStateListener>,
    pub members: BTreeSet<i64>,
    pub based_on_epoch: i32,
}

impl Proposal {
    pub(crate) fn send(self) {
        tracing::info!(members = ?self.members, based_on_epoch = self.based_on_epoch, "proposing a new SyncStateSet");
        self.listener.propose(self.members, self.based_on_epoch);
    }
}

/// See the module documentation.
pub(crate) struct SyncState {
    pub local_broker_id: i64,
    /// Where the master's current epoch starts: a slave behind it cannot join.
    pub epoch_start_offset: u64,
    members: BTreeSet<i64>,
    epoch: i32,
    proposing: Option<BTreeSet<i64>>,
    listener: Option<Arc<dyn SyncStateListener>>,
}

impl SyncState {
    pub(crate) fn new(local_broker_id: i64, epoch_start_offset: u64) -> Self {
        Self {
            local_broker_id,
            epoch_start_offset,
            members: BTreeSet::from([local_broker_id]),
            epoch: 0,
            proposing: None,
            listener: None,
        }
    }

    /// The members acks are counted against: the set, and the proposed one while in flight.
    pub(crate) fn counted(&self) -> BTreeSet<i64> {
        let mut counted = self.members.clone();
        if let Some(proposing) = &self.proposing {
            counted.extend(proposing.iter().copied());
        }
        counted
    }

    /// Whether acks of `broker_id` count (a member, or proposed as one).
    pub(crate) fn is_counted(&self, broker_id: i64) -> bool {
        self.members.contains(&broker_id)
            || self.proposing.as_ref().is_some_and(|set| set.contains(&broker_id))
    }

    /// The decided set and its epoch.
    pub(crate) fn current(&self) -> (BTreeSet<i64>, i32) {
        (self.members.clone(), self.epoch)
    }

    pub(crate) fn is_member(&self, broker_id: i64) -> bool {
        self.members.contains(&broker_id)
    }

    pub(crate) fn set_listener(&mut self, listener: Arc<dyn SyncStateListener>) {
        self.listener = Some(listener);
    }

    /// Adopts a set the controllers decided, if it is newer than the one held. Ends any
    /// proposal in flight.
    pub(crate) fn apply(&mut self, mut members: BTreeSet<i64>, epoch: i32) -> bool {
        self.proposing = None;
        if epoch < self.epoch {
            return false;
        }
        members.insert(self.local_broker_id);
        let changed = members != self.members || epoch != self.epoch;
        self.members = members;
        self.epoch = epoch;
        changed
    }

    /// The controllers refused the proposal in flight (or never answered).
    pub(crate) fn refused(&mut self) {
        self.proposing = None;
    }

    /// A proposal of `wanted`, unless one is in flight, nobody listens, or it changes nothing.
    pub(crate) fn propose(&mut self, mut wanted: BTreeSet<i64>) -> Option<Proposal> {
        wanted.insert(self.local_broker_id);
        if self.proposing.is_some() || wanted == self.members {
            return None;
        }
        let listener = Arc::clone(self.listener.as_ref()?);
        self.proposing = Some(wanted.clone());
        Some(Proposal { listener, members: wanted, based_on_epoch: self.epoch })
    }

    /// Members other than the master.
    pub(crate) fn replicas(&self) -> impl Iterator<Item = i64> + '_ {
        self.members.iter().copied().filter(move |&id| id != self.local_broker_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(BTreeSet<i64>, i32)>>);

    impl SyncStateListener for Recorder {
        fn propose(&self, members: BTreeSet<i64>, based_on_epoch: i32) {
            self.0.lock().push((members, based_on_epoch));
        }
    }

    #[test]
    fn one_proposal_at_a_time_counted_as_a_union_until_decided() {
        let recorder = Arc::new(Recorder::default());
        let mut state = SyncState::new(1, 0);
        state.set_listener(Arc::clone(&recorder) as _);
        assert!(state.apply(BTreeSet::from([1, 2]), 3));
        assert!(state.propose(BTreeSet::from([1, 2])).is_none(), "no change, no proposal");
        state.propose(BTreeSet::from([1])).expect("shrink proposed").send();
        assert!(state.propose(BTreeSet::from([1, 3])).is_none(), "one in flight");
        assert_eq!(state.counted(), BTreeSet::from([1, 2]));
        assert!(!state.apply(BTreeSet::from([1, 2, 3]), 2), "an older epoch is ignored");
        assert!(state.propose(BTreeSet::from([1])).is_some(), "the stale answer ended the flight");
        state.refused();
        assert!(state.apply(BTreeSet::from([2]), 4));
        assert_eq!(state.current(), (BTreeSet::from([1, 2]), 4), "the master stays a member");
        assert_eq!(recorder.0.lock()[0], (BTreeSet::from([1]), 3));
    }
}
