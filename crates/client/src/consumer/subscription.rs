//! Subscriptions: turning `topic` + expression into the `SubscriptionData` heartbeats carry,
//! and the client-side tag check (spec behaviour §7.1).
//!
//! Brokers filter tags by hash code, so a pull can return a message whose tag merely collides
//! with a subscribed one; every consumer re-checks the tag string after decoding.

use apogee_common::message::MessageExt;
use apogee_filter::tags::{tag_code, TagExpression};
use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::body::heartbeat::{SubscriptionData, SUB_ALL};

use crate::ClientError;

/// Builds the subscription of `topic` to `expression` (Java `FilterAPI.build`).
///
/// TAG: parsed as the broker parses it ([`TagExpression::parse`]): empty or `*` subscribes
/// everything; otherwise the tags split on `||`, trimmed, and their Java hash codes collected
/// (an expression naming no tag is refused). SQL92 (or any
/// other type) is passed through for the broker to evaluate; it must not be empty. The
/// version is the current time in ms.
pub fn build_subscription(
    topic: &str,
    expression: &str,
    expression_type: ExpressionType,
) -> Result<SubscriptionData, ClientError> {
    let mut data = SubscriptionData {
        topic: topic.to_owned(),
        sub_version: apogee_common::time::now_ms(),
        expression_type: expression_type.clone(),
        ..SubscriptionData::default()
    };
    if expression_type != ExpressionType::Tag {
        if expression.trim().is_empty() {
            return Err(ClientError::IllegalArgument(format!(
                "empty {} expression for topic {topic}",
                expression_type.name()
            )));
        }
        data.sub_string = expression.to_owned();
        return Ok(data);
    }
    let no_tag = || ClientError::IllegalArgument(format!("tag expression {expression:?} names no tag"));
    let tags = match TagExpression::parse(expression).map_err(|_| no_tag())? {
        TagExpression::All => {
            data.sub_string = SUB_ALL.to_owned();
            return Ok(data);
        }
        TagExpression::Tags(tags) => tags,
    };
    data.sub_string = expression.to_owned();
    for tag in tags.iter() {
        data.code_set.insert(tag_code(tag));
        data.tags_set.insert(tag.to_owned());
    }
    if data.tags_set.is_empty() {
        return Err(no_tag());
    }
    Ok(data)
}

/// Whether a pulled message passes the client-side tag check: always for `*`, SQL92 and
/// class-filter subscriptions; otherwise its `TAGS` must be one of the subscribed tags (a
/// message without a tag does not match).
pub fn matches_tags(subscription: &SubscriptionData, message: &MessageExt) -> bool {
    if subscription.tags_set.is_empty() || subscription.class_filter_mode {
        return true;
    }
    message.message.tags().is_some_and(|tag| subscription.tags_set.contains(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: Option<&str>) -> MessageExt {
        let mut message = MessageExt::default();
        if let Some(tag) = tag {
            message.message.set_tags(tag);
        }
        message
    }

    #[test]
    fn star_and_empty_subscribe_everything() {
        for expression in ["", "*"] {
            let data = build_subscription("T", expression, ExpressionType::Tag).unwrap();
            assert_eq!(data.sub_string, "*");
            assert!(data.tags_set.is_empty() && data.code_set.is_empty());
            assert!(matches_tags(&data, &tagged(None)));
            assert!(matches_tags(&data, &tagged(Some("X"))));
        }
    }

    #[test]
    fn tags_are_split_trimmed_and_hashed() {
        let data = build_subscription("T", " TagA ||TagB|| ", ExpressionType::Tag).unwrap();
        assert_eq!(data.sub_string, " TagA ||TagB|| ");
        assert_eq!(data.tags_set.iter().map(String::as_str).collect::<Vec<_>>(), ["TagA", "TagB"]);
        assert!(data.code_set.contains(&2598919));
        assert_eq!(data.expression_type, ExpressionType::Tag);
        assert!(data.sub_version > 0);
        assert!(matches_tags(&data, &tagged(Some("TagA"))));
        assert!(!matches_tags(&data, &tagged(Some("TagC"))));
        assert!(!matches_tags(&data, &tagged(None)));
        assert!(build_subscription("T", "||", ExpressionType::Tag).is_err());
    }

    #[test]
    fn sql_is_passed_through() {
        let data = build_subscription("T", "a > 5", ExpressionType::Sql92).unwrap();
        assert_eq!(data.sub_string, "a > 5");
        assert_eq!(data.expression_type, ExpressionType::Sql92);
        assert!(data.tags_set.is_empty());
        assert!(matches_tags(&data, &tagged(Some("anything"))));
        assert!(build_subscription("T", " ", ExpressionType::Sql92).is_err());
    }
}
