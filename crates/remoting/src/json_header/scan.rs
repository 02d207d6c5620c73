//! The fast reader of JSON headers: one pass over the bytes, straight into a
//! [`RemotingCommand`], for headers as clients write them (integer members, a flat
//! `extFields` object of strings, numbers and booleans). Anything else — a nested value,
//! a fraction, a member given as a string, a duplicate member, malformed JSON — makes it give
//! up (`None`), and the lenient serde reader in the parent module decides, so both readers
//! always agree.
//!
//! It exists because the serde reader was the largest cost on the broker's send path (18 %
//! of its CPU on workload 2): every request and every response header goes through here.

use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::ext_fields::ExtFieldsBuilder;
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
                    command.remark = scanner.nullable_text()?;
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

/// The plain start of a string's remaining bytes: up to the first `"`, `\` or control
/// character (or the end), and whether it is all ASCII.
pub(super) struct PlainRun {
    pub length: usize,
    pub ascii: bool,
}

/// Scans eight bytes at a time: a lane below 0x20, or equal to `"` or `\`, ends the run (found
/// in the word by its lowest flagged lane, not byte by byte); a lane with its top bit set makes
/// it non-ASCII. The last few bytes (fewer than eight) are scanned one by one.
pub(super) fn plain_run(bytes: &[u8]) -> PlainRun {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_lanes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut high = 0u64;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(lanes);
        let special = (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
            | zero_lanes(word ^ (ONES * u64::from(b'"')))
            | zero_lanes(word ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            // The lowest flagged lane is the first special byte (a borrow can only flag lanes
            // above a true one).
            let lane = special.trailing_zeros() as usize / 8;
            let before = if lane == 0 { 0 } else { u64::MAX >> (64 - 8 * lane) };
            high |= word & HIGHS & before;
            return PlainRun { length: at + lane, ascii: high == 0 };
        }
        high |= word & HIGHS;
        at += 8;
    }
    let mut ascii = high == 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        ascii &= byte < 0x80;
        at += 1;
    }
    PlainRun { length: at, ascii }
}

/// The text of a plain run; ASCII needs no UTF-8 check.
fn run_text(bytes: &[u8], ascii: bool) -> Option<&str> {
    if ascii {
        debug_assert!(bytes.is_ascii());
        // SAFETY: every byte is below 0x80, so the bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
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
        let run = plain_run(&self.bytes[start..]);
        self.at = start + run.length;
        self.expect_raw(b'"')?;
        run_text(&self.bytes[start..start + run.length], run.ascii)
    }

    fn expect_raw(&mut self, byte: u8) -> Option<()> {
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// A string value, unescaped (the remark: rare, so it may allocate).
    fn text(&mut self) -> Option<String> {
        let mut text = String::new();
        self.text_into(&mut text)?;
        Some(text)
    }

    /// A string value, unescaped, appended to `out`: plain runs are copied whole, and only
    /// the escapes between them decoded one by one.
    #[inline]
    fn text_into(&mut self, out: &mut impl TextSink) -> Option<()> {
        self.expect(b'"')?;
        loop {
            let run = plain_run(&self.bytes[self.at..]);
            out.push_str(run_text(&self.bytes[self.at..self.at + run.length], run.ascii)?);
            self.at += run.length;
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return Some(()),
                b'\\' => self.escape(out)?,
                // A raw control character is not JSON.
                _ => return None,
            }
        }
    }

    /// One escape sequence after its backslash, appended to `out`.
    fn escape(&mut self, out: &mut impl TextSink) -> Option<()> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        let simple = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
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
                char::from_u32(scalar)?
            }
            _ => return None,
        };
        out.push(simple);
        Some(())
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut unit = 0u16;
        for &digit in digits {
            let value = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return None,
            };
            unit = (unit << 4) | u16::from(value);
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
            // Language names hold no escapes; one that does goes to the lenient reader.
            b'"' => Some(LanguageCode::from_name(self.string_without_escapes()?)),
            _ => {
                let code: i64 = self.integer()?.parse().ok()?;
                Some(u8::try_from(code).map_or(LanguageCode::Other, LanguageCode::from_code))
            }
        }
    }

    /// A string or null.
    fn nullable_text(&mut self) -> Option<Option<String>> {
        match self.peek()? {
            b'"' => self.text().map(Some),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// A scalar value as the text fastjson would make of it, appended to `out`; `Some(false)`
    /// for null (nothing appended).
    #[inline]
    fn field_value_into(&mut self, out: &mut impl TextSink) -> Option<bool> {
        match self.peek()? {
            b'"' => self.text_into(out).map(|()| true),
            b'n' => self.literal(b"null").map(|()| false),
            b't' => self.literal(b"true").map(|()| out.push_str("true")).map(|()| true),
            b'f' => self.literal(b"false").map(|()| out.push_str("false")).map(|()| true),
            _ => {
                // `integer` admits no leading zero, plus sign or "-0", so an integer in range
                // is written back exactly as it was read.
                let digits = self.integer()?;
                if digits.parse::<i64>().is_err() && digits.parse::<u64>().is_err() {
                    return None;
                }
                out.push_str(digits);
                Some(true)
            }
        }
    }

    /// The `extFields` object, or null, decoded into one buffer sized from what is left of
    /// the header (unescaped text is never longer than its JSON).
    fn fields(&mut self) -> Option<Option<ExtFields>> {
        if self.peek()? == b'n' {
            return self.literal(b"null").map(|()| None);
        }
        self.expect(b'{')?;
        let mut fields =
            ExtFieldsBuilder::with_capacity(self.bytes.len() - self.at, super::TYPICAL_FIELD_COUNT);
        if !self.consume(b'}') {
            loop {
                self.skip_whitespace();
                let key_start = fields.text().len();
                self.text_into(fields.text())?;
                let key_end = fields.text().len();
                self.expect(b':')?;
                if self.field_value_into(fields.text())? {
                    let value_end = fields.text().len();
                    fields.push_ranges(key_start..key_end, key_end..value_end);
                } else {
                    fields.text().truncate(key_start);
                }
                if self.consume(b',') {
                    continue;
                }
                self.expect(b'}')?;
                break;
            }
        }
        Some(Some(fields.finish()))
    }

    /// Skips a member this reader does not keep; only scalars (the lenient reader skips the
    /// rest).
    fn skip_scalar(&mut self) -> Option<()> {
        self.field_value_into(&mut Discard).map(|_| ())
    }
}

/// Where decoded text goes: the header's buffer, or nowhere for a member being skipped (every
/// header has one, `serializeTypeCurrentRPC`, and skipping it into a `String` cost an
/// allocation per command). Either way the text is checked the same, so both readers agree.
trait TextSink {
    fn push_str(&mut self, text: &str);
    fn push(&mut self, character: char);
}

impl TextSink for String {
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }

    fn push(&mut self, character: char) {
        String::push(self, character);
    }
}

/// Checks text and keeps none of it.
struct Discard;

impl TextSink for Discard {
    fn push_str(&mut self, _: &str) {}

    fn push(&mut self, _: char) {}
}
