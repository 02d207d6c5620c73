//! Bounded per-thread lists of spare allocations, for the hot paths that make and drop one
//! object per message: taking a spare and giving it back costs a thread-local access, not an
//! allocation and a free.
//!
//! Each list lives in a `thread_local!` of its user's, `RefCell<Vec<T>>`. During thread
//! teardown the list may be gone: then nothing is taken and what is given is dropped.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A spare from `list`, if this thread has one.
pub fn take<T: 'static>(list: &'static LocalKey<RefCell<Vec<T>>>) -> Option<T> {
    list.try_with(|list| list.borrow_mut().pop()).ok().flatten()
}

/// Keeps `spare` in `list` while it holds fewer than `limit`; drops it otherwise.
pub fn keep<T: 'static>(list: &'static LocalKey<RefCell<Vec<T>>>, spare: T, limit: usize) {
    // Dropped after the borrow ends: a spare's drop may itself use the list.
    let refused = list
        .try_with(|list| {
            let mut list = list.borrow_mut();
            if list.len() < limit {
                list.push(spare);
                None
            } else {
                Some(spare)
            }
        })
        .unwrap_or(None);
    drop(refused);
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn spares_are_reused_up_to_the_limit() {
        assert_eq!(take(&SPARES), None);
        keep(&SPARES, vec![1], 2);
        keep(&SPARES, vec![2], 2);
        keep(&SPARES, vec![3], 2);
        assert_eq!(take(&SPARES), Some(vec![2]));
        assert_eq!(take(&SPARES), Some(vec![1]));
        assert_eq!(take(&SPARES), None);
    }
}
