//! What each request needs, as Java's `PlainAccessResource.parse` (5.3) reads it: the topics
//! and groups a request touches with the permission it needs on each, and the codes only an
//! admin account may send. Groups are named by their retry topic (`%RETRY%group`).
//!
//! Beyond Java's list (which leaves POP to the proxy's gRPC checks), POP_MESSAGE,
//! ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, NOTIFICATION and LITE_PULL_MESSAGE need SUB on
//! their topic and group, like PULL_MESSAGE; UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST needs
//! admin like the single-group form.

use apogee_common::topic::{is_retry_topic, retry_topic};
use apogee_remoting::body::heartbeat::HeartbeatData;
use apogee_remoting::code::request_code as code;
use apogee_remoting::RemotingCommand;

use super::policy::perm;

/// 4.9-only ACL admin codes Java 5.3 still lists: UPDATE_AND_CREATE_ACL_CONFIG,
/// DELETE_ACL_CONFIG, GET_BROKER_CLUSTER_ACL_INFO.
const ACL_CONFIG_CODES: [i32; 3] = [50, 51, 52];

/// Java `Permission.needAdminPerm`, plus the list form of group creation.
pub fn needs_admin(request_code: i32) -> bool {
    matches!(
        request_code,
        code::UPDATE_AND_CREATE_TOPIC
            | code::UPDATE_BROKER_CONFIG
            | code::DELETE_TOPIC_IN_BROKER
            | code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST
            | code::DELETE_SUBSCRIPTIONGROUP
            | code::UPDATE_AND_CREATE_STATIC_TOPIC
    ) || ACL_CONFIG_CODES.contains(&request_code)
}

/// The resources `request` needs and the permission each needs. `Err` when the request's
/// own data cannot be read (a HEART_BEAT body that is not a heartbeat): Java refuses those.
pub fn needed(request: &RemotingCommand) -> Result<Vec<(String, u8)>, String> {
    let mut needed = Vec::new();
    let field = |key: &str| request.ext(key);
    let mut add = |resource: Option<String>, permission: u8| {
        if let Some(resource) = resource {
            needed.push((resource, permission));
        }
    };
    let group = |key: &str| field(key).map(retry_topic);
    match request.code {
        code::SEND_MESSAGE | code::SEND_MESSAGE_V2 | code::SEND_BATCH_MESSAGE => {
            let key = if request.code == code::SEND_MESSAGE { "topic" } else { "b" };
            let topic = field(key);
            // A retry topic is sent to by a consumer sending a message back.
            let permission = if topic.is_some_and(is_retry_topic) { perm::SUB } else { perm::PUB };
            add(topic.map(str::to_owned), permission);
        }
        code::CONSUMER_SEND_MSG_BACK => add(group("group"), perm::SUB),
        code::PULL_MESSAGE
        | code::LITE_PULL_MESSAGE
        | code::POP_MESSAGE
        | code::ACK_MESSAGE
        | code::CHANGE_MESSAGE_INVISIBLETIME
        | code::NOTIFICATION => {
            add(field("topic").map(str::to_owned), perm::SUB);
            add(group("consumerGroup"), perm::SUB);
        }
        code::QUERY_MESSAGE => add(field("topic").map(str::to_owned), perm::SUB),
        code::HEART_BEAT => {
            let heartbeat: HeartbeatData = apogee_remoting::fastjson::from_slice(&request.body)
                .map_err(|error| format!("malformed HeartbeatData body: {error}"))?;
            for consumer in heartbeat.consumer_data_set {
                add(Some(retry_topic(&consumer.group_name)), perm::SUB);
                for subscription in consumer.subscription_data_set {
                    add(Some(subscription.topic), perm::SUB);
                }
            }
        }
        code::UNREGISTER_CLIENT | code::GET_CONSUMER_LIST_BY_GROUP => add(group("consumerGroup"), perm::SUB),
        code::UPDATE_CONSUMER_OFFSET => {
            add(group("consumerGroup"), perm::SUB);
            add(field("topic").map(str::to_owned), perm::SUB);
        }
        _ => {}
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(request: RemotingCommand) -> Vec<(String, u8)> {
        let mut needed = needed(&request).unwrap();
        needed.sort();
        needed
    }

    #[test]
    fn sends_need_pub_and_sending_back_needs_sub() {
        let v1 = RemotingCommand::request(code::SEND_MESSAGE)
            .with_ext("topic", "T")
            .with_ext("producerGroup", "P");
        assert_eq!(needs(v1), vec![("T".to_owned(), perm::PUB)]);
        let v2 = RemotingCommand::request(code::SEND_MESSAGE_V2).with_ext("b", "T").with_ext("a", "P");
        assert_eq!(needs(v2), vec![("T".to_owned(), perm::PUB)]);
        let retry = RemotingCommand::request(code::SEND_BATCH_MESSAGE).with_ext("b", "%RETRY%G");
        assert_eq!(needs(retry), vec![("%RETRY%G".to_owned(), perm::SUB)]);
        let back = RemotingCommand::request(code::CONSUMER_SEND_MSG_BACK).with_ext("group", "G");
        assert_eq!(needs(back), vec![("%RETRY%G".to_owned(), perm::SUB)]);
    }

    #[test]
    fn consuming_needs_sub_on_topic_and_group() {
        for request_code in
            [code::PULL_MESSAGE, code::POP_MESSAGE, code::ACK_MESSAGE, code::UPDATE_CONSUMER_OFFSET]
        {
            let request =
                RemotingCommand::request(request_code).with_ext("topic", "T").with_ext("consumerGroup", "G");
            assert_eq!(
                needs(request),
                vec![("%RETRY%G".to_owned(), perm::SUB), ("T".to_owned(), perm::SUB)],
                "code {request_code}"
            );
        }
        let list = RemotingCommand::request(code::GET_CONSUMER_LIST_BY_GROUP).with_ext("consumerGroup", "G");
        assert_eq!(needs(list), vec![("%RETRY%G".to_owned(), perm::SUB)]);
        let query = RemotingCommand::request(code::QUERY_MESSAGE).with_ext("topic", "T");
        assert_eq!(needs(query), vec![("T".to_owned(), perm::SUB)]);
        // A producer leaving names no consumer group: nothing to check.
        let leave = RemotingCommand::request(code::UNREGISTER_CLIENT).with_ext("producerGroup", "P");
        assert!(needs(leave).is_empty());
    }

    #[test]
    fn heartbeat_needs_each_subscription() {
        let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T1"},{"topic":"T2"}]}],"producerDataSet":[{"groupName":"P"}]}"#;
        let request = RemotingCommand::request(code::HEART_BEAT).with_body(&body[..]);
        assert_eq!(
            needs(request),
            vec![
                ("%RETRY%G".to_owned(), perm::SUB),
                ("T1".to_owned(), perm::SUB),
                ("T2".to_owned(), perm::SUB)
            ]
        );
        let garbage = RemotingCommand::request(code::HEART_BEAT).with_body(&b"{not json"[..]);
        assert!(needed(&garbage).is_err());
    }

    #[test]
    fn admin_codes() {
        assert!(needs_admin(code::UPDATE_AND_CREATE_TOPIC));
        assert!(needs_admin(code::DELETE_SUBSCRIPTIONGROUP));
        assert!(needs_admin(50));
        assert!(!needs_admin(code::SEND_MESSAGE));
        assert!(!needs_admin(code::GET_ROUTEINFO_BY_TOPIC));
    }
}
