//! RocketMQ's classic HA wire format (storage spec §6.2), big-endian throughout.
//!
//! - slave → master: 8-byte `slaveMaxPhyOffset` reports, nothing else;
//! - master → slave: frames `[i64 startPhyOffset][i32 bodySize][body]`, where the body is a
//!   verbatim range of the master's commit log (it may cut records; it never crosses a file
//!   end). A body of 0 bytes is a heartbeat.

/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 12;
/// Bytes of one slave report.
pub const REPORT_BYTES: usize = 8;
/// Largest frame body a slave accepts (the master sends at most `haTransferBatchSize`).
pub const MAX_FRAME_BODY_BYTES: usize = crate::config::MAX_TRANSFER_BATCH_BYTES;

/// A frame header as sent by the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Commit-log offset of the body's first byte.
    pub start_offset: u64,
    /// Body length (0 for a heartbeat).
    pub body_bytes: usize,
}

/// Why bytes from the peer are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A negative offset or body size, or a body past the limit.
    #[error("bad HA frame header: offset {offset}, body {body_bytes} bytes")]
    BadHeader {
        /// Offset as sent.
        offset: i64,
        /// Body size as sent.
        body_bytes: i32,
    },
    /// An AutoSwitch message opened with a state that is neither HANDSHAKE nor TRANSFER.
    #[error("bad HA message state {state}")]
    BadState {
        /// The state as sent.
        state: i32,
    },
    /// A negative offset in an AutoSwitch ack.
    #[error("bad HA ack offset {offset}")]
    BadAck {
        /// The offset as sent.
        offset: i64,
    },
    /// A master handshake with a body that is not whole epoch entries, or a negative end.
    #[error("bad HA handshake: body {body_bytes} bytes, master end {max_offset}")]
    BadHandshake {
        /// Body size as sent.
        body_bytes: i32,
        /// Master end as sent.
        max_offset: i64,
    },
    /// Epoch entries out of order or with a negative start.
    #[error("bad epoch entry {epoch} at {start}")]
    BadEpoch {
        /// The epoch as sent.
        epoch: i32,
        /// Its start as sent.
        start: i64,
    },
}

impl FrameHeader {
    /// The 12 bytes of this header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        debug_assert!(self.body_bytes <= MAX_FRAME_BODY_BYTES);
        let mut bytes = [0u8; FRAME_HEADER_BYTES];
        bytes[..8].copy_from_slice(&(self.start_offset as i64).to_be_bytes());
        bytes[8..].copy_from_slice(&(self.body_bytes as i32).to_be_bytes());
        bytes
    }

    /// Reads a header, refusing negative values and bodies past [`MAX_FRAME_BODY_BYTES`].
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES]) -> Result<Self, WireError> {
        let offset = i64::from_be_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        let body = i32::from_be_bytes(bytes[8..].try_into().unwrap_or([0; 4]));
        let bad = WireError::BadHeader { offset, body_bytes: body };
        let start_offset = u64::try_from(offset).map_err(|_| bad.clone())?;
        let body_bytes = usize::try_from(body).map_err(|_| bad.clone())?;
        if body_bytes > MAX_FRAME_BODY_BYTES {
            return Err(bad);
        }
        Ok(Self { start_offset, body_bytes })
    }
}

/// The 8 bytes of a slave's report of its commit-log end.
pub fn encode_report(max_offset: u64) -> [u8; REPORT_BYTES] {
    (max_offset as i64).to_be_bytes()
}

/// The newest report in `received` (Java takes the last whole, aligned 8-byte value), and
/// how many bytes the reports took; `None` until a whole report is there. A negative value
/// is not a report.
pub fn last_report(received: &[u8]) -> Option<(i64, usize)> {
    let whole = received.len() - received.len() % REPORT_BYTES;
    if whole == 0 {
        return None;
    }
    let value = i64::from_be_bytes(received[whole - REPORT_BYTES..whole].try_into().ok()?);
    Some((value, whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let header = FrameHeader { start_offset: 1 << 40, body_bytes: 32 * 1024 };
        assert_eq!(FrameHeader::decode(&header.encode()), Ok(header));
        let mut negative = header.encode();
        negative[8..].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(FrameHeader::decode(&negative).is_err());
        let mut huge = header.encode();
        huge[8..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(FrameHeader::decode(&huge).is_err());
    }

    #[test]
    fn the_last_whole_report_wins() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&encode_report(5));
        bytes.extend_from_slice(&encode_report(900));
        bytes.extend_from_slice(&[0, 0, 1]);
        assert_eq!(last_report(&bytes), Some((900, 16)));
        assert_eq!(last_report(&bytes[..7]), None);
    }

    proptest! {
        #[test]
        fn any_header_bytes_decode_or_fail_without_panic(bytes in proptest::array::uniform12(any::<u8>())) {
            if let Ok(header) = FrameHeader::decode(&bytes) {
                prop_assert!(header.body_bytes <= MAX_FRAME_BODY_BYTES);
                prop_assert_eq!(FrameHeader::decode(&header.encode()), Ok(header));
            }
        }
    }
}
