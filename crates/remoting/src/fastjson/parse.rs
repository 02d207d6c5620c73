//! A lenient JSON reader producing a `serde_json::Value`.
//!
//! It accepts what fastjson writes on top of JSON: map keys that are bare numbers, bare
//! objects or arrays, `true`/`false`/`null` or bare identifiers; single-quoted strings; `\x`,
//! `\v` and `\'` escapes; trailing commas; number suffixes such as `1L`. A key that is not a
//! string becomes the compact JSON text of the key (`{0:"a"}` has the key `"0"`), which the
//! deserializer parses again when the target key type wants a number or a struct.
//!
//! Recursion is bounded by [`MAX_DEPTH`]; nothing here indexes out of bounds or panics. An
//! object or array key may not contain another object or array key: turning nested keys into
//! text would escape the inner text once per level and grow exponentially, and no peer writes
//! such keys (the only object keys on the wire are `MessageQueue`s).

use serde_json::{Map, Number, Value};

use super::BodyError;

/// Deepest nesting of objects and arrays accepted, counted across re-parsed keys too.
pub(crate) const MAX_DEPTH: usize = 128;

/// Parses a whole body.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, BodyError> {
    parse_nested(bytes, 0)
}

/// Parses `bytes` as if it were nested `depth` levels deep already (used when a map key holding
/// an object's text is parsed again).
pub(crate) fn parse_nested(bytes: &[u8], depth: usize) -> Result<Value, BodyError> {
    // Java decodes bodies as UTF-8 with replacement characters; do the same.
    let text = String::from_utf8_lossy(bytes);
    let mut parser = Parser { text: &text, bytes: text.as_bytes(), position: 0, inside_compound_key: false };
    if parser.text.starts_with('\u{feff}') {
        parser.position = '\u{feff}'.len_utf8();
    }
    parser.skip_whitespace();
    if parser.at_end() {
        return Err(BodyError::new("the body is empty"));
    }
    let value = parser.value(depth)?;
    parser.skip_whitespace();
    if !parser.at_end() {
        return Err(parser.error("unexpected text after the end of the JSON value"));
    }
    Ok(value)
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    position: usize,
    /// Set while an object or array used as a key is being read.
    inside_compound_key: bool,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn error(&self, what: &str) -> BodyError {
        match self.text.get(self.position..).and_then(|rest| rest.chars().next()) {
            Some(found) => BodyError::new(format!(
                "invalid JSON body at byte {}: {what} (found {found:?})",
                self.position
            )),
            None => {
                BodyError::new(format!("invalid JSON body: {what} (the body ends at byte {})", self.position))
            }
        }
    }

    fn skip_whitespace(&mut self) {
        // fastjson also treats form feed and backspace as white space.
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x08) = self.peek() {
            self.position += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), BodyError> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// Parses one value; `depth` is the nesting of the container holding it.
    fn value(&mut self, depth: usize) -> Result<Value, BodyError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(quote @ (b'"' | b'\'')) => self.string(quote).map(Value::String),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number().map(|(_, number)| Value::Number(number)),
            Some(byte) if is_identifier_start(byte) => match self.identifier() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" | "undefined" => Ok(Value::Null),
                _ => Err(self.error("expected a value")),
            },
            _ => Err(self.error("expected a value")),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), BodyError> {
        if depth > MAX_DEPTH {
            Err(BodyError::new(format!("the body nests objects and arrays deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, BodyError> {
        let mut members = Map::new();
        self.delimited(depth, b'}', "expected ',' or '}' in an object", |parser| {
            let key = parser.key(depth)?;
            parser.skip_whitespace();
            parser.expect(b':', "expected ':' after an object key")?;
            parser.skip_whitespace();
            let value = parser.value(depth)?;
            members.insert(key, value);
            Ok(())
        })?;
        Ok(Value::Object(members))
    }

    /// Reads the comma-separated items of an object or array whose opening bracket is next, up
    /// to and including `close`; `item` reads one item, which starts after any white space.
    fn delimited(
        &mut self,
        depth: usize,
        close: u8,
        no_separator: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), BodyError>,
    ) -> Result<(), BodyError> {
        self.enter(depth)?;
        self.position += 1; // the opening bracket
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.position += 1;
                return Ok(());
            }
            item(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(byte) if byte == close => {}
                _ => return Err(self.error(no_separator)),
            }
        }
    }

    /// Reads an object key of any form and returns it as text.
    fn key(&mut self, depth: usize) -> Result<String, BodyError> {
        match self.peek() {
            Some(quote @ (b'"' | b'\'')) => self.string(quote),
            Some(b'{' | b'[') => {
                if self.inside_compound_key {
                    return Err(self.error("an object key may not itself contain object keys"));
                }
                self.inside_compound_key = true;
                let key = self.value(depth);
                self.inside_compound_key = false;
                serde_json::to_string(&key?).map_err(|error| BodyError::new(error.to_string()))
            }
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number().map(|(text, _)| text.to_owned()),
            Some(byte) if is_identifier_start(byte) => Ok(self.identifier().to_owned()),
            _ => Err(self.error("expected an object key")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, BodyError> {
        let mut items = Vec::new();
        self.delimited(depth, b']', "expected ',' or ']' in an array", |parser| {
            items.push(parser.value(depth)?);
            Ok(())
        })?;
        Ok(Value::Array(items))
    }

    fn identifier(&mut self) -> &str {
        let start = self.position;
        while self.peek().is_some_and(|byte| is_identifier_start(byte) || byte.is_ascii_digit()) {
            self.position += 1;
        }
        // Identifier bytes are ASCII, so both ends are character boundaries.
        self.text.get(start..self.position).unwrap_or_default()
    }

    /// Reads a number; returns its source text (without a type suffix) and its value.
    fn number(&mut self) -> Result<(&str, Number), BodyError> {
        let start = self.position;
        if let Some(b'-' | b'+') = self.peek() {
            self.position += 1;
        }
        let mut digits = 0usize;
        let mut integral = true;
        while let Some(byte) = self.peek() {
            match byte {
                b'0'..=b'9' => digits += 1,
                b'.' => integral = false,
                b'e' | b'E' => {
                    integral = false;
                    if let Some(b'-' | b'+') = self.bytes.get(self.position + 1) {
                        self.position += 1;
                    }
                }
                _ => break,
            }
            self.position += 1;
        }
        let end = self.position;
        // Type suffixes fastjson writes with WriteClassName: 1L, 1S, 1B, 1.0F, 1.0D.
        if let Some(b'L' | b'S' | b'B' | b'F' | b'D') = self.peek() {
            self.position += 1;
        }
        let text = self.text.get(start..end).unwrap_or_default();
        if digits == 0 {
            self.position = start;
            return Err(self.error("expected a number"));
        }
        let number = if integral {
            text.parse::<i64>()
                .map(Number::from)
                .or_else(|_| text.trim_start_matches('+').parse::<u64>().map(Number::from))
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
        } else {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        };
        match number {
            Some(number) => Ok((text, number)),
            None => {
                self.position = start;
                Err(self.error("expected a finite number"))
            }
        }
    }

    /// Reads a string delimited by `quote` and resolves its escapes.
    fn string(&mut self, quote: u8) -> Result<String, BodyError> {
        let opening = self.position;
        self.position += 1;
        let mut text = String::new();
        let mut run_start = self.position;
        loop {
            let Some(byte) = self.peek() else {
                self.position = opening;
                return Err(self.error("unterminated string"));
            };
            if byte != quote && byte != b'\\' {
                self.position += 1;
                continue;
            }
            // Quote and backslash are ASCII: the run ends on a character boundary.
            text.push_str(self.text.get(run_start..self.position).unwrap_or_default());
            self.position += 1;
            if byte == quote {
                return Ok(text);
            }
            self.escape(&mut text)?;
            run_start = self.position;
        }
    }

    /// Resolves one escape; the backslash has been consumed.
    fn escape(&mut self, text: &mut String) -> Result<(), BodyError> {
        let Some(code) = self.peek() else {
            return Err(self.error("unterminated escape sequence"));
        };
        self.position += 1;
        let resolved = match code {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'v' => '\u{b}',
            b'0'..=b'7' => char::from(code - b'0'),
            b'x' => char::from(self.hex_digits(2)? as u8),
            b'u' => self.unicode_escape()?,
            _ => {
                // `\"`, `\\`, `\/`, `\'` and anything else: the character itself. Step back so
                // that a multi-byte character is copied whole by the next run.
                if code.is_ascii() {
                    char::from(code)
                } else {
                    self.position -= 1;
                    return Ok(());
                }
            }
        };
        text.push(resolved);
        Ok(())
    }

    fn hex_digits(&mut self, count: usize) -> Result<u32, BodyError> {
        let mut value = 0u32;
        for _ in 0..count {
            let digit = self.peek().and_then(|byte| char::from(byte).to_digit(16));
            match digit {
                Some(digit) => value = value * 16 + digit,
                None => return Err(self.error("expected a hexadecimal digit in an escape")),
            }
            self.position += 1;
        }
        Ok(value)
    }

    /// `\uXXXX`, joining a surrogate pair written as two escapes; a lone surrogate becomes
    /// U+FFFD, as Java's UTF-8 encoder would write it.
    fn unicode_escape(&mut self) -> Result<char, BodyError> {
        let unit = self.hex_digits(4)?;
        if (0xD800..0xDC00).contains(&unit)
            && self.bytes.get(self.position..self.position + 2) == Some(b"\\u")
        {
            let resume = self.position;
            self.position += 2;
            let low = self.hex_digits(4)?;
            if (0xDC00..0xE000).contains(&low) {
                let combined = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return Ok(char::from_u32(combined).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.position = resume;
        }
        Ok(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER))
    }
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b'$'
}
