//! AutoSwitch HA's wire format (controller mode, storage spec §7.8), big-endian throughout.
//! Every message starts with the sender's state: HANDSHAKE (1) or TRANSFER (2).
//!
//! - slave → master: a 16-byte handshake `[i32 1][i16 syncFromLastFile][i16 asyncLearner]
//!   [i64 brokerId]`, then 12-byte acks `[i32 2][i64 slaveMaxOffset]`;
//! - master → slave: a handshake `[i32 1][i32 bodySize][i64 masterMaxOffset][i32 lastEpoch]`
//!   with `bodySize / 12` epoch entries `[i32 epoch][i64 startOffset]`, then transfer frames
//!   `[i32 2][i32 bodySize][i64 startOffset][i32 epoch][i64 epochStartOffset]
//!   [i64 confirmOffset]` with `bodySize` bytes of commit log (0: a heartbeat).

use crate::wire::{WireError, MAX_FRAME_BODY_BYTES};

/// State ordinal of a handshake message.
pub const STATE_HANDSHAKE: i32 = 1;
/// State ordinal of a transfer message (acks and frames).
pub const STATE_TRANSFER: i32 = 2;
/// Bytes of the slave's handshake.
pub const SLAVE_HANDSHAKE_BYTES: usize = 16;
/// Bytes of one slave ack.
pub const SLAVE_ACK_BYTES: usize = 12;
/// Bytes of the master's handshake before its epoch entries.
pub const MASTER_HANDSHAKE_HEADER_BYTES: usize = 20;
/// Bytes of one epoch entry in the master's handshake.
pub const EPOCH_ENTRY_BYTES: usize = 12;
/// Most epoch entries a handshake carries (Java's buffer holds 1,000); a master with more
/// sends its newest ones, which is where a consistent point is looked for first.
pub const MAX_HANDSHAKE_EPOCHS: usize = 1_000;
/// Bytes of a transfer frame's header.
pub const TRANSFER_HEADER_BYTES: usize = 36;

/// The slave's opening message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaveHandshake {
    /// An empty slave wants the master's newest file only, not the whole log.
    pub sync_from_last_file: bool,
    /// The slave replicates but never joins the SyncStateSet.
    pub async_learner: bool,
    /// The slave's controller id.
    pub broker_id: i64,
}

/// A message from the slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveMessage {
    /// The opening handshake.
    Handshake(SlaveHandshake),
    /// The slave's commit log reaches this offset.
    Ack(i64),
}

impl SlaveHandshake {
    /// Its 16 bytes.
    pub fn encode(&self) -> [u8; SLAVE_HANDSHAKE_BYTES] {
        let mut bytes = [0u8; SLAVE_HANDSHAKE_BYTES];
        bytes[..4].copy_from_slice(&STATE_HANDSHAKE.to_be_bytes());
        bytes[4..6].copy_from_slice(&i16::from(self.sync_from_last_file).to_be_bytes());
        bytes[6..8].copy_from_slice(&i16::from(self.async_learner).to_be_bytes());
        bytes[8..].copy_from_slice(&self.broker_id.to_be_bytes());
        bytes
    }
}

/// The 12 bytes of an ack of `max_offset`.
pub fn encode_ack(max_offset: u64) -> [u8; SLAVE_ACK_BYTES] {
    let mut bytes = [0u8; SLAVE_ACK_BYTES];
    bytes[..4].copy_from_slice(&STATE_TRANSFER.to_be_bytes());
    bytes[4..].copy_from_slice(&(max_offset as i64).to_be_bytes());
    bytes
}

/// The first whole slave message in `received` and the bytes it took; `None` until one is
/// whole. An unknown state is an error: the stream cannot be resynchronised.
pub fn next_slave_message(received: &[u8]) -> Result<Option<(SlaveMessage, usize)>, WireError> {
    let Some(state) = read_i32(received, 0) else { return Ok(None) };
    match state {
        STATE_HANDSHAKE if received.len() >= SLAVE_HANDSHAKE_BYTES => {
            let flag = |at: usize| read_i16(received, at).is_some_and(|value| value != 0);
            let handshake = SlaveHandshake {
                sync_from_last_file: flag(4),
                async_learner: flag(6),
                broker_id: read_i64(received, 8).unwrap_or(-1),
            };
            Ok(Some((SlaveMessage::Handshake(handshake), SLAVE_HANDSHAKE_BYTES)))
        }
        STATE_TRANSFER if received.len() >= SLAVE_ACK_BYTES => {
            let offset = read_i64(received, 4).unwrap_or(-1);
            if offset < 0 {
                return Err(WireError::BadAck { offset });
            }
            Ok(Some((SlaveMessage::Ack(offset), SLAVE_ACK_BYTES)))
        }
        STATE_HANDSHAKE | STATE_TRANSFER => Ok(None),
        other => Err(WireError::BadState { state: other }),
    }
}

/// The master's answer to a handshake: where its log ends and which epoch wrote what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterHandshake {
    /// The master's commit-log end.
    pub max_offset: u64,
    /// The master's newest epoch.
    pub last_epoch: i32,
    /// `(epoch, start offset)`, oldest first.
    pub epochs: Vec<(i32, u64)>,
}

impl MasterHandshake {
    /// Header and entries, the newest [`MAX_HANDSHAKE_EPOCHS`] entries at most.
    pub fn encode(&self) -> Vec<u8> {
        let skip = self.epochs.len().saturating_sub(MAX_HANDSHAKE_EPOCHS);
        let epochs = &self.epochs[skip..];
        let body_bytes = epochs.len() * EPOCH_ENTRY_BYTES;
        let mut bytes = Vec::with_capacity(MASTER_HANDSHAKE_HEADER_BYTES + body_bytes);
        bytes.extend_from_slice(&STATE_HANDSHAKE.to_be_bytes());
        bytes.extend_from_slice(&(body_bytes as i32).to_be_bytes());
        bytes.extend_from_slice(&(self.max_offset as i64).to_be_bytes());
        bytes.extend_from_slice(&self.last_epoch.to_be_bytes());
        for (epoch, start) in epochs {
            bytes.extend_from_slice(&epoch.to_be_bytes());
            bytes.extend_from_slice(&(*start as i64).to_be_bytes());
        }
        bytes
    }

    /// Reads the 16 header bytes that follow the state: the body size, checked, and the
    /// handshake without its entries.
    pub fn decode_header(
        bytes: &[u8; MASTER_HANDSHAKE_HEADER_BYTES - 4],
    ) -> Result<(Self, usize), WireError> {
        let body = read_i32(bytes, 0).unwrap_or(-1);
        let max_offset = read_i64(bytes, 4).unwrap_or(-1);
        let last_epoch = read_i32(bytes, 12).unwrap_or(-1);
        let bad = WireError::BadHandshake { body_bytes: body, max_offset };
        let body_bytes = usize::try_from(body).map_err(|_| bad.clone())?;
        if body_bytes % EPOCH_ENTRY_BYTES != 0 || body_bytes > MAX_HANDSHAKE_EPOCHS * EPOCH_ENTRY_BYTES {
            return Err(bad);
        }
        let max_offset = u64::try_from(max_offset).map_err(|_| bad)?;
        Ok((Self { max_offset, last_epoch, epochs: Vec::new() }, body_bytes))
    }

    /// Reads the entries of a body whose size [`Self::decode_header`] checked; entries whose
    /// epochs or starts do not increase are refused.
    pub fn decode_epochs(&mut self, body: &[u8]) -> Result<(), WireError> {
        self.epochs.clear();
        for entry in body.chunks_exact(EPOCH_ENTRY_BYTES) {
            let epoch = read_i32(entry, 0).unwrap_or(-1);
            let start = read_i64(entry, 4).unwrap_or(-1);
            let start = u64::try_from(start).map_err(|_| WireError::BadEpoch { epoch, start })?;
            if let Some(&(last_epoch, last_start)) = self.epochs.last() {
                if epoch <= last_epoch || start < last_start {
                    return Err(WireError::BadEpoch { epoch, start: start as i64 });
                }
            }
            self.epochs.push((epoch, start));
        }
        Ok(())
    }
}

/// A transfer frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferHeader {
    /// Commit-log offset of the body's first byte.
    pub start_offset: u64,
    /// Body length (0 for a heartbeat).
    pub body_bytes: usize,
    /// The epoch that wrote the body.
    pub epoch: i32,
    /// Where that epoch starts.
    pub epoch_start_offset: u64,
    /// The master's confirm offset: what every in-sync member holds.
    pub confirm_offset: u64,
}

impl TransferHeader {
    /// Its 36 bytes.
    pub fn encode(&self) -> [u8; TRANSFER_HEADER_BYTES] {
        debug_assert!(self.body_bytes <= MAX_FRAME_BODY_BYTES);
        let mut bytes = [0u8; TRANSFER_HEADER_BYTES];
        bytes[..4].copy_from_slice(&STATE_TRANSFER.to_be_bytes());
        bytes[4..8].copy_from_slice(&(self.body_bytes as i32).to_be_bytes());
        bytes[8..16].copy_from_slice(&(self.start_offset as i64).to_be_bytes());
        bytes[16..20].copy_from_slice(&self.epoch.to_be_bytes());
        bytes[20..28].copy_from_slice(&(self.epoch_start_offset as i64).to_be_bytes());
        bytes[28..].copy_from_slice(&(self.confirm_offset as i64).to_be_bytes());
        bytes
    }

    /// Reads the 32 bytes that follow the state, refusing negative values and bodies past
    /// [`MAX_FRAME_BODY_BYTES`].
    pub fn decode(bytes: &[u8; TRANSFER_HEADER_BYTES - 4]) -> Result<Self, WireError> {
        let body = read_i32(bytes, 0).unwrap_or(-1);
        let offset = read_i64(bytes, 4).unwrap_or(-1);
        let bad = WireError::BadHeader { offset, body_bytes: body };
        let nonnegative = |at: usize| read_i64(bytes, at).and_then(|value| u64::try_from(value).ok());
        let header = Self {
            start_offset: u64::try_from(offset).map_err(|_| bad.clone())?,
            body_bytes: usize::try_from(body).map_err(|_| bad.clone())?,
            epoch: read_i32(bytes, 12).unwrap_or(-1),
            epoch_start_offset: nonnegative(16).ok_or_else(|| bad.clone())?,
            confirm_offset: nonnegative(24).ok_or_else(|| bad.clone())?,
        };
        if header.body_bytes > MAX_FRAME_BODY_BYTES || header.epoch < 0 {
            return Err(bad);
        }
        Ok(header)
    }
}

/// The state that opens every master message, read on its own so the slave knows how much
/// header follows.
pub fn decode_state(bytes: [u8; 4]) -> i32 {
    i32::from_be_bytes(bytes)
}

fn read_i16(bytes: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slave_messages_round_trip_one_at_a_time() {
        let handshake = SlaveHandshake { sync_from_last_file: true, async_learner: false, broker_id: 7 };
        let mut bytes = handshake.encode().to_vec();
        bytes.extend_from_slice(&encode_ack(4096));
        bytes.extend_from_slice(&encode_ack(8192)[..5]);
        let (first, used) = next_slave_message(&bytes).unwrap().unwrap();
        assert_eq!((first, used), (SlaveMessage::Handshake(handshake), SLAVE_HANDSHAKE_BYTES));
        let (second, used2) = next_slave_message(&bytes[used..]).unwrap().unwrap();
        assert_eq!(second, SlaveMessage::Ack(4096));
        assert_eq!(next_slave_message(&bytes[used + used2..]).unwrap(), None);
        assert!(next_slave_message(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn the_handshake_carries_the_epochs_and_refuses_disorder() {
        let handshake = MasterHandshake { max_offset: 900, last_epoch: 3, epochs: vec![(1, 0), (3, 500)] };
        let bytes = handshake.encode();
        assert_eq!(decode_state(bytes[..4].try_into().unwrap()), STATE_HANDSHAKE);
        let (mut decoded, body) = MasterHandshake::decode_header(bytes[4..20].try_into().unwrap()).unwrap();
        assert_eq!(body, 24);
        decoded.decode_epochs(&bytes[20..]).unwrap();
        assert_eq!(decoded, handshake);
        let mut disorder = bytes.clone();
        disorder[32..36].copy_from_slice(&1i32.to_be_bytes());
        assert!(decoded.decode_epochs(&disorder[20..]).is_err());
    }

    #[test]
    fn a_master_with_many_epochs_sends_its_newest() {
        let epochs: Vec<(i32, u64)> = (1..=1_500).map(|epoch| (epoch, epoch as u64 * 10)).collect();
        let bytes = MasterHandshake { max_offset: 20_000, last_epoch: 1_500, epochs }.encode();
        assert_eq!(bytes.len(), MASTER_HANDSHAKE_HEADER_BYTES + MAX_HANDSHAKE_EPOCHS * EPOCH_ENTRY_BYTES);
        assert_eq!(read_i32(&bytes, 20), Some(501));
    }

    proptest! {
        #[test]
        fn any_transfer_header_decodes_or_fails_without_panic(bytes in proptest::array::uniform32(any::<u8>())) {
            if let Ok(header) = TransferHeader::decode(&bytes) {
                prop_assert!(header.body_bytes <= MAX_FRAME_BODY_BYTES);
                let encoded = header.encode();
                prop_assert_eq!(TransferHeader::decode(encoded[4..].try_into().unwrap()), Ok(header));
            }
        }

        #[test]
        fn any_slave_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(Some((_, used))) = next_slave_message(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn any_handshake_header_decodes_or_fails_without_panic(bytes in proptest::array::uniform16(any::<u8>())) {
            if let Ok((_, body)) = MasterHandshake::decode_header(&bytes) {
                prop_assert!(body % EPOCH_ENTRY_BYTES == 0 && body <= MAX_HANDSHAKE_EPOCHS * EPOCH_ENTRY_BYTES);
            }
        }
    }
}
