//! The JSON header (serialization type 0): fastjson's rendering of a `RemotingCommand`.
//!
//! Written by hand, keys in Java's alphabetical order, so that a frame is byte-identical to
//! one a Java peer writes; read leniently, because clients in five languages write it.

use serde::Deserialize;
use serde_json::Value;

use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::frame::FrameError;
use crate::language::LanguageCode;

/// Appends the JSON header of `command` to `out`.
pub fn encode(command: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"code\":");
    push_number(out, i64::from(command.code));
    if let Some(fields) = &command.ext_fields {
        out.extend_from_slice(b",\"extFields\":{");
        // Sorted keys: deterministic frames, and the order a Java TreeMap would give.
        let mut entries: Vec<_> = fields.iter().collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
        for (index, (key, value)) in entries.into_iter().enumerate() {
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
    out.extend_from_slice(number.to_string().as_bytes());
}

/// Writes a JSON string; control characters become `\uXXXX` as fastjson writes them.
fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape: Option<&[u8]> = match byte {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..index]);
        match escape {
            Some(sequence) => out.extend_from_slice(sequence),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        start = index + 1;
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// The header as peers write it; every member optional and lenient.
#[derive(Deserialize)]
struct WireHeader {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    language: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    opaque: Option<Value>,
    #[serde(default)]
    flag: Option<Value>,
    #[serde(default)]
    remark: Option<Value>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<LenientFields>,
}

/// `extFields` read straight into the map: values given as strings are taken as they are,
/// numbers and booleans as their text (fastjson does), nulls dropped. No intermediate
/// `serde_json::Value` per field: every request carries a dozen of them.
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
                let mut fields = ExtFields::default();
                while let Some((key, value)) = map.next_entry::<String, FieldText>()? {
                    if let Some(text) = value.0 {
                        fields.insert(key, text);
                    }
                }
                Ok(LenientFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// One `extFields` value as text; `None` for null.
struct FieldText(Option<String>);

impl<'de> Deserialize<'de> for FieldText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = FieldText;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a header field value")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<FieldText, E> {
                Ok(FieldText(Some(value)))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_string())))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_string())))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<FieldText, E> {
                Ok(FieldText(Some(Value::from(value).to_string())))
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<FieldText, E> {
                Ok(FieldText(Some(value.to_string())))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<FieldText, E> {
                Ok(FieldText(None))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<FieldText, E> {
                Ok(FieldText(None))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<FieldText, A::Error> {
                let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(FieldText(Some(value.to_string())))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FieldText, A::Error> {
                let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldText(Some(value.to_string())))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Decodes a JSON header into a command without a body.
pub fn decode(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    let wire: WireHeader = serde_json::from_slice(bytes)
        .map_err(|error| FrameError::BadHeader(format!("JSON header: {error}")))?;
    let code = int_member("code", wire.code.as_ref())?
        .ok_or_else(|| FrameError::BadHeader("JSON header has no code".into()))?;
    let language = match wire.language {
        Some(Value::String(name)) => LanguageCode::from_name(&name),
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|code| u8::try_from(code).ok())
            .map_or(LanguageCode::Other, LanguageCode::from_code),
        _ => LanguageCode::Other,
    };
    let remark = match wire.remark {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    };
    let ext_fields = wire.ext_fields.map(|fields| fields.0);
    Ok(RemotingCommand {
        code,
        language,
        version: int_member("version", wire.version.as_ref())?.unwrap_or(0),
        opaque: int_member("opaque", wire.opaque.as_ref())?.unwrap_or(0),
        flag: int_member("flag", wire.flag.as_ref())?.unwrap_or(0),
        remark,
        ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Reads an `int` member given as a number or as a decimal string (fastjson accepts both).
fn int_member(name: &str, value: Option<&Value>) -> Result<Option<i32>, FrameError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_i64().and_then(|wide| i32::try_from(wide).ok()),
        Some(Value::String(text)) => text.trim().parse::<i32>().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| FrameError::BadHeader(format!("JSON header member {name} is not a 32-bit integer")))
}
