//! Tag expressions (behaviour spec §7.1): `*` or empty for every message, otherwise tags
//! separated by `||`.
//!
//! One parser serves both sides so they can never disagree on what a subscription names: the
//! client turns the tags into the heartbeat's `tagsSet`/`codeSet`, the broker into the codes
//! it compares with each consume-queue entry's tag code.

use apogee_common::java_string_hash;

/// The expression that subscribes every message (Java `SubscriptionData.SUB_ALL`).
pub const ALL: &str = "*";

/// The separator between the tags of an expression.
pub const SEPARATOR: &str = "||";

/// A parsed tag expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagExpression<'a> {
    /// `*` or empty: every message, tagged or not.
    All,
    /// The messages with one of these tags.
    Tags(TagList<'a>),
}

/// The tags of an expression, read from its text on demand so parsing allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagList<'a> {
    expression: &'a str,
}

/// A tag expression made of separators only (Java's "subString split error").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTagsError;

impl std::fmt::Display for NoTagsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the tag expression is nothing but separators")
    }
}

impl std::error::Error for NoTagsError {}

impl<'a> TagExpression<'a> {
    /// Parses `expression` the way Java's `FilterAPI` does: empty or `*` is everything;
    /// otherwise tags split on `||`, each trimmed, empty ones dropped. An expression of
    /// separators only is an error; one of blanks only names no tag (and matches nothing).
    pub fn parse(expression: &'a str) -> Result<Self, NoTagsError> {
        if expression.is_empty() || expression == ALL {
            return Ok(Self::All);
        }
        // Java's split drops trailing empty parts, so `||||` yields no part at all.
        if expression.split(SEPARATOR).all(str::is_empty) {
            return Err(NoTagsError);
        }
        Ok(Self::Tags(TagList { expression }))
    }
}

impl<'a> TagList<'a> {
    /// The tags, trimmed, in the order written (duplicates kept).
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.expression.split(SEPARATOR).map(str::trim).filter(|tag| !tag.is_empty())
    }

    /// The tags' codes, as stored in consume-queue entries.
    pub fn codes(&self) -> impl Iterator<Item = i32> + 'a {
        self.iter().map(tag_code)
    }

    /// Whether no tag is named (the expression was blanks and separators).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// The code of a tag in consume-queue entries and `codeSet`s: Java's `String.hashCode`.
pub fn tag_code(tag: &str) -> i32 {
    java_string_hash(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(expression: &str) -> Vec<&str> {
        match TagExpression::parse(expression) {
            Ok(TagExpression::Tags(list)) => list.iter().collect(),
            other => panic!("{expression:?} gave {other:?}"),
        }
    }

    #[test]
    fn star_and_empty_are_everything() {
        assert_eq!(TagExpression::parse(""), Ok(TagExpression::All));
        assert_eq!(TagExpression::parse("*"), Ok(TagExpression::All));
    }

    #[test]
    fn tags_are_split_trimmed_and_empty_ones_dropped() {
        assert_eq!(tags(" TagA || TagB ||"), ["TagA", "TagB"]);
        assert_eq!(tags("TagA||TagA"), ["TagA", "TagA"]);
        assert_eq!(tags("a|b"), ["a|b"]);
        assert_eq!(tags(" * || x"), ["*", "x"]);
        assert!(tags("  ").is_empty());
        assert!(tags(" || ").is_empty());
    }

    #[test]
    fn separators_only_is_an_error() {
        for expression in ["||", "||||", "||||||"] {
            assert_eq!(TagExpression::parse(expression), Err(NoTagsError));
        }
    }

    #[test]
    fn codes_are_java_hashes() {
        let Ok(TagExpression::Tags(list)) = TagExpression::parse("TagA || hello") else { panic!() };
        assert_eq!(list.codes().collect::<Vec<_>>(), [2_598_919, 99_162_322]);
        assert!(!list.is_empty());
    }
}
