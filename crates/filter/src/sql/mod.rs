//! SQL92 message selectors (`MessageSelector.bySql`, behaviour spec §7.2): the subset RocketMQ
//! accepts, compiled once per subscription and evaluated against each candidate message's
//! properties.
//!
//! A message matches only when the whole selector is true. Values compare after RocketMQ's
//! conversions (a property string is parsed as the number it is compared with, numbers widen),
//! and a conversion that fails makes the message not match.

mod ast;
mod eval;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

/// The bounds on a selector, so that no text a peer sends can exhaust the stack or make
/// compiling or evaluating cost more than its length warrants.
pub mod limits {
    /// Longest selector text accepted, in bytes. RocketMQ sets no limit; selectors in use are
    /// a few hundred bytes, and this bounds the work of evaluating one for every message read.
    pub const MAX_EXPRESSION_BYTES: usize = 64 * 1024;

    /// Deepest expression tree accepted: bounds the recursion of evaluation against selectors
    /// crafted to exhaust the stack (a chain of `a = 1 AND ...` is as deep as it is long).
    pub const MAX_DEPTH: usize = 128;

    /// Most nested parentheses and prefix operators accepted: bounds the recursion of parsing.
    pub const MAX_NESTING: usize = 32;

    /// Most strings an `IN (...)` list may hold.
    pub const MAX_IN_VALUES: usize = 1024;
}

/// Why a selector does not compile; the text says what is wrong, for the remark of a
/// SUBSCRIPTION_PARSE_FAILED answer.
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

/// A compiled SQL92 selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    expr: ast::Expr,
}

impl Selector {
    /// Compiles `text`, refusing what RocketMQ refuses and anything beyond [`limits`].
    pub fn compile(text: &str) -> Result<Self, SqlError> {
        if text.len() > limits::MAX_EXPRESSION_BYTES {
            return error(format!(
                "expression of {} bytes is longer than {} bytes",
                text.len(),
                limits::MAX_EXPRESSION_BYTES
            ));
        }
        let tokens = lex::lex(text)?;
        let tree = parse::Parser::new(tokens).selector()?;
        Ok(Self { expr: tree.expr })
    }

    /// Whether a message with these properties matches (`property` looks a name up; a missing
    /// property is SQL's null).
    pub fn matches<'a>(&self, property: &impl Fn(&str) -> Option<&'a str>) -> bool {
        matches!(eval::evaluate(&self.expr, property), Ok(eval::Value::Bool(true)))
    }
}
