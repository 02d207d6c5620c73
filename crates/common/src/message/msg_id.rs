//! Message ids (spec remoting-protocol §4.7, §4.8): the broker's offset id, which locates a
//! record in the commit log, and the client's unique id (`UNIQ_KEY`), which only has to be
//! unique.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;

use super::error::RecordError;
use super::IdText;

/// Hex length of an offset or unique id built on an IPv4 address (16 bytes).
pub const V4_ID_HEX_LEN: usize = 32;
/// Hex length of an offset or unique id built on an IPv6 address (28 bytes).
pub const V6_ID_HEX_LEN: usize = 56;
/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;
/// Longest id echoed back in an error message, in characters.
const MAX_ID_IN_ERROR: usize = 64;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `text` to an id being built: a `String` or an [`IdText`], which never refuse text.
fn push_text(out: &mut impl fmt::Write, text: &str) {
    let appended = out.write_str(text);
    debug_assert!(appended.is_ok());
}

/// Bytes [`push_hex`] encodes per append.
const HEX_CHUNK_BYTES: usize = 16;

/// Appends `bytes` as uppercase hex (Java `UtilAll.bytes2string`).
fn push_hex(out: &mut impl fmt::Write, bytes: &[u8]) {
    for chunk in bytes.chunks(HEX_CHUNK_BYTES) {
        let mut digits = [0u8; 2 * HEX_CHUNK_BYTES];
        for (pair, &byte) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX_UPPER[usize::from(byte >> 4)];
            pair[1] = HEX_UPPER[usize::from(byte & 0x0F)];
        }
        let digits = &digits[..2 * chunk.len()];
        // Only ASCII hex digits were written.
        push_text(out, std::str::from_utf8(digits).expect("hex digits are ASCII"));
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn bad_id(id: &str, reason: &'static str) -> RecordError {
    RecordError::BadMessageId { id: id.chars().take(MAX_ID_IN_ERROR).collect(), reason }
}

/// Decodes a 32- or 56-char hex id into its 16 or 28 bytes (case-insensitive).
fn decode_id_bytes(id: &str) -> Result<([u8; 28], usize), RecordError> {
    let len = match id.len() {
        V4_ID_HEX_LEN => 16,
        V6_ID_HEX_LEN => 28,
        _ => return Err(bad_id(id, "length must be 32 or 56 hex digits")),
    };
    let mut bytes = [0u8; 28];
    for (slot, pair) in bytes.iter_mut().zip(id.as_bytes().chunks_exact(2)) {
        let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
            return Err(bad_id(id, "odd number of hex digits"));
        };
        match (hex_digit(hi), hex_digit(lo)) {
            (Some(hi), Some(lo)) => *slot = (hi << 4) | lo,
            _ => return Err(bad_id(id, "not hexadecimal")),
        }
    }
    Ok((bytes, len))
}

fn ip_octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// The broker's offset message id: uppercase hex of store IP (4 or 16 bytes), port (i32) and
/// commit-log offset (i64), i.e. 32 chars for IPv4 and 56 for IPv6. SEND responses return it,
/// END_TRANSACTION carries it and VIEW_MESSAGE_BY_ID resolves it.
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut out = String::with_capacity(OFFSET_MSG_ID_V6_CHARS);
    push_offset_msg_id(&mut out, store_host, commit_log_offset);
    out
}

/// Characters of an offset message id of an IPv6 store host (32 for IPv4).
pub const OFFSET_MSG_ID_V6_CHARS: usize = (16 + 12) * 2;

/// [`offset_msg_id`] as an [`IdText`], without an allocation (the send path answers with it).
pub fn offset_msg_id_text(store_host: SocketAddr, commit_log_offset: i64) -> IdText {
    let mut out = IdText::new();
    push_offset_msg_id(&mut out, store_host, commit_log_offset);
    out
}

/// Appends [`offset_msg_id`] to `out` (a batch's ids go into one string).
pub fn push_offset_msg_id(out: &mut impl fmt::Write, store_host: SocketAddr, commit_log_offset: i64) {
    let (ip, ip_len) = ip_octets(store_host.ip());
    push_hex(out, ip.get(..ip_len).unwrap_or(&[]));
    push_hex(out, &i32::from(store_host.port()).to_be_bytes());
    push_hex(out, &commit_log_offset.to_be_bytes());
}

/// Splits an offset message id into store host and commit-log offset (IPv4 when the id has 32
/// chars, IPv6 when 56; hex digits in either case).
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), RecordError> {
    let (bytes, len) = decode_id_bytes(id)?;
    let ip_len = len - 12;
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        let mut v6 = [0u8; 16];
        v6.copy_from_slice(&bytes[..16]);
        IpAddr::V6(Ipv6Addr::from(v6))
    };
    let mut port = [0u8; 4];
    port.copy_from_slice(&bytes[ip_len..ip_len + 4]);
    let port = u16::try_from(i32::from_be_bytes(port)).map_err(|_| bad_id(id, "port out of range"))?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[ip_len + 4..ip_len + 12]);
    Ok((SocketAddr::new(ip, port), i64::from_be_bytes(offset)))
}

/// Day of the month (1-based) of a day count since 1970-01-01, proleptic Gregorian calendar.
fn day_of_month(days_since_epoch: i64) -> i64 {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    day_of_year - (153 * month_from_march + 2) / 5 + 1
}

/// Epoch ms of 00:00 UTC on the first day of the month containing `now_ms`.
fn month_start_ms(now_ms: i64) -> i64 {
    let days = now_ms.div_euclid(MS_PER_DAY);
    (days - (day_of_month(days) - 1)) * MS_PER_DAY
}

/// Generator of client message ids (`UNIQ_KEY`, spec §4.8): a per-process prefix of IP (4 or
/// 16 bytes), pid (i16) and a random per-process instance hash (i32; Java uses its class-loader
/// hash), then per id the milliseconds since the month started (i32) and a wrapping 16-bit
/// counter, all in uppercase hex. Safe to share between threads.
///
/// The month starts at 00:00 UTC rather than local time: nothing decodes the field except
/// [`uniq_id_timestamp`], which uses the same convention.
#[derive(Debug)]
pub struct UniqIdGenerator {
    prefix: String,
    counter: AtomicU16,
}

impl UniqIdGenerator {
    /// A generator for this process announcing `ip` (the producer's or broker's address).
    pub fn new(ip: IpAddr) -> Self {
        // A randomly keyed hasher gives a per-process random value without a RNG dependency.
        let random = RandomState::new().hash_one((std::process::id(), crate::time::now_ms()));
        let pid = std::process::id() as i16;
        Self::with_parts(ip, pid, random as i32)
    }

    /// A generator with every prefix part given, for tests and reproducible tools.
    pub fn with_parts(ip: IpAddr, pid: i16, instance_hash: i32) -> Self {
        let (octets, ip_len) = ip_octets(ip);
        let mut prefix = String::with_capacity((ip_len + 12) * 2);
        push_hex(&mut prefix, octets.get(..ip_len).unwrap_or(&[]));
        push_hex(&mut prefix, &pid.to_be_bytes());
        push_hex(&mut prefix, &instance_hash.to_be_bytes());
        UniqIdGenerator { prefix, counter: AtomicU16::new(0) }
    }

    /// The process-wide generator. Its IP is the one given to the first [`Self::init_global`]
    /// call, or, like Java when it cannot find an address, four bytes of the start time.
    pub fn global() -> &'static UniqIdGenerator {
        GLOBAL.get_or_init(|| {
            let now = crate::time::now_ms().to_be_bytes();
            UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::new(now[4], now[5], now[6], now[7])))
        })
    }

    /// Sets the IP of the process-wide generator; false if it was already created.
    pub fn init_global(ip: IpAddr) -> bool {
        GLOBAL.set(UniqIdGenerator::new(ip)).is_ok()
    }

    /// A new id (32 hex chars for an IPv4 prefix, 56 for IPv6).
    pub fn next_id(&self) -> String {
        self.next_id_at(crate::time::now_ms())
    }

    /// [`Self::next_id`] without an allocation (the broker adds one to every send that
    /// lacks it).
    pub fn next_id_text(&self) -> IdText {
        let mut id = IdText::new();
        self.push_next_id(&mut id, crate::time::now_ms());
        id
    }

    /// A new id as if the clock read `now_ms`.
    pub fn next_id_at(&self, now_ms: i64) -> String {
        let mut id = String::with_capacity(self.prefix.len() + 12);
        self.push_next_id(&mut id, now_ms);
        id
    }

    fn push_next_id(&self, out: &mut impl fmt::Write, now_ms: i64) {
        let since_month = (now_ms - month_start_ms(now_ms)) as i32;
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        push_text(out, &self.prefix);
        push_hex(out, &since_month.to_be_bytes());
        push_hex(out, &counter.to_be_bytes());
    }
}

static GLOBAL: OnceLock<UniqIdGenerator> = OnceLock::new();

/// Approximate creation time (epoch ms) of a unique id made by [`UniqIdGenerator`] (or a Java
/// client in a UTC zone), assuming it is less than a month old. `None` if it is not an id.
pub fn uniq_id_timestamp(id: &str) -> Option<i64> {
    uniq_id_timestamp_at(id, crate::time::now_ms())
}

/// [`uniq_id_timestamp`] as if the clock read `now_ms`.
pub fn uniq_id_timestamp_at(id: &str, now_ms: i64) -> Option<i64> {
    let (bytes, len) = decode_id_bytes(id).ok()?;
    let at = len - 6;
    let mut span = [0u8; 4];
    span.copy_from_slice(bytes.get(at..at + 4)?);
    let span = i64::from(u32::from_be_bytes(span));
    let mut start = month_start_ms(now_ms);
    if start + span > now_ms {
        // Made in the previous month (or the clock moved back): count from that month's start.
        start = month_start_ms(start - 1);
    }
    Some(start + span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn spec_example() {
        let host: SocketAddr = "192.168.0.1:10911".parse().unwrap();
        assert_eq!(offset_msg_id(host, 0x1234), "C0A8000100002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id("C0A8000100002A9F0000000000001234"), Ok((host, 0x1234)));
        assert_eq!(decode_offset_msg_id("c0a8000100002a9f0000000000001234"), Ok((host, 0x1234)));
    }

    #[test]
    fn ipv6_ids_have_56_chars() {
        let host = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4)), 10911);
        let id = offset_msg_id(host, -1);
        assert_eq!(id.len(), V6_ID_HEX_LEN);
        assert!(id.starts_with("FE80000000000000000100020003000400002A9F"));
        assert!(id.ends_with("FFFFFFFFFFFFFFFF"));
        assert_eq!(decode_offset_msg_id(&id), Ok((host, -1)));
    }

    #[test]
    fn bad_offset_ids() {
        for id in ["", "C0A8", "C0A8000100002A9F000000000000123G", "C0A80001FFFFFFFF0000000000001234", "é"] {
            assert!(matches!(decode_offset_msg_id(id), Err(RecordError::BadMessageId { .. })), "{id}");
        }
        // Multi-byte characters must not confuse the length check.
        assert!(decode_offset_msg_id("éééééééééééééééé").is_err());
    }

    #[test]
    fn month_start() {
        // 2024-02-29T12:34:56.789Z -> 2024-02-01T00:00Z.
        assert_eq!(month_start_ms(1_709_210_096_789), 1_706_745_600_000);
        // 2024-03-01T00:00Z is its own month start; one ms earlier belongs to February.
        assert_eq!(month_start_ms(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(month_start_ms(1_709_251_199_999), 1_706_745_600_000);
        assert_eq!(month_start_ms(0), 0);
        // 1969-12-31T23:59:59.999Z -> 1969-12-01T00:00Z.
        assert_eq!(month_start_ms(-1), -2_678_400_000);
    }

    #[test]
    fn uniq_ids() {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let generator = UniqIdGenerator::with_parts(ip, 0x1234, -2);
        let now = 1_709_210_096_789; // 2024-02-29T12:34:56.789Z
        let first = generator.next_id_at(now);
        let second = generator.next_id_at(now);
        assert_eq!(first.len(), V4_ID_HEX_LEN);
        let since_month = now - 1_706_745_600_000;
        assert_eq!(first, format!("0A0102031234FFFFFFFE{since_month:08X}0000"));
        assert_eq!(second, format!("0A0102031234FFFFFFFE{since_month:08X}0001"));
        assert_eq!(uniq_id_timestamp_at(&first, now + 5000), Some(now));
        // Read back early next month: still resolved into February.
        assert_eq!(uniq_id_timestamp_at(&first, 1_709_251_200_000 + 1000), Some(now));
        assert_eq!(uniq_id_timestamp_at("nope", now), None);

        let v6 = UniqIdGenerator::with_parts(IpAddr::V6(Ipv6Addr::LOCALHOST), 1, 1);
        let id = v6.next_id_at(now);
        assert_eq!(id.len(), V6_ID_HEX_LEN);
        assert_eq!(uniq_id_timestamp_at(&id, now), Some(now));
    }

    #[test]
    fn counter_wraps_and_ids_stay_unique_across_threads() {
        let generator = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..1000).map(|_| generator.next_id_at(42)).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 4000);
        for _ in 0..(65_536 - 4000) {
            generator.next_id_at(42);
        }
        assert!(generator.next_id_at(42).ends_with("0000"));
        assert_eq!(UniqIdGenerator::global().next_id().len(), V4_ID_HEX_LEN);
    }

    proptest! {
        #[test]
        fn offset_id_round_trip(v6 in any::<bool>(), ip4 in any::<[u8; 4]>(), ip6 in any::<[u8; 16]>(),
                                port in any::<u16>(), offset in any::<i64>()) {
            let ip = if v6 { IpAddr::V6(Ipv6Addr::from(ip6)) } else { IpAddr::V4(Ipv4Addr::from(ip4)) };
            let host = SocketAddr::new(ip, port);
            let id = offset_msg_id(host, offset);
            prop_assert_eq!(id.len(), if v6 { V6_ID_HEX_LEN } else { V4_ID_HEX_LEN });
            prop_assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            prop_assert_eq!(decode_offset_msg_id(&id), Ok((host, offset)));
        }

        #[test]
        fn decode_id_never_panics(id in "\\PC{0,60}") {
            let _ = decode_offset_msg_id(&id);
            let _ = uniq_id_timestamp_at(&id, 0);
        }

        #[test]
        fn month_start_is_a_first_of_month(now in -10_000_000_000_000i64..10_000_000_000_000) {
            let start = month_start_ms(now);
            prop_assert!(start <= now && now - start < 31 * MS_PER_DAY);
            prop_assert_eq!(start.rem_euclid(MS_PER_DAY), 0);
            prop_assert_eq!(day_of_month(start / MS_PER_DAY), 1);
        }
    }
}
