//! Topic attribute changes (`+key=value,-key`) and the attributes Apogee knows, as Java's
//! `AttributeParser`, `AttributeUtil` and `TopicAttributes` define them.

use std::collections::{BTreeMap, BTreeSet};

/// `message.type`: what kind of messages a topic takes.
pub const MESSAGE_TYPE: &str = "message.type";

/// One known attribute.
struct Rule {
    name: &'static str,
    /// May change after the topic was created.
    changeable: bool,
    /// Allowed values; `None` for a number in `-1..=i64::MAX`.
    values: Option<&'static [&'static str]>,
}

/// Java `TopicAttributes.ALL`.
const RULES: &[Rule] = &[
    Rule { name: "queue.type", changeable: false, values: Some(&["BatchCQ", "SimpleCQ"]) },
    Rule { name: "cleanup.policy", changeable: false, values: Some(&["DELETE", "COMPACTION"]) },
    Rule {
        name: MESSAGE_TYPE,
        changeable: true,
        values: Some(&["UNSPECIFIED", "NORMAL", "FIFO", "DELAY", "TRANSACTION", "MIXED"]),
    },
    Rule { name: "reserve.time", changeable: true, values: None },
];

/// Parses `+k1=v1,+k2=v2,-k3` into sign-prefixed key → value (`""` for deletions).
pub fn parse_changes(text: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let mut changes = BTreeMap::new();
    let Some(text) = text.filter(|text| !text.is_empty()) else { return Ok(changes) };
    for item in text.split(',') {
        let (key, value) = if item.contains('=') {
            let mut parts: Vec<&str> = item.split('=').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            let (Some(key), Some(value)) = (parts.first(), parts.get(1)) else {
                return Err(format!("add/alter attribute format is wrong: {item}"));
            };
            if !key.contains('+') {
                return Err(format!("add/alter attribute format is wrong: {key}"));
            }
            (key.to_string(), value.to_string())
        } else {
            if !item.contains('-') {
                return Err(format!("delete attribute format is wrong: {item}"));
            }
            (item.to_owned(), String::new())
        };
        if changes.insert(key.clone(), value).is_some() {
            return Err(format!("key duplication: {key}"));
        }
    }
    Ok(changes)
}

/// Applies parsed `changes` to a topic's `current` attributes; on creation only additions
/// are allowed. Fails with Java's message on unknown keys, unchangeable attributes, bad
/// values or deleting what is not there.
pub fn alter(
    create: bool,
    current: &BTreeMap<String, String>,
    changes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut result = current.clone();
    let mut seen = BTreeSet::new();
    for (key, value) in changes {
        let sign = key.chars().next();
        let name = key.get(1..).unwrap_or("");
        if name.is_empty() || name.contains('+') || name.contains('-') {
            return Err("kv string format wrong.".to_owned());
        }
        if !seen.insert(name) {
            return Err(format!("alter duplication key. key: {name}"));
        }
        let rule = RULES.iter().find(|rule| rule.name == name).ok_or(format!("unsupported key: {name}"))?;
        match sign {
            Some('+') => {
                if !create && !rule.changeable {
                    return Err(format!("attempt to update an unchangeable attribute. key: {name}"));
                }
                verify(rule, value)?;
                result.insert(name.to_owned(), value.clone());
            }
            Some('-') if create => {
                return Err(format!("only add attribute is supported while creating topic. key: {name}"));
            }
            Some('-') => {
                if !current.contains_key(name) {
                    return Err(format!("attempt to delete a nonexistent key: {name}"));
                }
                if !rule.changeable {
                    return Err(format!("attempt to update an unchangeable attribute. key: {name}"));
                }
                result.remove(name);
            }
            _ if create => {
                return Err(format!("only add attribute is supported while creating topic. key: {name}"));
            }
            _ => return Err(format!("wrong format key: {name}")),
        }
    }
    Ok(result)
}

fn verify(rule: &Rule, value: &str) -> Result<(), String> {
    match rule.values {
        Some(values) if values.contains(&value) => Ok(()),
        Some(values) => Err(format!("value is not in set: {values:?}")),
        None => match value.parse::<i64>() {
            Ok(number) if number >= -1 => Ok(()),
            Ok(number) => Err(format!("value is not in range(-1, {}): {number}", i64::MAX)),
            Err(_) => Err(format!("not a number: {value}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn attribute_changes_parse_like_java() {
        let changes = parse_changes(Some("+message.type=FIFO,-reserve.time")).unwrap();
        assert_eq!(changes.get("+message.type").map(String::as_str), Some("FIFO"));
        assert_eq!(changes.get("-reserve.time").map(String::as_str), Some(""));
        assert!(parse_changes(Some("message.type=FIFO")).is_err());
        assert!(parse_changes(Some("reserve.time")).is_err());
        assert!(parse_changes(Some("+a=1,+a=2")).is_err());
        assert!(parse_changes(Some("+a=")).is_err());
        assert!(parse_changes(None).unwrap().is_empty());
    }

    #[test]
    fn attributes_alter_like_java() {
        let none = BTreeMap::new();
        let add = parse_changes(Some("+message.type=FIFO,+queue.type=SimpleCQ")).unwrap();
        let created = alter(true, &none, &add).unwrap();
        assert_eq!(created.get("message.type").map(String::as_str), Some("FIFO"));
        // Unchangeable after creation; deletions only of what exists; values checked.
        let change_queue_type = parse_changes(Some("+queue.type=BatchCQ")).unwrap();
        assert!(alter(false, &created, &change_queue_type).is_err());
        let delete_missing = parse_changes(Some("-reserve.time")).unwrap();
        assert!(alter(false, &created, &delete_missing).is_err());
        assert!(alter(true, &none, &delete_missing).is_err());
        let bad_value = parse_changes(Some("+message.type=WHATEVER")).unwrap();
        assert!(alter(false, &created, &bad_value).is_err());
        let unknown = parse_changes(Some("+colour=red")).unwrap();
        assert!(alter(true, &none, &unknown).is_err());
        let update = parse_changes(Some("+message.type=NORMAL,+reserve.time=24")).unwrap();
        let updated = alter(false, &created, &update).unwrap();
        assert_eq!(updated.get("message.type").map(String::as_str), Some("NORMAL"));
        assert_eq!(updated.get("reserve.time").map(String::as_str), Some("24"));
        let delete = parse_changes(Some("-reserve.time")).unwrap();
        assert!(!alter(false, &updated, &delete).unwrap().contains_key("reserve.time"));
    }
}
