//! Queue allocation strategies (spec behaviour §4.4): given every queue of a topic and every
//! live client of a group, which queues this client consumes.
//!
//! Every member of a group runs the same strategy over the same sorted inputs, so the
//! strategies must be deterministic and agree exactly with the Java client's: a group mixing
//! Rust and Java consumers would otherwise assign a queue twice or not at all. The push
//! consumer and the lite pull consumer share these types.

use std::collections::BTreeMap;
use std::fmt;

use apogee_common::MessageQueue;

/// Why a strategy refused to allocate. The rebalance that asked keeps its current queues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// The current client id is empty.
    #[error("current client id is empty")]
    EmptyClientId,
    /// There are no queues to share.
    #[error("no message queue to allocate")]
    NoQueues,
    /// There are no clients to share the queues among.
    #[error("no consumer id in the group")]
    NoClients,
}

/// A rule that shares a topic's queues among a group's clients.
///
/// Inputs are sorted by the caller (queues by topic, broker name, queue id; ids
/// lexicographically). A client id absent from `cid_all` gets nothing (`Ok(vec![])`); empty
/// inputs are an error, so that the caller leaves its assignment as it is.
pub trait AllocateStrategy: Send + Sync + fmt::Debug + 'static {
    /// The strategy's name as Java reports it (`AVG`, `AVG_BY_CIRCLE`, `CONSISTENT_HASH`).
    fn name(&self) -> &str;

    /// The queues of `mq_all` that `current_cid` consumes, in `mq_all` order.
    fn allocate(
        &self,
        group: &str,
        current_cid: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Result<Vec<MessageQueue>, AllocateError>;
}

/// A built-in strategy: after the checks every Java strategy makes first ([`position`]), the
/// share of the client at `index` of `cid_all`. Its [`AllocateStrategy`] implementation is the
/// blanket one below, so that the checks are written once.
trait ShareByIndex: Send + Sync + fmt::Debug + 'static {
    /// The strategy's name as Java reports it.
    const NAME: &'static str;

    /// The queues of `mq_all` that the client at `index` of `cid_all` consumes, in `mq_all`
    /// order; both lists are non-empty.
    fn share(&self, index: usize, mq_all: &[MessageQueue], cid_all: &[String]) -> Vec<MessageQueue>;
}

impl<T: ShareByIndex> AllocateStrategy for T {
    fn name(&self) -> &str {
        T::NAME
    }

    fn allocate(
        &self,
        _group: &str,
        current_cid: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Result<Vec<MessageQueue>, AllocateError> {
        Ok(match position(current_cid, mq_all, cid_all)? {
            Some(index) => self.share(index, mq_all, cid_all),
            None => Vec::new(),
        })
    }
}

/// The checks every Java strategy makes first: `Ok(None)` when the client is not in the list.
fn position(
    current_cid: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
) -> Result<Option<usize>, AllocateError> {
    if current_cid.is_empty() {
        return Err(AllocateError::EmptyClientId);
    }
    if mq_all.is_empty() {
        return Err(AllocateError::NoQueues);
    }
    if cid_all.is_empty() {
        return Err(AllocateError::NoClients);
    }
    Ok(cid_all.iter().position(|cid| cid == current_cid))
}

/// `AllocateMessageQueueAveragely` (`AVG`, the default): consecutive blocks, the first
/// `M % C` clients getting one queue more. M=8, C=3 gives c0 {0,1,2}, c1 {3,4,5}, c2 {6,7}.
#[derive(Debug, Clone, Copy, Default)]
pub struct Averagely;

impl ShareByIndex for Averagely {
    const NAME: &'static str = "AVG";

    fn share(&self, index: usize, mq_all: &[MessageQueue], cid_all: &[String]) -> Vec<MessageQueue> {
        let (queues, clients) = (mq_all.len(), cid_all.len());
        let remainder = queues % clients;
        let bigger_block = remainder > 0 && index < remainder;
        let size = if queues <= clients {
            1
        } else if bigger_block {
            queues / clients + 1
        } else {
            queues / clients
        };
        let start = if bigger_block { index * size } else { index * size + remainder };
        let take = size.min(queues.saturating_sub(start));
        mq_all.iter().skip(start).take(take).cloned().collect()
    }
}

/// `AllocateMessageQueueAveragelyByCircle` (`AVG_BY_CIRCLE`): round robin, queue `i` to
/// client `i % C`. M=8, C=3 gives c0 {0,3,6}, c1 {1,4,7}, c2 {2,5}.
#[derive(Debug, Clone, Copy, Default)]
pub struct AveragelyByCircle;

impl ShareByIndex for AveragelyByCircle {
    const NAME: &'static str = "AVG_BY_CIRCLE";

    fn share(&self, index: usize, mq_all: &[MessageQueue], cid_all: &[String]) -> Vec<MessageQueue> {
        let clients = cid_all.len();
        mq_all.iter().enumerate().filter(|(i, _)| i % clients == index).map(|(_, mq)| mq.clone()).collect()
    }
}

/// Java's default number of virtual nodes per client on the consistent-hash ring.
pub const DEFAULT_VIRTUAL_NODES: usize = 10;

/// `AllocateMessageQueueConsistentHash` (`CONSISTENT_HASH`): each client puts
/// `virtual_nodes` points `hash("<cid>-<i>")` on a ring; a queue belongs to the first point at
/// or after `hash(queue string)`, wrapping around. When a client leaves, only its queues move.
///
/// The hash is the first four bytes of the MD5 digest of the UTF-8 text, read as an unsigned
/// big-endian number; the queue string is [`message_queue_string`].
#[derive(Debug, Clone, Copy)]
pub struct ConsistentHash {
    virtual_nodes: usize,
}

impl ConsistentHash {
    /// A ring with `virtual_nodes` points per client (at least 1).
    pub fn new(virtual_nodes: usize) -> Self {
        Self { virtual_nodes: virtual_nodes.max(1) }
    }

    /// Points per client.
    pub fn virtual_nodes(&self) -> usize {
        self.virtual_nodes
    }
}

impl Default for ConsistentHash {
    fn default() -> Self {
        Self::new(DEFAULT_VIRTUAL_NODES)
    }
}

impl ShareByIndex for ConsistentHash {
    const NAME: &'static str = "CONSISTENT_HASH";

    fn share(&self, index: usize, mq_all: &[MessageQueue], cid_all: &[String]) -> Vec<MessageQueue> {
        let current_cid = &cid_all[index];
        // Point → index of the owning client. Clients are inserted in list order, so on a
        // hash collision the later client's point wins, as with Java's TreeMap.put.
        let mut ring: BTreeMap<u32, usize> = BTreeMap::new();
        for (owner, cid) in cid_all.iter().enumerate() {
            for replica in 0..self.virtual_nodes {
                ring.insert(ring_hash(&format!("{cid}-{replica}")), owner);
            }
        }
        let mut mine = Vec::new();
        for mq in mq_all {
            let point = ring_hash(&message_queue_string(mq));
            let owner = ring.range(point..).next().or_else(|| ring.iter().next()).map(|(_, owner)| *owner);
            if owner.is_some_and(|owner| cid_all[owner] == *current_cid) {
                mine.push(mq.clone());
            }
        }
        mine
    }
}

/// Java `MessageQueue.toString()`: `MessageQueue [topic=T, brokerName=B, queueId=N]`, the key
/// [`ConsistentHash`] hashes.
pub fn message_queue_string(mq: &MessageQueue) -> String {
    format!("MessageQueue [topic={}, brokerName={}, queueId={}]", mq.topic, mq.broker_name, mq.queue_id)
}

/// The ring hash of Java's `ConsistentHashRouter.MD5Hash`: the first four MD5 digest bytes of
/// the UTF-8 text as an unsigned big-endian number.
pub fn ring_hash(key: &str) -> u32 {
    let digest = md5(key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Per-round left-rotation amounts of MD5 (RFC 1321 §3.4).
const MD5_SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, //
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, //
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, //
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// MD5's additive constants: `floor(|sin(i + 1)| * 2^32)` (RFC 1321 §3.4).
const MD5_CONSTANTS: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// The MD5 digest of `input` (RFC 1321). Only the ring hash needs it, and only on short keys,
/// so a plain implementation is enough and spares the SDK a dependency.
pub(crate) fn md5(input: &[u8]) -> [u8; 16] {
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let bit_len = (input.len() as u64).wrapping_mul(8);
    let mut padded = input.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&bit_len.to_le_bytes());
    for block in padded.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for round in 0..64 {
            let (mix, index) = match round / 16 {
                0 => ((b & c) | (!b & d), round),
                1 => ((d & b) | (!d & c), (5 * round + 1) % 16),
                2 => (b ^ c ^ d, (3 * round + 5) % 16),
                _ => (c ^ (b | !d), (7 * round) % 16),
            };
            let rotated = a
                .wrapping_add(mix)
                .wrapping_add(MD5_CONSTANTS[round])
                .wrapping_add(words[index])
                .rotate_left(MD5_SHIFTS[round]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        for (value, add) in state.iter_mut().zip([a, b, c, d]) {
            *value = value.wrapping_add(add);
        }
    }
    let mut digest = [0u8; 16];
    for (chunk, value) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use md5_crate::{Digest, Md5};
    use proptest::prelude::*;

    use super::*;

    fn queues(count: usize) -> Vec<MessageQueue> {
        (0..count).map(|i| MessageQueue::new("T", "broker-a", i as i32)).collect()
    }

    fn clients(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("127.0.0.1@c{i:03}")).collect()
    }

    fn ids(assigned: &[MessageQueue]) -> Vec<i32> {
        assigned.iter().map(|mq| mq.queue_id).collect()
    }

    fn share(strategy: &dyn AllocateStrategy, mq_all: &[MessageQueue], cid_all: &[String]) -> Vec<Vec<i32>> {
        cid_all.iter().map(|cid| ids(&strategy.allocate("g", cid, mq_all, cid_all).unwrap())).collect()
    }

    #[test]
    fn averagely_gives_the_first_clients_the_bigger_blocks() {
        assert_eq!(
            share(&Averagely, &queues(8), &clients(3)),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]
        );
        assert_eq!(
            share(&Averagely, &queues(9), &clients(3)),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]
        );
        assert_eq!(share(&Averagely, &queues(4), &clients(4)), vec![vec![0], vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn averagely_with_fewer_queues_than_clients_leaves_the_last_clients_idle() {
        assert_eq!(
            share(&Averagely, &queues(2), &clients(5)),
            vec![vec![0], vec![1], vec![], vec![], vec![]]
        );
    }

    #[test]
    fn by_circle_deals_round_robin() {
        assert_eq!(
            share(&AveragelyByCircle, &queues(8), &clients(3)),
            vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]
        );
        assert_eq!(share(&AveragelyByCircle, &queues(2), &clients(3)), vec![vec![0], vec![1], vec![]]);
    }

    #[test]
    fn an_unknown_client_gets_nothing_and_empty_inputs_are_errors() {
        let strategies: [&dyn AllocateStrategy; 3] =
            [&Averagely, &AveragelyByCircle, &ConsistentHash::default()];
        for strategy in strategies {
            assert_eq!(strategy.allocate("g", "stranger", &queues(4), &clients(2)), Ok(vec![]));
            assert_eq!(
                strategy.allocate("g", "", &queues(4), &clients(2)),
                Err(AllocateError::EmptyClientId)
            );
            assert_eq!(strategy.allocate("g", "c", &[], &clients(2)), Err(AllocateError::NoQueues));
            assert_eq!(strategy.allocate("g", "c", &queues(4), &[]), Err(AllocateError::NoClients));
        }
    }

    #[test]
    fn names_match_java() {
        assert_eq!(Averagely.name(), "AVG");
        assert_eq!(AveragelyByCircle.name(), "AVG_BY_CIRCLE");
        assert_eq!(ConsistentHash::default().name(), "CONSISTENT_HASH");
        assert_eq!(ConsistentHash::new(0).virtual_nodes(), 1);
    }

    #[test]
    fn queue_string_is_javas_to_string() {
        assert_eq!(
            message_queue_string(&MessageQueue::new("TopicTest", "broker-a", 3)),
            "MessageQueue [topic=TopicTest, brokerName=broker-a, queueId=3]"
        );
    }

    #[test]
    fn md5_matches_rfc_1321_vectors() {
        let hex = |digest: [u8; 16]| digest.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex(md5(b"message digest")), "f96b697d7cb7938d525a2f31aaf161d0");
        assert_eq!(
            hex(md5(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890")),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    /// The ring built from scratch with the `md-5` crate: (point, client) pairs, later clients
    /// overwriting earlier ones on a collision.
    fn reference_owner(mq: &MessageQueue, cid_all: &[String], virtual_nodes: usize) -> String {
        let hash = |text: &str| {
            let digest = Md5::digest(text.as_bytes());
            (u64::from(digest[0]) << 24)
                | (u64::from(digest[1]) << 16)
                | (u64::from(digest[2]) << 8)
                | u64::from(digest[3])
        };
        let mut ring: Vec<(u64, String)> = Vec::new();
        for cid in cid_all {
            for i in 0..virtual_nodes {
                let point = hash(&format!("{cid}-{i}"));
                ring.retain(|(existing, _)| *existing != point);
                ring.push((point, cid.clone()));
            }
        }
        ring.sort();
        let key = hash(&format!(
            "MessageQueue [topic={}, brokerName={}, queueId={}]",
            mq.topic, mq.broker_name, mq.queue_id
        ));
        let node = ring.iter().find(|(point, _)| *point >= key).unwrap_or(&ring[0]);
        node.1.clone()
    }

    #[test]
    fn consistent_hash_matches_an_independent_ring() {
        let mq_all: Vec<MessageQueue> = (0..16)
            .flat_map(|i| {
                [MessageQueue::new("TopicTest", "broker-a", i), MessageQueue::new("TopicTest", "broker-b", i)]
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let cid_all = vec![
            "192.168.0.1@1234#1".to_owned(),
            "192.168.0.2@99#2".to_owned(),
            "192.168.0.3@DEFAULT".to_owned(),
        ];
        let strategy = ConsistentHash::default();
        let mut seen = BTreeSet::new();
        for cid in &cid_all {
            let mine = strategy.allocate("g", cid, &mq_all, &cid_all).unwrap();
            let expected: Vec<MessageQueue> = mq_all
                .iter()
                .filter(|mq| reference_owner(mq, &cid_all, DEFAULT_VIRTUAL_NODES) == *cid)
                .cloned()
                .collect();
            assert_eq!(mine, expected, "queues of {cid}");
            for mq in mine {
                assert!(seen.insert(mq), "assigned twice");
            }
        }
        assert_eq!(seen.len(), mq_all.len());
    }

    #[test]
    fn consistent_hash_moves_only_the_queues_of_a_leaving_client() {
        let mq_all = queues(64);
        let before = clients(4);
        let after: Vec<String> = before.iter().filter(|cid| cid.as_str() != before[1]).cloned().collect();
        let strategy = ConsistentHash::default();
        for cid in &after {
            let old: BTreeSet<MessageQueue> =
                strategy.allocate("g", cid, &mq_all, &before).unwrap().into_iter().collect();
            let new: BTreeSet<MessageQueue> =
                strategy.allocate("g", cid, &mq_all, &after).unwrap().into_iter().collect();
            assert!(old.is_subset(&new), "{cid} lost queues when another client left");
        }
        let gone: BTreeSet<MessageQueue> =
            strategy.allocate("g", &before[1], &mq_all, &before).unwrap().into_iter().collect();
        for cid in &after {
            let old: BTreeSet<MessageQueue> =
                strategy.allocate("g", cid, &mq_all, &before).unwrap().into_iter().collect();
            let new: BTreeSet<MessageQueue> =
                strategy.allocate("g", cid, &mq_all, &after).unwrap().into_iter().collect();
            assert!(new.difference(&old).all(|mq| gone.contains(mq)), "{cid} took a queue that did not move");
        }
    }

    proptest! {
        #[test]
        fn every_queue_is_assigned_exactly_once(queue_count in 1usize..80, client_count in 1usize..20, strategy_index in 0usize..3) {
            let strategies: [&dyn AllocateStrategy; 3] = [&Averagely, &AveragelyByCircle, &ConsistentHash::default()];
            let strategy = strategies[strategy_index];
            let mq_all = queues(queue_count);
            let cid_all = clients(client_count);
            let mut counts = vec![0usize; queue_count];
            for cid in &cid_all {
                let mine = strategy.allocate("g", cid, &mq_all, &cid_all).unwrap();
                // Results keep mqAll order.
                prop_assert!(mine.windows(2).all(|pair| pair[0] < pair[1]));
                for mq in mine {
                    counts[mq.queue_id as usize] += 1;
                }
            }
            prop_assert!(counts.iter().all(|count| *count == 1), "{:?}", counts);
        }

        #[test]
        fn averagely_blocks_differ_by_at_most_one(queue_count in 1usize..80, client_count in 1usize..20) {
            let sizes: Vec<usize> = share(&Averagely, &queues(queue_count), &clients(client_count)).iter().map(Vec::len).collect();
            let (min, max) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
            prop_assert!(max - min <= 1);
        }

        #[test]
        fn md5_agrees_with_the_md5_crate(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let expected: [u8; 16] = Md5::digest(&input).into();
            prop_assert_eq!(md5(&input), expected);
        }
    }
}
