//! The fast reader of JSON headers: one pass over the bytes, straight into a
//! [`RemotingCommand`], for headers as clients write them (integer members, a flat
//! `extFields` object of strings, numbers and booleans). Anything else — a nested value,
//! a fraction, a member given as a string, a duplicate member, malformed JSON — makes it give
//! up (`None`), and the lenient serde reader in the parent module decides, so both readers
//! always agree.
//!
//! It exists because the serde reader was the largest cost on the broker's send path (18 %
//! of its CPU on workload 2): every request and every response header goes through here.

use compact_str::{CompactString, ToCompactString};

use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::language::LanguageCode;

/// The command in `bytes`, or `None` when the header needs the lenient reader.
pub(super) fn decode(bytes: &[u8]) -> Option<RemotingCommand> {
    let mut scanner = Scanner { bytes, at: 0 };
    let mut command = RemotingCommand {
        language: LanguageCode::Other,
        serialize_type: SerializeType::Json,
        ..RemotingCommand::default()
    };
    let mut seen = Seen::default();
    scanner.expect(b'{')?;
    if !scanner.consume(b'}') {
        loop {
            let key = scanner.string_without_escapes()?;
            scanner.expect(b':')?;
            match key {
                "code" => command.code = seen.first(Seen::CODE).and_then(|()| scanner.int32())?,
                "version" => command.version = seen.first(Seen::VERSION).and_then(|()| scanner.int32())?,
                "opaque" => command.opaque = seen.first(Seen::OPAQUE).and_then(|()| scanner.int32())?,
                "flag" => command.flag = seen.first(Seen::FLAG).and_then(|()| scanner.int32())?,
                "language" => {
                    seen.first(Seen::LANGUAGE)?;
                    command.language = scanner.language()?;
                }
                "remark" => {
                    seen.first(Seen::REMARK)?;
                    command.remark = scanner.nullable_text()?.map(String::from);
                }
                "extFields" => {
                    seen.first(Seen::EXT_FIELDS)?;
                    command.ext_fields = scanner.fields()?;
                }
                _ => scanner.skip_scalar()?,
            }
            if scanner.consume(b',') {
                continue;
            }
            scanner.expect(b'}')?;
            break;
        }
    }
    scanner.skip_whitespace();
    // Without a code the lenient reader gives the error.
    (scanner.at == bytes.len() && seen.has(Seen::CODE)).then_some(command)
}

/// Members read so far: a second one is left to the lenient reader (which refuses it).
#[derive(Default)]
struct Seen(u8);

impl Seen {
    const CODE: u8 = 1;
    const VERSION: u8 = 1 << 1;
    const OPAQUE: u8 = 1 << 2;
    const FLAG: u8 = 1 << 3;
    const LANGUAGE: u8 = 1 << 4;
    const REMARK: u8 = 1 << 5;
    const EXT_FIELDS: u8 = 1 << 6;

    fn first(&mut self, member: u8) -> Option<()> {
        if self.has(member) {
            return None;
        }
        self.0 |= member;
        Some(())
    }

    fn has(&self, member: u8) -> bool {
        self.0 & member != 0
    }
}

/// A cursor over the header; every method returns `None` on anything it does not handle.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn consume(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.consume(byte).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string with no escapes, borrowed (member names).
    fn string_without_escapes(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let length =
            self.bytes[start..].iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        self.at = start + length;
        self.expect_raw(b'"')?;
        std::str::from_utf8(&self.bytes[start..start + length]).ok()
    }

    fn expect_raw(&mut self, byte: u8) -> Option<()> {
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// A string value, unescaped.
    fn text(&mut self) -> Option<CompactString> {
        self.expect(b'"')?;
        let start = self.at;
        let plain =
            self.bytes[start..].iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        if self.bytes[start + plain] == b'"' {
            self.at = start + plain + 1;
            return std::str::from_utf8(&self.bytes[start..start + plain]).ok().map(CompactString::new);
        }
        // Escapes: decode into a buffer.
        let mut text = Vec::with_capacity(plain + 16);
        text.extend_from_slice(&self.bytes[start..start + plain]);
        self.at = start + plain;
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut text)?,
                0x00..=0x1f => return None,
                _ => text.push(byte),
            }
        }
        String::from_utf8(text).ok().map(CompactString::from)
    }

    /// One escape sequence after its backslash, appended to `text` as UTF-8.
    fn escape(&mut self, text: &mut Vec<u8>) -> Option<()> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                let scalar = match unit {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => u32::from(unit),
                };
                let character = char::from_u32(scalar)?;
                text.extend_from_slice(character.encode_utf8(&mut [0; 4]).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        text.push(simple);
        Some(())
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let digits = std::str::from_utf8(digits).ok()?;
        let unit = u16::from_str_radix(digits, 16).ok()?;
        if !digits.bytes().all(|digit| digit.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        Some(unit)
    }

    /// A JSON integer as written: optional minus, digits without a leading zero.
    fn integer(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits_start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = self.at - digits_start;
        if digits == 0 || (digits > 1 && self.bytes[digits_start] == b'0') {
            return None;
        }
        // serde reads "-0" as a float; leave it to the lenient reader.
        if digits_start > start && self.bytes[digits_start] == b'0' {
            return None;
        }
        // A fraction or an exponent is for the lenient reader.
        if let Some(b'.' | b'e' | b'E') = self.bytes.get(self.at) {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()
    }

    fn int32(&mut self) -> Option<i32> {
        self.integer()?.parse().ok()
    }

    fn language(&mut self) -> Option<LanguageCode> {
        match self.peek()? {
            b'"' => {
                let name = self.text()?;
                Some(LanguageCode::from_name(&name))
            }
            _ => {
                let code: i64 = self.integer()?.parse().ok()?;
                Some(u8::try_from(code).map_or(LanguageCode::Other, LanguageCode::from_code))
            }
        }
    }

    /// A string or null.
    fn nullable_text(&mut self) -> Option<Option<CompactString>> {
        match self.peek()? {
            b'"' => self.text().map(Some),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// A scalar value as the text fastjson would make of it; `Some(None)` for null.
    fn field_value(&mut self) -> Option<Option<CompactString>> {
        match self.peek()? {
            b'"' => self.text().map(Some),
            b'n' => self.literal(b"null").map(|()| None),
            b't' => self.literal(b"true").map(|()| Some(CompactString::const_new("true"))),
            b'f' => self.literal(b"false").map(|()| Some(CompactString::const_new("false"))),
            _ => {
                let digits = self.integer()?;
                match digits.parse::<i64>() {
                    Ok(value) => Some(Some(value.to_compact_string())),
                    Err(_) => digits.parse::<u64>().ok().map(|value| Some(value.to_compact_string())),
                }
            }
        }
    }

    /// The `extFields` object, or null.
    fn fields(&mut self) -> Option<Option<ExtFields>> {
        if self.peek()? == b'n' {
            return self.literal(b"null").map(|()| None);
        }
        self.expect(b'{')?;
        let mut pairs = Vec::with_capacity(16);
        if !self.consume(b'}') {
            loop {
                self.skip_whitespace();
                let key = self.text()?;
                self.expect(b':')?;
                if let Some(value) = self.field_value()? {
                    pairs.push((key, value));
                }
                if self.consume(b',') {
                    continue;
                }
                self.expect(b'}')?;
                break;
            }
        }
        Some(Some(ExtFields::from_pairs(pairs)))
    }

    /// Skips a member this reader does not keep; only scalars (the lenient reader skips the
    /// rest).
    fn skip_scalar(&mut self) -> Option<()> {
        self.field_value().map(|_| ())
    }
}
