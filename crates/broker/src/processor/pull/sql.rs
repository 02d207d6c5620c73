//! SQL92 message selectors (`MessageSelector.bySql`, behaviour spec §7.2): the subset RocketMQ
//! accepts, compiled once per pull and evaluated against each candidate message's properties
//! when `enablePropertyFilter` is on.
//!
//! Evaluation is three-valued (true, false, null for "unknown", e.g. a missing property); a
//! message matches only when the whole selector is true. Values compare after RocketMQ's
//! conversions (a property string is parsed as the number it is compared with, numbers widen),
//! and a conversion that fails makes the message not match.

use std::cmp::Ordering;
use std::fmt;

/// Deepest expression tree accepted: bounds the recursion of evaluation against selectors
/// crafted to exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// Most nested parentheses and prefix operators accepted: bounds the recursion of parsing.
pub const MAX_NESTING: usize = 32;

/// Why a selector does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError(String);

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

fn error<T>(message: impl Into<String>) -> Result<T, SqlError> {
    Err(SqlError(message.into()))
}

/// A value during evaluation (Java's boxed types; properties are always strings).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Bool(value) => write!(f, "{}", if *value { "TRUE" } else { "FALSE" }),
            Self::Int(value) => write!(f, "{value}"),
            Self::Long(value) => write!(f, "{value}"),
            Self::Double(value) => write!(f, "{value}"),
            Self::Str(value) => write!(f, "'{}'", value.replace('\'', "''")),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// String tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextTest {
    Contains,
    StartsWith,
    EndsWith,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Constant(Value),
    Property(String),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    /// A bare property used as a condition.
    BoolCast(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Comparison, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>),
    In {
        property: String,
        values: Vec<String>,
        negated: bool,
    },
    Text {
        test: TextTest,
        negated: bool,
        operand: Box<Expr>,
        search: String,
    },
}

impl Expr {
    /// Whether the expression yields a condition (Java `BooleanExpression`).
    fn is_boolean(&self) -> bool {
        match self {
            Self::Constant(value) => matches!(value, Value::Null | Value::Bool(_)),
            Self::Property(_) | Self::Negate(_) => false,
            _ => true,
        }
    }

    fn depth(&self) -> usize {
        match self {
            Self::Constant(_) | Self::Property(_) | Self::In { .. } => 1,
            Self::Negate(inner) | Self::Not(inner) | Self::BoolCast(inner) | Self::IsNull(inner) => {
                1 + inner.depth()
            }
            Self::Text { operand, .. } => 1 + operand.depth(),
            Self::And(left, right) | Self::Or(left, right) | Self::Compare(_, left, right) => {
                1 + left.depth().max(right.depth())
            }
        }
    }
}

/// A compiled SQL92 selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// Compiles `text`; the error says what is wrong, for SUBSCRIPTION_PARSE_FAILED remarks.
    pub fn compile(text: &str) -> Result<Self, SqlError> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, position: 0, nesting: 0 };
        let expr = parser.or()?;
        if let Some(token) = parser.peek() {
            return error(format!("unexpected {token} after the end of the expression"));
        }
        let expr = as_condition(expr)?;
        if expr.depth() > MAX_DEPTH {
            return error(format!("expression nested deeper than {MAX_DEPTH}"));
        }
        Ok(Self { expr })
    }

    /// Whether a message with these properties matches (`property` looks a name up).
    pub fn matches<'a>(&self, property: &impl Fn(&str) -> Option<&'a str>) -> bool {
        matches!(evaluate(&self.expr, property), Ok(Value::Bool(true)))
    }
}

// ----- lexing -----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Keyword(Keyword),
    Identifier(String),
    Str(String),
    Number(Value),
    Symbol(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
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

fn lex(text: &str) -> Result<Vec<Token>, SqlError> {
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
fn lex_number(text: &str) -> Result<(Value, usize), SqlError> {
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
        return Ok((Value::Double(value), end));
    }
    let literal = &text[..integer];
    if literal.len() > 1 && literal.starts_with('0') {
        return error(format!("malformed number {literal}: leading zero"));
    }
    let suffix = usize::from(matches!(bytes.get(end), Some(b'l' | b'L')) && literal != "0");
    let value: i64 = literal.parse().map_err(|_| SqlError(format!("number {literal} out of range")))?;
    let value = i32::try_from(value).map_or(Value::Long(value), Value::Int);
    Ok((value, end + suffix))
}

// ----- parsing -----

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    /// Current recursion depth of nested unary operators and parentheses.
    nesting: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.position + ahead)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += usize::from(token.is_some());
        token
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        if self.peek() == Some(&Token::Keyword(keyword)) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(candidate)) if *candidate == symbol) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), SqlError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            error(format!("expected \"{symbol}\", found {}", self.describe_next()))
        }
    }

    fn describe_next(&self) -> String {
        self.peek().map_or_else(|| "the end of the expression".to_owned(), ToString::to_string)
    }

    fn string(&mut self) -> Result<String, SqlError> {
        match self.next() {
            Some(Token::Str(text)) => Ok(text),
            Some(other) => error(format!("expected a string literal, found {other}")),
            None => error("expected a string literal, found the end of the expression"),
        }
    }

    fn or(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.and()?;
        while self.eat_keyword(Keyword::Or) {
            let right = self.and()?;
            left = Expr::Or(Box::new(as_condition(left)?), Box::new(as_condition(right)?));
            check_depth(&left)?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.equality()?;
        while self.eat_keyword(Keyword::And) {
            let right = self.equality()?;
            left = Expr::And(Box::new(as_condition(left)?), Box::new(as_condition(right)?));
            check_depth(&left)?;
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.comparison()?;
        loop {
            if self.eat_symbol("=") {
                let right = self.comparison()?;
                left = equal(left, right)?;
            } else if self.eat_symbol("<>") {
                let right = self.comparison()?;
                left = Expr::Not(Box::new(equal(left, right)?));
            } else if self.peek() == Some(&Token::Keyword(Keyword::Is)) {
                self.position += 1;
                let negated = self.eat_keyword(Keyword::Not);
                if !self.eat_keyword(Keyword::Null) {
                    return error(format!("expected \"NULL\", found {}", self.describe_next()));
                }
                let is_null = Expr::IsNull(Box::new(left));
                left = if negated { Expr::Not(Box::new(is_null)) } else { is_null };
            } else {
                return Ok(left);
            }
            check_depth(&left)?;
        }
    }

    fn comparison(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.unary()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Symbol(">")) => Some(Comparison::Greater),
                Some(Token::Symbol(">=")) => Some(Comparison::GreaterOrEqual),
                Some(Token::Symbol("<")) => Some(Comparison::Less),
                Some(Token::Symbol("<=")) => Some(Comparison::LessOrEqual),
                _ => None,
            };
            if let Some(operator) = operator {
                self.position += 1;
                let right = self.unary()?;
                left = ordered(operator, left, right)?;
                check_depth(&left)?;
                continue;
            }
            let negated = self.peek() == Some(&Token::Keyword(Keyword::Not))
                && matches!(
                    self.peek_at(1),
                    Some(Token::Keyword(
                        Keyword::Between
                            | Keyword::In
                            | Keyword::Contains
                            | Keyword::StartsWith
                            | Keyword::EndsWith
                    ))
                );
            let keyword = match self.peek_at(usize::from(negated)) {
                Some(Token::Keyword(keyword)) => *keyword,
                _ => return Ok(left),
            };
            let test = match keyword {
                Keyword::Contains => Some(TextTest::Contains),
                Keyword::StartsWith => Some(TextTest::StartsWith),
                Keyword::EndsWith => Some(TextTest::EndsWith),
                Keyword::Between | Keyword::In => None,
                _ => return Ok(left),
            };
            self.position += 1 + usize::from(negated);
            left = match (keyword, test) {
                (_, Some(test)) => {
                    let search = self.string()?;
                    Expr::Text { test, negated, operand: Box::new(left), search }
                }
                (Keyword::Between, _) => {
                    let low = self.unary()?;
                    if !self.eat_keyword(Keyword::And) {
                        return error(format!("expected \"AND\" in BETWEEN, found {}", self.describe_next()));
                    }
                    let high = self.unary()?;
                    between(left, low, high, negated)?
                }
                _ => {
                    self.expect_symbol("(")?;
                    let mut values = vec![self.string()?];
                    while self.eat_symbol(",") {
                        values.push(self.string()?);
                    }
                    self.expect_symbol(")")?;
                    let Expr::Property(property) = left else {
                        return error("Expected a property for In expression");
                    };
                    Expr::In { property, values, negated }
                }
            };
            check_depth(&left)?;
        }
    }

    fn unary(&mut self) -> Result<Expr, SqlError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return error(format!("expression nested deeper than {MAX_NESTING}"));
        }
        let expr = if self.eat_symbol("+") {
            self.unary()
        } else if self.eat_symbol("-") {
            self.unary().map(|operand| Expr::Negate(Box::new(operand)))
        } else if self.eat_keyword(Keyword::Not) {
            self.unary().and_then(|operand| Ok(Expr::Not(Box::new(as_condition(operand)?))))
        } else {
            self.primary()
        };
        self.nesting -= 1;
        expr
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        match self.next() {
            Some(Token::Str(text)) => Ok(Expr::Constant(Value::Str(text))),
            Some(Token::Number(value)) => Ok(Expr::Constant(value)),
            Some(Token::Keyword(Keyword::True)) => Ok(Expr::Constant(Value::Bool(true))),
            Some(Token::Keyword(Keyword::False)) => Ok(Expr::Constant(Value::Bool(false))),
            Some(Token::Keyword(Keyword::Null)) => Ok(Expr::Constant(Value::Null)),
            Some(Token::Identifier(name)) => Ok(Expr::Property(name)),
            Some(Token::Symbol("(")) => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            Some(other) => error(format!("unexpected {other}")),
            None => error("unexpected end of the expression"),
        }
    }
}

fn check_depth(expr: &Expr) -> Result<(), SqlError> {
    if expr.depth() > MAX_DEPTH {
        return error(format!("expression nested deeper than {MAX_DEPTH}"));
    }
    Ok(())
}

/// A condition from `expr`: conditions as they are, a bare property cast to a condition,
/// anything else refused.
fn as_condition(expr: Expr) -> Result<Expr, SqlError> {
    match expr {
        Expr::Property(_) => Ok(Expr::BoolCast(Box::new(expr))),
        expr if expr.is_boolean() => Ok(expr),
        expr => error(format!("Expression will not result in a boolean value: {}", describe(&expr))),
    }
}

fn describe(expr: &Expr) -> String {
    match expr {
        Expr::Constant(value) => value.to_string(),
        Expr::Property(name) => name.clone(),
        Expr::Negate(inner) => format!("-{}", describe(inner)),
        _ => "expression".to_owned(),
    }
}

/// `left = right`, with RocketMQ's operand checks.
fn equal(left: Expr, right: Expr) -> Result<Expr, SqlError> {
    for side in [&left, &right] {
        if *side == Expr::Constant(Value::Null) {
            return error("'NULL' cannot be compared.");
        }
    }
    if let (Expr::Constant(left_value), Expr::Constant(right_value)) = (&left, &right) {
        let boolean = |value: &Value| matches!(value, Value::Bool(_) | Value::Null);
        if boolean(left_value) && !boolean(right_value) {
            return error(format!("'{left_value}' cannot be compared with '{right_value}'"));
        }
    }
    Ok(Expr::Compare(Comparison::Equal, Box::new(left), Box::new(right)))
}

/// `left <op> right` for the ordering operators: only numbers and non-conditions compare.
fn ordered(operator: Comparison, left: Expr, right: Expr) -> Result<Expr, SqlError> {
    for side in [&left, &right] {
        let comparable = match side {
            Expr::Constant(value) => matches!(value, Value::Int(_) | Value::Long(_) | Value::Double(_)),
            other => !other.is_boolean(),
        };
        if !comparable {
            return error(format!("Value '{}' cannot be compared.", describe(side)));
        }
    }
    Ok(Expr::Compare(operator, Box::new(left), Box::new(right)))
}

/// `value [NOT] BETWEEN low AND high`; constant bounds must be in order.
fn between(value: Expr, low: Expr, high: Expr, negated: bool) -> Result<Expr, SqlError> {
    if negated {
        let below = ordered(Comparison::Less, value.clone(), low)?;
        let above = ordered(Comparison::Greater, value, high)?;
        return Ok(Expr::Or(Box::new(below), Box::new(above)));
    }
    if let (Expr::Constant(low_value), Expr::Constant(high_value)) = (&low, &high) {
        if *low_value == Value::Null || *high_value == Value::Null {
            return error("Illegal values of between, values can not be null!");
        }
        let order = compare(high_value, low_value).map_err(|_| {
            SqlError(format!("Illegal values of between, {low_value} and {high_value} cannot be compared"))
        })?;
        if order == Ordering::Less {
            return error(format!(
                "Illegal values of between, left value({low_value}) must less than or equal to right value({high_value})"
            ));
        }
    }
    let at_least = ordered(Comparison::GreaterOrEqual, value.clone(), low)?;
    let at_most = ordered(Comparison::LessOrEqual, value, high)?;
    Ok(Expr::And(Box::new(at_least), Box::new(at_most)))
}

// ----- evaluation -----

/// A value that cannot be used as asked (the message then does not match).
#[derive(Debug)]
struct EvalError;

fn evaluate<'a>(expr: &Expr, property: &impl Fn(&str) -> Option<&'a str>) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Constant(value) => value.clone(),
        Expr::Property(name) => property(name).map_or(Value::Null, |value| Value::Str(value.to_owned())),
        Expr::Negate(operand) => match evaluate(operand, property)? {
            Value::Int(value) => Value::Int(value.wrapping_neg()),
            Value::Long(value) => Value::Long(value.wrapping_neg()),
            Value::Double(value) => Value::Double(-value),
            _ => Value::Null,
        },
        Expr::Not(operand) => match condition(evaluate(operand, property)?)? {
            Some(value) => Value::Bool(!value),
            None => Value::Null,
        },
        Expr::BoolCast(operand) => match evaluate(operand, property)? {
            Value::Null => Value::Null,
            Value::Bool(value) => Value::Bool(value),
            _ => Value::Bool(false),
        },
        Expr::And(left, right) => {
            let left = condition(evaluate(left, property)?)?;
            if left == Some(false) {
                return Ok(Value::Bool(false));
            }
            let right = condition(evaluate(right, property)?)?;
            match (left, right) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        Expr::Or(left, right) => {
            let left = condition(evaluate(left, property)?)?;
            if left == Some(true) {
                return Ok(Value::Bool(true));
            }
            let right = condition(evaluate(right, property)?)?;
            match (left, right) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        Expr::IsNull(operand) => Value::Bool(evaluate(operand, property)? == Value::Null),
        Expr::Compare(Comparison::Equal, left, right) => {
            let left = evaluate(left, property)?;
            let right = evaluate(right, property)?;
            match (&left, &right) {
                (Value::Null, Value::Null) => Value::Bool(true),
                (Value::Null, _) => Value::Null,
                (_, Value::Null) => Value::Bool(false),
                _ if left == right => Value::Bool(true),
                _ => Value::Bool(compare(&left, &right)? == Ordering::Equal),
            }
        }
        Expr::Compare(operator, left, right) => {
            let left = evaluate(left, property)?;
            if left == Value::Null {
                return Ok(Value::Null);
            }
            let right = evaluate(right, property)?;
            if right == Value::Null {
                return Ok(Value::Null);
            }
            let order = match (&left, &right) {
                // Strings are ordered as the numbers they spell, or not at all.
                (Value::Str(left), Value::Str(right)) => parse_double(left)?.total_cmp(&parse_double(right)?),
                _ => compare(&left, &right)?,
            };
            Value::Bool(match operator {
                Comparison::Greater => order == Ordering::Greater,
                Comparison::GreaterOrEqual => order != Ordering::Less,
                Comparison::Less => order == Ordering::Less,
                Comparison::LessOrEqual => order != Ordering::Greater,
                Comparison::Equal => order == Ordering::Equal,
            })
        }
        Expr::In { property: name, values, negated } => match property(name) {
            Some(value) => Value::Bool(values.iter().any(|candidate| candidate == value) != *negated),
            None => Value::Null,
        },
        Expr::Text { test, negated, operand, search } => {
            if search.is_empty() {
                return Ok(Value::Bool(false));
            }
            match evaluate(operand, property)? {
                Value::Str(value) => {
                    let found = match test {
                        TextTest::Contains => value.contains(search.as_str()),
                        TextTest::StartsWith => value.starts_with(search.as_str()),
                        TextTest::EndsWith => value.ends_with(search.as_str()),
                    };
                    Value::Bool(found != *negated)
                }
                _ => Value::Bool(false),
            }
        }
    })
}

/// A value used as a condition: true, false or unknown; anything else is an error.
fn condition(value: Value) -> Result<Option<bool>, EvalError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(value) => Ok(Some(value)),
        _ => Err(EvalError),
    }
}

/// Java `Double.valueOf` of a property string: surrounding blanks and a type suffix allowed.
fn parse_double(text: &str) -> Result<f64, EvalError> {
    let trimmed = text.trim_matches(|character: char| character <= ' ');
    let digits = trimmed.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(trimmed);
    digits.parse().map_err(|_| EvalError)
}

/// Orders two non-null values after RocketMQ's conversions: the string side is parsed as the
/// other side's type, numbers widen to the wider side; unrelated types order as "less".
fn compare(left: &Value, right: &Value) -> Result<Ordering, EvalError> {
    use Value::{Bool, Double, Int, Long, Str};
    let parse_int = |text: &str| text.parse::<i32>().map_err(|_| EvalError);
    let parse_long = |text: &str| text.parse::<i64>().map_err(|_| EvalError);
    Ok(match (left, right) {
        (Bool(left), Bool(right)) => left.cmp(right),
        (Int(left), Int(right)) => left.cmp(right),
        (Long(left), Long(right)) => left.cmp(right),
        (Double(left), Double(right)) => left.total_cmp(right),
        (Str(left), Str(right)) => left.cmp(right),
        // A boolean never converts a string (Java fails the cast), and compares to nothing else.
        (Bool(_), Str(_)) => return Err(EvalError),
        (Int(left), Long(right)) => i64::from(*left).cmp(right),
        (Long(left), Int(right)) => left.cmp(&i64::from(*right)),
        (Int(left), Double(right)) => f64::from(*left).total_cmp(right),
        (Double(left), Int(right)) => left.total_cmp(&f64::from(*right)),
        // Java widens long to double here, losing precision the same way.
        (Long(left), Double(right)) => (*left as f64).total_cmp(right),
        (Double(left), Long(right)) => left.total_cmp(&(*right as f64)),
        (Int(left), Str(right)) => left.cmp(&parse_int(right)?),
        (Long(left), Str(right)) => left.cmp(&parse_long(right)?),
        (Double(left), Str(right)) => left.total_cmp(&parse_double(right)?),
        (Str(left), Bool(right)) => left.eq_ignore_ascii_case("true").cmp(right),
        (Str(left), Int(right)) => parse_int(left)?.cmp(right),
        (Str(left), Long(right)) => parse_long(left)?.cmp(right),
        (Str(left), Double(right)) => parse_double(left)?.total_cmp(right),
        _ => Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(selector: &str, properties: &[(&str, &str)]) -> bool {
        let selector = Selector::compile(selector).unwrap_or_else(|error| panic!("{selector}: {error}"));
        selector
            .matches(&|name: &str| properties.iter().find(|(key, _)| *key == name).map(|(_, value)| *value))
    }

    #[test]
    fn comparisons_convert_property_strings() {
        let message = [("a", "10"), ("b", "abc"), ("c", "10.5"), ("flag", "true"), ("TAGS", "TagA")];
        assert!(run("a = 10", &message));
        assert!(run("a > 5 AND a < 11", &message));
        assert!(run("a >= 10 and a <= 10", &message));
        assert!(run("a BETWEEN 1 AND 10", &message));
        assert!(!run("a NOT BETWEEN 1 AND 10", &message));
        assert!(run("c > 10.4", &message));
        assert!(!run("c = 5", &message), "an int literal parses the property as an int: error");
        assert!(run("c = 10.5", &message));
        assert!(run("b = 'abc'", &message));
        assert!(run("b <> 'abd'", &message));
        assert!(!run("b > 1", &message), "not numeric: error");
        assert!(run("flag = TRUE", &message));
        assert!(run("TAGS IN ('TagA', 'TagB')", &message));
        assert!(!run("TAGS NOT IN ('TagA')", &message));
        assert!(run("a > -5", &message));
        assert!(run("a = 10 OR missing = 1", &message));
        assert!(run("TRUE", &message));
        assert!(!run("FALSE OR NULL", &message));
        assert!(run("'10' = a", &message));
        assert!(run("a = 10L", &message));
        assert!(run("a < 3000000000", &message));
    }

    #[test]
    fn missing_properties_are_unknown() {
        let message = [("a", "1")];
        assert!(!run("missing = 1", &message));
        assert!(!run("missing <> 1", &message));
        assert!(!run("NOT (missing = 1)", &message));
        assert!(run("missing IS NULL", &message));
        assert!(run("a IS NOT NULL", &message));
        assert!(!run("missing IN ('x')", &message));
        assert!(!run("missing NOT IN ('x')", &message));
        assert!(!run("missing CONTAINS 'x'", &message));
        assert!(!run("missing NOT CONTAINS 'x'", &message));
        assert!(run("missing = 1 OR a = 1", &message));
        assert!(!run("missing = 1 AND a = 1", &message));
        assert!(!run("a", &message), "a bare property is never true");
    }

    #[test]
    fn text_tests() {
        let message = [("s", "hello world")];
        assert!(run("s CONTAINS 'lo w'", &message));
        assert!(run("s STARTSWITH 'hell'", &message));
        assert!(run("s ENDSWITH 'world'", &message));
        assert!(run("s NOT STARTSWITH 'world'", &message));
        assert!(!run("s CONTAINS ''", &message));
        assert!(!run("s NOT CONTAINS ''", &message));
    }

    #[test]
    fn syntax_and_comments() {
        let message = [("a", "1"), ("b", "it's")];
        assert!(run("a = 1 -- trailing comment", &message));
        assert!(run("/* lead */ a = 1", &message));
        assert!(run("b = 'it''s'", &message));
        assert!(run("A_b$ IS NULL", &message));
        assert!(run("a = 1 and not (a = 2)", &message));
        assert!(run("a = .1e1", &message));
        assert!(run("a = 1.", &message));
        assert!(run("a = 0.1E+1", &message));
        assert!(run("x = 5.E1", &[("x", "50")]));
    }

    #[test]
    fn compile_errors() {
        for bad in [
            "a > 'x'",
            "a > TRUE",
            "a = NULL",
            "NULL = a",
            "TRUE = 1",
            "'a' IN ('b')",
            "a BETWEEN 5 AND 1",
            "a BETWEEN NULL AND 1",
            "1",
            "'text'",
            "a != 1",
            "a LIKE 'x'",
            "a * 2 = 2",
            "a = 0.0",
            "a = 007",
            "a = 'open",
            "(a = 1",
            "a = 1 a = 2",
            "a = 1 AND 2",
            "a = 99999999999999999999",
            "/* open",
            "a = 1e",
            "-a",
            "a > 1 > 2",
        ] {
            assert!(Selector::compile(bad).is_err(), "{bad} compiled");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Selector::compile(&deep).is_err());
        let long = vec!["a = 1"; 10_000].join(" AND ");
        assert!(Selector::compile(&long).is_err());
        let fine = vec!["a = 1"; 100].join(" OR ");
        assert!(run(&fine, &[("a", "1")]));
    }

    #[test]
    fn the_largest_accepted_selectors_fit_a_small_stack() {
        // A quarter of the 2 MiB stack of the threads that compile and evaluate selectors.
        let worker = std::thread::Builder::new().stack_size(512 * 1024).spawn(|| {
            let nested = format!("{}a = 1{}", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
            let negated = format!("{}a", "NOT ".repeat(MAX_NESTING - 1));
            let chain = vec!["a = 1"; MAX_DEPTH - 1].join(" AND ");
            let message = [("a", "1")];
            (run(&nested, &message), Selector::compile(&negated).is_ok(), run(&chain, &message))
        });
        assert_eq!(worker.unwrap().join().unwrap(), (true, true, true));
    }
}
