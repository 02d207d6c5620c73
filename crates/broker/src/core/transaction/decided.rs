//! The transactions decided lately, by id, so that a second END_TRANSACTION for another copy
//! of the same half (a check answered twice because its answer was slow, or the producer's
//! own end arriving after a check) marks that copy done without delivering the message again.
//! Bounded: the oldest ids are forgotten first. A restarted broker fills it again from the op
//! records it has not moved past.

use std::collections::{HashSet, VecDeque};

use parking_lot::Mutex;

/// Ids remembered at most (about 100 bytes each).
pub const MAX_DECIDED_IDS: usize = 100_000;

/// Transaction ids decided lately.
#[derive(Debug, Default)]
pub struct Decided {
    ids: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    set: HashSet<String>,
    /// Insertion order, for forgetting the oldest.
    order: VecDeque<String>,
}

impl Decided {
    /// Whether the transaction `id` was decided lately.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.lock().set.contains(id)
    }

    /// Remembers that transaction `id` is decided, forgetting the oldest past the bound.
    pub fn insert(&self, id: String) {
        self.claim(id);
    }

    /// Claims the decision of transaction `id`: true when nobody decided it yet (it is now
    /// remembered as decided), false when it was. Two ends racing for one transaction get one
    /// true between them.
    pub fn claim(&self, id: String) -> bool {
        let mut ids = self.ids.lock();
        if !ids.set.insert(id.clone()) {
            return false;
        }
        ids.order.push_back(id);
        while ids.order.len() > MAX_DECIDED_IDS {
            if let Some(oldest) = ids.order.pop_front() {
                ids.set.remove(&oldest);
            }
        }
        debug_assert_eq!(ids.set.len(), ids.order.len());
        true
    }

    /// Gives a claim back when the decision could not be stored.
    pub fn release(&self, id: &str) {
        let mut ids = self.ids.lock();
        if ids.set.remove(id) {
            ids.order.retain(|kept| kept != id);
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.lock().set.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_the_bound_and_forgets_the_oldest() {
        let decided = Decided::default();
        for index in 0..MAX_DECIDED_IDS + 3 {
            decided.insert(format!("tx{index}"));
        }
        decided.insert("tx5".to_owned());
        assert_eq!(decided.len(), MAX_DECIDED_IDS);
        assert!(!decided.contains("tx0") && !decided.contains("tx2"));
        assert!(decided.contains("tx3") && decided.contains(&format!("tx{}", MAX_DECIDED_IDS + 2)));
    }

    #[test]
    fn one_claim_wins_and_a_released_claim_can_be_made_again() {
        let decided = Decided::default();
        assert!(decided.claim("tx".to_owned()));
        assert!(!decided.claim("tx".to_owned()));
        decided.release("tx");
        assert!(!decided.contains("tx"));
        assert!(decided.claim("tx".to_owned()));
    }
}
