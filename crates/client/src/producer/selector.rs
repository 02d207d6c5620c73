//! Ready-made queue selectors for [`crate::Producer::send_with_selector`] (behaviour spec §3.6).
//!
//! A selector gets the topic's whole publish list and the message and returns the index of the
//! queue to use. Strict ordering needs the same key to map to the same queue every time, which
//! the hash selectors give as long as the list does not change (use an order topic, whose list
//! survives broker outages, when that matters).

use apogee_common::{java_string_hash, MessageQueue};

use crate::Message;

/// Java `SelectMessageQueueByHash` for a string key: `abs(key.hashCode() % n)`, with Java's
/// `String.hashCode`, so a Rust and a Java producer put the same key in the same queue.
pub fn select_by_hash(key: impl AsRef<str>) -> impl Fn(&[MessageQueue], &Message) -> usize {
    select_by_hash_code(java_string_hash(key.as_ref()))
}

/// `abs(hash % n)` for a hash computed by the caller (for an integer key `k`, Java's
/// `Integer.hashCode` is `k` itself).
pub fn select_by_hash_code(hash: i32) -> impl Fn(&[MessageQueue], &Message) -> usize {
    move |queues: &[MessageQueue], _: &Message| hash_index(hash, queues.len())
}

/// The index Java's hash selector computes for `hash` over `len` queues (0 when empty).
pub fn hash_index(hash: i32, len: usize) -> usize {
    let Ok(len) = i64::try_from(len) else { return 0 };
    if len == 0 {
        return 0;
    }
    usize::try_from((i64::from(hash) % len).abs()).unwrap_or(0)
}

/// Java `SelectMessageQueueByRandom`: any queue.
pub fn select_random() -> impl Fn(&[MessageQueue], &Message) -> usize {
    |queues: &[MessageQueue], _: &Message| {
        let len = queues.len().max(1);
        usize::try_from(super::random_u32()).unwrap_or(0) % len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(count: i32) -> Vec<MessageQueue> {
        (0..count).map(|id| MessageQueue::new("T", "b", id)).collect()
    }

    #[test]
    fn hash_matches_java() {
        // "order-1".hashCode() = -1207111310 in Java; % 4 = -2 → 2.
        assert_eq!(java_string_hash("order-1"), -1_207_111_310);
        let message = Message::new("T", &b"x"[..]);
        assert_eq!(select_by_hash("order-1")(&queues(4), &message), 2);
        assert_eq!(select_by_hash_code(-7)(&queues(4), &message), 3);
        assert_eq!(select_by_hash_code(i32::MIN)(&queues(3), &message), 2);
        assert_eq!(hash_index(5, 0), 0);
        // "k".hashCode() = 107 (its one UTF-16 unit); 107 % 8 = 3.
        assert_eq!(java_string_hash("k"), 107);
        assert_eq!(select_by_hash("k")(&queues(8), &message), 3);
    }

    #[test]
    fn random_stays_in_range() {
        let message = Message::new("T", &b"x"[..]);
        let select = select_random();
        for _ in 0..100 {
            assert!(select(&queues(3), &message) < 3);
        }
    }
}
