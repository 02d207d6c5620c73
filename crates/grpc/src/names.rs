//! Topic and group names a gRPC client may use (spec §5.1): RocketMQ's name rules, and no
//! system topic or group.

use apogee_common::topic::{self, GROUP_MAX_LENGTH};

use crate::pb::{Code, Resource};
use crate::status::Refusal;

/// Prefix of the broker's own consumer groups.
const SYSTEM_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// The topic a resource names; ILLEGAL_TOPIC when it is not one a client may use.
pub fn topic(resource: Option<&Resource>) -> Result<&str, Refusal> {
    let name = resource.map(|resource| resource.name.as_str()).unwrap_or_default();
    if let Err(error) = topic::validate_topic_name(name) {
        return Err(Refusal::new(Code::IllegalTopic, format!("topic '{name}' is illegal: {error}")));
    }
    if topic::is_system_topic(name) {
        return Err(Refusal::new(Code::IllegalTopic, format!("topic '{name}' is a system topic")));
    }
    Ok(name)
}

/// The consumer group a resource names; ILLEGAL_CONSUMER_GROUP when it is not one a client may
/// use.
pub fn group(resource: Option<&Resource>) -> Result<&str, Refusal> {
    let name = resource.map(|resource| resource.name.as_str()).unwrap_or_default();
    let legal = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    let problem = if name.trim().is_empty() {
        Some("is blank".to_owned())
    } else if name.len() > GROUP_MAX_LENGTH {
        Some(format!("is longer than {GROUP_MAX_LENGTH} characters"))
    } else if !name.bytes().all(legal) {
        Some("contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$".to_owned())
    } else if name.starts_with(SYSTEM_GROUP_PREFIX) {
        Some("is a system group".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Refusal::new(Code::IllegalConsumerGroup, format!("group '{name}' {problem}"))),
        None => Ok(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str) -> Resource {
        Resource { resource_namespace: String::new(), name: name.to_owned() }
    }

    #[test]
    fn system_and_malformed_names_are_refused() {
        assert_eq!(topic(Some(&resource("Orders"))), Ok("Orders"));
        assert_eq!(topic(Some(&resource("TBW102"))).unwrap_err().code, Code::IllegalTopic);
        assert_eq!(topic(Some(&resource("a b"))).unwrap_err().code, Code::IllegalTopic);
        assert_eq!(topic(None).unwrap_err().code, Code::IllegalTopic);
        assert_eq!(group(Some(&resource("billing"))), Ok("billing"));
        assert_eq!(group(Some(&resource("CID_RMQ_SYS_TRANS"))).unwrap_err().code, Code::IllegalConsumerGroup);
        assert_eq!(group(Some(&resource(&"g".repeat(121)))).unwrap_err().code, Code::IllegalConsumerGroup);
    }
}
