//! Security on the remoting protocol, end to end over loopback: ACL 1.0 from
//! `plain_acl.yml` (signed SDK clients served, wrong secrets, unsigned clients and denied
//! topics refused with NO_PERMISSION, file edits taking effect without a restart), and TLS
//! (permissive and enforcing modes, trust by certificate or test mode).
//!
//! The gRPC endpoint is judged by the same file: signed 5.x calls served, wrong signatures
//! UNAUTHORIZED, topics and groups the account may not use FORBIDDEN; `apogee proxy` by its
//! own file.
//!
//! 127.0.0.1 is not whitelisted in the ACL files, so every request must carry a signature.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apogee_client::{Admin, ClientError, ConsumeResult, Message, MessageExt, Producer, PushConsumer};
use apogee_common::perm;
use apogee_common::topic::TopicConfig;
use apogee_grpc_proto as pb;
use apogee_grpc_proto::messaging_service_client::MessagingServiceClient;
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

// ---- ACL on the gRPC endpoint ----

/// The `x-mq-date-time` every gRPC call here signs (no freshness is checked, as in Java).
const DATE_TIME: &str = "20261206T034500Z";
/// HMAC-SHA1(`producer-secret`, [`DATE_TIME`]) in hex, computed with Python's hmac module
/// (an implementation that shares nothing with Apogee's).
const PRODUCER_SIGNATURE: &str = "0a5f374fe92dd2df9e14697c37825d5c35dc4d94";
/// HMAC-SHA1(`not-the-secret`, [`DATE_TIME`]) in hex, the same way.
const WRONG_SIGNATURE: &str = "a5dbd85dbe8f7bd2d7621ea4bc25cc46f31faaab";

/// A unary call's request with the 5.x headers, signed with `signature` for `access_key`
/// (none: anonymous).
fn grpc_request<T>(message: T, signed: Option<(&str, &str)>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-mq-client-id", "acl-grpc-client".parse().expect("ascii"));
    metadata.insert("x-mq-date-time", DATE_TIME.parse().expect("ascii"));
    if let Some((access_key, signature)) = signed {
        let header = format!(
            "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={signature}"
        );
        metadata.insert("authorization", header.parse().expect("ascii"));
    }
    request
}

fn grpc_send(topic: &str, body: &str) -> pb::SendMessageRequest {
    let message_id =
        format!("01{:032X}", u128::from(body.len() as u64) << 64 | u128::from(std::process::id()));
    pb::SendMessageRequest {
        messages: vec![pb::Message {
            topic: Some(pb::Resource { name: topic.to_owned(), ..pb::Resource::default() }),
            body: body.as_bytes().to_vec(),
            system_properties: Some(pb::SystemProperties {
                message_id,
                body_encoding: pb::Encoding::Identity as i32,
                message_type: pb::MessageType::Normal as i32,
                ..pb::SystemProperties::default()
            }),
            ..pb::Message::default()
        }],
    }
}

/// The body status of a send.
async fn grpc_send_status(
    client: &mut MessagingServiceClient<tonic::transport::Channel>,
    topic: &str,
    signed: Option<(&str, &str)>,
) -> pb::Status {
    let response = client.send_message(grpc_request(grpc_send(topic, "over grpc"), signed)).await;
    response.expect("unary calls end gRPC OK").into_inner().status.expect("a body status")
}

/// Sends of [`ACL_FILE`]'s account: served to `AclTopic`, FORBIDDEN to a denied topic and to
/// one no rule names, UNAUTHORIZED with the wrong signature or none.
async fn assert_send_statuses(client: &mut MessagingServiceClient<tonic::transport::Channel>) {
    let producer = Some((PRODUCER_KEY, PRODUCER_SIGNATURE));
    let served = grpc_send_status(client, "AclTopic", producer).await;
    assert_eq!(served.code, pb::Code::Ok as i32, "{served:?}");
    let denied = grpc_send_status(client, "AclForbidden", producer).await;
    assert_eq!(
        (denied.code, denied.message.as_str()),
        (pb::Code::Forbidden as i32, "Access denied: No permission for topic:AclForbidden")
    );
    let by_default = grpc_send_status(client, "AclOther", producer).await;
    assert_eq!(
        (by_default.code, by_default.message.as_str()),
        (pb::Code::Forbidden as i32, "Access denied: No default permission for topic:AclOther")
    );
    let wrong = grpc_send_status(client, "AclTopic", Some((PRODUCER_KEY, WRONG_SIGNATURE))).await;
    assert_eq!(
        (wrong.code, wrong.message.as_str()),
        (
            pb::Code::Unauthorized as i32,
            "Authentication failed: Check signature failed for accessKey=producer-key"
        )
    );
    let anonymous = grpc_send_status(client, "AclTopic", None).await;
    assert_eq!(
        (anonymous.code, anonymous.message.as_str()),
        (pb::Code::Unauthorized as i32, "Authentication failed: No accessKey is configured")
    );
}

/// Edits `path` to let the account send to `AclForbidden` and waits until a send there is
/// served: the file is watched.
async fn allow_forbidden_topic(path: &Path, client: &MessagingServiceClient<tonic::transport::Channel>) {
    rewrite(path, &ACL_FILE.replace("AclForbidden=DENY", "AclForbidden=PUB"));
    eventually("the edited file to allow the send", STEP, || {
        let mut client = client.clone();
        async move {
            let status =
                grpc_send_status(&mut client, "AclForbidden", Some((PRODUCER_KEY, PRODUCER_SIGNATURE))).await;
            (status.code == pb::Code::Ok as i32).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_judged_by_the_same_policy() {
    let (cluster, _dir, path) = acl_cluster(ACL_FILE).await;
    let grpc =
        apogee_grpc::GrpcServer::start(Arc::clone(cluster.broker_state(0)), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("grpc endpoint started");
    let mut client =
        MessagingServiceClient::connect(format!("http://{}", grpc.local_addr())).await.expect("connected");
    let producer = Some((PRODUCER_KEY, PRODUCER_SIGNATURE));
    assert_send_statuses(&mut client).await;
    // A group the account may not use: the receive's one status frame says so.
    let receive = pb::ReceiveMessageRequest {
        group: Some(pb::Resource { name: "acl-banned-group".into(), ..pb::Resource::default() }),
        message_queue: Some(pb::MessageQueue {
            topic: Some(pb::Resource { name: "AclTopic".into(), ..pb::Resource::default() }),
            id: -1,
            ..pb::MessageQueue::default()
        }),
        batch_size: 1,
        ..pb::ReceiveMessageRequest::default()
    };
    let mut frames =
        client.receive_message(grpc_request(receive, producer)).await.expect("gRPC OK").into_inner();
    let first = frames.message().await.expect("a frame").expect("a status frame");
    let Some(pb::receive_message_response::Content::Status(status)) = first.content else {
        panic!("expected a status frame first, got {first:?}");
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (pb::Code::Forbidden as i32, "Access denied: No permission for group:acl-banned-group")
    );

    // The sent message is stored: the only message in AclTopic, read back over remoting.
    let stored = stored_bodies(&cluster, "AclTopic").await;
    assert_eq!(stored, vec!["over grpc".to_owned()]);

    // The same file, reloaded, judges gRPC calls too.
    allow_forbidden_topic(&path, &client).await;
    grpc.shutdown().await;
    cluster.shutdown().await;
}

/// `apogee proxy` with `enableACL`: its own file judges the calls it relays to brokers that
/// check nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_judges_calls_by_its_own_file() {
    let cluster = Cluster::builder().start().await;
    for topic in ["AclTopic", "AclForbidden"] {
        cluster.create_topic(topic, 2, perm::READ_WRITE).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("proxy_acl.yml");
    std::fs::write(&path, ACL_FILE).expect("acl file written");
    let acl = apogee_grpc::server::ProxyAcl {
        validator: Arc::new(apogee_broker::acl::AclValidator::load(&path).expect("acl file read")),
        watch_interval: Duration::from_millis(WATCH_MS),
    };
    let relay =
        apogee_client::Relay::start(&apogee_client::ClientConfig::new(cluster.namesrv_addr().to_owned()))
            .await
            .expect("relay started");
    let certificate = apogee_grpc::tls::CertificateSource::SelfSigned {
        hosts: vec!["127.0.0.1".to_owned()],
        write_to: dir.path().join("proxy.crt"),
    };
    let proxy = apogee_grpc::GrpcServer::start_proxy(
        std::net::TcpListener::bind("127.0.0.1:0").expect("bound"),
        relay,
        apogee_broker::proxy_config::ProxyConfig::default(),
        "127.0.0.1".to_owned(),
        &certificate,
        4 * 1024 * 1024,
        Some(acl),
    )
    .expect("proxy started");
    let mut client =
        MessagingServiceClient::connect(format!("http://{}", proxy.local_addr())).await.expect("connected");
    assert_send_statuses(&mut client).await;
    assert_eq!(stored_bodies(&cluster, "AclTopic").await, vec!["over grpc".to_owned()]);
    allow_forbidden_topic(&path, &client).await;
    proxy.shutdown().await;
    cluster.shutdown().await;
}

/// The bodies stored in every queue of `topic`, in queue then offset order, read by a signed
/// pull of the account (which may subscribe to the topic).
async fn stored_bodies(cluster: &Cluster, topic: &str) -> Vec<String> {
    let admin = Admin::builder()
        .namesrv(cluster.namesrv_addr())
        .credentials(SessionCredentials::new(PRODUCER_KEY, PRODUCER_SECRET))
        .start()
        .await
        .expect("admin started");
    let mut bodies = Vec::new();
    for queue_id in 0..2 {
        let queue = apogee_common::MessageQueue::new(topic, cluster.broker_name(0), queue_id);
        let pulled = admin.pull("acl-readers", &queue, "*", 0, 32).await.expect("pulled");
        bodies.extend(
            pulled
                .messages
                .into_iter()
                .map(|message| String::from_utf8_lossy(&message.message.body).into_owned()),
        );
    }
    drop(admin);
    bodies
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
