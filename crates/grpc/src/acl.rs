//! ACL 1.0 on the gRPC endpoint (spec grpc-v5.md §3): with ACL on (the broker's `aclEnable`
//! embedded, `enableACL` for `apogee proxy`), every call is judged by the same
//! [`AclValidator`] and `plain_acl.yml` as the remoting ports, as Java's 5.1 proxy did
//! (`AuthenticationInterceptor` → `PlainAccessValidator.parse(GeneratedMessageV3,
//! AuthenticationHeader)`). This module says what a call presents: the access key and
//! signature of its `authorization` header, the `x-mq-date-time` value signed, and the topics
//! and groups each RPC touches ([`Guarded`]). The order of checks (whitelists, account,
//! signature, permissions) is the validator's, not repeated here.
//!
//! Refusals are body statuses: UNAUTHORIZED (40100) when who calls is not established (no or
//! an unknown access key, a signature that does not verify, a header that does not parse),
//! FORBIDDEN (40300) when a verified account may not use a topic or group. The reference maps
//! both to UNAUTHORIZED (5.3) or a gRPC PERMISSION_DENIED (5.1); clients raise their
//! Unauthorized and Forbidden errors, which tell the user which of the two went wrong.

use std::net::IpAddr;

use apogee_broker::acl::policy::perm;
use apogee_broker::acl::{AclValidator, Presented, Refusal as AclRefusal};
use apogee_common::topic::retry_topic;
use apogee_remoting::acl::{digest_matches, HMAC_SHA1_BYTES};
use apogee_remoting::code::request_code;
use tonic::metadata::MetadataMap;

use crate::pb::*;
use crate::status::Refusal;

/// Header carrying the signature (spec §3.1).
pub const AUTHORIZATION: &str = "authorization";
/// Header whose exact value is signed.
pub const DATE_TIME: &str = "x-mq-date-time";
/// Longest `authorization` header read, in bytes: an access key and a 40-digit signature fit
/// many times over.
pub const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// The signature headers of one call, read once (a Telemetry stream's Settings are judged
/// with the headers of the call that opened it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSignature {
    authorization: Option<String>,
    date_time: Option<String>,
}

impl CallSignature {
    /// Reads the headers of a call.
    pub fn of(metadata: &MetadataMap) -> Self {
        let header = |name: &str| metadata.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        Self { authorization: header(AUTHORIZATION), date_time: header(DATE_TIME) }
    }
}

/// The access key and signature of an `authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization {
    /// Text of `Credential` before its first `/` (Go and C++ append region and service).
    access_key: String,
    /// The decoded `Signature` (hex of either case); `None` when the header has none.
    signature: Option<Vec<u8>>,
}

/// Parses `MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, Signature=HEX` as
/// Java's `AuthorizationHeader` does: split once at the first space, the rest on `,`, each
/// item trimmed and split at its first `=`; the algorithm and `SignedHeaders` are not checked.
fn parse_authorization(header: &str) -> Result<Authorization, String> {
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(format!("authorization header longer than {MAX_AUTHORIZATION_BYTES} bytes"));
    }
    let Some((_algorithm, items)) = header.split_once(' ') else {
        return Err("authorization header is incorrect: expected `MQv2-HMAC-SHA1 Credential=..., \
                    SignedHeaders=x-mq-date-time, Signature=...`"
            .to_owned());
    };
    let mut access_key = String::new();
    let mut signature = None;
    for item in items.split(',') {
        let Some((name, value)) = item.trim().split_once('=') else {
            return Err(format!("authorization item {:?} is not name=value", item.trim()));
        };
        match name {
            "Credential" => access_key = value.split('/').next().unwrap_or_default().to_owned(),
            "Signature" => {
                signature = Some(
                    decode_hex(value)
                        .ok_or_else(|| format!("authorization Signature {value:?} is not hexadecimal"))?,
                )
            }
            _ => {}
        }
    }
    Ok(Authorization { access_key, signature })
}

/// Hex digits (either case) as bytes; `None` for an odd length or a non-hex digit.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |digit: u8| (digit as char).to_digit(16).map(|value| value as u8);
    digits.chunks_exact(2).map(|pair| Some(value(pair[0])? << 4 | value(pair[1])?)).collect()
}

/// What one RPC's request touches, as Java's `PlainAccessResource.parse` reads a gRPC message.
pub trait Guarded {
    /// The topics and groups (as retry topics) with the permission each needs; `Err` when the
    /// request cannot be read for them (Java's `AclException` from `parse`).
    fn needed(&self) -> Result<Vec<(String, u8)>, String>;
    /// The remoting code Java's `RequestMapping` counts the RPC as.
    const REQUEST_CODE: i32;
}

/// Judges one request of a call from `remote` with the call's `signature` headers.
pub fn check(
    validator: &AclValidator,
    remote: IpAddr,
    signature: &CallSignature,
    request: &impl Guarded,
) -> Result<(), Refusal> {
    let authorization = match signature.authorization.as_deref() {
        Some(header) => Some(parse_authorization(header).map_err(|remark| {
            Refusal::new(Code::Unauthorized, format!("Authentication failed: {remark}"))
        })?),
        None => None,
    };
    let presented = GrpcRequest { authorization, date_time: signature.date_time.as_deref(), request };
    validator.judge(remote, &presented).map_err(|refusal| {
        tracing::debug!(%remote, ?refusal, "grpc request refused by ACL");
        match refusal {
            AclRefusal::Unauthenticated(remark) => {
                Refusal::new(Code::Unauthorized, format!("Authentication failed: {remark}"))
            }
            AclRefusal::Forbidden(remark) => {
                Refusal::new(Code::Forbidden, format!("Access denied: {remark}"))
            }
        }
    })
}

/// A gRPC request as the validator judges it.
struct GrpcRequest<'a, T> {
    authorization: Option<Authorization>,
    date_time: Option<&'a str>,
    request: &'a T,
}

impl<T: Guarded> Presented for GrpcRequest<'_, T> {
    fn access_key(&self) -> Option<&str> {
        self.authorization.as_ref().map(|header| header.access_key.as_str()).filter(|key| !key.is_empty())
    }

    fn signature_verifies(&self, secret_key: &str) -> bool {
        let (Some(date_time), Some(signature)) =
            (self.date_time, self.authorization.as_ref().and_then(|header| header.signature.as_deref()))
        else {
            return false;
        };
        signature.len() == HMAC_SHA1_BYTES && digest_matches(date_time.as_bytes(), secret_key, signature)
    }

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        self.request.needed()
    }

    fn request_code(&self) -> i32 {
        T::REQUEST_CODE
    }
}

/// A resource's name; an absent resource is the empty name, as Java's default instance is.
fn name(resource: Option<&Resource>) -> String {
    resource.map(|resource| resource.name.clone()).unwrap_or_default()
}

/// A group's entry: its retry topic, as `plain_acl.yml`'s groups are kept.
fn group(resource: Option<&Resource>) -> String {
    retry_topic(&name(resource))
}

/// SUB on the group and the topic: what every consuming RPC needs.
fn consuming(group_resource: Option<&Resource>, topic: Option<&Resource>) -> Vec<(String, u8)> {
    vec![(group(group_resource), perm::SUB), (name(topic), perm::SUB)]
}

impl Guarded for QueryRouteRequest {
    const REQUEST_CODE: i32 = request_code::GET_ROUTEINFO_BY_TOPIC;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(vec![(name(self.topic.as_ref()), perm::ANY)])
    }
}

impl Guarded for HeartbeatRequest {
    const REQUEST_CODE: i32 = request_code::HEART_BEAT;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        let consumer = [ClientType::PushConsumer as i32, ClientType::SimpleConsumer as i32];
        if !consumer.contains(&self.client_type) {
            return Ok(Vec::new());
        }
        match &self.group {
            Some(resource) => Ok(vec![(retry_topic(&resource.name), perm::SUB)]),
            None => Err("Consumer heartbeat doesn't have group".to_owned()),
        }
    }
}

impl Guarded for SendMessageRequest {
    const REQUEST_CODE: i32 = request_code::SEND_MESSAGE_V2;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        let Some(first) = self.messages.first() else {
            return Err("SendMessageRequest, messageCount is zero".to_owned());
        };
        let topic = name(first.topic.as_ref());
        if self.messages.iter().any(|message| name(message.topic.as_ref()) != topic) {
            return Err("SendMessageRequest, messages' topic is not consistent".to_owned());
        }
        Ok(vec![(topic, perm::PUB)])
    }
}

impl Guarded for QueryAssignmentRequest {
    const REQUEST_CODE: i32 = request_code::GET_ROUTEINFO_BY_TOPIC;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(consuming(self.group.as_ref(), self.topic.as_ref()))
    }
}

impl Guarded for ReceiveMessageRequest {
    const REQUEST_CODE: i32 = request_code::PULL_MESSAGE;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        let topic = self.message_queue.as_ref().and_then(|queue| queue.topic.as_ref());
        Ok(consuming(self.group.as_ref(), topic))
    }
}

impl Guarded for AckMessageRequest {
    const REQUEST_CODE: i32 = request_code::UPDATE_CONSUMER_OFFSET;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(consuming(self.group.as_ref(), self.topic.as_ref()))
    }
}

impl Guarded for ForwardMessageToDeadLetterQueueRequest {
    const REQUEST_CODE: i32 = request_code::CONSUMER_SEND_MSG_BACK;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(consuming(self.group.as_ref(), self.topic.as_ref()))
    }
}

impl Guarded for ChangeInvisibleDurationRequest {
    const REQUEST_CODE: i32 = request_code::CONSUMER_SEND_MSG_BACK;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(consuming(self.group.as_ref(), self.topic.as_ref()))
    }
}

impl Guarded for EndTransactionRequest {
    const REQUEST_CODE: i32 = request_code::END_TRANSACTION;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(vec![(name(self.topic.as_ref()), perm::PUB)])
    }
}

/// Not in Java 5.1's list (recall came later): PUB on the topic, as the 5.3 reference
/// authorizes it (spec §3.2).
impl Guarded for RecallMessageRequest {
    const REQUEST_CODE: i32 = request_code::RECALL_MESSAGE;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(vec![(name(self.topic.as_ref()), perm::PUB)])
    }
}

impl Guarded for NotifyClientTerminationRequest {
    const REQUEST_CODE: i32 = request_code::UNREGISTER_CLIENT;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        Ok(vec![(group(self.group.as_ref()), perm::SUB)])
    }
}

/// A Telemetry command: a Settings needs PUB on each published topic, SUB on the group and
/// each subscribed topic; other commands (answers to the server) need only the signature.
impl Guarded for TelemetryCommand {
    const REQUEST_CODE: i32 = request_code::HEART_BEAT;

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        let Some(telemetry_command::Command::Settings(settings)) = &self.command else {
            return Ok(Vec::new());
        };
        match &settings.pub_sub {
            Some(settings::PubSub::Publishing(publishing)) => {
                Ok(publishing.topics.iter().map(|topic| (topic.name.clone(), perm::PUB)).collect())
            }
            Some(settings::PubSub::Subscription(subscription)) => {
                let mut needed = vec![(group(subscription.group.as_ref()), perm::SUB)];
                needed.extend(
                    subscription.subscriptions.iter().map(|entry| (name(entry.topic.as_ref()), perm::SUB)),
                );
                Ok(needed)
            }
            None => Err("settings command doesn't have publishing or subscription".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const FILE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: grpc-app-key
    secretKey: grpc-app-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms: [orders=PUB, audit=SUB]
";
    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    /// Python's `Signature.sign("grpc-app-secret", "20261206T034500Z")`, computed with
    /// Python's hmac module (an independent implementation).
    const PYTHON_SIGNATURE: &str = "16bcca9eb3795c0e9dd52334d22356b6578f7bad";

    fn validator() -> (tempfile::TempDir, AclValidator) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain_acl.yml");
        std::fs::write(&path, FILE).unwrap();
        let validator = AclValidator::load(&path).unwrap();
        (dir, validator)
    }

    fn signed(access_key: &str, secret_key: &str, date_time: &str) -> CallSignature {
        let digest = apogee_remoting::acl::hmac_sha1(date_time.as_bytes(), secret_key);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        CallSignature {
            authorization: Some(format!(
                "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={hex}"
            )),
            date_time: Some(date_time.to_owned()),
        }
    }

    fn send(topic: &str) -> SendMessageRequest {
        let message = Message {
            topic: Some(Resource { name: topic.to_owned(), ..Resource::default() }),
            ..Message::default()
        };
        SendMessageRequest { messages: vec![message] }
    }

    #[test]
    fn headers_parse_as_java_parses_them() {
        let go = parse_authorization(
            "MQv2-HMAC-SHA1 Credential=ak//Rocketmq, SignedHeaders=x-mq-date-time, Signature=0aFF",
        )
        .unwrap();
        assert_eq!(go, Authorization { access_key: "ak".into(), signature: Some(vec![0x0a, 0xff]) });
        assert!(parse_authorization("MQv2-HMAC-SHA1").is_err());
        assert!(parse_authorization("MQv2-HMAC-SHA1 Credential").unwrap_err().contains("name=value"));
        assert!(parse_authorization("MQv2-HMAC-SHA1 Signature=abc").unwrap_err().contains("hexadecimal"));
        assert!(parse_authorization("MQv2-HMAC-SHA1 Signature=zz").is_err());
        let empty =
            parse_authorization("MQv2-HMAC-SHA1 Credential=, SignedHeaders=x-mq-date-time, Signature=")
                .unwrap();
        assert_eq!(empty, Authorization { access_key: String::new(), signature: Some(Vec::new()) });
    }

    #[test]
    fn the_python_clients_signature_verifies() {
        let (_dir, acl) = validator();
        let python = CallSignature {
            authorization: Some(format!(
                "MQv2-HMAC-SHA1 Credential=grpc-app-key, SignedHeaders=x-mq-date-time, Signature={PYTHON_SIGNATURE}"
            )),
            date_time: Some("20261206T034500Z".to_owned()),
        };
        assert_eq!(check(&acl, CLIENT, &python, &send("orders")), Ok(()));
        // Upper-case hex (Java, C++, C#, Node) is the same signature.
        let upper = CallSignature {
            authorization: python
                .authorization
                .as_ref()
                .map(|header| header.replace(PYTHON_SIGNATURE, &PYTHON_SIGNATURE.to_ascii_uppercase())),
            ..python.clone()
        };
        assert_eq!(check(&acl, CLIENT, &upper, &send("orders")), Ok(()));
        // Another date-time under the same signature does not verify.
        let replayed = CallSignature { date_time: Some("20261206T034501Z".to_owned()), ..python };
        assert_eq!(check(&acl, CLIENT, &replayed, &send("orders")).unwrap_err().code, Code::Unauthorized);
    }

    #[test]
    fn refusals_tell_authentication_from_permission() {
        let (_dir, acl) = validator();
        let right = signed("grpc-app-key", "grpc-app-secret", "20261206T010203Z");
        assert_eq!(check(&acl, CLIENT, &right, &send("orders")), Ok(()));
        let wrong = signed("grpc-app-key", "not-the-secret", "20261206T010203Z");
        let refusal = check(&acl, CLIENT, &wrong, &send("orders")).unwrap_err();
        assert_eq!(refusal.code, Code::Unauthorized);
        assert_eq!(
            refusal.message,
            "Authentication failed: Check signature failed for accessKey=grpc-app-key"
        );
        let anonymous = CallSignature::default();
        let refusal = check(&acl, CLIENT, &anonymous, &send("orders")).unwrap_err();
        assert_eq!(
            (refusal.code, refusal.message.as_str()),
            (Code::Unauthorized, "Authentication failed: No accessKey is configured")
        );
        let stranger = signed("stranger-key", "whatever", "20261206T010203Z");
        assert_eq!(check(&acl, CLIENT, &stranger, &send("orders")).unwrap_err().code, Code::Unauthorized);
        let no_date = CallSignature { date_time: None, ..right.clone() };
        assert_eq!(check(&acl, CLIENT, &no_date, &send("orders")).unwrap_err().code, Code::Unauthorized);
        let refusal = check(&acl, CLIENT, &right, &send("audit")).unwrap_err();
        assert_eq!(
            (refusal.code, refusal.message.as_str()),
            (Code::Forbidden, "Access denied: No permission for topic:audit")
        );
        assert_eq!(check(&acl, CLIENT, &right, &send("other")).unwrap_err().code, Code::Forbidden);
        // The global whitelist needs no signature.
        assert_eq!(check(&acl, "10.10.103.7".parse().unwrap(), &anonymous, &send("audit")), Ok(()));
    }

    #[test]
    fn each_rpc_needs_what_java_reads_from_it() {
        let topic = |name: &str| Some(Resource { name: name.to_owned(), ..Resource::default() });
        let receive = ReceiveMessageRequest {
            group: topic("g"),
            message_queue: Some(MessageQueue { topic: topic("t"), ..MessageQueue::default() }),
            ..ReceiveMessageRequest::default()
        };
        assert_eq!(receive.needed().unwrap(), vec![("%RETRY%g".into(), perm::SUB), ("t".into(), perm::SUB)]);
        let route = QueryRouteRequest { topic: topic("t"), ..QueryRouteRequest::default() };
        assert_eq!(route.needed().unwrap(), vec![("t".into(), perm::ANY)]);
        let producer_beat = HeartbeatRequest { group: None, client_type: ClientType::Producer as i32 };
        assert_eq!(producer_beat.needed().unwrap(), vec![]);
        let consumer_beat = HeartbeatRequest { group: None, client_type: ClientType::SimpleConsumer as i32 };
        assert!(consumer_beat.needed().is_err());
        assert!(SendMessageRequest::default().needed().is_err());
        let mixed = SendMessageRequest { messages: [send("a").messages, send("b").messages].concat() };
        assert!(mixed.needed().unwrap_err().contains("not consistent"));
        let subscription = TelemetryCommand {
            status: None,
            command: Some(telemetry_command::Command::Settings(Settings {
                pub_sub: Some(settings::PubSub::Subscription(Subscription {
                    group: topic("g"),
                    subscriptions: vec![SubscriptionEntry { topic: topic("t"), expression: None }],
                    ..Subscription::default()
                })),
                ..Settings::default()
            })),
        };
        assert_eq!(
            subscription.needed().unwrap(),
            vec![("%RETRY%g".into(), perm::SUB), ("t".into(), perm::SUB)]
        );
        let bare = TelemetryCommand {
            status: None,
            command: Some(telemetry_command::Command::Settings(Settings::default())),
        };
        assert!(bare.needed().is_err());
    }
}
