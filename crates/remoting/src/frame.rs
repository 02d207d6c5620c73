//! The frame: `length | serType<<24 | hdrLen | header | body` (spec §1.2), and the tokio
//! codec that cuts a byte stream into [`RemotingCommand`]s.
//!
//! The decoder trusts no length: a frame above the limit, a header longer than its frame or
//! an unknown serialization type is an error, which ends that connection. Nothing is
//! allocated for a frame until its length has been checked against the limit.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::command::{RemotingCommand, SerializeType};
use crate::{binary_header, json_header};

/// Largest frame Java peers accept: `4 + length` must not exceed 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of the length field.
const LENGTH_FIELD_BYTES: usize = 4;
/// Bytes of the serialization-type/header-length word.
const HEADER_WORD_BYTES: usize = 4;

/// Why a frame could not be decoded or encoded. Every variant ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length field is negative, too small for the header word, or above the limit.
    #[error("frame length {length} outside 4..={limit} bytes")]
    BadLength {
        /// The length the peer announced.
        length: i64,
        /// The largest length accepted.
        limit: usize,
    },
    /// The header-length word is inconsistent with the frame.
    #[error("header length {header_len} exceeds the {available} bytes left in the frame")]
    HeaderPastFrame {
        /// Announced header length.
        header_len: usize,
        /// Bytes after the header-length word.
        available: usize,
    },
    /// The serialization type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("unknown header serialization type {0}")]
    UnknownSerializeType(u8),
    /// The header bytes do not parse.
    #[error("malformed header: {0}")]
    BadHeader(String),
    /// An encoded command would exceed the frame limit.
    #[error("command of {size} bytes exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `command` into one whole frame appended to `out`.
///
/// A ROCKETMQ-typed command whose code does not fit an `i16` is written as JSON, the only
/// form its receiver could decode correctly.
pub fn encode(command: &RemotingCommand, max_frame_bytes: usize, out: &mut BytesMut) -> Result<(), FrameError> {
    let mut header = Vec::with_capacity(128);
    let serialize_type = match command.serialize_type {
        SerializeType::RocketMq if i16::try_from(command.code).is_ok() => {
            binary_header::encode(command, &mut header);
            SerializeType::RocketMq
        }
        _ => {
            json_header::encode(command, &mut header);
            SerializeType::Json
        }
    };
    let length = HEADER_WORD_BYTES + header.len() + command.body.len();
    if LENGTH_FIELD_BYTES + length > max_frame_bytes || header.len() > 0x00FF_FFFF {
        return Err(FrameError::TooLarge { size: LENGTH_FIELD_BYTES + length, limit: max_frame_bytes });
    }
    out.reserve(LENGTH_FIELD_BYTES + length);
    // Both casts are bounded by the check above (limit ≤ 2^31, header ≤ 2^24).
    out.put_u32(length as u32);
    out.put_u32((u32::from(serialize_type.code()) << 24) | header.len() as u32);
    out.put_slice(&header);
    out.put_slice(&command.body);
    Ok(())
}

/// Decodes one whole frame (everything after the length field).
pub fn decode_frame(mut frame: BytesMut) -> Result<RemotingCommand, FrameError> {
    if frame.len() < HEADER_WORD_BYTES {
        return Err(FrameError::BadLength { length: frame.len() as i64, limit: DEFAULT_MAX_FRAME_BYTES });
    }
    let word = frame.get_u32();
    let serialize_type = (word >> 24) as u8;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > frame.len() {
        return Err(FrameError::HeaderPastFrame { header_len, available: frame.len() });
    }
    let header = frame.split_to(header_len);
    let mut command = match SerializeType::from_code(serialize_type) {
        Some(SerializeType::Json) => json_header::decode(&header)?,
        Some(SerializeType::RocketMq) => binary_header::decode(&header)?,
        None => return Err(FrameError::UnknownSerializeType(serialize_type)),
    };
    command.body = frame.freeze();
    Ok(command)
}

/// The tokio codec for a remoting connection.
#[derive(Debug, Clone)]
pub struct RemotingCodec {
    max_frame_bytes: usize,
}

impl Default for RemotingCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl RemotingCodec {
    /// A codec refusing frames longer than `max_frame_bytes` (length field included).
    pub fn new(max_frame_bytes: usize) -> Self {
        assert!(max_frame_bytes >= LENGTH_FIELD_BYTES + HEADER_WORD_BYTES);
        assert!(max_frame_bytes <= i32::MAX as usize);
        Self { max_frame_bytes }
    }
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, FrameError> {
        if src.len() < LENGTH_FIELD_BYTES {
            return Ok(None);
        }
        let length = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let limit = self.max_frame_bytes - LENGTH_FIELD_BYTES;
        let frame_len = usize::try_from(length)
            .ok()
            .filter(|length| (HEADER_WORD_BYTES..=limit).contains(length))
            .ok_or(FrameError::BadLength { length: i64::from(length), limit })?;
        if src.len() < LENGTH_FIELD_BYTES + frame_len {
            // Bounded by the limit checked above.
            src.reserve(LENGTH_FIELD_BYTES + frame_len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_FIELD_BYTES);
        decode_frame(src.split_to(frame_len)).map(Some)
    }
}

impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = FrameError;

    fn encode(&mut self, command: RemotingCommand, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode(&command, self.max_frame_bytes, dst)
    }
}

impl Encoder<&RemotingCommand> for RemotingCodec {
    type Error = FrameError;

    fn encode(&mut self, command: &RemotingCommand, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode(command, self.max_frame_bytes, dst)
    }
}
