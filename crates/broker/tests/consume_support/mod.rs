//! Shared harness of the consumer-side tests: a testkit broker over a store in a temporary
//! directory, plus helpers to put messages and to speak as a Java client would.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use apogee_broker::message::{put_message, InnerMessage};
use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::property::{Properties, TAGS};
use apogee_common::message::record::decode_all;
use apogee_common::message::MessageExt;
use apogee_common::TopicConfig;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::header::consumer::{PullMessageRequestHeader, PullMessageResponseHeader};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, LanguageCode, RemotingCommand};

/// Time allowed to any single request in the tests.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Version ordinal of a Java 4.9.4 client.
pub const JAVA_4_9_VERSION: i32 = 413;

/// A testkit broker over `dir` (no NameServer) with this suite's file sizes.
pub fn config(dir: &Path) -> BrokerConfig {
    let mut config = apogee_testkit::broker_config(dir, "broker-test");
    config.store.mapped_file_size_consume_queue = 1_000 * 20;
    config.store.max_hash_slot_num = 1_000;
    config.store.max_index_num = 4_000;
    config
}

/// Starts a broker over `dir` with `adjust` applied to the test config.
pub async fn start(dir: &Path, adjust: impl FnOnce(&mut BrokerConfig)) -> (Broker, String) {
    let mut config = config(dir);
    adjust(&mut config);
    let broker = apogee_testkit::start_broker(config).await;
    let addr = broker.local_addr().expect("bound").to_string();
    (broker, addr)
}

/// Starts a broker over `dir` (with `adjust` applied) holding topic `T` of `queues` queues, and
/// a client of it.
pub async fn start_with_topic(
    dir: &Path,
    queues: i32,
    adjust: impl FnOnce(&mut BrokerConfig),
) -> (Broker, String, RemotingClient) {
    let (broker, addr) = start(dir, adjust).await;
    create_topic(&broker, "T", queues);
    (broker, addr, new_client())
}

/// Closes the client's connections, then stops the broker.
pub async fn stop(client: RemotingClient, broker: Broker) {
    drop(client);
    broker.shutdown().await;
}

/// [`start_with_topic`], the client having sent the heartbeat of group `CG` subscribed to every tag of `T`.
pub async fn start_subscribed(
    dir: &Path,
    queues: i32,
    adjust: impl FnOnce(&mut BrokerConfig),
) -> (Broker, String, RemotingClient) {
    let (broker, addr, client) = start_with_topic(dir, queues, adjust).await;
    let answer = client.invoke(&addr, heartbeat("10.0.0.1@1", "CG", "T", "*", 1), CALL_TIMEOUT).await;
    assert_eq!(answer.expect("heartbeat answered").code, apogee_remoting::response_code::SUCCESS);
    (broker, addr, client)
}

/// Waits (at most 5 s) until the broker holds a long-polling pull.
pub async fn wait_until_parked(broker: &Broker) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while broker.state().pulls.parked() == 0 {
        assert!(std::time::Instant::now() < deadline, "the pull was never parked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client whose router serves nothing.
pub fn new_client() -> RemotingClient {
    RemotingClient::new(ClientConfig::default(), Router::new())
}

/// Creates a topic with `queues` read and write queues.
pub fn create_topic(broker: &Broker, topic: &str, queues: i32) {
    broker
        .state()
        .topics
        .create_or_update(TopicConfig::with_queues(topic, queues, queues, apogee_common::perm::READ_WRITE))
        .expect("topic created");
}

/// Stores one message with `tags` (if any) in (`topic`, `queue_id`); returns its queue offset.
pub async fn put(broker: &Broker, topic: &str, queue_id: i32, tags: Option<&str>, body: &str) -> i64 {
    let properties: Vec<(&str, &str)> = tags.map(|tags| (TAGS, tags)).into_iter().collect();
    put_with(broker, topic, queue_id, &properties, body).await
}

/// Stores one message with `properties` in (`topic`, `queue_id`); returns its queue offset.
pub async fn put_with(
    broker: &Broker,
    topic: &str,
    queue_id: i32,
    properties: &[(&str, &str)],
    body: &str,
) -> i64 {
    let mut properties_map = Properties::default();
    for (key, value) in properties {
        properties_map.insert(*key, *value);
    }
    let properties = properties_map;
    let born_host = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
    let message =
        InnerMessage::new(topic.into(), queue_id, body.as_bytes().to_vec().into(), properties, born_host);
    let result = put_message(broker.state(), &message, true).await;
    assert!(result.status.is_stored(), "put failed: {:?}", result.status);
    result.append.expect("placement").queue_offset
}

/// A request as a Java 4.9 client sends it.
pub fn java_request(code: i32) -> RemotingCommand {
    let mut request = RemotingCommand::request(code);
    request.language = LanguageCode::Java;
    request.version = JAVA_4_9_VERSION;
    request
}

/// A 4.9 HEART_BEAT (no extFields) for `client_id`, one push consumer of `group` on `topic`
/// with expression `expression`, and one producer group; the JSON as a Java client writes it.
pub fn heartbeat(
    client_id: &str,
    group: &str,
    topic: &str,
    expression: &str,
    sub_version: i64,
) -> RemotingCommand {
    let tags: Vec<&str> = if expression == "*" {
        Vec::new()
    } else {
        expression.split("||").map(str::trim).filter(|tag| !tag.is_empty()).collect()
    };
    let codes: Vec<String> =
        tags.iter().map(|tag| apogee_common::java_string_hash(tag).to_string()).collect();
    let tags_json: Vec<String> = tags.iter().map(|tag| format!("\"{tag}\"")).collect();
    let body = format!(
        concat!(
            r#"{{"clientID":"{client}","consumerDataSet":[{{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","#,
            r#""consumeType":"CONSUME_PASSIVELY","groupName":"{group}","messageModel":"CLUSTERING","#,
            r#""subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[{codes}],"expressionType":"TAG","#,
            r#""subString":"{expression}","subVersion":{version},"tagsSet":[{tags}],"topic":"{topic}"}},"#,
            r#"{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","#,
            r#""subVersion":{version},"tagsSet":[],"topic":"%RETRY%{group}"}}],"unitMode":false}}],"#,
            r#""heartbeatFingerprint":0,"producerDataSet":[{{"groupName":"CLIENT_INNER_PRODUCER"}}]}}"#
        ),
        client = client_id,
        group = group,
        codes = codes.join(","),
        expression = expression,
        version = sub_version,
        tags = tags_json.join(","),
        topic = topic,
    );
    java_request(request_code::HEART_BEAT).with_body(body.into_bytes())
}

/// The pull header a Java push consumer sends (no subscription; suspend flag as asked).
pub fn pull_header(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    sys_flag: i32,
) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag,
        commit_offset: 0,
        suspend_timeout_millis: 15_000,
        subscription: None,
        sub_version: 0,
        expression_type: None,
        ..PullMessageRequestHeader::default()
    }
}

/// Sends a pull; returns the response.
pub async fn pull(client: &RemotingClient, addr: &str, header: &PullMessageRequestHeader) -> RemotingCommand {
    let request = java_request(request_code::PULL_MESSAGE).with_header(header);
    client.invoke(addr, request, CALL_TIMEOUT).await.expect("pull answered")
}

/// The response header of a pull.
pub fn pull_response_header(response: &RemotingCommand) -> PullMessageResponseHeader {
    response.decode_header().expect("pull response header")
}

/// The messages of a pull body.
pub fn messages(response: &RemotingCommand) -> Vec<MessageExt> {
    decode_all(&response.body).expect("pull body decodes")
}

/// Tags of the messages of a pull body.
pub fn tags_of(response: &RemotingCommand) -> Vec<String> {
    messages(response).iter().map(|message| message.message.tags().unwrap_or("").to_owned()).collect()
}
