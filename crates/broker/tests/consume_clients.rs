//! Client registration end to end over loopback: heartbeats (4.9 and HeartbeatV2 forms),
//! group membership and its change notifications, unregistration, closed and silent
//! connections, subscription checks and queue locks.

mod consume_support;

use std::time::{Duration, Instant};

use apogee_remoting::body::consumer::{GetConsumerListByGroupResponseBody, LockBatchResponseBody};
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::fastjson;
use apogee_remoting::header::consumer::{
    GetConsumerListByGroupRequestHeader, NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader,
};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use consume_support::*;
use tokio::sync::mpsc;

/// GET_CONSUMER_LIST_BY_GROUP: the ids, or the failure's code and remark.
async fn consumer_list(
    client: &RemotingClient,
    addr: &str,
    group: &str,
) -> Result<Vec<String>, (i32, String)> {
    let header = GetConsumerListByGroupRequestHeader { consumer_group: group.into(), bname: None };
    let request = java_request(request_code::GET_CONSUMER_LIST_BY_GROUP).with_header(&header);
    let response = client.invoke(addr, request, CALL_TIMEOUT).await.unwrap();
    if response.code != response_code::SUCCESS {
        return Err((response.code, response.remark.unwrap_or_default()));
    }
    let mut ids =
        fastjson::from_slice::<GetConsumerListByGroupResponseBody>(&response.body).unwrap().consumer_id_list;
    ids.sort();
    Ok(ids)
}

/// Polls the group's member list until it equals `expected` (bounded).
async fn wait_for_members(client: &RemotingClient, addr: &str, group: &str, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let members = consumer_list(client, addr, group).await.unwrap_or_default();
        if members == expected {
            return;
        }
        assert!(Instant::now() < deadline, "members {members:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client whose router records the groups of NOTIFY_CONSUMER_IDS_CHANGED it receives.
fn notified_client() -> (RemotingClient, mpsc::UnboundedReceiver<String>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.register(
        request_code::NOTIFY_CONSUMER_IDS_CHANGED,
        move |_connection, request: RemotingCommand| {
            let sender = sender.clone();
            async move {
                assert!(request.is_oneway());
                let header: NotifyConsumerIdsChangedRequestHeader = request.decode_header().unwrap();
                let _ = sender.send(header.consumer_group);
                None
            }
        },
    );
    (RemotingClient::new(ClientConfig::default(), router), receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_registers_the_group_and_its_retry_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 4, |_| {}).await;

    let request = heartbeat("10.0.0.1@1", "CG", "T", "TagA", 1);
    assert_eq!(request.ext_fields, None);
    let response = client.invoke(&addr, request, CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.code, response_code::SUCCESS);
    assert!(response.version >= 232, "version {}", response.version);
    assert_eq!(response.ext("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
    assert_eq!(response.ext("IS_SUB_CHANGE"), Some("true"));

    let state = broker.state();
    let retry = state.topics.get("%RETRY%CG").expect("retry topic created");
    assert_eq!((retry.read_queue_nums, retry.write_queue_nums, retry.perm), (1, 1, 6));
    assert!(state.groups.get("CG").is_some());
    assert_eq!(state.clients.subscription("CG", "T").unwrap().sub_string, "TagA");
    assert!(state.clients.subscription("CG", "%RETRY%CG").is_some());
    assert_eq!(state.clients.producer_channels("CLIENT_INNER_PRODUCER").len(), 1);
    let connection = state.clients.consumer_connection("CG").unwrap();
    assert_eq!(connection.connection_set.len(), 1);
    assert_eq!(connection.connection_set[0].client_id, "10.0.0.1@1");
    assert_eq!(connection.connection_set[0].version, JAVA_4_9_VERSION);
    assert_eq!(state.clients.groups_subscribing("T"), vec!["CG"]);

    // A 5.x heartbeat with an (empty) header is accepted too; a malformed body is not.
    let mut five = heartbeat("10.0.0.1@1", "CG", "T", "TagA", 1);
    five.ext_fields_mut().insert("bname", "broker-test");
    assert_eq!(client.invoke(&addr, five, CALL_TIMEOUT).await.unwrap().code, response_code::SUCCESS);
    let garbage = java_request(request_code::HEART_BEAT).with_body(&b"{not json"[..]);
    assert_eq!(client.invoke(&addr, garbage, CALL_TIMEOUT).await.unwrap().code, response_code::SYSTEM_ERROR);

    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_v2_keeps_subscriptions_and_reports_fingerprint_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 1, |_| {}).await;
    let v2 = |fingerprint: i32, without_sub: bool| {
        let body = format!(
            r#"{{"clientID":"c1","consumerDataSet":[{{"consumeType":"CONSUME_PASSIVELY","groupName":"CG","messageModel":"CLUSTERING","subscriptionDataSet":{subs},"unitMode":false}}],"heartbeatFingerprint":{fingerprint},"producerDataSet":[],"withoutSub":{without_sub}}}"#,
            subs = if without_sub {
                "[]".to_owned()
            } else {
                r#"[{"expressionType":"TAG","subString":"*","subVersion":5,"topic":"T"}]"#.to_owned()
            },
        );
        java_request(request_code::HEART_BEAT).with_ext("bname", "broker-test").with_body(body.into_bytes())
    };
    let response = client.invoke(&addr, v2(77, false), CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.ext("IS_SUB_CHANGE"), Some("false"));
    let response = client.invoke(&addr, v2(77, true), CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.ext("IS_SUB_CHANGE"), Some("false"));
    assert!(broker.state().clients.subscription("CG", "T").is_some(), "withoutSub keeps the subscriptions");
    let response = client.invoke(&addr, v2(78, true), CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.ext("IS_SUB_CHANGE"), Some("true"));
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_listed_notified_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), |_| {}).await;
    create_topic(&broker, "T", 4);
    let (first, mut first_notified) = notified_client();
    let second = new_client();
    let observer = new_client();

    let error = consumer_list(&observer, &addr, "CG").await.unwrap_err();
    assert_eq!(error, (response_code::SYSTEM_ERROR, "no consumer for this group, CG".to_owned()));

    first.invoke(&addr, heartbeat("10.0.0.1@first", "CG", "T", "*", 1), CALL_TIMEOUT).await.unwrap();
    // Its own arrival notifies the first member too; drain that.
    let group = tokio::time::timeout(Duration::from_secs(5), first_notified.recv()).await.expect("notified");
    assert_eq!(group.as_deref(), Some("CG"));

    // A repeated heartbeat changes nothing and notifies nobody.
    first.invoke(&addr, heartbeat("10.0.0.1@first", "CG", "T", "*", 1), CALL_TIMEOUT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(first_notified.try_recv().is_err(), "an unchanged heartbeat notified");

    second.invoke(&addr, heartbeat("10.0.0.2@second", "CG", "T", "*", 1), CALL_TIMEOUT).await.unwrap();
    let group = tokio::time::timeout(Duration::from_secs(5), first_notified.recv())
        .await
        .expect("notified of the join");
    assert_eq!(group.as_deref(), Some("CG"));
    assert_eq!(
        consumer_list(&observer, &addr, "CG").await.unwrap(),
        vec!["10.0.0.1@first", "10.0.0.2@second"]
    );

    // The second consumer's connection closes: it leaves the group, the first is told.
    second.shutdown().await;
    wait_for_members(&observer, &addr, "CG", &["10.0.0.1@first"]).await;
    let group = tokio::time::timeout(Duration::from_secs(5), first_notified.recv())
        .await
        .expect("notified of the leave");
    assert_eq!(group.as_deref(), Some("CG"));

    // UNREGISTER_CLIENT removes the last member: the group has no consumer any more.
    let header = UnregisterClientRequestHeader {
        client_id: "10.0.0.1@first".into(),
        producer_group: Some("CLIENT_INNER_PRODUCER".into()),
        consumer_group: Some("CG".into()),
        bname: None,
    };
    let request = java_request(request_code::UNREGISTER_CLIENT).with_header(&header);
    assert_eq!(first.invoke(&addr, request, CALL_TIMEOUT).await.unwrap().code, response_code::SUCCESS);
    assert!(consumer_list(&observer, &addr, "CG").await.is_err());
    assert!(broker.state().clients.producer_channels("CLIENT_INNER_PRODUCER").is_empty());
    assert!(broker.state().clients.consumer_group("CG").is_none());

    drop((first, observer));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), |config| config.channel_expired_timeout_ms = 600).await;
    create_topic(&broker, "T", 1);
    let silent = new_client();
    let observer = new_client();
    silent.invoke(&addr, heartbeat("10.0.0.9@silent", "CG", "T", "*", 1), CALL_TIMEOUT).await.unwrap();
    assert_eq!(consumer_list(&observer, &addr, "CG").await.unwrap(), vec!["10.0.0.9@silent"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.state().clients.consumer_group("CG").is_some() {
        assert!(Instant::now() < deadline, "silent client never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((silent, observer));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_config_checks() {
    let dir = tempfile::tempdir().unwrap();
    let check = |expression_type: &str| {
        let body = format!(
            r#"{{"clientId":"c1","group":"CG","subscriptionData":{{"expressionType":"{expression_type}","subString":"a > 1","subVersion":1,"topic":"T"}}}}"#
        );
        java_request(request_code::CHECK_CLIENT_CONFIG).with_body(body.into_bytes())
    };
    let (broker, addr) = start(dir.path(), |_| {}).await;
    let client = new_client();
    assert_eq!(client.invoke(&addr, check("TAG"), CALL_TIMEOUT).await.unwrap().code, response_code::SUCCESS);
    let refused = client.invoke(&addr, check("SQL92"), CALL_TIMEOUT).await.unwrap();
    assert_eq!(refused.code, response_code::SYSTEM_ERROR);
    assert_eq!(
        refused.remark.as_deref(),
        Some("The broker does not support consumer to filter message by SQL92")
    );
    stop(client, broker).await;

    let (broker, addr) = start(dir.path(), |config| config.enable_property_filter = true).await;
    let client = new_client();
    assert_eq!(
        client.invoke(&addr, check("SQL92"), CALL_TIMEOUT).await.unwrap().code,
        response_code::SUCCESS
    );
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_locks_follow_the_broker_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), |_| {}).await;
    let client = new_client();
    let body = |client_id: &str, queues: &[i32]| {
        let set: Vec<String> = queues
            .iter()
            .map(|queue| format!(r#"{{"brokerName":"broker-test","queueId":{queue},"topic":"T"}}"#))
            .collect();
        format!(
            r#"{{"clientId":"{client_id}","consumerGroup":"CG","mqSet":[{}],"onlyThisBroker":false}}"#,
            set.join(",")
        )
        .into_bytes()
    };
    let lock = |client_id: &str, queues: &[i32]| {
        java_request(request_code::LOCK_BATCH_MQ).with_body(body(client_id, queues))
    };
    let locked = |response: RemotingCommand| -> Vec<i32> {
        assert_eq!(response.code, response_code::SUCCESS);
        let body: LockBatchResponseBody = fastjson::from_slice(&response.body).unwrap();
        body.lock_ok_mq_set.iter().map(|queue| queue.queue_id).collect()
    };

    assert_eq!(locked(client.invoke(&addr, lock("c1", &[0, 1]), CALL_TIMEOUT).await.unwrap()), vec![0, 1]);
    assert!(broker.state().locks.is_group_locked("CG"));
    assert_eq!(locked(client.invoke(&addr, lock("c2", &[1, 2]), CALL_TIMEOUT).await.unwrap()), vec![2]);
    assert_eq!(locked(client.invoke(&addr, lock("c1", &[0, 1]), CALL_TIMEOUT).await.unwrap()), vec![0, 1]);

    let unlock = java_request(request_code::UNLOCK_BATCH_MQ).with_body(body("c1", &[1]));
    assert_eq!(client.invoke(&addr, unlock, CALL_TIMEOUT).await.unwrap().code, response_code::SUCCESS);
    assert_eq!(locked(client.invoke(&addr, lock("c2", &[1, 2]), CALL_TIMEOUT).await.unwrap()), vec![1, 2]);
    // Oneway unlock, as some client paths send it.
    let mut unlock = java_request(request_code::UNLOCK_BATCH_MQ).with_body(body("c2", &[1, 2]));
    unlock.mark_oneway();
    client.invoke_oneway(&addr, unlock).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let granted = locked(client.invoke(&addr, lock("c3", &[1, 2]), CALL_TIMEOUT).await.unwrap());
        if granted == vec![1, 2] {
            break;
        }
        assert!(Instant::now() < deadline, "oneway unlock not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(client, broker).await;
}
