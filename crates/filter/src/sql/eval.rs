//! Evaluating a compiled selector against one message's properties.
//!
//! Evaluation is three-valued (true, false, null for "unknown", e.g. a missing property) and
//! visits each node at most once, borrowing every string from the selector or the message, so
//! it costs time linear in the selector and allocates nothing. Recursion follows the tree,
//! whose depth compiling bounds.

use std::cmp::Ordering;
use std::fmt;

use super::ast::{Comparison, Expr, TextTest};

/// A value during evaluation (Java's boxed types; properties are always strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'v> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'v str),
}

impl fmt::Display for Value<'_> {
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

/// A value that cannot be used as asked (the message then does not match).
#[derive(Debug)]
pub(super) struct EvalError;

/// The value of `expr` for a message whose properties `property` looks up.
pub(super) fn evaluate<'v, 'a: 'v, P>(expr: &'v Expr, property: &P) -> Result<Value<'v>, EvalError>
where
    P: Fn(&str) -> Option<&'a str>,
{
    Ok(match expr {
        Expr::Constant(value) => value.value(),
        Expr::Property(name) => property(name).map_or(Value::Null, Value::Str),
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
            junction(AND, condition(evaluate(left, property)?)?, || condition(evaluate(right, property)?))?
        }
        Expr::Or(left, right) => {
            junction(OR, condition(evaluate(left, property)?)?, || condition(evaluate(right, property)?))?
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
            order(*operator, left, right, property)?
        }
        Expr::Between { value, low, high, negated: false } => {
            let value = evaluate(value, property)?;
            junction(AND, condition(order(Comparison::GreaterOrEqual, value, low, property)?)?, || {
                condition(order(Comparison::LessOrEqual, value, high, property)?)
            })?
        }
        Expr::Between { value, low, high, negated: true } => {
            let value = evaluate(value, property)?;
            junction(OR, condition(order(Comparison::Less, value, low, property)?)?, || {
                condition(order(Comparison::Greater, value, high, property)?)
            })?
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

/// The decisive truth value of AND, for [`junction`]: one false side makes it false.
const AND: bool = false;
/// The decisive truth value of OR, for [`junction`]: one true side makes it true.
const OR: bool = true;

/// SQL's three-valued [`AND`] and [`OR`], which mirror each other around their decisive value:
/// `decisive` if either side is, else unknown if either is, else the other truth value. The
/// right side is not evaluated when the left is already decisive.
fn junction(
    decisive: bool,
    left: Option<bool>,
    right: impl FnOnce() -> Result<Option<bool>, EvalError>,
) -> Result<Value<'static>, EvalError> {
    if left == Some(decisive) {
        return Ok(Value::Bool(decisive));
    }
    Ok(match (left, right()?) {
        (_, Some(value)) if value == decisive => Value::Bool(decisive),
        (Some(_), Some(_)) => Value::Bool(!decisive),
        _ => Value::Null,
    })
}

/// `left <operator> right` for an ordering operator, `left` already evaluated: unknown when
/// either side is null (the right side then not evaluated if the left is).
fn order<'v, 'a: 'v, P>(
    operator: Comparison,
    left: Value<'v>,
    right: &'v Expr,
    property: &P,
) -> Result<Value<'v>, EvalError>
where
    P: Fn(&str) -> Option<&'a str>,
{
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
    Ok(Value::Bool(match operator {
        Comparison::Greater => order == Ordering::Greater,
        Comparison::GreaterOrEqual => order != Ordering::Less,
        Comparison::Less => order == Ordering::Less,
        Comparison::LessOrEqual => order != Ordering::Greater,
        Comparison::Equal => order == Ordering::Equal,
    }))
}

/// A value used as a condition: true, false or unknown; anything else is an error.
fn condition(value: Value<'_>) -> Result<Option<bool>, EvalError> {
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
pub(super) fn compare(left: &Value<'_>, right: &Value<'_>) -> Result<Ordering, EvalError> {
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
