//! Security on the remoting protocol, end to end over loopback: ACL 1.0 from
//! `plain_acl.yml` (signed SDK clients served, wrong secrets, unsigned clients and denied
//! topics refused with NO_PERMISSION, file edits taking effect without a restart).
//!
//! 127.0.0.1 is not whitelisted in these files, so every request must carry a signature.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apogee_client::{ClientError, ConsumeResult, Message, MessageExt, Producer, PushConsumer};
use apogee_common::perm;
use apogee_remoting::acl::{self, SessionCredentials};
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::code::response_code;
use apogee_remoting::header::send::SendMessageRequestHeader;
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use apogee_testkit::{eventually, Cluster};
use tokio::sync::mpsc;

/// Poll period of the ACL file in these tests.
const WATCH_MS: u64 = 200;
/// Bound of every single wait.
const STEP: Duration = Duration::from_secs(20);

const PRODUCER_KEY: &str = "producer-key";
const PRODUCER_SECRET: &str = "producer-secret";

/// Accounts: one that may send to and consume `AclTopic` (and nothing else), none whitelisted.
const ACL_FILE: &str = "\
globalWhiteRemoteAddresses:
  - 10.250.250.*
accounts:
  - accessKey: producer-key
    secretKey: producer-secret
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - AclTopic=PUB|SUB
      - AclForbidden=DENY
    groupPerms:
      - acl-banned-group=DENY
";

/// A cluster of one broker checking `file` (written under its own temporary directory).
async fn acl_cluster(file: &str) -> (Cluster, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plain_acl.yml");
    std::fs::write(&path, file).expect("acl file written");
    let configured = path.clone();
    let cluster = Cluster::builder()
        .configure(move |_, config| {
            config.acl_enable = true;
            config.acl_plain_file = configured.clone();
            config.acl_file_watch_interval_ms = WATCH_MS;
        })
        .start()
        .await;
    for topic in ["AclTopic", "AclForbidden"] {
        cluster.create_topic(topic, 2, perm::READ_WRITE).await;
    }
    (cluster, dir, path)
}

/// A raw client signing with `credentials` (none: unsigned).
fn raw_client(credentials: Option<SessionCredentials>) -> RemotingClient {
    RemotingClient::new(ClientConfig { credentials, ..ClientConfig::default() }, Router::new())
}

fn send_request(cluster: &Cluster, topic: &str) -> RemotingCommand {
    SendMessageRequestHeader::plain("acl-producer", topic, 0, "", cluster.broker_name(0))
        .into_v2_request(b"hello".to_vec())
}

async fn raw_send(cluster: &Cluster, client: &RemotingClient, topic: &str) -> RemotingCommand {
    client
        .invoke(&cluster.broker_addr(0), send_request(cluster, topic), STEP)
        .await
        .expect("the broker answers")
}

async fn producer(cluster: &Cluster, secret: &str) -> Producer {
    Producer::builder()
        .group("acl-producer")
        .namesrv(cluster.namesrv_addr())
        .credentials(SessionCredentials::new(PRODUCER_KEY, secret))
        .start()
        .await
        .expect("producer started")
}

fn assert_no_permission(error: &ClientError, remark_part: &str) {
    match error {
        ClientError::Broker { code, remark, .. } => {
            assert_eq!(*code, response_code::NO_PERMISSION, "{error}");
            assert!(remark.contains(remark_part), "remark {remark:?} should name {remark_part:?}");
        }
        other => panic!("expected NO_PERMISSION, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_sdk_clients_are_served_and_the_rest_refused() {
    let (cluster, _dir, _path) = acl_cluster(ACL_FILE).await;

    // The right keys: a producer sends and a push consumer receives.
    let (received, mut receiving) = mpsc::unbounded_channel::<String>();
    let consumer = PushConsumer::builder()
        .group("acl-consumers")
        .namesrv(cluster.namesrv_addr())
        .credentials(SessionCredentials::new(PRODUCER_KEY, PRODUCER_SECRET))
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .subscribe("AclTopic", "*")
        .start(move |messages: Vec<MessageExt>| {
            let received = received.clone();
            async move {
                for message in messages {
                    let _ = received.send(String::from_utf8_lossy(&message.message.body).into_owned());
                }
                ConsumeResult::Success
            }
        })
        .await
        .expect("consumer started");
    let good = producer(&cluster, PRODUCER_SECRET).await;
    good.send(Message::new("AclTopic", &b"signed and allowed"[..])).await.expect("the right keys send");
    let body =
        tokio::time::timeout(STEP, receiving.recv()).await.expect("received in time").expect("a message");
    assert_eq!(body, "signed and allowed");

    // A topic the account is denied.
    let denied = good.send(Message::new("AclForbidden", &b"no"[..])).await.expect_err("DENY refuses");
    assert_no_permission(&denied, "topic:AclForbidden");

    // The wrong secret.
    let wrong = producer(&cluster, "not-the-secret").await;
    let refused =
        wrong.send(Message::new("AclTopic", &b"bad"[..])).await.expect_err("a wrong secret is refused");
    assert_no_permission(&refused, "Check signature failed for accessKey=producer-key");

    consumer.shutdown().await;
    good.shutdown().await;
    wrong.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_unknown_clients_are_refused_on_the_wire() {
    let (cluster, _dir, _path) = acl_cluster(ACL_FILE).await;
    let unsigned = raw_client(None);
    let response = raw_send(&cluster, &unsigned, "AclTopic").await;
    assert_eq!(response.code, response_code::NO_PERMISSION);
    assert_eq!(response.remark.as_deref(), Some("No accessKey is configured"));

    let stranger = raw_client(Some(SessionCredentials::new("stranger-key", "stranger-secret")));
    let response = raw_send(&cluster, &stranger, "AclTopic").await;
    assert_eq!((response.code, response.remark.as_deref()), (16, Some("No acl config for stranger-key")));

    // A signed request altered after signing fails the signature check.
    let mut tampered = send_request(&cluster, "AclTopic");
    acl::sign(&mut tampered, &SessionCredentials::new(PRODUCER_KEY, PRODUCER_SECRET));
    tampered = tampered.with_body(&b"changed"[..]);
    let response = unsigned.invoke(&cluster.broker_addr(0), tampered, STEP).await.expect("answered");
    assert_eq!(response.code, response_code::NO_PERMISSION);

    let signed = raw_client(Some(SessionCredentials::new(PRODUCER_KEY, PRODUCER_SECRET)));
    let response = raw_send(&cluster, &signed, "AclTopic").await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    // Admin codes need an admin account.
    let create = RemotingCommand::request(apogee_remoting::code::request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", "Sneaky");
    let response = signed.invoke(&cluster.broker_addr(0), create, STEP).await.expect("answered");
    assert_eq!(response.code, response_code::NO_PERMISSION);
    assert!(response.remark.unwrap_or_default().contains("Need admin permission"));

    for client in [unsigned, stranger, signed] {
        client.shutdown().await;
    }
    cluster.shutdown().await;
}

/// Writes `text` to `path` through a temporary file and a rename, as editors do.
fn rewrite(path: &Path, text: &str) {
    let temporary = path.with_extension("yml.tmp");
    std::fs::write(&temporary, text).expect("written");
    std::fs::rename(&temporary, path).expect("renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_take_effect_without_a_restart() {
    let (cluster, _dir, path) = acl_cluster(ACL_FILE).await;
    let newcomer = raw_client(Some(SessionCredentials::new("newcomer-key", "newcomer-secret")));
    let response = raw_send(&cluster, &newcomer, "AclTopic").await;
    assert_eq!(response.remark.as_deref(), Some("No acl config for newcomer-key"));

    let added = format!(
        "{ACL_FILE}  - accessKey: newcomer-key\n    secretKey: newcomer-secret\n    topicPerms: [AclTopic=PUB]\n"
    );
    rewrite(&path, &added);
    let served = eventually("the new account to be served", STEP, || async {
        let response = raw_send(&cluster, &newcomer, "AclTopic").await;
        (response.code == response_code::SUCCESS).then_some(response)
    })
    .await;
    assert_eq!(served.code, response_code::SUCCESS);

    // A file that does not parse is ignored: the newcomer stays served.
    rewrite(&path, "accounts: [\n");
    tokio::time::sleep(Duration::from_millis(WATCH_MS * 4)).await;
    assert_eq!(raw_send(&cluster, &newcomer, "AclTopic").await.code, response_code::SUCCESS);

    // Taking the account away refuses it again.
    rewrite(&path, ACL_FILE);
    eventually("the removed account to be refused", STEP, || async {
        let response = raw_send(&cluster, &newcomer, "AclTopic").await;
        (response.code == response_code::NO_PERMISSION).then_some(())
    })
    .await;
    newcomer.shutdown().await;
    cluster.shutdown().await;
}
