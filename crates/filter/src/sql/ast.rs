//! The compiled form of a selector: literals and expression trees.

use std::fmt;

use super::eval::Value;

/// A literal of the selector text (Java's boxed constant types).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
}

impl Literal {
    /// The literal as an evaluation value, borrowing its text.
    pub(super) fn value(&self) -> Value<'_> {
        match self {
            Self::Null => Value::Null,
            Self::Bool(value) => Value::Bool(*value),
            Self::Int(value) => Value::Int(*value),
            Self::Long(value) => Value::Long(*value),
            Self::Double(value) => Value::Double(*value),
            Self::Str(value) => Value::Str(value),
        }
    }

    /// Whether the literal is a number (the only literals the ordering operators accept).
    pub(super) fn is_number(&self) -> bool {
        matches!(self, Self::Int(_) | Self::Long(_) | Self::Double(_))
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value().fmt(f)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// String tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextTest {
    Contains,
    StartsWith,
    EndsWith,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Constant(Literal),
    Property(String),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    /// A bare property used as a condition.
    BoolCast(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Comparison, Box<Expr>, Box<Expr>),
    /// `value BETWEEN low AND high` is `value >= low AND value <= high` and the NOT form
    /// `value < low OR value > high`, held as one node so `value` is neither copied nor
    /// evaluated twice: nested BETWEENs would otherwise double the work at every level.
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
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
    pub(super) fn is_boolean(&self) -> bool {
        match self {
            Self::Constant(value) => matches!(value, Literal::Null | Literal::Bool(_)),
            Self::Property(_) | Self::Negate(_) => false,
            _ => true,
        }
    }
}
