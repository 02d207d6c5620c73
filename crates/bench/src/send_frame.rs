//! A send request encoded once and sent many times.
//!
//! The bench shares the machine with the broker it measures, so every microsecond it spends
//! building a request is taken from the broker. A [`SendFrame`] is the whole frame of a
//! `SEND_MESSAGE_V2` or `SEND_BATCH_MESSAGE` request to one queue, written by the remoting
//! codec once, with the places of the fields that change per send: the opaque, the born
//! timestamp, every `UNIQ_KEY` and (e2e) the send time at the start of every body. Sending is
//! a copy and a few patches, and the bytes are those that encoding the request would give
//! (tested below).

use anyhow::{ensure, Context, Result};
use apogee_common::message::batch::{encode_batch, BatchItem};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_remoting::frame;
use apogee_remoting::header::send::SendMessageRequestHeaderV2;
use apogee_remoting::{request_code, RemotingCommand};
use bytes::Bytes;

/// The first opaque of a connection. Opaques stay within ten digits, the width of the
/// placeholder the template is encoded with, by wrapping back here.
pub const FIRST_OPAQUE: i32 = 1_000_000_000;
/// Opaques in use before they wrap: far more than a connection ever has outstanding.
pub const OPAQUE_SPAN: u64 = 1_000_000_000;
/// Digits of an opaque.
const OPAQUE_DIGITS: usize = 10;

/// Born timestamp the template is encoded with: thirteen digits, as every epoch millisecond
/// from 2001 to 2286.
const BORN_PLACEHOLDER_MS: i64 = 1_111_111_111_111;
/// Digits of a born timestamp.
const BORN_DIGITS: usize = 13;

/// Body start the e2e template is encoded with; replaced by the send time (µs since the
/// epoch, big-endian) in every body.
const STAMP_PLACEHOLDER: [u8; STAMP_BYTES] = *b"\x01stamp\x02\x03";
/// Bytes of the send time.
pub const STAMP_BYTES: usize = 8;

/// The send time (µs since the epoch) a stamped frame wrote at the start of `body`; `None`
/// for a body too short to hold one.
pub fn stamp_of(body: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(body.get(..STAMP_BYTES)?.try_into().ok()?))
}

/// What one request sends: to which queue, how many messages of what size.
#[derive(Debug, Clone)]
pub struct SendShape<'a> {
    /// Producer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Broker name (header field `n`).
    pub broker_name: &'a str,
    /// Queue id.
    pub queue_id: i32,
    /// Body bytes of each message.
    pub size: usize,
    /// Messages per request; more than one sends `SEND_BATCH_MESSAGE`.
    pub batch: usize,
    /// Whether each body starts with the send time (needs `size` ≥ [`STAMP_BYTES`]).
    pub stamp: bool,
}

/// One queue's request frame with the places of its per-send fields.
#[derive(Debug, Clone)]
pub struct SendFrame {
    bytes: Vec<u8>,
    opaque_at: usize,
    born_at: usize,
    uniq_key_len: usize,
    uniq_keys_at: Vec<usize>,
    stamps_at: Vec<usize>,
}

impl SendFrame {
    /// Encodes the request `shape` describes; `ids` fixes the length of the `UNIQ_KEY`s.
    pub fn new(shape: &SendShape<'_>, ids: &UniqIdGenerator) -> Result<Self> {
        ensure!(shape.batch >= 1, "a request carries at least one message");
        ensure!(!shape.stamp || shape.size >= STAMP_BYTES, "a stamped body has at least {STAMP_BYTES} bytes");
        let uniq_key_len = ids.next_id_text().len();
        let uniq_key_placeholder = "Q".repeat(uniq_key_len);
        let placeholders = vec![uniq_key_placeholder.as_str(); shape.batch];
        let command = command(
            shape,
            PerSend {
                opaque: FIRST_OPAQUE,
                born_ms: BORN_PLACEHOLDER_MS,
                uniq_keys: &placeholders,
                stamp: STAMP_PLACEHOLDER,
            },
        );
        let mut bytes = Vec::new();
        frame::encode_head(&command, frame::DEFAULT_MAX_FRAME_BYTES, &mut bytes)
            .context("encoding the request")?;
        let body_at = bytes.len();
        bytes.extend_from_slice(&command.body);

        let header = &bytes[..body_at];
        let opaque_at = only_one(header, format!("\"opaque\":{FIRST_OPAQUE}").as_bytes(), "opaque")?
            + "\"opaque\":".len();
        let born_at =
            only_one(header, format!("\"{BORN_PLACEHOLDER_MS}\"").as_bytes(), "born timestamp")? + 1;
        let uniq_keys_at: Vec<usize> =
            memchr::memmem::find_iter(&bytes, uniq_key_placeholder.as_bytes()).collect();
        ensure!(
            uniq_keys_at.len() == shape.batch,
            "expected {} UNIQ_KEY places, found {}",
            shape.batch,
            uniq_keys_at.len()
        );
        let stamps_at: Vec<usize> = if shape.stamp {
            memchr::memmem::find_iter(&bytes[body_at..], &STAMP_PLACEHOLDER).map(|at| body_at + at).collect()
        } else {
            Vec::new()
        };
        ensure!(
            !shape.stamp || stamps_at.len() == shape.batch,
            "expected {} send-time places, found {}",
            shape.batch,
            stamps_at.len()
        );
        Ok(Self { bytes, opaque_at, born_at, uniq_key_len, uniq_keys_at, stamps_at })
    }

    /// Whether every body starts with the send time, which [`Self::write`] then needs.
    pub fn is_stamped(&self) -> bool {
        !self.stamps_at.is_empty()
    }

    /// Appends the frame to `out` with its per-send fields: `opaque` in
    /// `FIRST_OPAQUE..FIRST_OPAQUE + OPAQUE_SPAN`, `born_ms` of thirteen digits, a fresh
    /// `UNIQ_KEY` per message from `ids`, and `stamp_us` at the start of every body if the
    /// frame was made with a stamp.
    pub fn write(&self, out: &mut Vec<u8>, opaque: i32, born_ms: i64, ids: &UniqIdGenerator, stamp_us: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let frame = &mut out[start..];
        write_digits(&mut frame[self.opaque_at..self.opaque_at + OPAQUE_DIGITS], opaque as u64);
        write_digits(&mut frame[self.born_at..self.born_at + BORN_DIGITS], born_ms as u64);
        for &at in &self.uniq_keys_at {
            let id = ids.next_id_text();
            // The generator's prefix is fixed, so every id has the template's length.
            assert_eq!(id.len(), self.uniq_key_len, "UNIQ_KEY length changed");
            frame[at..at + self.uniq_key_len].copy_from_slice(id.as_bytes());
        }
        for &at in &self.stamps_at {
            frame[at..at + STAMP_BYTES].copy_from_slice(&stamp_us.to_be_bytes());
        }
    }
}

/// The values that change from one send to the next.
#[derive(Debug, Clone, Copy)]
struct PerSend<'a> {
    opaque: i32,
    born_ms: i64,
    /// One per message.
    uniq_keys: &'a [&'a str],
    /// The first bytes of every body, for a stamped shape.
    stamp: [u8; STAMP_BYTES],
}

/// The request `shape` describes, with `values`: with placeholders for a template, or with
/// what a send patched in to check it.
fn command(shape: &SendShape<'_>, values: PerSend<'_>) -> RemotingCommand {
    assert_eq!(values.uniq_keys.len(), shape.batch, "one UNIQ_KEY per message");
    let batch = shape.batch > 1;
    let mut payload = vec![b'x'; shape.size];
    if shape.stamp {
        payload[..STAMP_BYTES].copy_from_slice(&values.stamp);
    }
    let properties_of =
        |key: &str| Properties::from_iter([(property::UNIQ_KEY, key), (property::WAIT, "true")]);
    let (body, header_properties) = if batch {
        let items: Vec<BatchItem> = values
            .uniq_keys
            .iter()
            .map(|key| BatchItem {
                flag: 0,
                body: Bytes::from(payload.clone()),
                properties: properties_of(key),
            })
            .collect();
        (encode_batch(&items), property::encode(&Properties::from_iter([(property::WAIT, "true")])))
    } else {
        (payload, property::encode(&properties_of(values.uniq_keys[0])))
    };
    let header = SendMessageRequestHeaderV2 {
        a: shape.group.into(),
        b: shape.topic.into(),
        c: "TBW102".into(),
        d: 4,
        e: shape.queue_id,
        f: 0,
        g: values.born_ms,
        h: 0,
        i: Some(header_properties.as_str().into()),
        j: Some(0),
        m: Some(batch),
        n: Some(shape.broker_name.into()),
        ..SendMessageRequestHeaderV2::default()
    };
    let code = if batch { request_code::SEND_BATCH_MESSAGE } else { request_code::SEND_MESSAGE_V2 };
    let mut command = RemotingCommand::request(code).with_header(&header).with_body(body);
    command.opaque = values.opaque;
    command
}

/// Where `needle` starts in `haystack`, which must hold it exactly once.
fn only_one(haystack: &[u8], needle: &[u8], what: &str) -> Result<usize> {
    let mut found = memchr::memmem::find_iter(haystack, needle);
    let first = found.next().with_context(|| format!("no {what} in the encoded header"))?;
    ensure!(found.next().is_none(), "the {what} placeholder occurs twice in the encoded header");
    Ok(first)
}

/// Writes `value` in decimal over the whole of `digits`, zero-padded on the left.
fn write_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    assert_eq!(value, 0, "value wider than its field");
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use apogee_common::message::batch::decode_batch;
    use apogee_remoting::frame::RemotingCodec;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;

    fn ids() -> UniqIdGenerator {
        UniqIdGenerator::with_parts(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 77, 0x1234_5678)
    }

    fn shape(batch: usize, stamp: bool) -> SendShape<'static> {
        SendShape { group: "g", topic: "T", broker_name: "b0", queue_id: 5, size: 16, batch, stamp }
    }

    fn decode(bytes: &[u8]) -> RemotingCommand {
        let mut buffer = BytesMut::from(bytes);
        let command = RemotingCodec::default().decode(&mut buffer).unwrap().unwrap();
        assert!(buffer.is_empty(), "one whole frame");
        command
    }

    /// The request the per-send fields describe, encoded from scratch.
    fn encoded_afresh(
        shape: &SendShape<'_>,
        opaque: i32,
        born_ms: i64,
        uniq_keys: &[String],
        stamp_us: u64,
    ) -> Vec<u8> {
        let uniq_keys: Vec<&str> = uniq_keys.iter().map(String::as_str).collect();
        let values = PerSend { opaque, born_ms, uniq_keys: &uniq_keys, stamp: stamp_us.to_be_bytes() };
        let mut out = BytesMut::new();
        frame::encode(&command(shape, values), frame::DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        out.to_vec()
    }

    /// Every `UNIQ_KEY` the frame carries, in order.
    fn uniq_keys_of(command: &RemotingCommand) -> Vec<String> {
        if command.code == request_code::SEND_BATCH_MESSAGE {
            decode_batch(&command.body)
                .unwrap()
                .into_iter()
                .map(|item| item.properties.get(property::UNIQ_KEY).unwrap().to_owned())
                .collect()
        } else {
            let properties = property::decode(command.ext("i").unwrap());
            vec![properties.get(property::UNIQ_KEY).unwrap().to_owned()]
        }
    }

    #[test]
    fn a_written_frame_is_the_request_encoded_afresh() {
        let ids = ids();
        for (batch, stamp) in [(1, false), (1, true), (3, false), (32, true)] {
            let shape = shape(batch, stamp);
            let frame = SendFrame::new(&shape, &ids).unwrap();
            for (opaque, born_ms, stamp_us) in
                [(FIRST_OPAQUE, 1_700_000_000_123, 1), (1_999_999_999, 9_999_999_999_999, u64::MAX)]
            {
                let mut out = vec![0xAA];
                frame.write(&mut out, opaque, born_ms, &ids, stamp_us);
                assert_eq!(out[0], 0xAA, "appends after what was there");
                let written = &out[1..];
                let command = decode(written);
                assert_eq!(command.opaque, opaque);
                let keys = uniq_keys_of(&command);
                assert_eq!(keys.len(), batch);
                let mut distinct = keys.clone();
                distinct.sort();
                distinct.dedup();
                assert_eq!(distinct.len(), batch, "a fresh UNIQ_KEY per message");
                if stamp {
                    let body = if batch > 1 {
                        decode_batch(&command.body).unwrap()[0].body.clone()
                    } else {
                        command.body.clone()
                    };
                    assert_eq!(stamp_of(&body), Some(stamp_us), "the consumer reads the send time back");
                }
                let expected = encoded_afresh(&shape, opaque, born_ms, &keys, stamp_us);
                assert_eq!(written, expected.as_slice(), "batch {batch}, stamp {stamp}");
            }
        }
    }

    #[test]
    fn a_body_too_small_for_the_send_time_is_refused() {
        let small = SendShape { size: STAMP_BYTES - 1, ..shape(1, true) };
        assert!(SendFrame::new(&small, &ids()).is_err());
    }

    #[test]
    #[should_panic(expected = "wider than its field")]
    fn a_value_wider_than_its_field_is_an_error() {
        write_digits(&mut [0; 2], 100);
    }
}
