//! PULL_MESSAGE end to end over loopback: tag filtering, the store-status table, long polling,
//! and offsets committed through pulls and UPDATE_CONSUMER_OFFSET, across a restart.

mod consume_support;

use std::time::{Duration, Instant};

use apogee_remoting::header::consumer::{
    PullMessageRequestHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use apogee_remoting::{request_code, response_code};
use consume_support::*;

const SUSPEND: i32 = 0x2;
const COMMIT: i32 = 0x1;
const SUBSCRIPTION: i32 = 0x4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_filters_by_tags_of_the_heartbeat_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 4, |_| {}).await;
    for (index, tags) in ["TagA", "TagB", "TagC", "TagA", "TagD"].iter().enumerate() {
        put(&broker, "T", 1, Some(tags), &format!("m{index}")).await;
    }
    put(&broker, "T", 1, None, "untagged").await;

    // No heartbeat yet: the group has no registration.
    let response = pull(&client, &addr, &pull_header("CG", "T", 1, 0, 0)).await;
    assert_eq!(response.code, response_code::SUBSCRIPTION_NOT_EXIST, "{:?}", response.remark);

    let answer = client
        .invoke(&addr, heartbeat("10.0.0.1@1", "CG", "T", "TagA || TagC", 100), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(answer.code, response_code::SUCCESS);

    let response = pull(&client, &addr, &pull_header("CG", "T", 1, 0, 0)).await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(response.remark.as_deref(), Some("FOUND"));
    assert_eq!(tags_of(&response), vec!["TagA", "TagC", "TagA"]);
    let header = pull_response_header(&response);
    assert_eq!((header.next_begin_offset, header.min_offset, header.max_offset), (6, 0, 6));
    assert_eq!(header.suggest_which_broker_id, 0);
    let offsets: Vec<i64> = messages(&response).iter().map(|message| message.queue_offset).collect();
    assert_eq!(offsets, vec![0, 2, 3]);
    // The pull offset is recorded.
    assert_eq!(broker.state().offsets.pull_offset("CG", "T", 1), Some(6));

    // A newer subscription version than the registered one.
    let mut stale = pull_header("CG", "T", 1, 0, 0);
    stale.sub_version = 200;
    let response = pull(&client, &addr, &stale).await;
    assert_eq!(response.code, response_code::SUBSCRIPTION_NOT_LATEST);

    // Nothing matches from offset 4 on: retry immediately past the scanned entries.
    let response = pull(&client, &addr, &pull_header("CG", "T", 1, 4, 0)).await;
    assert_eq!(response.code, response_code::PULL_RETRY_IMMEDIATELY);
    assert_eq!(pull_response_header(&response).next_begin_offset, 6);

    // With the subscription flag the request's own expression is used.
    let mut own = pull_header("other-group", "T", 1, 0, SUBSCRIPTION);
    own.subscription = Some("TagD".into());
    own.expression_type = Some("TAG".into());
    let response = pull(&client, &addr, &own).await;
    assert_eq!(response.code, response_code::SUCCESS);
    assert_eq!(tags_of(&response), vec!["TagD"]);
    own.subscription = Some("*".into());
    own.max_msg_nums = 2;
    let response = pull(&client, &addr, &own).await;
    assert_eq!(messages(&response).len(), 2);
    assert_eq!(pull_response_header(&response).next_begin_offset, 2);
    own.subscription = Some("a = 1".into());
    own.expression_type = Some("SQL92".into());
    let response = pull(&client, &addr, &own).await;
    assert_eq!(response.code, response_code::SYSTEM_ERROR);
    assert_eq!(
        response.remark.as_deref(),
        Some("The broker does not support consumer to filter message by SQL92")
    );

    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_out_of_range_and_request_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_subscribed(dir.path(), 2, |_| {}).await;
    for index in 0..3 {
        put(&broker, "T", 0, Some("TagA"), &format!("m{index}")).await;
    }

    let cases = [
        (-1, response_code::PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL", 0),
        (7, response_code::PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY", 3),
        (3, response_code::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE", 3),
    ];
    for (offset, code, remark, next) in cases {
        let response = pull(&client, &addr, &pull_header("CG", "T", 0, offset, 0)).await;
        assert_eq!(response.code, code, "offset {offset}: {:?}", response.remark);
        assert_eq!(response.remark.as_deref(), Some(remark));
        let header = pull_response_header(&response);
        assert_eq!((header.next_begin_offset, header.min_offset, header.max_offset), (next, 0, 3));
        assert!(response.body.is_empty());
    }
    // A queue that never got a message: offset 0 is "not found", any other offset moved.
    let response = pull(&client, &addr, &pull_header("CG", "T", 1, 0, 0)).await;
    assert_eq!(response.code, response_code::PULL_NOT_FOUND);
    let response = pull(&client, &addr, &pull_header("CG", "T", 1, 5, 0)).await;
    assert_eq!(response.code, response_code::PULL_OFFSET_MOVED);
    assert_eq!(pull_response_header(&response).next_begin_offset, 0);

    let response = pull(&client, &addr, &pull_header("CG", "T", 2, 0, 0)).await;
    assert_eq!(response.code, response_code::INVALID_PARAMETER);
    assert!(
        response.remark.as_deref().unwrap_or("").starts_with("queueId[2] is illegal, topic:[T]"),
        "{:?}",
        response.remark
    );
    let response = pull(&client, &addr, &pull_header("CG", "Nope", 0, 0, 0)).await;
    assert_eq!(response.code, response_code::TOPIC_NOT_EXIST);
    let response = pull(&client, &addr, &pull_header("bad group!", "T", 0, 0, 0)).await;
    assert_eq!(response.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);

    // A header without a required field.
    let mut request = java_request(request_code::PULL_MESSAGE).with_header(&pull_header("CG", "T", 0, 0, 0));
    request.ext_fields_mut().remove("queueOffset");
    let response = client.invoke(&addr, request, CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.code, response_code::SYSTEM_ERROR);
    assert_eq!(response.remark.as_deref(), Some("the custom field queueOffset is null"));

    stop(client, broker).await;
}

/// A long-polling pull of group `CG` on queue 0 of `T` that the broker may hold `hold_ms`.
fn held_pull_header(offset: i64, hold_ms: i64) -> PullMessageRequestHeader {
    let mut header = pull_header("CG", "T", 0, offset, SUSPEND);
    header.suspend_timeout_millis = hold_ms;
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_pull_is_answered_when_a_message_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_subscribed(dir.path(), 1, |_| {}).await;
    put(&broker, "T", 0, Some("TagA"), "first").await;

    let header = held_pull_header(1, 8_000);
    let started = Instant::now();
    let held = tokio::spawn({
        let addr = addr.clone();
        async move {
            let client = client;
            let response = pull(&client, &addr, &header).await;
            (response, started.elapsed())
        }
    });
    wait_until_parked(&broker).await;
    put(&broker, "T", 0, Some("TagB"), "second").await;
    let (response, elapsed) = held.await.unwrap();
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(tags_of(&response), vec!["TagB"]);
    assert!(elapsed < Duration::from_secs(4), "answered after {elapsed:?}, the hold was 8 s");
    assert_eq!(broker.state().pulls.parked(), 0);

    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_pull_times_out_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_subscribed(dir.path(), 1, |_| {}).await;

    let mut header = held_pull_header(0, 700);
    let started = Instant::now();
    let response = pull(&client, &addr, &header).await;
    let elapsed = started.elapsed();
    assert_eq!(response.code, response_code::PULL_NOT_FOUND);
    assert!(elapsed >= Duration::from_millis(650), "answered after {elapsed:?}, before the hold time");
    assert!(elapsed < Duration::from_secs(5), "answered after {elapsed:?}");

    // Short polling: the broker's own hold time replaces the request's.
    stop(client, broker).await;
    let (broker, addr, client) = start_subscribed(dir.path(), 1, |config| {
        config.long_polling_enable = false;
        config.short_polling_time_ms = 300;
    })
    .await;
    header.suspend_timeout_millis = 20_000;
    let started = Instant::now();
    let response = pull(&client, &addr, &header).await;
    assert_eq!(response.code, response_code::PULL_NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(3), "held {:?}", started.elapsed());
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pulls_are_answered_when_the_broker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_subscribed(dir.path(), 1, |_| {}).await;
    let header = held_pull_header(0, 30_000);
    let held = tokio::spawn(async move {
        let response = pull(&client, &addr, &header).await;
        response.code
    });
    wait_until_parked(&broker).await;
    let started = Instant::now();
    broker.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let code = tokio::time::timeout(Duration::from_secs(5), held).await.expect("answered").unwrap();
    assert_eq!(code, response_code::PULL_NOT_FOUND);
}

async fn query_offset(
    client: &apogee_remoting::client::RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
    set_zero_if_not_found: Option<bool>,
) -> (i32, Option<i64>) {
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        set_zero_if_not_found,
        bname: None,
    };
    let request = java_request(request_code::QUERY_CONSUMER_OFFSET).with_header(&header);
    let response = client.invoke(addr, request, CALL_TIMEOUT).await.unwrap();
    let offset = (response.code == response_code::SUCCESS)
        .then(|| response.decode_header::<QueryConsumerOffsetResponseHeader>().unwrap().offset);
    (response.code, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_committed_by_pull_and_update_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_subscribed(dir.path(), 2, |_| {}).await;
    create_topic(&broker, "Empty", 1);
    for index in 0..4 {
        put(&broker, "T", 0, Some("TagA"), &format!("m{index}")).await;
    }

    // Nothing committed: a young queue answers 0, unless told not to; an empty queue: not found.
    assert_eq!(query_offset(&client, &addr, "CG", "T", 0, None).await, (response_code::SUCCESS, Some(0)));
    assert_eq!(
        query_offset(&client, &addr, "CG", "T", 0, Some(false)).await.0,
        response_code::QUERY_NOT_FOUND
    );
    assert_eq!(query_offset(&client, &addr, "CG", "Empty", 0, None).await.0, response_code::QUERY_NOT_FOUND);

    // Commit through the pull's commit-offset flag.
    let mut header: PullMessageRequestHeader = pull_header("CG", "T", 0, 2, COMMIT);
    header.commit_offset = 2;
    let response = pull(&client, &addr, &header).await;
    assert_eq!(response.code, response_code::SUCCESS);
    assert_eq!(query_offset(&client, &addr, "CG", "T", 0, None).await, (response_code::SUCCESS, Some(2)));

    // Commit through UPDATE_CONSUMER_OFFSET, oneway as Java clients send it, then two-way.
    let update = |queue_id: i32, offset: i64| {
        java_request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&UpdateConsumerOffsetRequestHeader {
            consumer_group: "CG".into(),
            topic: "T".into(),
            queue_id,
            commit_offset: offset,
            bname: None,
        })
    };
    let mut oneway = update(0, 3);
    oneway.mark_oneway();
    client.invoke_oneway(&addr, oneway).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while query_offset(&client, &addr, "CG", "T", 0, None).await.1 != Some(3) {
        assert!(Instant::now() < deadline, "oneway commit not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = client.invoke(&addr, update(1, 9), CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.code, response_code::SUCCESS);
    let mut unknown_topic = update(0, 1);
    unknown_topic.ext_fields_mut().insert("topic", "Nope");
    assert_eq!(
        client.invoke(&addr, unknown_topic, CALL_TIMEOUT).await.unwrap().code,
        response_code::TOPIC_NOT_EXIST
    );
    let mut unknown_group = update(0, 1);
    unknown_group.ext_fields_mut().insert("consumerGroup", "NoSuchGroup");
    assert_eq!(
        client.invoke(&addr, unknown_group, CALL_TIMEOUT).await.unwrap().code,
        response_code::SUBSCRIPTION_GROUP_NOT_EXIST
    );

    stop(client, broker).await;
    let text = std::fs::read_to_string(dir.path().join("config").join("consumerOffset.json")).unwrap();
    assert!(text.contains(r#""T@CG":{0:3,1:9}"#), "{text}");

    let (broker, addr) = start(dir.path(), |_| {}).await;
    let client = new_client();
    assert_eq!(query_offset(&client, &addr, "CG", "T", 0, None).await, (response_code::SUCCESS, Some(3)));
    assert_eq!(
        query_offset(&client, &addr, "CG", "T", 1, Some(false)).await,
        (response_code::SUCCESS, Some(9))
    );
    // The auto-created group survived too.
    assert!(broker.state().groups.get("CG").is_some());
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpp_client_heartbeat_filters_by_its_expression_not_its_code_set() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 1, |_| {}).await;
    for tags in ["TagA", "TagB", "TagC"] {
        put(&broker, "T", 0, Some(tags), tags).await;
    }
    // As rocketmq-client-cpp 1.x/2.0 writes it (JsonCpp FastWriter): subVersion as a string,
    // codeSet from atoi(tag), no expressionType, a trailing newline.
    let body = concat!(
        r#"{"clientID":"127.0.0.1@4242","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","#,
        r#""consumeType":"CONSUME_PASSIVELY","groupName":"CG","messageModel":"CLUSTERING","#,
        r#""subscriptionDataSet":[{"codeSet":[0,0],"subString":"TagA || TagC","subVersion":"1700000000000","#,
        r#""tagsSet":["TagA","TagC"],"topic":"T"}]}],"producerDataSet":[{"groupName":"PG"}]}"#,
        "\n"
    );
    let mut request = java_request(request_code::HEART_BEAT).with_body(body.as_bytes().to_vec());
    request.language = apogee_remoting::LanguageCode::Cpp;
    request.version = 0x4000;
    let response = client.invoke(&addr, request, CALL_TIMEOUT).await.unwrap();
    assert_eq!(response.code, response_code::SUCCESS);

    let mut header = pull_header("CG", "T", 0, 0, SUSPEND);
    header.sub_version = 1_700_000_000_000;
    header.subscription = Some(String::new());
    let response = pull(&client, &addr, &header).await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(tags_of(&response), vec!["TagA", "TagC"]);
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_selectors_filter_when_the_property_filter_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) =
        start_with_topic(dir.path(), 1, |config| config.enable_property_filter = true).await;
    for (index, (region, price)) in [("eu", "5"), ("us", "20"), ("eu", "30"), ("eu", "x")].iter().enumerate()
    {
        let body = format!("m{index}");
        put_with(&broker, "T", 0, &[("TAGS", "TagA"), ("region", region), ("price", price)], &body).await;
    }
    let bodies = |response: &apogee_remoting::RemotingCommand| -> Vec<String> {
        messages(response)
            .iter()
            .map(|message| String::from_utf8_lossy(&message.message.body).into_owned())
            .collect()
    };

    // The selector in the request (lite pull style).
    let mut header = pull_header("CG", "T", 0, 0, SUBSCRIPTION);
    header.subscription = Some("region = 'eu' AND price > 10".into());
    header.expression_type = Some("SQL92".into());
    let response = pull(&client, &addr, &header).await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(bodies(&response), vec!["m2"]);
    header.subscription = Some("region = ".into());
    let response = pull(&client, &addr, &header).await;
    assert_eq!(response.code, response_code::SUBSCRIPTION_PARSE_FAILED);

    // The selector registered by heartbeat (push consumer).
    let body = concat!(
        r#"{"clientID":"c1","consumerDataSet":[{"consumeType":"CONSUME_PASSIVELY","groupName":"CG","#,
        r#""messageModel":"CLUSTERING","subscriptionDataSet":[{"expressionType":"SQL92","#,
        r#""subString":"region IN ('us') OR price BETWEEN 1 AND 6","subVersion":3,"topic":"T"}]}],"#,
        r#""producerDataSet":[]}"#
    );
    let heartbeat = java_request(request_code::HEART_BEAT).with_body(body.as_bytes().to_vec());
    assert_eq!(client.invoke(&addr, heartbeat, CALL_TIMEOUT).await.unwrap().code, response_code::SUCCESS);
    let response = pull(&client, &addr, &pull_header("CG", "T", 0, 0, 0)).await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(bodies(&response), vec!["m0", "m1"]);

    // CHECK_CLIENT_CONFIG compiles the selector.
    let check = |expression: &str| {
        let body = format!(
            r#"{{"clientId":"c1","group":"CG","subscriptionData":{{"expressionType":"SQL92","subString":"{expression}","subVersion":1,"topic":"T"}}}}"#
        );
        java_request(request_code::CHECK_CLIENT_CONFIG).with_body(body.into_bytes())
    };
    assert_eq!(
        client.invoke(&addr, check("price > 1"), CALL_TIMEOUT).await.unwrap().code,
        response_code::SUCCESS
    );
    let refused = client.invoke(&addr, check("price >"), CALL_TIMEOUT).await.unwrap();
    assert_eq!(refused.code, response_code::SUBSCRIPTION_PARSE_FAILED);
    assert!(refused.remark.is_some());
    stop(client, broker).await;
}
