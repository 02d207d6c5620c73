//! Splitting selector text into tokens. Every branch consumes at least one byte, so lexing is
//! linear in the text.

use std::fmt;

use super::ast::Literal;
use super::{error, SqlError};

/// A token of selector text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Keyword(Keyword),
    Identifier(String),
    Str(String),
    Number(Literal),
    Symbol(&'static str),
}

/// Reserved words (matched without regard to case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
}

const KEYWORDS: [(&str, Keyword); 12] = [
    ("NOT", Keyword::Not),
    ("AND", Keyword::And),
    ("OR", Keyword::Or),
    ("BETWEEN", Keyword::Between),
    ("IN", Keyword::In),
    ("TRUE", Keyword::True),
    ("FALSE", Keyword::False),
    ("NULL", Keyword::Null),
    ("IS", Keyword::Is),
    ("CONTAINS", Keyword::Contains),
    ("STARTSWITH", Keyword::StartsWith),
    ("ENDSWITH", Keyword::EndsWith),
];

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keyword(keyword) => {
                let name =
                    KEYWORDS.iter().find(|(_, candidate)| candidate == keyword).map_or("?", |(name, _)| name);
                write!(f, "\"{name}\"")
            }
            Self::Identifier(name) => write!(f, "identifier \"{name}\""),
            Self::Str(text) => write!(f, "string '{text}'"),
            Self::Number(value) => write!(f, "number {value}"),
            Self::Symbol(symbol) => write!(f, "\"{symbol}\""),
        }
    }
}

/// Operators, longest first so `>=` wins over `>`.
const SYMBOLS: [&str; 11] = ["<>", ">=", "<=", "=", ">", "<", "(", ")", ",", "+", "-"];

/// The tokens of `text`, comments and blanks left out.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, SqlError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let rest = &text[at..];
        if matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0c) {
            at += 1;
        } else if rest.starts_with("--") {
            at += rest.find(['\n', '\r']).unwrap_or(rest.len());
        } else if let Some(comment) = rest.strip_prefix("/*") {
            let Some(end) = comment.find("*/") else { return error("unterminated comment") };
            at += end + 4;
        } else if byte == b'\'' {
            let (literal, length) = lex_string(rest)?;
            tokens.push(Token::Str(literal));
            at += length;
        } else if byte.is_ascii_digit() || (byte == b'.' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit))
        {
            let (number, length) = lex_number(rest)?;
            tokens.push(Token::Number(number));
            at += length;
        } else if byte.is_ascii_alphabetic() || byte == b'_' || byte == b'$' {
            let length = rest
                .bytes()
                .position(|byte| !(byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$'))
                .unwrap_or(rest.len());
            let word = &rest[..length];
            let keyword = KEYWORDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(word));
            tokens.push(match keyword {
                Some((_, keyword)) => Token::Keyword(*keyword),
                None => Token::Identifier(word.to_owned()),
            });
            at += length;
        } else if let Some(symbol) = SYMBOLS.iter().find(|symbol| rest.starts_with(**symbol)) {
            tokens.push(Token::Symbol(symbol));
            at += symbol.len();
        } else {
            let character = rest.chars().next().unwrap_or('?');
            return error(format!("unexpected character '{character}' at {at}"));
        }
    }
    Ok(tokens)
}

/// A quoted string starting at `text[0]`; `''` stands for one quote. Returns the string and
/// the bytes consumed.
fn lex_string(text: &str) -> Result<(String, usize), SqlError> {
    let mut literal = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((index, character)) = chars.next() {
        if character == '\'' {
            if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                literal.push('\'');
            } else {
                return Ok((literal, index + 1));
            }
        } else {
            literal.push(character);
        }
    }
    error("unterminated string literal")
}

/// A number starting at `text[0]`: `0`, or digits not starting with 0 with an optional `L`
/// (int when it fits, else long); or a decimal with `.` and/or an exponent (double).
fn lex_number(text: &str) -> Result<(Literal, usize), SqlError> {
    let bytes = text.as_bytes();
    let digits = |from: usize| bytes[from..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let integer = digits(0);
    let mut end = integer;
    let mut decimal = false;
    if bytes.get(end) == Some(&b'.') {
        decimal = true;
        end += 1;
        end += digits(end);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let exponent_digits = digits(exponent);
        if exponent_digits == 0 {
            return error(format!("malformed number {}", &text[..exponent]));
        }
        decimal = true;
        end = exponent + exponent_digits;
    }
    if decimal {
        let literal = &text[..end];
        let value: f64 = literal.parse().map_err(|_| SqlError(format!("malformed number {literal}")))?;
        if value.is_infinite() {
            return error(format!("{literal} is greater than {}", f64::MAX));
        }
        if value == 0.0 {
            return error(format!("{literal} is less than {:e}", f64::from_bits(1)));
        }
        return Ok((Literal::Double(value), end));
    }
    let literal = &text[..integer];
    if literal.len() > 1 && literal.starts_with('0') {
        return error(format!("malformed number {literal}: leading zero"));
    }
    let suffix = usize::from(matches!(bytes.get(end), Some(b'l' | b'L')) && literal != "0");
    let value: i64 = literal.parse().map_err(|_| SqlError(format!("number {literal} out of range")))?;
    let value = i32::try_from(value).map_or(Literal::Long(value), Literal::Int);
    Ok((value, end + suffix))
}
