//! The JSON header (serialization type 0): fastjson's rendering of a `RemotingCommand`.
//!
//! Written by hand, keys in Java's alphabetical order, so that a frame is byte-identical to
//! one a Java peer writes; read leniently, because clients in five languages write it.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::command::{RemotingCommand, SerializeType};
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
    ext_fields: Option<HashMap<String, Value>>,
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
    let ext_fields = wire.ext_fields.map(|fields| {
        fields
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::Null => None,
                Value::String(text) => Some((key, text)),
                other => Some((key, other.to_string())),
            })
            .collect()
    });
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
