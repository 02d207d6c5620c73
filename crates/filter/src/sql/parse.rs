//! Parsing tokens into an expression tree (the grammar of behaviour spec §7.2), with RocketMQ's
//! compile-time checks and the limits of [`super::limits`].
//!
//! Recursion happens only through prefix operators and parentheses, counted by `nesting`;
//! chains of binary operators are built in loops, and the depth of the tree they make is
//! carried with it ([`Tree`]) so checking it costs nothing per node.

use std::cmp::Ordering;

use super::ast::{Comparison, Expr, Literal, TextTest};
use super::eval::compare;
use super::lex::{Keyword, Token};
use super::limits::{MAX_DEPTH, MAX_IN_VALUES, MAX_NESTING};
use super::{error, SqlError};

/// An expression and the depth of its tree.
#[derive(Debug)]
pub(super) struct Tree {
    pub(super) expr: Expr,
    depth: usize,
}

impl Tree {
    fn leaf(expr: Expr) -> Self {
        Self { expr, depth: 1 }
    }

    /// A node over `children`, refused when it would be deeper than [`MAX_DEPTH`].
    fn node(expr: Expr, child_depth: usize) -> Result<Self, SqlError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return error(format!("expression nested deeper than {MAX_DEPTH}"));
        }
        Ok(Self { expr, depth })
    }

    fn unary(inner: Tree, make: impl FnOnce(Box<Expr>) -> Expr) -> Result<Self, SqlError> {
        Self::node(make(Box::new(inner.expr)), inner.depth)
    }

    fn binary(
        left: Tree,
        right: Tree,
        make: impl FnOnce(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Self, SqlError> {
        let depth = left.depth.max(right.depth);
        Self::node(make(Box::new(left.expr), Box::new(right.expr)), depth)
    }
}

/// A parser over the tokens of one selector.
pub(super) struct Parser {
    tokens: std::vec::IntoIter<Token>,
    peeked: Vec<Token>,
    /// Current recursion depth of nested prefix operators and parentheses.
    nesting: usize,
}

impl Parser {
    pub(super) fn new(tokens: Vec<Token>) -> Self {
        Self { tokens: tokens.into_iter(), peeked: Vec::with_capacity(2), nesting: 0 }
    }

    /// The whole selector: one condition and nothing after it.
    pub(super) fn selector(mut self) -> Result<Tree, SqlError> {
        let tree = self.or()?;
        if let Some(token) = self.peek() {
            return error(format!("unexpected {token} after the end of the expression"));
        }
        as_condition(tree)
    }

    /// Makes sure the next `count` tokens are buffered in `peeked` (next token last).
    fn fill(&mut self, count: usize) {
        while self.peeked.len() < count {
            match self.tokens.next() {
                Some(token) => self.peeked.insert(0, token),
                None => return,
            }
        }
    }

    fn peek(&mut self) -> Option<&Token> {
        self.peek_at(0)
    }

    fn peek_at(&mut self, ahead: usize) -> Option<&Token> {
        self.fill(ahead + 1);
        let index = self.peeked.len().checked_sub(ahead + 1)?;
        self.peeked.get(index)
    }

    fn next(&mut self) -> Option<Token> {
        self.fill(1);
        self.peeked.pop()
    }

    fn skip(&mut self, count: usize) {
        for _ in 0..count {
            self.next();
        }
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        let found = self.peek() == Some(&Token::Keyword(keyword));
        self.skip(usize::from(found));
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(candidate)) if *candidate == symbol);
        self.skip(usize::from(found));
        found
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), SqlError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            error(format!("expected \"{symbol}\", found {}", self.describe_next()))
        }
    }

    fn describe_next(&mut self) -> String {
        self.peek().map_or_else(|| "the end of the expression".to_owned(), ToString::to_string)
    }

    fn string(&mut self) -> Result<String, SqlError> {
        match self.next() {
            Some(Token::Str(text)) => Ok(text),
            Some(other) => error(format!("expected a string literal, found {other}")),
            None => error("expected a string literal, found the end of the expression"),
        }
    }

    fn or(&mut self) -> Result<Tree, SqlError> {
        self.logical(Keyword::Or, Expr::Or, Self::and)
    }

    fn and(&mut self) -> Result<Tree, SqlError> {
        self.logical(Keyword::And, Expr::And, Self::equality)
    }

    /// One level of a left-associative logical operator, `operand (keyword operand)*`, whose
    /// operands must be conditions.
    fn logical(
        &mut self,
        keyword: Keyword,
        make: fn(Box<Expr>, Box<Expr>) -> Expr,
        operand: fn(&mut Self) -> Result<Tree, SqlError>,
    ) -> Result<Tree, SqlError> {
        let mut left = operand(self)?;
        while self.eat_keyword(keyword) {
            let right = operand(self)?;
            left = Tree::binary(as_condition(left)?, as_condition(right)?, make)?;
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Tree, SqlError> {
        let mut left = self.comparison()?;
        loop {
            if self.eat_symbol("=") {
                let right = self.comparison()?;
                left = equal(left, right)?;
            } else if self.eat_symbol("<>") {
                let right = self.comparison()?;
                left = Tree::unary(equal(left, right)?, Expr::Not)?;
            } else if self.eat_keyword(Keyword::Is) {
                let negated = self.eat_keyword(Keyword::Not);
                if !self.eat_keyword(Keyword::Null) {
                    return error(format!("expected \"NULL\", found {}", self.describe_next()));
                }
                left = Tree::unary(left, Expr::IsNull)?;
                if negated {
                    left = Tree::unary(left, Expr::Not)?;
                }
            } else {
                return Ok(left);
            }
        }
    }

    fn comparison(&mut self) -> Result<Tree, SqlError> {
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
                self.skip(1);
                let right = self.unary()?;
                left = ordered(operator, left, right)?;
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
            self.skip(1 + usize::from(negated));
            left = match (keyword, test) {
                (_, Some(test)) => {
                    let search = self.string()?;
                    Tree::unary(left, |operand| Expr::Text { test, negated, operand, search })?
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
                    let values = self.in_list()?;
                    let Expr::Property(property) = left.expr else {
                        return error("Expected a property for In expression");
                    };
                    Tree::leaf(Expr::In { property, values, negated })
                }
            };
        }
    }

    /// `'(' string (',' string)* ')'`, at most [`MAX_IN_VALUES`] strings.
    fn in_list(&mut self) -> Result<Vec<String>, SqlError> {
        self.expect_symbol("(")?;
        let mut values = vec![self.string()?];
        while self.eat_symbol(",") {
            if values.len() == MAX_IN_VALUES {
                return error(format!("IN list longer than {MAX_IN_VALUES} values"));
            }
            values.push(self.string()?);
        }
        self.expect_symbol(")")?;
        Ok(values)
    }

    fn unary(&mut self) -> Result<Tree, SqlError> {
        if self.nesting == MAX_NESTING {
            return error(format!("expression nested deeper than {MAX_NESTING}"));
        }
        self.nesting += 1;
        let tree = if self.eat_symbol("+") {
            self.unary()
        } else if self.eat_symbol("-") {
            self.unary().and_then(|operand| Tree::unary(operand, Expr::Negate))
        } else if self.eat_keyword(Keyword::Not) {
            self.unary().and_then(|operand| Tree::unary(as_condition(operand)?, Expr::Not))
        } else {
            self.primary()
        };
        self.nesting -= 1;
        tree
    }

    fn primary(&mut self) -> Result<Tree, SqlError> {
        let constant = |literal| Ok(Tree::leaf(Expr::Constant(literal)));
        match self.next() {
            Some(Token::Str(text)) => constant(Literal::Str(text)),
            Some(Token::Number(value)) => constant(value),
            Some(Token::Keyword(Keyword::True)) => constant(Literal::Bool(true)),
            Some(Token::Keyword(Keyword::False)) => constant(Literal::Bool(false)),
            Some(Token::Keyword(Keyword::Null)) => constant(Literal::Null),
            Some(Token::Identifier(name)) => Ok(Tree::leaf(Expr::Property(name))),
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

/// A condition from `tree`: conditions as they are, a bare property cast to a condition,
/// anything else refused.
fn as_condition(tree: Tree) -> Result<Tree, SqlError> {
    match tree.expr {
        Expr::Property(_) => Tree::unary(tree, Expr::BoolCast),
        _ if tree.expr.is_boolean() => Ok(tree),
        _ => error(format!("Expression will not result in a boolean value: {}", describe(&tree.expr))),
    }
}

/// Names an operand in an error message. Recursion only through negation, which nesting bounds.
fn describe(expr: &Expr) -> String {
    match expr {
        Expr::Constant(value) => value.to_string(),
        Expr::Property(name) => name.clone(),
        Expr::Negate(inner) => format!("-{}", describe(inner)),
        _ => "expression".to_owned(),
    }
}

/// `left = right`, with RocketMQ's operand checks.
fn equal(left: Tree, right: Tree) -> Result<Tree, SqlError> {
    for side in [&left.expr, &right.expr] {
        if *side == Expr::Constant(Literal::Null) {
            return error("'NULL' cannot be compared.");
        }
    }
    if let (Expr::Constant(left_value), Expr::Constant(right_value)) = (&left.expr, &right.expr) {
        let boolean = |value: &Literal| matches!(value, Literal::Bool(_) | Literal::Null);
        if boolean(left_value) && !boolean(right_value) {
            return error(format!("'{left_value}' cannot be compared with '{right_value}'"));
        }
    }
    Tree::binary(left, right, |left, right| Expr::Compare(Comparison::Equal, left, right))
}

/// Refuses an operand of an ordering operator: only numbers and non-conditions compare.
fn check_ordered(side: &Expr) -> Result<(), SqlError> {
    let comparable = match side {
        Expr::Constant(value) => value.is_number(),
        other => !other.is_boolean(),
    };
    if !comparable {
        return error(format!("Value '{}' cannot be compared.", describe(side)));
    }
    Ok(())
}

/// `left <op> right` for the ordering operators.
fn ordered(operator: Comparison, left: Tree, right: Tree) -> Result<Tree, SqlError> {
    check_ordered(&left.expr)?;
    check_ordered(&right.expr)?;
    Tree::binary(left, right, |left, right| Expr::Compare(operator, left, right))
}

/// `value [NOT] BETWEEN low AND high`; constant bounds must be in order. The tree is as deep
/// as the two comparisons joined by AND (or OR) it stands for.
fn between(value: Tree, low: Tree, high: Tree, negated: bool) -> Result<Tree, SqlError> {
    if !negated {
        if let (Expr::Constant(low_value), Expr::Constant(high_value)) = (&low.expr, &high.expr) {
            if *low_value == Literal::Null || *high_value == Literal::Null {
                return error("Illegal values of between, values can not be null!");
            }
            let order = compare(&high_value.value(), &low_value.value()).map_err(|_| {
                SqlError(format!(
                    "Illegal values of between, {low_value} and {high_value} cannot be compared"
                ))
            })?;
            if order == Ordering::Less {
                return error(format!(
                    "Illegal values of between, left value({low_value}) must less than or equal to right value({high_value})"
                ));
            }
        }
    }
    for side in [&value.expr, &low.expr, &high.expr] {
        check_ordered(side)?;
    }
    let depth = value.depth.max(low.depth).max(high.depth) + 1;
    let expr = Expr::Between {
        value: Box::new(value.expr),
        low: Box::new(low.expr),
        high: Box::new(high.expr),
        negated,
    };
    Tree::node(expr, depth)
}
