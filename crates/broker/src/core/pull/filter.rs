//! What a pull's subscription lets through: every message, a set of tag codes, or an SQL92
//! selector over each message's properties.

use std::collections::BTreeSet;

use apogee_common::message::record::RecordView;
use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_store::MessageFilter;

use apogee_filter::sql::Selector;
use apogee_filter::tags::TagExpression;

/// A compiled subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum PullFilter {
    /// `*` (or empty): everything.
    All,
    /// Messages whose consume-queue tag code is one of these (Java `String.hashCode` of the
    /// tags); no tags means nothing matches, as in Java.
    Tags(BTreeSet<i32>),
    /// Messages whose properties satisfy an SQL92 selector.
    Sql(Box<Selector>),
}

impl PullFilter {
    /// Parses a tag expression the way Java's `FilterAPI` does: `*` or empty is everything,
    /// otherwise tags split on `||` and trimmed. `None` when the text is nothing but
    /// separators (Java's "subString split error").
    pub fn parse_tags(expression: Option<&str>) -> Option<Self> {
        match TagExpression::parse(expression.unwrap_or("")).ok()? {
            TagExpression::All => Some(Self::All),
            TagExpression::Tags(tags) => Some(Self::Tags(tags.codes().collect())),
        }
    }

    /// The filter of a registered subscription. Codes are recomputed from the expression rather
    /// than taken from the client's `codeSet`, which old C++ clients fill with `atoi(tag)`.
    pub fn from_subscription(subscription: &SubscriptionData) -> Option<Self> {
        Self::parse_tags(Some(&subscription.sub_string))
    }

    /// Compiles a non-TAG subscription; only SQL92 is known. The error is the remark Java
    /// gives.
    pub fn compile(expression_type: &ExpressionType, expression: &str) -> Result<Self, String> {
        if *expression_type != ExpressionType::Sql92 {
            return Err(format!("unsupported expression type {}", expression_type.name()));
        }
        if expression.trim().is_empty() {
            return Err(format!("Expression can't be null! {}", expression_type.name()));
        }
        Selector::compile(expression)
            .map(|selector| Self::Sql(Box::new(selector)))
            .map_err(|error| error.to_string())
    }
}

impl MessageFilter for PullFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        match self {
            Self::All | Self::Sql(_) => true,
            // Java compares the code's int value: truncation is intended.
            Self::Tags(codes) => codes.contains(&(tags_code as i32)),
        }
    }

    fn matches_record(&self, record: &[u8]) -> bool {
        match self {
            Self::Sql(selector) => match RecordView::parse(record, false) {
                Ok(view) => selector.matches(&|name: &str| view.property(name)),
                Err(_) => false,
            },
            Self::All | Self::Tags(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_common::java_string_hash;

    #[test]
    fn tag_expressions() {
        assert_eq!(PullFilter::parse_tags(None), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("*")), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("")), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("||")), None);
        let codes = BTreeSet::from([java_string_hash("TagA"), java_string_hash("TagB")]);
        assert_eq!(PullFilter::parse_tags(Some(" TagA || TagB ||")), Some(PullFilter::Tags(codes)));
        assert_eq!(PullFilter::parse_tags(Some("  ")), Some(PullFilter::Tags(BTreeSet::new())));

        let filter = PullFilter::parse_tags(Some("TagA")).unwrap();
        assert!(filter.matches_tags_code(i64::from(java_string_hash("TagA"))));
        assert!(!filter.matches_tags_code(i64::from(java_string_hash("TagB"))));
        assert!(!filter.matches_tags_code(0));
        assert!(PullFilter::All.matches_tags_code(0));
    }

    #[test]
    fn registered_subscriptions_ignore_the_client_code_set() {
        let subscription = SubscriptionData {
            sub_string: "TagA || TagC".into(),
            code_set: BTreeSet::from([0]),
            ..SubscriptionData::default()
        };
        let filter = PullFilter::from_subscription(&subscription).unwrap();
        assert!(filter.matches_tags_code(i64::from(java_string_hash("TagC"))));
        assert!(!filter.matches_tags_code(0));
    }

    #[test]
    fn only_sql92_compiles() {
        assert!(PullFilter::compile(&ExpressionType::Tag, "a = 1").is_err());
        assert!(PullFilter::compile(&ExpressionType::Sql92, "  ").is_err());
        assert!(matches!(PullFilter::compile(&ExpressionType::Sql92, "a = 1"), Ok(PullFilter::Sql(_))));
    }
}
