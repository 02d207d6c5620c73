//! Security on the remoting protocol, end to end over loopback: ACL 1.0 from
//! `plain_acl.yml` (signed SDK clients served, wrong secrets, unsigned clients and denied
//! topics refused with NO_PERMISSION, file edits taking effect without a restart), and TLS
//! (permissive and enforcing modes, trust by certificate or test mode).
//!
//! 127.0.0.1 is not whitelisted in the ACL files, so every request must carry a signature.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apogee_client::{Admin, ClientError, ConsumeResult, Message, MessageExt, Producer, PushConsumer};
use apogee_common::perm;
use apogee_common::topic::TopicConfig;
use apogee_remoting::acl::{self, SessionCredentials};
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::code::response_code;
use apogee_remoting::header::send::SendMessageRequestHeader;
use apogee_remoting::router::Router;
use apogee_remoting::tls::{self, ClientTls, ServerTrust};
use apogee_remoting::RemotingCommand;
use apogee_testkit::{eventually, standalone_args, ApogeeProcess, Cluster};
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

// ---- TLS on the remoting port ----

/// A producer of group `group` over TLS believing `trust`, or over plaintext.
async fn tls_producer(namesrv: &str, group: &str, tls: Option<ServerTrust>) -> Producer {
    let mut builder = Producer::builder().group(group).namesrv(namesrv).instance_name(group);
    if let Some(trust) = tls {
        builder = builder.tls(trust);
    }
    builder.start().await.expect("producer started")
}

async fn sends(producer: &Producer, topic: &str) -> Result<(), ClientError> {
    producer.send(Message::new(topic, &b"over the wire"[..])).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_mode_serves_tls_and_plaintext_clients() {
    // Java's default: tls.server.mode=permissive with a generated certificate.
    let cluster = Cluster::builder().start().await;
    cluster.create_topic("TlsTopic", 2, perm::READ_WRITE).await;
    let encrypted = tls_producer(cluster.namesrv_addr(), "tls-producer", Some(ServerTrust::Anything)).await;
    sends(&encrypted, "TlsTopic").await.expect("a TLS client sends");
    let plain = tls_producer(cluster.namesrv_addr(), "plain-producer", None).await;
    sends(&plain, "TlsTopic").await.expect("a plaintext client sends");
    encrypted.shutdown().await;
    plain.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_mode_refuses_plaintext_and_verifying_clients_trust_the_written_certificate() {
    let cluster = Cluster::builder()
        .configure(|_, config| config.tls.set("tls.server.mode", "enforcing").expect("a TLS key"))
        .start()
        .await;
    cluster.create_topic("EnforcedTopic", 2, perm::READ_WRITE).await;
    let broker = cluster.broker_addr(0);

    // Plaintext is closed on the broker port: a raw call gets no answer.
    let plain_raw = raw_client(None);
    let refused = plain_raw.invoke(&broker, send_request(&cluster, "EnforcedTopic"), STEP).await;
    assert!(refused.is_err(), "plaintext must be refused, got {refused:?}");
    let plain = tls_producer(cluster.namesrv_addr(), "enforced-plain", None).await;
    assert!(sends(&plain, "EnforcedTopic").await.is_err(), "a plaintext producer must fail");

    // A TLS client in test mode is served.
    let tls_raw = RemotingClient::new(
        ClientConfig {
            tls: Some(std::sync::Arc::new(ClientTls::new(ServerTrust::Anything).expect("client TLS"))),
            ..ClientConfig::default()
        },
        Router::new(),
    );
    let served =
        tls_raw.invoke(&broker, send_request(&cluster, "EnforcedTopic"), STEP).await.expect("answered");
    assert_eq!(served.code, response_code::SUCCESS, "{:?}", served.remark);

    // A verifying SDK client given the broker's and the NameServer's generated certificates.
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trusted.pem");
    let broker_cert = cluster.broker_state(0).config.remoting_self_signed_cert_path();
    let namesrv_cert = cluster.dir().join("namesrv-0").join("tls").join(tls::SELF_SIGNED_CERT_FILE);
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(&broker_cert).expect("the broker's certificate is written"),
        std::fs::read_to_string(&namesrv_cert).expect("the NameServer's certificate is written"),
    );
    std::fs::write(&trust, bundle).expect("trust file written");
    let verifying =
        tls_producer(cluster.namesrv_addr(), "enforced-verifying", Some(ServerTrust::Certificates(trust)))
            .await;
    sends(&verifying, "EnforcedTopic").await.expect("a verifying TLS producer sends");

    // A client believing only an unrelated certificate refuses the broker.
    let stranger = dir.path().join("stranger.pem");
    tls::certified_key(&tls::CertificateSource::SelfSigned {
        hosts: tls::self_signed_hosts("127.0.0.1"),
        write_to: stranger.clone(),
    })
    .expect("a certificate");
    let doubting = RemotingClient::new(
        ClientConfig {
            tls: Some(std::sync::Arc::new(
                ClientTls::new(ServerTrust::Certificates(stranger)).expect("client TLS"),
            )),
            ..ClientConfig::default()
        },
        Router::new(),
    );
    assert!(doubting.invoke(&broker, send_request(&cluster, "EnforcedTopic"), STEP).await.is_err());

    for client in [plain_raw, tls_raw, doubting] {
        client.shutdown().await;
    }
    plain.shutdown().await;
    verifying.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_enforcing_tls_with_tls_enable_registers_and_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, "tls.server.mode=enforcing\ntls.enable=true\n").expect("conf written");
    let conf = conf.display().to_string();
    let args = standalone_args(&["-c", conf.as_str()]);
    let apogee = ApogeeProcess::start(env!("CARGO_BIN_EXE_apogee"), &args);
    // The topic is created over TLS, and its route appears only once the broker registered it
    // with the enforcing NameServer, over TLS too.
    let admin = Admin::builder()
        .namesrv(apogee.namesrv_addr().to_owned())
        .tls(ServerTrust::Anything)
        .start()
        .await
        .expect("admin started");
    let topic = "StandaloneTlsTopic";
    let config = TopicConfig::with_queues(topic, 2, 2, perm::READ_WRITE);
    admin.create_topic(apogee.broker_addr(), &config).await.expect("topic created over TLS");
    eventually("the topic's route", STEP, || async { admin.topic_route(topic).await.ok() }).await;
    let producer = tls_producer(apogee.namesrv_addr(), "standalone-tls", Some(ServerTrust::Anything)).await;
    sends(&producer, topic).await.expect("a TLS producer sends");
    let plain = raw_client(None);
    let request = RemotingCommand::request(apogee_remoting::code::request_code::GET_ROUTEINFO_BY_TOPIC)
        .with_ext("topic", "TBW102");
    assert!(
        plain.invoke(apogee.namesrv_addr(), request, STEP).await.is_err(),
        "plaintext NameServer call refused"
    );
    plain.shutdown().await;
    producer.shutdown().await;
    drop(admin);
}
