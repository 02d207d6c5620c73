//! The JSON header (serialization type 0): fastjson's rendering of a `RemotingCommand`.
//!
//! Written by hand, keys in Java's alphabetical order, so that a frame is byte-identical to
//! one a Java peer writes; read leniently, because clients in five languages write it.

mod scan;

use compact_str::{CompactString, ToCompactString};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::ext_fields::ExtFieldsBuilder;
use crate::frame::FrameError;
use crate::language::LanguageCode;

/// Appends the JSON header of `command` to `out`.
pub fn encode(command: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"code\":");
    push_number(out, i64::from(command.code));
    if let Some(fields) = &command.ext_fields {
        out.extend_from_slice(b",\"extFields\":{");
        // ExtFields iterates in key order: deterministic frames, and the order a Java
        // TreeMap gives.
        for (index, (key, value)) in fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            push_string(out, key);
            out.push(b':');
            push_string(out, value);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"flag\":");
    push_number(out, i64::from(command.flag));
    out.extend_from_slice(b",\"language\":");
    push_string(out, command.language.name());
    out.extend_from_slice(b",\"opaque\":");
    push_number(out, i64::from(command.opaque));
    if let Some(remark) = &command.remark {
        out.extend_from_slice(b",\"remark\":");
        push_string(out, remark);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    push_number(out, i64::from(command.version));
    out.push(b'}');
}

fn push_number(out: &mut Vec<u8>, number: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
}

/// Writes a JSON string; control characters become `\uXXXX` as fastjson writes them.
fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut rest = text.as_bytes();
    loop {
        // Copy the plain run whole, then escape the one byte that ended it.
        let run = scan::plain_run(rest).length;
        out.extend_from_slice(&rest[..run]);
        let Some((&byte, tail)) = rest[run..].split_first() else { break };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        rest = tail;
    }
    out.push(b'"');
}

/// The header as peers write it; every member optional and lenient. Each member is read
/// straight into its final type, without an intermediate `serde_json::Value`.
#[derive(Deserialize)]
struct WireHeader {
    #[serde(default)]
    code: Option<IntMember>,
    /// An enum name, or its ordinal; anything else reads as OTHER.
    #[serde(default, deserialize_with = "crate::body::enums::language::deserialize")]
    language: Option<LanguageCode>,
    #[serde(default)]
    version: Option<IntMember>,
    #[serde(default)]
    opaque: Option<IntMember>,
    #[serde(default)]
    flag: Option<IntMember>,
    #[serde(default)]
    remark: Option<FieldText>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<LenientFields>,
}

/// An `int` member given as a number or as a decimal string (fastjson accepts both);
/// `None` when it is neither or out of range, which [`decode`] reports with the member's name.
struct IntMember(Option<i32>);

impl<'de> Deserialize<'de> for IntMember {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl<'de> serde::de::Visitor<'de> for IntVisitor {
            type Value = IntMember;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a 32-bit integer")
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<IntMember, E> {
                Ok(IntMember(i32::try_from(value).ok()))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<IntMember, E> {
                Ok(IntMember(i32::try_from(value).ok()))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<IntMember, E> {
                Ok(IntMember(None))
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<IntMember, E> {
                Ok(IntMember(None))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<IntMember, E> {
                Ok(IntMember(value.trim().parse().ok()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<IntMember, A::Error> {
                IgnoredAny::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(IntMember(None))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<IntMember, A::Error> {
                IgnoredAny::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(IntMember(None))
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// Room reserved for the fields of a header: a send request has 13, most others fewer.
const TYPICAL_FIELD_COUNT: usize = 16;

/// `extFields` read straight into [`ExtFields`]: values given as strings are taken as they
/// are, numbers and booleans as their text (fastjson does), nulls dropped.
struct LenientFields(ExtFields);

impl<'de> Deserialize<'de> for LenientFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = LenientFields;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object of header fields")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LenientFields, A::Error> {
                let count = map.size_hint().unwrap_or(TYPICAL_FIELD_COUNT);
                let mut fields = ExtFieldsBuilder::with_capacity(0, count);
                while let Some((key, value)) = map.next_entry::<KeyText, FieldText>()? {
                    if let Some(text) = value.0 {
                        fields.push(&key.0, &text);
                    }
                }
                Ok(LenientFields(fields.finish()))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// An object key.
struct KeyText(CompactString);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = KeyText;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a field name")
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<KeyText, E> {
                Ok(KeyText(CompactString::new(key)))
            }

            fn visit_string<E: serde::de::Error>(self, key: String) -> Result<KeyText, E> {
                Ok(KeyText(CompactString::from(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One value as text, the way fastjson reads any JSON value into a `String`; `None` for null.
struct FieldText(Option<CompactString>);

impl<'de> Deserialize<'de> for FieldText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = FieldText;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a header field value")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FieldText, E> {
                Ok(FieldText(Some(CompactString::new(value))))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<FieldText, E> {
                Ok(FieldText(Some(CompactString::from(value))))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_compact_string())))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_compact_string())))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<FieldText, E> {
                Ok(FieldText(Some(Value::from(value).to_string().into())))
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<FieldText, E> {
                Ok(FieldText(Some(CompactString::const_new(if value { "true" } else { "false" }))))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<FieldText, E> {
                Ok(FieldText(None))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<FieldText, E> {
                Ok(FieldText(None))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<FieldText, A::Error> {
                let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(FieldText(Some(value.to_string().into())))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FieldText, A::Error> {
                let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldText(Some(value.to_string().into())))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Decodes a JSON header into a command without a body.
pub fn decode(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    if let Some(command) = scan::decode(bytes) {
        return Ok(command);
    }
    decode_leniently(bytes)
}

/// [`decode`] by serde, for any header the fast scanner leaves alone.
fn decode_leniently(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    let wire: WireHeader = serde_json::from_slice(bytes)
        .map_err(|error| FrameError::BadHeader(format!("JSON header: {error}")))?;
    let code = int_member("code", wire.code)?
        .ok_or_else(|| FrameError::BadHeader("JSON header has no code".into()))?;
    Ok(RemotingCommand {
        code,
        language: wire.language.unwrap_or(LanguageCode::Other),
        version: int_member("version", wire.version)?.unwrap_or(0),
        opaque: int_member("opaque", wire.opaque)?.unwrap_or(0),
        flag: int_member("flag", wire.flag)?.unwrap_or(0),
        remark: wire.remark.and_then(|remark| remark.0).map(String::from),
        ext_fields: wire.ext_fields.map(|fields| fields.0),
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// An `int` member: absent or null is `None`, anything that is not a 32-bit integer an error.
fn int_member(name: &str, member: Option<IntMember>) -> Result<Option<i32>, FrameError> {
    match member {
        None => Ok(None),
        Some(IntMember(Some(value))) => Ok(Some(value)),
        Some(IntMember(None)) => {
            Err(FrameError::BadHeader(format!("JSON header member {name} is not a 32-bit integer")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Header-like JSON with the oddities clients produce: members as strings, floats,
    /// nulls, nested values, duplicates, escapes, whitespace.
    fn json_header_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            Just("-0".to_owned()),
            Just("1.5".to_owned()),
            Just("1e3".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("{}".to_owned()),
            Just("[1]".to_owned()),
            "\\PC{0,12}".prop_map(|text| serde_json::to_string(&text).unwrap()),
            Just(r#""a\u0001b\u00e9\ud83d\ude00\n""#.to_owned()),
            Just(r#""\ud800""#.to_owned()),
        ];
        let key = prop_oneof![
            Just("code"),
            Just("version"),
            Just("opaque"),
            Just("flag"),
            Just("language"),
            Just("remark"),
            Just("serializeTypeCurrentRPC"),
            Just("other"),
        ];
        let fields = proptest::collection::vec(("[a-c]{1,2}", scalar.clone()), 0..5).prop_map(|pairs| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", body.join(","))
        });
        let member = prop_oneof![
            (key, scalar).prop_map(|(k, v)| format!("\"{k}\":{v}")),
            fields.prop_map(|f| format!("\"extFields\" : {f}")),
            Just("\"language\":\"JAVA\"".to_owned()),
            Just("\"code\":10".to_owned()),
        ];
        proptest::collection::vec(member, 0..8).prop_map(|members| format!(" {{{}}} ", members.join(",")))
    }

    proptest! {
        #[test]
        fn the_word_check_agrees_with_a_byte_check(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let special = |byte: &u8| *byte < 0x20 || *byte == b'"' || *byte == b'\\';
            let run = scan::plain_run(&bytes);
            prop_assert_eq!(run.length, bytes.iter().position(special).unwrap_or(bytes.len()));
            prop_assert_eq!(run.ascii, bytes[..run.length].is_ascii());
        }

        #[test]
        fn both_readers_agree_on_written_headers(
            code in any::<i32>(), version in any::<i32>(), opaque in any::<i32>(), flag in any::<i32>(),
            remark in proptest::option::of("\\PC{0,20}|[\\x00-\\x7f]{0,20}"),
            fields in proptest::collection::vec(("[a-zA-Z\\x00-\\x7f]{0,6}", "\\PC{0,30}|[\\x00-\\x7f]{0,30}"), 0..12),
            with_fields in any::<bool>(),
        ) {
            let command = RemotingCommand {
                code, version, opaque, flag, remark,
                language: LanguageCode::Java,
                ext_fields: with_fields.then(|| fields.into_iter().collect()),
                ..RemotingCommand::default()
            };
            let mut header = Vec::new();
            encode(&command, &mut header);
            let fast = scan::decode(&header);
            prop_assert!(fast.is_some(), "the scanner reads what the writer writes");
            prop_assert_eq!(fast.as_ref(), Some(&command));
            prop_assert_eq!(decode_leniently(&header).ok(), Some(command));
        }

        #[test]
        fn the_scanner_never_disagrees_with_serde(json in json_header_text()) {
            if let Some(fast) = scan::decode(json.as_bytes()) {
                prop_assert_eq!(decode_leniently(json.as_bytes()).ok(), Some(fast), "{}", json);
            }
        }

        #[test]
        fn the_scanner_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = scan::decode(&bytes);
        }

        #[test]
        fn strings_round_trip_through_serde(text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let mut out = Vec::new();
            push_string(&mut out, &text);
            prop_assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), text);
        }
    }
}
