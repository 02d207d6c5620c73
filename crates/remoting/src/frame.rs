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
pub fn encode(
    command: &RemotingCommand,
    max_frame_bytes: usize,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let mut head = Vec::with_capacity(TYPICAL_HEAD_BYTES);
    encode_head(command, max_frame_bytes, &mut head)?;
    out.reserve(head.len() + command.body.len());
    out.put_slice(&head);
    out.put_slice(&command.body);
    Ok(())
}

/// Room reserved for a frame's length, header word and header.
const TYPICAL_HEAD_BYTES: usize = 512;

/// Appends everything of `command`'s frame but the body to `out`: the length field (which
/// counts the body), the header word and the header, written in place. The caller writes
/// the body next. On error `out` is left as it was.
pub fn encode_head(
    command: &RemotingCommand,
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_FIELD_BYTES + HEADER_WORD_BYTES]);
    let header_start = out.len();
    let serialize_type = match command.serialize_type {
        SerializeType::RocketMq if i16::try_from(command.code).is_ok() => {
            binary_header::encode(command, out);
            SerializeType::RocketMq
        }
        _ => {
            json_header::encode(command, out);
            SerializeType::Json
        }
    };
    let header_len = out.len() - header_start;
    let length = HEADER_WORD_BYTES + header_len + command.body.len();
    if LENGTH_FIELD_BYTES + length > max_frame_bytes || header_len > 0x00FF_FFFF {
        out.truncate(start);
        return Err(FrameError::TooLarge { size: LENGTH_FIELD_BYTES + length, limit: max_frame_bytes });
    }
    // Both casts are bounded by the check above (limit ≤ 2^31, header ≤ 2^24).
    out[start..start + LENGTH_FIELD_BYTES].copy_from_slice(&(length as u32).to_be_bytes());
    let word = (u32::from(serialize_type.code()) << 24) | header_len as u32;
    out[start + LENGTH_FIELD_BYTES..header_start].copy_from_slice(&word.to_be_bytes());
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

#[cfg(test)]
mod tests {

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::language::LanguageCode;

    fn route_request(serialize_type: SerializeType) -> RemotingCommand {
        RemotingCommand {
            code: 105,
            language: LanguageCode::Java,
            version: 479,
            opaque: 1,
            serialize_type,
            ..RemotingCommand::default()
        }
        .with_ext("topic", "TopicTest")
    }

    fn encode_to_vec(command: &RemotingCommand) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(command, DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        out.to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<RemotingCommand>, FrameError> {
        RemotingCodec::default().decode(&mut BytesMut::from(bytes))
    }

    /// Spec §1.2, first example: the JSON GET_ROUTEINFO_BY_TOPIC request, byte for byte.
    #[test]
    fn json_route_request_matches_spec_bytes() {
        let header = br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        let mut expected = vec![0x00, 0x00, 0x00, 0x87, 0x00, 0x00, 0x00, 0x83];
        expected.extend_from_slice(header);
        assert_eq!(header.len(), 131);
        assert_eq!(encode_to_vec(&route_request(SerializeType::Json)), expected);
        assert_eq!(decode_all(&expected).unwrap().unwrap(), route_request(SerializeType::Json));
    }

    /// Spec §1.2, second example: the same request with the ROCKETMQ header, 49 bytes.
    #[test]
    fn binary_route_request_matches_spec_bytes() {
        let expected: Vec<u8> = [
            "00 00 00 2d 01 00 00 29 00 69 00 01 df 00 00 00 01 00 00 00 00 00 00 00 00",
            "00 00 00 14 00 05 74 6f 70 69 63 00 00 00 09 54 6f 70 69 63 54 65 73 74",
        ]
        .join(" ")
        .split(' ')
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect();
        assert_eq!(expected.len(), 49);
        assert_eq!(encode_to_vec(&route_request(SerializeType::RocketMq)), expected);
        assert_eq!(decode_all(&expected).unwrap().unwrap(), route_request(SerializeType::RocketMq));
    }

    #[test]
    fn json_header_tolerates_what_real_clients_write() {
        // Keys out of order, explicit nulls, numbers as strings and numbers in extFields,
        // an unknown language and unknown members.
        let header = br#"{"version":"317","opaque":7,"remark":null,"language":"COBOL","code":"34","flag":0,
            "extFields":{"n":1,"b":true,"x":null,"Signature":""},"body":"ignored"}"#;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(header.len() as u32 + 4).to_be_bytes());
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(header);
        let command = decode_all(&frame).unwrap().unwrap();
        assert_eq!(command.code, 34);
        assert_eq!(command.version, 317);
        assert_eq!(command.language, LanguageCode::Other);
        assert_eq!(command.remark, None);
        assert_eq!(command.ext("n"), Some("1"));
        assert_eq!(command.ext("b"), Some("true"));
        assert_eq!(command.ext("x"), None);
        assert_eq!(command.ext("Signature"), Some(""));
    }

    #[test]
    fn control_characters_are_escaped_as_fastjson_does() {
        let command = RemotingCommand::request(310).with_ext("i", "TAGS\u{1}TagA\u{2}");
        let bytes = encode_to_vec(&command);
        let text = String::from_utf8_lossy(&bytes[8..]).into_owned();
        assert!(text.contains(r#""i":"TAGS\u0001TagA\u0002""#), "{text}");
        assert_eq!(decode_all(&bytes).unwrap().unwrap().ext("i"), Some("TAGS\u{1}TagA\u{2}"));
    }

    #[test]
    fn binary_header_accepts_duplicate_keys_last_wins() {
        let mut header = vec![0x00, 0x0a, 0x00, 0x01, 0xdf, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let entry = |key: &str, value: &str| {
            let mut bytes = (key.len() as i16).to_be_bytes().to_vec();
            bytes.extend_from_slice(key.as_bytes());
            bytes.extend_from_slice(&(value.len() as i32).to_be_bytes());
            bytes.extend_from_slice(value.as_bytes());
            bytes
        };
        let map = [entry("topic", "first"), entry("topic", "second")].concat();
        header.extend_from_slice(&(map.len() as i32).to_be_bytes());
        header.extend_from_slice(&map);
        let command = binary_header::decode(&header).unwrap();
        assert_eq!(command.ext("topic"), Some("second"));
    }

    #[test]
    fn codes_beyond_i16_are_answered_in_json() {
        let mut pop = RemotingCommand::request(200_050);
        pop.serialize_type = SerializeType::RocketMq;
        let bytes = encode_to_vec(&pop);
        assert_eq!(bytes[4], 0, "serialization type byte must say JSON");
        assert_eq!(decode_all(&bytes).unwrap().unwrap().code, 200_050);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let bytes = encode_to_vec(&route_request(SerializeType::Json));
        let mut codec = RemotingCodec::default();
        let mut buffer = BytesMut::new();
        for (index, byte) in bytes.iter().enumerate() {
            buffer.put_u8(*byte);
            let decoded = codec.decode(&mut buffer).unwrap();
            assert_eq!(decoded.is_some(), index == bytes.len() - 1);
        }
    }

    #[test]
    fn bad_lengths_are_refused_without_allocating() {
        for length in [0x8000_0000u32, 0x7fff_ffff, 16 * 1024 * 1024 - 3, 0, 3, 0xffff_ffff] {
            let mut buffer = BytesMut::from(&length.to_be_bytes()[..]);
            let error = RemotingCodec::default().decode(&mut buffer).unwrap_err();
            assert!(matches!(error, FrameError::BadLength { .. }), "{length:#x}: {error}");
            assert!(buffer.capacity() < 1024, "no allocation for a refused frame");
        }
        // The largest legal length is accepted (and waited for).
        let mut buffer = BytesMut::from(&(16u32 * 1024 * 1024 - 4).to_be_bytes()[..]);
        assert!(RemotingCodec::default().decode(&mut buffer).unwrap().is_none());
    }

    #[test]
    fn header_past_frame_and_unknown_type_are_refused() {
        let frame = [0, 0, 0, 8, 0, 0, 0, 200, b'{', b'}', 0, 0];
        assert!(matches!(decode_all(&frame), Err(FrameError::HeaderPastFrame { .. })));
        let frame = [0, 0, 0, 6, 7, 0, 0, 2, b'{', b'}'];
        assert!(matches!(decode_all(&frame), Err(FrameError::UnknownSerializeType(7))));
        let frame = [0, 0, 0, 7, 0, 0, 0, 3, b'{', b'x', b'}'];
        assert!(matches!(decode_all(&frame), Err(FrameError::BadHeader(_))));
    }

    #[test]
    fn oversize_commands_are_not_encoded() {
        let command = RemotingCommand::request(10).with_body(vec![0u8; 64]);
        let mut out = BytesMut::new();
        assert!(matches!(encode(&command, 80, &mut out), Err(FrameError::TooLarge { .. })));
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,24}", "[a-zA-Z0-9]{1,12}", "[\u{1}\u{2}\"\\\\a-z]{0,16}"]
    }

    fn any_command(serialize_type: SerializeType) -> impl Strategy<Value = RemotingCommand> {
        let wide = serialize_type == SerializeType::Json;
        (
            if wide { any::<i32>().boxed() } else { any::<i16>().prop_map(i32::from).boxed() },
            0u8..14,
            if wide { any::<i32>().boxed() } else { any::<i16>().prop_map(i32::from).boxed() },
            any::<i32>(),
            0i32..4,
            proptest::option::of(any_text()),
            proptest::option::of(
                proptest::collection::hash_map(any_text(), any_text(), 0..6)
                    .prop_map(|map| map.into_iter().collect::<crate::command::ExtFields>()),
            ),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(move |(code, language, version, opaque, flag, remark, ext_fields, body)| {
                RemotingCommand {
                    code,
                    language: LanguageCode::from_code(language),
                    version,
                    opaque,
                    flag,
                    remark,
                    ext_fields,
                    body: Bytes::from(body),
                    serialize_type,
                }
            })
    }

    /// What the binary header cannot tell apart: empty remark vs none, empty map vs none,
    /// empty keys or values vs absent.
    fn binary_normal_form(mut command: RemotingCommand) -> RemotingCommand {
        command.remark = command.remark.filter(|remark| !remark.is_empty());
        command.ext_fields = command
            .ext_fields
            .map(|fields| -> crate::command::ExtFields {
                fields.iter().filter(|(key, value)| !key.is_empty() && !value.is_empty()).collect()
            })
            .filter(|fields| !fields.is_empty());
        command
    }

    proptest! {
        #[test]
        fn json_frames_round_trip(command in any_command(SerializeType::Json)) {
            let decoded = decode_all(&encode_to_vec(&command)).unwrap().unwrap();
            prop_assert_eq!(decoded, command);
        }

        #[test]
        fn binary_frames_round_trip(command in any_command(SerializeType::RocketMq)) {
            let decoded = decode_all(&encode_to_vec(&command)).unwrap().unwrap();
            prop_assert_eq!(decoded, binary_normal_form(command));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buffer = BytesMut::from(&bytes[..]);
            let mut codec = RemotingCodec::default();
            for _ in 0..8 {
                match codec.decode(&mut buffer) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
