//! Request–reply end to end on the real binary: a requester's `Producer::request` gets the
//! reply a responder (a push consumer answering through its own producer) sends for each
//! request, matched by correlation id; a request nobody answers fails after its timeout, not
//! before and not much later.

mod standalone;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_client::{
    create_reply_message, Admin, ClientError, ConsumeResult, Message, MessageExt, Producer, PushConsumer,
};
use apogee_common::perm;
use apogee_common::topic::TopicConfig;
use apogee_testkit::{eventually, ApogeeProcess};

/// How long a request waits for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The cluster `apogee standalone` registers, whose reply topic replies go to.
const CLUSTER: &str = "DefaultCluster";

async fn producer(apogee: &ApogeeProcess, group: &str) -> Producer {
    Producer::builder().group(group).namesrv(apogee.namesrv_addr()).start().await.expect("producer started")
}

/// Answers every request on `topic` with `reply to <body>`.
async fn responder(apogee: &ApogeeProcess, topic: &str) -> (PushConsumer, Arc<Producer>) {
    let replies = Arc::new(producer(apogee, "rr-responder-producer").await);
    let answering = Arc::clone(&replies);
    let consumer = PushConsumer::builder()
        .group("rr-responder")
        .namesrv(apogee.namesrv_addr())
        .subscribe(topic, "*")
        .start(move |requests: Vec<MessageExt>| {
            let replies = Arc::clone(&answering);
            async move {
                for request in &requests {
                    let body = format!("reply to {}", String::from_utf8_lossy(&request.message.body));
                    let reply = create_reply_message(request, body.into_bytes()).expect("a stored request");
                    if let Err(error) = replies.send(reply).await {
                        eprintln!("reply not sent: {error}");
                        return ConsumeResult::ReconsumeLater;
                    }
                }
                ConsumeResult::Success
            }
        })
        .await
        .expect("responder started");
    (consumer, replies)
}

/// Creates `topic` and waits until the NameServer routes it, so the responder finds it at start.
async fn create_topic(apogee: &ApogeeProcess, topic: &str) {
    let admin =
        Admin::builder().namesrv(apogee.namesrv_addr().to_owned()).start().await.expect("admin started");
    let config = TopicConfig::with_queues(topic, 4, 4, perm::READ_WRITE);
    admin.create_topic(apogee.broker_addr(), &config).await.expect("topic created");
    eventually("the topic's route", Duration::from_secs(30), || async {
        admin.topic_route(topic).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_its_own_reply() {
    let apogee = ApogeeProcess::standalone(env!("CARGO_BIN_EXE_apogee"));
    let topic = "RequestReplyTopic";
    create_topic(&apogee, topic).await;
    let requester = producer(&apogee, "rr-requester").await;
    let (consumer, replies) = responder(&apogee, topic).await;
    for index in 0..5 {
        let body = format!("question {index}");
        let message = Message::new(topic, body.clone().into_bytes()).with_keys([format!("Q{index}")]);
        let started = Instant::now();
        let reply = requester.request(message, REQUEST_TIMEOUT).await.expect("a reply");
        assert!(started.elapsed() < REQUEST_TIMEOUT);
        assert_eq!(String::from_utf8_lossy(&reply.message.body), format!("reply to {body}"));
        assert_eq!(reply.message.topic, format!("{CLUSTER}_REPLY_TOPIC"));
        assert_eq!(reply.message.property("MSG_TYPE"), Some("reply"));
        assert_eq!(reply.message.property("REPLY_TO_CLIENT"), Some(requester.instance().client_id()));
        assert_eq!(reply.message.property("TTL"), Some(REQUEST_TIMEOUT.as_millis().to_string().as_str()));
        assert!(reply.message.property("PUSH_REPLY_TIME").is_some(), "the broker stamps its push");
        assert!(reply.message.property("ARRIVE_TIME").is_some(), "the requester stamps the arrival");
    }
    consumer.shutdown().await;
    replies.shutdown().await;
    requester.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_times_out() {
    let apogee = ApogeeProcess::standalone(env!("CARGO_BIN_EXE_apogee"));
    let requester = producer(&apogee, "rr-lonely-requester").await;
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let error = requester
        .request(Message::new("UnansweredTopic", &b"anyone?"[..]), timeout)
        .await
        .expect_err("nobody replies");
    let waited = started.elapsed();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(waited >= timeout, "gave up early, after {waited:?}");
    assert!(waited < timeout + Duration::from_secs(3), "gave up late, after {waited:?}");
    requester.shutdown().await;
}
