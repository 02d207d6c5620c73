//! The binary header (serialization type 1, "ROCKETMQ"): fixed fields, then remark and
//! extFields as length-prefixed UTF-8 (spec §1.4).

use crate::command::{RemotingCommand, SerializeType};
use crate::frame::FrameError;
use crate::language::LanguageCode;

/// Bytes of the fixed part: code, language, version, opaque, flag, remark length.
const FIXED_SIZE_BYTES: usize = 2 + 1 + 2 + 4 + 4 + 4;

/// Appends the binary header of `command` to `out`. Codes and versions beyond `i16`
/// cannot be represented and are truncated exactly as Java does; callers answer such
/// requests in JSON instead (see [`crate::frame::encode`]).
pub fn encode(command: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(&(command.code as i16).to_be_bytes());
    out.push(command.language.code());
    out.extend_from_slice(&(command.version as i16).to_be_bytes());
    out.extend_from_slice(&command.opaque.to_be_bytes());
    out.extend_from_slice(&command.flag.to_be_bytes());
    match command.remark.as_deref() {
        Some(remark) if !remark.is_empty() => {
            out.extend_from_slice(&len_i32(remark.len()).to_be_bytes());
            out.extend_from_slice(remark.as_bytes());
        }
        _ => out.extend_from_slice(&0i32.to_be_bytes()),
    }
    let length_at = out.len();
    out.extend_from_slice(&0i32.to_be_bytes());
    if let Some(fields) = &command.ext_fields {
        for (key, value) in fields.iter().filter(|(key, _)| !key.is_empty()) {
            // A key longer than i16 cannot be written; no RocketMQ header has one.
            let Ok(key_len) = i16::try_from(key.len()) else { continue };
            out.extend_from_slice(&key_len.to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&len_i32(value.len()).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }
    let ext_len = len_i32(out.len() - length_at - 4);
    out[length_at..length_at + 4].copy_from_slice(&ext_len.to_be_bytes());
}

/// Lengths inside a frame are bounded by the frame limit (16 MiB), far below `i32::MAX`.
fn len_i32(length: usize) -> i32 {
    i32::try_from(length).unwrap_or(i32::MAX)
}

/// A cursor that refuses to read past the header instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(count).filter(|end| *end <= self.bytes.len()).ok_or_else(|| {
            FrameError::BadHeader(format!("binary header: {what} of {count} bytes runs past the header"))
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FrameError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn length(&mut self, raw: i64, what: &str) -> Result<usize, FrameError> {
        usize::try_from(raw).map_err(|_| FrameError::BadHeader(format!("binary header: negative {what}")))
    }

    fn text(&mut self, count: usize, what: &str) -> Result<&'a str, FrameError> {
        let bytes = self.take(count, what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| FrameError::BadHeader(format!("binary header: {what} is not UTF-8")))
    }
}

/// Decodes a binary header into a command without a body.
pub fn decode(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    if bytes.len() < FIXED_SIZE_BYTES {
        return Err(FrameError::BadHeader(format!(
            "binary header of {} bytes is shorter than its fixed part",
            bytes.len()
        )));
    }
    let mut reader = Reader { bytes, at: 0 };
    let code = i32::from(i16::from_be_bytes(reader.array("code")?));
    let [language] = reader.array::<1>("language")?;
    let version = i32::from(i16::from_be_bytes(reader.array("version")?));
    let opaque = i32::from_be_bytes(reader.array("opaque")?);
    let flag = i32::from_be_bytes(reader.array("flag")?);
    let remark_len = i32::from_be_bytes(reader.array("remark length")?);
    let remark_len = reader.length(i64::from(remark_len), "remark length")?;
    let remark = if remark_len == 0 { None } else { Some(reader.text(remark_len, "remark")?.to_owned()) };

    let ext_len = i32::from_be_bytes(reader.array("extFields length")?);
    let ext_len = reader.length(i64::from(ext_len), "extFields length")?;
    let ext_fields = if ext_len == 0 {
        None
    } else {
        let mut map = Reader { bytes: reader.take(ext_len, "extFields")?, at: 0 };
        let mut fields = crate::ext_fields::ExtFieldsBuilder::with_capacity(ext_len, 16);
        while map.at < map.bytes.len() {
            let key_len = i16::from_be_bytes(map.array("extFields key length")?);
            let key_len = map.length(i64::from(key_len), "extFields key length")?;
            let key = map.text(key_len, "extFields key")?;
            let value_len = i32::from_be_bytes(map.array("extFields value length")?);
            let value_len = map.length(i64::from(value_len), "extFields value length")?;
            let value = map.text(value_len, "extFields value")?;
            // Zero-length keys or values decode as null in Java; duplicates: last wins.
            if !key.is_empty() && !value.is_empty() {
                fields.push(key, value);
            }
        }
        // Entries that all decoded as null leave no custom header at all.
        Some(fields.finish()).filter(|fields| !fields.is_empty())
    };

    Ok(RemotingCommand {
        code,
        language: LanguageCode::from_code(language),
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}
