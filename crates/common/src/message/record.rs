//! The stored message record (spec remoting-protocol §4.3, storage-ha §1.2–§1.3).
//!
//! The commit log is a sequence of these records, and PULL/QUERY/VIEW response bodies are the
//! same bytes, so one codec serves the store (encode, patch in place, parse on recovery and
//! dispatch) and the client (decode pulled messages). All integers are big-endian.
//!
//! | field | size | offset with IPv4 hosts |
//! |---|---|---|
//! | TOTALSIZE | 4 | 0 |
//! | MAGICCODE | 4 | 4 |
//! | BODYCRC | 4 | 8 |
//! | QUEUEID | 4 | 12 |
//! | FLAG | 4 | 16 |
//! | QUEUEOFFSET | 8 | 20 |
//! | PHYSICALOFFSET | 8 | 28 |
//! | SYSFLAG | 4 | 36 |
//! | BORNTIMESTAMP | 8 | 40 |
//! | BORNHOST | 8 or 20 | 48 |
//! | STORETIMESTAMP | 8 | 56 |
//! | STOREHOST | 8 or 20 | 64 |
//! | RECONSUMETIMES | 4 | 72 |
//! | PREPARED_TX_OFFSET | 8 | 76 |
//! | BODYLEN + BODY | 4 + n | 84 |
//! | TOPICLEN + TOPIC | 1 (v1) or 2 (v2) + t | |
//! | PROPLEN + PROPERTIES | 2 + p | |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

pub use super::error::RecordError;
use super::property::RecordProperties;
use super::{property, sysflag, Message, MessageExt, Properties};

/// Magic of a v1 record: 1-byte topic length.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic of a v2 record: 2-byte topic length (written only for topics over 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic of the blank end-of-file marker that pads a commit-log file.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;

/// Offset of TOTALSIZE (i32).
pub const TOTAL_SIZE_AT: usize = 0;
/// Offset of MAGICCODE (i32).
pub const MAGIC_AT: usize = 4;
/// Offset of BODYCRC (i32).
pub const BODY_CRC_AT: usize = 8;
/// Offset of QUEUEID (i32).
pub const QUEUE_ID_AT: usize = 12;
/// Offset of FLAG (i32).
pub const FLAG_AT: usize = 16;
/// Offset of QUEUEOFFSET (i64).
pub const QUEUE_OFFSET_AT: usize = 20;
/// Offset of PHYSICALOFFSET (i64).
pub const PHYSICAL_OFFSET_AT: usize = 28;
/// Offset of SYSFLAG (i32).
pub const SYS_FLAG_AT: usize = 36;
/// Offset of BORNTIMESTAMP (i64).
pub const BORN_TIMESTAMP_AT: usize = 40;
/// Offset of BORNHOST (IP bytes then i32 port); later fields depend on the sysflag.
pub const BORN_HOST_AT: usize = 48;

/// Bytes of an IPv4 host field: 4 address bytes + i32 port.
pub const IPV4_HOST_LEN: usize = 8;
/// Bytes of an IPv6 host field: 16 address bytes + i32 port.
pub const IPV6_HOST_LEN: usize = 20;
/// Bytes of a blank end-of-file marker (TOTALSIZE + BLANK_MAGIC); files always keep room for it.
pub const BLANK_LEN: usize = 8;
/// Smallest possible record in bytes: IPv4 hosts, v1, empty body, topic and properties.
pub const MIN_RECORD_LEN: usize = 91;
/// Longest topic a v1 record can carry, in bytes (its length is a signed byte).
pub const MAX_V1_TOPIC_BYTES: usize = i8::MAX as usize;
/// Longest topic a v2 record can carry, in bytes (its length is a signed 16-bit integer).
pub const MAX_TOPIC_BYTES: usize = i16::MAX as usize;
/// Longest properties string a record can carry, in bytes (signed 16-bit length).
pub const MAX_PROPERTIES_BYTES: usize = property::MAX_ENCODED_BYTES;
/// Largest record in bytes (TOTALSIZE is an i32).
pub const MAX_RECORD_BYTES: usize = i32::MAX as usize;

/// Bytes of the BORNHOST field for `sys_flag`.
pub const fn born_host_len(sys_flag: i32) -> usize {
    if sysflag::born_host_v6(sys_flag) {
        IPV6_HOST_LEN
    } else {
        IPV4_HOST_LEN
    }
}

/// Bytes of the STOREHOST field for `sys_flag`.
pub const fn store_host_len(sys_flag: i32) -> usize {
    if sysflag::store_host_v6(sys_flag) {
        IPV6_HOST_LEN
    } else {
        IPV4_HOST_LEN
    }
}

/// Offset of STORETIMESTAMP (i64) in a record with `sys_flag`.
pub const fn store_timestamp_at(sys_flag: i32) -> usize {
    BORN_HOST_AT + born_host_len(sys_flag)
}

/// Offset of STOREHOST in a record with `sys_flag`.
pub const fn store_host_at(sys_flag: i32) -> usize {
    store_timestamp_at(sys_flag) + 8
}

/// Offset of RECONSUMETIMES (i32) in a record with `sys_flag`.
pub const fn reconsume_times_at(sys_flag: i32) -> usize {
    store_host_at(sys_flag) + store_host_len(sys_flag)
}

/// Offset of PREPARED_TX_OFFSET (i64) in a record with `sys_flag`.
pub const fn prepared_transaction_offset_at(sys_flag: i32) -> usize {
    reconsume_times_at(sys_flag) + 4
}

/// Offset of BODYLEN (i32) in a record with `sys_flag`; the body follows it.
pub const fn body_len_at(sys_flag: i32) -> usize {
    prepared_transaction_offset_at(sys_flag) + 8
}

/// Bytes of the topic length prefix for a topic of `topic_len` bytes: 1 (v1) up to 127, else 2.
pub const fn topic_len_size(topic_len: usize) -> usize {
    if topic_len > MAX_V1_TOPIC_BYTES {
        2
    } else {
        1
    }
}

/// Length in bytes of the record [`encode`] writes for these field lengths (saturating, so
/// absurd inputs give a length that the limits then refuse).
pub const fn encoded_len(topic_len: usize, body_len: usize, properties_len: usize, sys_flag: i32) -> usize {
    (body_len_at(sys_flag) + 4 + topic_len_size(topic_len) + 2)
        .saturating_add(body_len)
        .saturating_add(topic_len)
        .saturating_add(properties_len)
}

/// BODYCRC of `body`: IEEE CRC-32 masked to 31 bits, as Java `UtilAll.crc32`.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn too_long(field: &'static str, len: usize, max: usize) -> RecordError {
    RecordError::TooLong { field, len, max }
}

fn put_host(out: &mut Vec<u8>, host: &SocketAddr) {
    match host.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(host.port()).to_be_bytes());
}

/// Appends the stored record of `ext` to `out`, computing BODYCRC from the body.
///
/// See [`encode_with_crc`] for what is written and refused.
pub fn encode(ext: &MessageExt, out: &mut Vec<u8>) -> Result<(), RecordError> {
    encode_with_crc(ext, body_crc(&ext.message.body), out)
}

/// Appends the stored record of `ext` to `out` with a BODYCRC the caller already computed
/// (the broker does it outside the append lock). See [`encode_parts`].
pub fn encode_with_crc(ext: &MessageExt, body_crc: i32, out: &mut Vec<u8>) -> Result<(), RecordError> {
    encode_parts(&RecordParts::of(ext), body_crc, out)
}

/// The fields of one stored record, borrowed: what [`encode_parts`] writes. The broker's send
/// path fills it straight from a request (topic and body from the frame, properties as the
/// producer sent them), without building a [`MessageExt`].
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a, P: ?Sized> {
    /// Topic.
    pub topic: &'a str,
    /// Body, already compressed if the sysflag says so.
    pub body: &'a [u8],
    /// Properties.
    pub properties: &'a P,
    /// User flag.
    pub flag: i32,
    /// Queue id.
    pub queue_id: i32,
    /// Sysflag; the address-family bits are set from the hosts.
    pub sys_flag: i32,
    /// Producer clock at send time, in ms.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Redelivery count.
    pub reconsume_times: i32,
    /// Consume-queue offset (the store sets it on append).
    pub queue_offset: i64,
    /// Commit-log offset (the store sets it on append).
    pub commit_log_offset: i64,
    /// Store time (the store sets it on append).
    pub store_timestamp: i64,
    /// Offset of the half message of a transaction.
    pub prepared_transaction_offset: i64,
}

impl<'a> RecordParts<'a, Properties> {
    /// The parts of `ext`.
    pub fn of(ext: &'a MessageExt) -> Self {
        RecordParts {
            topic: &ext.message.topic,
            body: &ext.message.body,
            properties: &ext.message.properties,
            flag: ext.message.flag,
            queue_id: ext.queue_id,
            sys_flag: ext.sys_flag,
            born_timestamp: ext.born_timestamp,
            born_host: ext.born_host,
            store_host: ext.store_host,
            reconsume_times: ext.reconsume_times,
            queue_offset: ext.queue_offset,
            commit_log_offset: ext.commit_log_offset,
            store_timestamp: ext.store_timestamp,
            prepared_transaction_offset: ext.prepared_transaction_offset,
        }
    }
}

impl<P: RecordProperties + ?Sized> RecordParts<'_, P> {
    /// Length in bytes of the record [`encode_parts`] writes (to size its buffer).
    pub fn encoded_len(&self) -> usize {
        let sys_flag =
            sysflag::with_host_flags(self.sys_flag, self.born_host.is_ipv6(), self.store_host.is_ipv6());
        encoded_len(self.topic.len(), self.body.len(), self.properties.encoded_len(), sys_flag)
    }
}

/// Appends the stored record of `parts` to `out` with a BODYCRC the caller already computed.
///
/// TOTALSIZE is computed, the magic is v1 unless the topic is longer than 127 bytes, and
/// sysflag bits 4–5 are set from the address families of the hosts so the layout always
/// matches the addresses. The body is written as given. Refuses topics over
/// [`MAX_TOPIC_BYTES`], properties over [`MAX_PROPERTIES_BYTES`] and records over
/// [`MAX_RECORD_BYTES`], leaving `out` untouched.
pub fn encode_parts<P: RecordProperties + ?Sized>(
    parts: &RecordParts<'_, P>,
    body_crc: i32,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let topic = parts.topic.as_bytes();
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(too_long("topic", topic.len(), MAX_TOPIC_BYTES));
    }
    let properties_len = parts.properties.encoded_len();
    if properties_len > MAX_PROPERTIES_BYTES {
        return Err(too_long("properties", properties_len, MAX_PROPERTIES_BYTES));
    }
    let sys_flag =
        sysflag::with_host_flags(parts.sys_flag, parts.born_host.is_ipv6(), parts.store_host.is_ipv6());
    let total = encoded_len(topic.len(), parts.body.len(), properties_len, sys_flag);
    let total_i32 = i32::try_from(total).map_err(|_| too_long("record", total, MAX_RECORD_BYTES))?;
    // Both fit: each is smaller than the whole record, which fits an i32.
    let body_len = parts.body.len() as i32;

    out.reserve(total);
    let start = out.len();
    out.extend_from_slice(&total_i32.to_be_bytes());
    let magic = if topic.len() > MAX_V1_TOPIC_BYTES { MAGIC_V2 } else { MAGIC_V1 };
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&body_crc.to_be_bytes());
    out.extend_from_slice(&parts.queue_id.to_be_bytes());
    out.extend_from_slice(&parts.flag.to_be_bytes());
    out.extend_from_slice(&parts.queue_offset.to_be_bytes());
    out.extend_from_slice(&parts.commit_log_offset.to_be_bytes());
    out.extend_from_slice(&sys_flag.to_be_bytes());
    out.extend_from_slice(&parts.born_timestamp.to_be_bytes());
    put_host(out, &parts.born_host);
    out.extend_from_slice(&parts.store_timestamp.to_be_bytes());
    put_host(out, &parts.store_host);
    out.extend_from_slice(&parts.reconsume_times.to_be_bytes());
    out.extend_from_slice(&parts.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(parts.body);
    if magic == MAGIC_V2 {
        out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    } else {
        out.push(topic.len() as u8);
    }
    out.extend_from_slice(topic);
    out.extend_from_slice(&(properties_len as u16).to_be_bytes());
    parts.properties.encode_into(out);
    debug_assert_eq!(out.len() - start, total);
    Ok(())
}

/// The 8-byte blank end-of-file marker for `total_size` remaining bytes of a commit-log file.
pub fn encode_blank(total_size: i32) -> [u8; BLANK_LEN] {
    let mut blank = [0u8; BLANK_LEN];
    blank[..4].copy_from_slice(&total_size.to_be_bytes());
    blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    blank
}

/// Whether `bytes` start with a blank end-of-file marker.
pub fn is_blank(bytes: &[u8]) -> bool {
    get_i32(bytes, MAGIC_AT) == Some(BLANK_MAGIC)
}

pub(super) fn get_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    raw.try_into().ok().map(i32::from_be_bytes)
}

fn get_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    raw.try_into().ok().map(i64::from_be_bytes)
}

pub(super) fn get_i16(bytes: &[u8], at: usize) -> Option<i16> {
    let raw = bytes.get(at..at.checked_add(2)?)?;
    raw.try_into().ok().map(i16::from_be_bytes)
}

fn put_be<const N: usize>(buf: &mut [u8], at: usize, value: [u8; N]) -> Result<(), RecordError> {
    let available = buf.len();
    match buf.get_mut(at..at.saturating_add(N)) {
        Some(slot) => {
            slot.copy_from_slice(&value);
            Ok(())
        }
        None => Err(RecordError::Truncated { needed: at.saturating_add(N), available }),
    }
}

/// Writes QUEUEOFFSET into the record at the start of `buf` (the store assigns it at append).
pub fn set_queue_offset(buf: &mut [u8], queue_offset: i64) -> Result<(), RecordError> {
    put_be(buf, QUEUE_OFFSET_AT, queue_offset.to_be_bytes())
}

/// Writes PHYSICALOFFSET into the record at the start of `buf` (the store assigns it at append).
pub fn set_physical_offset(buf: &mut [u8], physical_offset: i64) -> Result<(), RecordError> {
    put_be(buf, PHYSICAL_OFFSET_AT, physical_offset.to_be_bytes())
}

/// Writes STORETIMESTAMP into the record at the start of `buf`; its position depends on the
/// born-host bit of the SYSFLAG already in `buf`.
pub fn set_store_timestamp(buf: &mut [u8], store_timestamp: i64) -> Result<(), RecordError> {
    let sys_flag = get_i32(buf, SYS_FLAG_AT)
        .ok_or(RecordError::Truncated { needed: SYS_FLAG_AT + 4, available: buf.len() })?;
    put_be(buf, store_timestamp_at(sys_flag), store_timestamp.to_be_bytes())
}

/// A validated, zero-copy view of one stored record at the start of a byte slice.
///
/// [`RecordView::parse`] checks every length against TOTALSIZE, so the accessors are plain
/// reads. Parsing allocates nothing; only [`RecordView::to_message_ext`] does.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    record: &'a [u8],
    sys_flag: i32,
    body: &'a [u8],
    topic: &'a str,
    properties: &'a str,
}

/// The properties that end a record or a batch item: an `i16` length at `len_at`, then that
/// many bytes, which must end exactly at `total_len`.
pub(super) fn trailing_properties<'a>(
    bytes: &'a [u8],
    len_at: usize,
    total_len: usize,
    field: &'static str,
) -> Result<&'a [u8], RecordError> {
    let len = get_i16(bytes, len_at).ok_or_else(|| mismatch(total_len, len_at + 2))?;
    let at = len_at + 2;
    let properties = usize::try_from(len)
        .ok()
        .and_then(|len| bytes.get(at..at + len))
        .ok_or(RecordError::BadLength { field, len: i64::from(len) })?;
    let end = at + properties.len();
    if end != total_len {
        return Err(mismatch(total_len, end));
    }
    Ok(properties)
}

fn mismatch(total_size: usize, parsed: usize) -> RecordError {
    RecordError::LengthMismatch { total_size, parsed }
}

fn check_port(record: &[u8], host_at: usize, v6: bool, field: &'static str) -> Result<(), RecordError> {
    let port_at = host_at + if v6 { 16 } else { 4 };
    let port = get_i32(record, port_at).ok_or_else(|| mismatch(record.len(), port_at + 4))?;
    if u16::try_from(port).is_err() {
        return Err(RecordError::BadPort { field, port });
    }
    Ok(())
}

fn read_host(record: &[u8], at: usize, v6: bool) -> SocketAddr {
    let (ip, port_at) = if v6 {
        let mut octets = [0u8; 16];
        if let Some(raw) = record.get(at..at + 16) {
            octets.copy_from_slice(raw);
        }
        (IpAddr::V6(Ipv6Addr::from(octets)), at + 16)
    } else {
        let mut octets = [0u8; 4];
        if let Some(raw) = record.get(at..at + 4) {
            octets.copy_from_slice(raw);
        }
        (IpAddr::V4(Ipv4Addr::from(octets)), at + 4)
    };
    let port = get_i32(record, port_at).and_then(|port| u16::try_from(port).ok()).unwrap_or(0);
    SocketAddr::new(ip, port)
}

impl<'a> RecordView<'a> {
    /// Validates the record at the start of `bytes` (which may continue past it) and returns a
    /// view of exactly TOTALSIZE bytes.
    ///
    /// Checks, in order: room for TOTALSIZE and MAGICCODE; not a blank marker
    /// ([`RecordError::Blank`], so the store can roll to the next file); a v1/v2 magic;
    /// TOTALSIZE within `bytes`; body, topic and properties lengths non-negative and inside
    /// the record, ending exactly at TOTALSIZE; ports in range; topic and properties UTF-8;
    /// and, if `check_crc`, BODYCRC. Never panics, whatever `bytes` holds.
    pub fn parse(bytes: &'a [u8], check_crc: bool) -> Result<Self, RecordError> {
        let available = bytes.len();
        let total = get_i32(bytes, TOTAL_SIZE_AT).ok_or(RecordError::Truncated { needed: 4, available })?;
        let magic = get_i32(bytes, MAGIC_AT).ok_or(RecordError::Truncated { needed: 8, available })?;
        if magic == BLANK_MAGIC {
            return Err(RecordError::Blank { total_size: total });
        }
        let v2 = match magic {
            MAGIC_V1 => false,
            MAGIC_V2 => true,
            _ => return Err(RecordError::BadMagic(magic)),
        };
        let total_len = usize::try_from(total)
            .ok()
            .filter(|&len| len >= MIN_RECORD_LEN)
            .ok_or(RecordError::BadTotalSize(total))?;
        let record = bytes.get(..total_len).ok_or(RecordError::Truncated { needed: total_len, available })?;

        let sys_flag = get_i32(record, SYS_FLAG_AT).unwrap_or(0);
        let body_len_at = body_len_at(sys_flag);
        let body_at = body_len_at + 4;
        let body_len = get_i32(record, body_len_at).ok_or_else(|| mismatch(total_len, body_at))?;
        let body = usize::try_from(body_len)
            .ok()
            .and_then(|len| record.get(body_at..body_at.checked_add(len)?))
            .ok_or(RecordError::BadLength { field: "body", len: i64::from(body_len) })?;
        let topic_len_at = body_at + body.len();

        let (topic_len, topic_at) = if v2 {
            let len = get_i16(record, topic_len_at).ok_or_else(|| mismatch(total_len, topic_len_at + 2))?;
            (i64::from(len), topic_len_at + 2)
        } else {
            let len = record.get(topic_len_at).ok_or_else(|| mismatch(total_len, topic_len_at + 1))?;
            (i64::from(*len as i8), topic_len_at + 1)
        };
        let topic = usize::try_from(topic_len)
            .ok()
            .and_then(|len| record.get(topic_at..topic_at + len))
            .ok_or(RecordError::BadLength { field: "topic", len: topic_len })?;
        let properties_len_at = topic_at + topic.len();

        let properties = trailing_properties(record, properties_len_at, total_len, "properties")?;

        check_port(record, BORN_HOST_AT, sysflag::born_host_v6(sys_flag), "born host")?;
        check_port(record, store_host_at(sys_flag), sysflag::store_host_v6(sys_flag), "store host")?;
        let topic = std::str::from_utf8(topic).map_err(|_| RecordError::InvalidUtf8 { field: "topic" })?;
        let properties =
            std::str::from_utf8(properties).map_err(|_| RecordError::InvalidUtf8 { field: "properties" })?;
        if check_crc {
            let stored = get_i32(record, BODY_CRC_AT).unwrap_or(0);
            let computed = body_crc(body);
            if stored != computed {
                return Err(RecordError::BodyCrcMismatch { stored, computed });
            }
        }
        Ok(RecordView { record, sys_flag, body, topic, properties })
    }

    fn i32_at(&self, at: usize) -> i32 {
        get_i32(self.record, at).unwrap_or(0)
    }

    fn i64_at(&self, at: usize) -> i64 {
        get_i64(self.record, at).unwrap_or(0)
    }

    /// The whole record (exactly TOTALSIZE bytes).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.record
    }

    /// TOTALSIZE: the record length in bytes.
    pub fn total_size(&self) -> i32 {
        self.i32_at(TOTAL_SIZE_AT)
    }

    /// MAGICCODE ([`MAGIC_V1`] or [`MAGIC_V2`]).
    pub fn magic(&self) -> i32 {
        self.i32_at(MAGIC_AT)
    }

    /// BODYCRC as stored.
    pub fn body_crc(&self) -> i32 {
        self.i32_at(BODY_CRC_AT)
    }

    /// QUEUEID.
    pub fn queue_id(&self) -> i32 {
        self.i32_at(QUEUE_ID_AT)
    }

    /// FLAG (the user flag).
    pub fn flag(&self) -> i32 {
        self.i32_at(FLAG_AT)
    }

    /// QUEUEOFFSET.
    pub fn queue_offset(&self) -> i64 {
        self.i64_at(QUEUE_OFFSET_AT)
    }

    /// PHYSICALOFFSET (the record's commit-log offset).
    pub fn physical_offset(&self) -> i64 {
        self.i64_at(PHYSICAL_OFFSET_AT)
    }

    /// SYSFLAG.
    pub fn sys_flag(&self) -> i32 {
        self.sys_flag
    }

    /// BORNTIMESTAMP (epoch ms).
    pub fn born_timestamp(&self) -> i64 {
        self.i64_at(BORN_TIMESTAMP_AT)
    }

    /// BORNHOST.
    pub fn born_host(&self) -> SocketAddr {
        read_host(self.record, BORN_HOST_AT, sysflag::born_host_v6(self.sys_flag))
    }

    /// STORETIMESTAMP (epoch ms).
    pub fn store_timestamp(&self) -> i64 {
        self.i64_at(store_timestamp_at(self.sys_flag))
    }

    /// STOREHOST.
    pub fn store_host(&self) -> SocketAddr {
        read_host(self.record, store_host_at(self.sys_flag), sysflag::store_host_v6(self.sys_flag))
    }

    /// RECONSUMETIMES.
    pub fn reconsume_times(&self) -> i32 {
        self.i32_at(reconsume_times_at(self.sys_flag))
    }

    /// PREPARED_TX_OFFSET.
    pub fn prepared_transaction_offset(&self) -> i64 {
        self.i64_at(prepared_transaction_offset_at(self.sys_flag))
    }

    /// The body as stored (compressed if SYSFLAG bit 0 is set).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// The raw properties string (spec §4.1).
    pub fn properties_str(&self) -> &'a str {
        self.properties
    }

    /// One property looked up in the raw string without building a map, with the decoder's
    /// rules (empty keys/values skipped, last occurrence wins): what dispatch needs for TAGS,
    /// KEYS, UNIQ_KEY or DELAY.
    pub fn property(&self, key: &str) -> Option<&'a str> {
        let [value] = self.properties_of([key]);
        value
    }

    /// Several properties in one pass over the raw string (same rules as
    /// [`Self::property`]): the store reads TAGS, KEYS and UNIQ_KEY of every record this way.
    pub fn properties_of<const N: usize>(&self, keys: [&str; N]) -> [Option<&'a str>; N] {
        let mut found = [None; N];
        for (name, value) in property::raw_pairs(self.properties) {
            if value.is_empty() {
                continue;
            }
            if let Some(slot) = keys.iter().position(|key| *key == name) {
                found[slot] = Some(value);
            }
        }
        found
    }

    /// The decoded properties map.
    pub fn properties(&self) -> property::Properties {
        property::decode(self.properties)
    }

    fn build_message_ext(&self, body: Bytes) -> MessageExt {
        MessageExt {
            message: Message {
                topic: self.topic.to_owned(),
                flag: self.flag(),
                properties: self.properties(),
                body,
            },
            queue_id: self.queue_id(),
            store_size: self.total_size(),
            queue_offset: self.queue_offset(),
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp(),
            born_host: self.born_host(),
            store_timestamp: self.store_timestamp(),
            store_host: self.store_host(),
            commit_log_offset: self.physical_offset(),
            body_crc: self.body_crc(),
            reconsume_times: self.reconsume_times(),
            prepared_transaction_offset: self.prepared_transaction_offset(),
        }
    }

    /// An owned [`MessageExt`] with every field of the record (body copied, not inflated).
    pub fn to_message_ext(&self) -> MessageExt {
        self.build_message_ext(Bytes::copy_from_slice(self.body))
    }

    /// Like [`Self::to_message_ext`], but the body shares `backing` when this view was parsed
    /// from it (copied otherwise), so decoding a PULL body does not copy message bodies.
    pub fn to_message_ext_shared(&self, backing: &Bytes) -> MessageExt {
        let start = (self.body.as_ptr() as usize).wrapping_sub(backing.as_ptr() as usize);
        let inside = start <= backing.len() && backing.len() - start >= self.body.len();
        let body = if inside {
            backing.slice(start..start + self.body.len())
        } else {
            Bytes::copy_from_slice(self.body)
        };
        self.build_message_ext(body)
    }
}

/// Decodes a PULL/QUERY/VIEW response body: records back to back until the end. Bodies are
/// copied and not inflated; BODYCRC is not checked (Java clients do not either). Fails on
/// the first malformed record.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<MessageExt>, RecordError> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let view = RecordView::parse(rest, false)?;
        messages.push(view.to_message_ext());
        rest = rest.get(view.as_bytes().len()..).unwrap_or(&[]);
    }
    Ok(messages)
}

/// [`decode_all`] with bodies sharing `bytes` instead of being copied.
pub fn decode_all_shared(bytes: &Bytes) -> Result<Vec<MessageExt>, RecordError> {
    let mut messages = Vec::new();
    let mut rest: &[u8] = bytes;
    while !rest.is_empty() {
        let view = RecordView::parse(rest, false)?;
        messages.push(view.to_message_ext_shared(bytes));
        rest = rest.get(view.as_bytes().len()..).unwrap_or(&[]);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::testkit::{arb_message_ext, normalized};
    use crate::message::Properties;
    use proptest::prelude::*;

    fn sample() -> MessageExt {
        let mut ext = MessageExt {
            message: Message::new("TopicTest", &b"hello"[..]),
            queue_id: 3,
            queue_offset: 42,
            sys_flag: sysflag::TRANSACTION_PREPARED_TYPE,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.7:51234".parse().unwrap(),
            store_timestamp: 1_700_000_000_123,
            store_host: "192.168.0.1:10911".parse().unwrap(),
            commit_log_offset: 0x1234,
            reconsume_times: 2,
            prepared_transaction_offset: 77,
            ..MessageExt::default()
        };
        ext.message.flag = 9;
        ext.message.set_tags("TagA");
        ext
    }

    type Patch = fn(&mut [u8], i64) -> Result<(), RecordError>;

    fn encoded(ext: &MessageExt) -> Vec<u8> {
        let mut out = Vec::new();
        assert_eq!(encode(ext, &mut out), Ok(()));
        out
    }

    #[test]
    fn layout_constants() {
        assert_eq!(MAGIC_V1, -626_843_481);
        assert_eq!(MAGIC_V2, -626_843_477);
        assert_eq!(BLANK_MAGIC, -875_286_124);
        assert_eq!(store_timestamp_at(0), 56);
        assert_eq!(store_host_at(0), 64);
        assert_eq!(reconsume_times_at(0), 72);
        assert_eq!(prepared_transaction_offset_at(0), 76);
        assert_eq!(body_len_at(0), 84);
        assert_eq!(body_len_at(sysflag::BORNHOST_V6_FLAG | sysflag::STOREHOSTADDRESS_V6_FLAG), 108);
        assert_eq!(store_timestamp_at(sysflag::BORNHOST_V6_FLAG), 68);
        assert_eq!(encoded_len(0, 0, 0, 0), MIN_RECORD_LEN);
        assert_eq!(encoded_len(128, 10, 5, 0x30), 108 + 4 + 10 + 2 + 128 + 2 + 5);
        assert_eq!(encoded_len(1, usize::MAX, 1, 0), usize::MAX);
    }

    /// A record assembled byte by byte from the spec's table, not with `encode`.
    #[test]
    fn parses_hand_built_record() {
        let body = b"Hello RocketMQ";
        let topic = b"TopicTest";
        let props = "TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}AC1100010000000000000000000000AB\u{2}";
        let total = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + 8
            + 8
            + 20
            + 4
            + 8
            + 4
            + body.len()
            + 1
            + topic.len()
            + 2
            + props.len();
        let mut rec = Vec::new();
        rec.extend_from_slice(&(total as i32).to_be_bytes()); // TOTALSIZE
        rec.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]); // MAGICCODE v1
        let crc = crc32fast::hash(body) & 0x7FFF_FFFF;
        rec.extend_from_slice(&crc.to_be_bytes()); // BODYCRC
        rec.extend_from_slice(&[0, 0, 0, 5]); // QUEUEID
        rec.extend_from_slice(&[0, 0, 0, 1]); // FLAG
        rec.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x00]); // QUEUEOFFSET 256
        rec.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]); // PHYSICALOFFSET 1 MiB
        rec.extend_from_slice(&[0, 0, 0, 0x20]); // SYSFLAG: store host IPv6
        rec.extend_from_slice(&1_000i64.to_be_bytes()); // BORNTIMESTAMP
        rec.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0x1F, 0x90]); // BORNHOST 127.0.0.1:8080
        rec.extend_from_slice(&2_000i64.to_be_bytes()); // STORETIMESTAMP
        rec.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // STOREHOST ::1
        rec.extend_from_slice(&[0, 0, 0x2A, 0x9F]); // ...port 10911
        rec.extend_from_slice(&[0, 0, 0, 3]); // RECONSUMETIMES
        rec.extend_from_slice(&(-1i64).to_be_bytes()); // PREPARED_TX_OFFSET
        rec.extend_from_slice(&(body.len() as i32).to_be_bytes());
        rec.extend_from_slice(body);
        rec.push(topic.len() as u8);
        rec.extend_from_slice(topic);
        rec.extend_from_slice(&(props.len() as i16).to_be_bytes());
        rec.extend_from_slice(props.as_bytes());
        assert_eq!(rec.len(), total);
        rec.extend_from_slice(b"trailing bytes of the next record");

        let view = RecordView::parse(&rec, true).unwrap();
        assert_eq!(view.total_size() as usize, total);
        assert_eq!(view.as_bytes().len(), total);
        assert_eq!(view.magic(), MAGIC_V1);
        assert_eq!(view.body_crc() as u32, crc);
        assert_eq!(view.queue_id(), 5);
        assert_eq!(view.flag(), 1);
        assert_eq!(view.queue_offset(), 256);
        assert_eq!(view.physical_offset(), 1 << 20);
        assert_eq!(view.sys_flag(), 0x20);
        assert_eq!(view.born_timestamp(), 1_000);
        assert_eq!(view.born_host(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(view.store_timestamp(), 2_000);
        assert_eq!(view.store_host(), "[::1]:10911".parse().unwrap());
        assert_eq!(view.reconsume_times(), 3);
        assert_eq!(view.prepared_transaction_offset(), -1);
        assert_eq!(view.body(), body);
        assert_eq!(view.topic(), "TopicTest");
        assert_eq!(view.properties_str(), props);
        assert_eq!(view.property("TAGS"), Some("TagA"));
        assert_eq!(view.property("KEYS"), None);

        let ext = view.to_message_ext();
        assert_eq!(ext.message.tags(), Some("TagA"));
        assert_eq!(ext.msg_id(), "AC1100010000000000000000000000AB");
        assert_eq!(ext.offset_msg_id(), format!("{:032X}{:08X}{:016X}", 1u128, 10911, 1 << 20));
        // Re-encoding the decoded message gives the same bytes back.
        assert_eq!(encoded(&ext), rec[..total]);
    }

    #[test]
    fn long_topics_use_v2() {
        let mut ext = sample();
        ext.message.topic = "t".repeat(127);
        assert_eq!(RecordView::parse(&encoded(&ext), true).map(|v| v.magic()), Ok(MAGIC_V1));
        ext.message.topic = "t".repeat(128);
        let bytes = encoded(&ext);
        assert_eq!(bytes.len(), encoded_len(128, 5, ext.message.properties.encoded_len(), 0));
        let view = RecordView::parse(&bytes, true).unwrap();
        assert_eq!(view.magic(), MAGIC_V2);
        assert_eq!(view.topic().len(), 128);
        ext.message.topic = "t".repeat(MAX_TOPIC_BYTES);
        assert_eq!(RecordView::parse(&encoded(&ext), true).map(|v| v.topic().len()), Ok(MAX_TOPIC_BYTES));
    }

    #[test]
    fn limits_are_enforced() {
        let mut ext = sample();
        ext.message.topic = "t".repeat(MAX_TOPIC_BYTES + 1);
        let mut out = vec![1, 2, 3];
        assert_eq!(
            encode(&ext, &mut out),
            Err(RecordError::TooLong { field: "topic", len: MAX_TOPIC_BYTES + 1, max: MAX_TOPIC_BYTES })
        );
        assert_eq!(out, [1, 2, 3], "nothing written on error");

        let mut ext = sample();
        ext.message.properties = Properties::new();
        ext.message.properties.insert("k", "v".repeat(MAX_PROPERTIES_BYTES - 3));
        let bytes = encoded(&ext);
        let view = RecordView::parse(&bytes, true).unwrap();
        assert_eq!(view.properties_str().len(), MAX_PROPERTIES_BYTES);
        ext.message.properties.insert("k", "v".repeat(MAX_PROPERTIES_BYTES - 2));
        assert_eq!(
            encode(&ext, &mut out),
            Err(RecordError::TooLong {
                field: "properties",
                len: MAX_PROPERTIES_BYTES + 1,
                max: MAX_PROPERTIES_BYTES
            })
        );
    }

    #[test]
    fn host_flags_follow_addresses() {
        let mut ext = sample();
        ext.sys_flag |= sysflag::BORNHOST_V6_FLAG; // wrong: born host is IPv4
        ext.store_host = "[fe80::1]:10911".parse().unwrap();
        let bytes = encoded(&ext);
        let view = RecordView::parse(&bytes, true).unwrap();
        assert_eq!(view.sys_flag(), sysflag::TRANSACTION_PREPARED_TYPE | sysflag::STOREHOSTADDRESS_V6_FLAG);
        assert_eq!(view.store_host(), ext.store_host);
        assert_eq!(view.born_host(), ext.born_host);
    }

    #[test]
    fn patches_touch_only_their_field() {
        for born in ["10.0.0.7:1", "[2001:db8::7]:65535"] {
            let mut ext = sample();
            ext.born_host = born.parse().unwrap();
            let original = encoded(&ext);
            let sys_flag = RecordView::parse(&original, true).map(|v| v.sys_flag()).unwrap_or(-1);
            let cases: [(Patch, usize); 3] = [
                (set_queue_offset, QUEUE_OFFSET_AT),
                (set_physical_offset, PHYSICAL_OFFSET_AT),
                (set_store_timestamp, store_timestamp_at(sys_flag)),
            ];
            for (patch, at) in cases {
                let mut bytes = original.clone();
                let value = 0x0102_0304_0506_0708;
                assert_eq!(patch(&mut bytes, value), Ok(()));
                for (i, (a, b)) in original.iter().zip(&bytes).enumerate() {
                    if (at..at + 8).contains(&i) {
                        assert_eq!(*b, value.to_be_bytes()[i - at]);
                    } else {
                        assert_eq!(a, b, "byte {i} changed");
                    }
                }
            }
            let mut bytes = original.clone();
            assert_eq!(set_queue_offset(&mut bytes, 5), Ok(()));
            assert_eq!(set_physical_offset(&mut bytes, 6), Ok(()));
            assert_eq!(set_store_timestamp(&mut bytes, 7), Ok(()));
            let view = RecordView::parse(&bytes, true).unwrap();
            assert_eq!((view.queue_offset(), view.physical_offset(), view.store_timestamp()), (5, 6, 7));
            assert_eq!(view.born_host(), ext.born_host);
        }
        let mut short = [0u8; 30];
        assert_eq!(
            set_physical_offset(&mut short, 1),
            Err(RecordError::Truncated { needed: 36, available: 30 })
        );
        assert_eq!(
            set_store_timestamp(&mut short, 1),
            Err(RecordError::Truncated { needed: 40, available: 30 })
        );
        assert_eq!(set_queue_offset(&mut short, 1), Ok(()));
    }

    #[test]
    fn crc_detects_a_flipped_body_bit() {
        let mut bytes = encoded(&sample());
        assert!(RecordView::parse(&bytes, true).is_ok());
        bytes[body_len_at(0) + 4 + 2] ^= 0x10;
        assert!(matches!(RecordView::parse(&bytes, true), Err(RecordError::BodyCrcMismatch { .. })));
        assert!(RecordView::parse(&bytes, false).is_ok());
    }

    #[test]
    fn blank_records() {
        let blank = encode_blank(4096);
        assert!(is_blank(&blank));
        assert!(!is_blank(&blank[..7]));
        assert!(!is_blank(&encoded(&sample())));
        assert_eq!(RecordView::parse(&blank, true).map(|_| ()), Err(RecordError::Blank { total_size: 4096 }));
        assert_eq!(&blank[4..], &[0xCB, 0xD4, 0x31, 0x94]);
    }

    #[test]
    fn malformed_records_are_reported() {
        let good = encoded(&sample());
        assert_eq!(
            RecordView::parse(&good[..3], false).map(|_| ()),
            Err(RecordError::Truncated { needed: 4, available: 3 })
        );
        assert_eq!(
            RecordView::parse(&good[..good.len() - 1], false).map(|_| ()),
            Err(RecordError::Truncated { needed: good.len(), available: good.len() - 1 })
        );
        let mut bad = good.clone();
        bad[4] = 0;
        assert!(matches!(RecordView::parse(&bad, false), Err(RecordError::BadMagic(_))));
        let mut bad = good.clone();
        bad[..4].copy_from_slice(&90i32.to_be_bytes());
        assert_eq!(RecordView::parse(&bad, false).map(|_| ()), Err(RecordError::BadTotalSize(90)));
        let mut bad = good.clone();
        bad[84..88].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            RecordView::parse(&bad, false).map(|_| ()),
            Err(RecordError::BadLength { field: "body", len: -1 })
        );
        let mut bad = good.clone();
        bad[52..56].copy_from_slice(&70_000i32.to_be_bytes());
        assert_eq!(
            RecordView::parse(&bad, false).map(|_| ()),
            Err(RecordError::BadPort { field: "born host", port: 70_000 })
        );
        let mut longer = good.clone();
        longer.push(0);
        let new_total = longer.len() as i32;
        longer[..4].copy_from_slice(&new_total.to_be_bytes());
        assert_eq!(
            RecordView::parse(&longer, false).map(|_| ()),
            Err(RecordError::LengthMismatch { total_size: longer.len(), parsed: good.len() })
        );
        let mut bad = good.clone();
        let topic_at = 88 + 5 + 1;
        bad[topic_at] = 0xFF;
        assert_eq!(
            RecordView::parse(&bad, false).map(|_| ()),
            Err(RecordError::InvalidUtf8 { field: "topic" })
        );
    }

    #[test]
    fn decode_all_reads_back_to_back_records() {
        let mut first = sample();
        let mut second = sample();
        second.message.topic = "x".repeat(200);
        second.store_host = "[::2]:10911".parse().unwrap();
        second.message.body = Bytes::new();
        let mut body = Vec::new();
        assert_eq!(encode(&first, &mut body), Ok(()));
        assert_eq!(encode(&second, &mut body), Ok(()));
        first = normalized(first);
        second = normalized(second);
        assert_eq!(decode_all(&body), Ok(vec![first.clone(), second.clone()]));
        let shared = Bytes::from(body.clone());
        let decoded = decode_all_shared(&shared).unwrap_or_default();
        assert_eq!(decoded, vec![first, second]);
        let body_at = shared.as_ptr() as usize + 88;
        assert_eq!(decoded[0].message.body.as_ptr() as usize, body_at, "body shares the buffer");
        assert_eq!(decode_all(&[]), Ok(vec![]));
        assert!(decode_all(&body[..body.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(ext in arb_message_ext()) {
            let mut bytes = Vec::new();
            prop_assert_eq!(encode(&ext, &mut bytes), Ok(()));
            prop_assert_eq!(
                bytes.len(),
                encoded_len(ext.message.topic.len(), ext.message.body.len(), ext.message.properties.encoded_len(),
                    sysflag::with_host_flags(ext.sys_flag, ext.born_host.is_ipv6(), ext.store_host.is_ipv6()))
            );
            let expected = normalized(ext);
            let view = RecordView::parse(&bytes, true);
            prop_assert!(view.is_ok(), "{:?}", view.err());
            let view = view.unwrap();
            prop_assert_eq!(view.magic(), if expected.message.topic.len() > 127 { MAGIC_V2 } else { MAGIC_V1 });
            prop_assert_eq!(view.to_message_ext(), expected.clone());
            prop_assert_eq!(decode_all(&bytes), Ok(vec![expected]));
        }

        #[test]
        fn parse_never_panics_on_random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                              seed_header in any::<bool>(), v2 in any::<bool>()) {
            if seed_header && bytes.len() >= 8 {
                // Reach past the header checks: plausible TOTALSIZE and magic.
                let len = bytes.len() as i32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
                bytes[4..8].copy_from_slice(&if v2 { MAGIC_V2 } else { MAGIC_V1 }.to_be_bytes());
            }
            for check_crc in [false, true] {
                if let Ok(view) = RecordView::parse(&bytes, check_crc) {
                    let _ = view.to_message_ext();
                    let _ = view.property("TAGS");
                }
            }
            let _ = decode_all(&bytes);
            let _ = is_blank(&bytes);
            let mut patched = bytes.clone();
            let _ = set_store_timestamp(&mut patched, 1);
            let _ = set_queue_offset(&mut patched, 1);
            let _ = set_physical_offset(&mut patched, 1);
        }

        #[test]
        fn parse_never_panics_on_mutations(ext in arb_message_ext(), at in any::<prop::sample::Index>(),
                                           byte in any::<u8>()) {
            let mut bytes = Vec::new();
            prop_assert_eq!(encode(&ext, &mut bytes), Ok(()));
            let index = at.index(bytes.len());
            bytes[index] = byte;
            for check_crc in [false, true] {
                if let Ok(view) = RecordView::parse(&bytes, check_crc) {
                    let ext = view.to_message_ext();
                    prop_assert_eq!(ext.store_size as usize, view.as_bytes().len());
                }
            }
            let _ = decode_all(&bytes);
            let _ = decode_all_shared(&Bytes::from(bytes));
        }
    }
}
