//! The relay's requests addressed to a named broker group, against two broker groups: each
//! request reaches the broker it names and no other, and transaction checks are handed to the
//! forwarder, whose END_TRANSACTION decides the half on the broker that stored it.

use std::sync::Arc;
use std::time::Duration;

use apogee_client::relay::{PopOutcome, Relay};
use apogee_client::{
    ClientConfig, ClientError, ReceivedMessage, TransactionCheck, TransactionCheckForwarder,
};
use apogee_common::message::{property, sysflag, Properties};
use apogee_common::perm;
use apogee_remoting::header::pop::{AckMessageRequestHeader, PopMessageRequestHeader};
use apogee_remoting::header::send::{EndTransactionRequestHeader, SendMessageRequestHeader};
use apogee_remoting::response_code;
use apogee_testkit::{eventually, Cluster};
use bytes::Bytes;
use tokio::sync::mpsc;

const TOPIC: &str = "RelayTopic";
const WAIT: Duration = Duration::from_secs(20);

async fn relay_for(cluster: &Cluster, name: &str) -> Relay {
    let config = ClientConfig::new(cluster.namesrv_addr()).with_instance_name(name);
    Relay::start(&config).await.expect("relay started")
}

fn send_header(
    group: &str,
    queue_id: i32,
    uniq_key: &str,
    broker: &str,
    sys_flag: i32,
) -> SendMessageRequestHeader {
    let mut properties = Properties::new();
    properties.insert(property::UNIQ_KEY, uniq_key);
    properties.insert(property::PGROUP, group);
    if sys_flag != 0 {
        properties.insert(property::TRAN_MSG, "true");
    }
    let mut header =
        SendMessageRequestHeader::plain(group, TOPIC, queue_id, &property::encode(&properties), broker);
    header.sys_flag = sys_flag;
    header
}

fn pop_header(group: &str, broker: &str) -> PopMessageRequestHeader {
    PopMessageRequestHeader {
        consumer_group: group.to_owned(),
        topic: TOPIC.to_owned(),
        queue_id: -1,
        max_msg_nums: 32,
        invisible_time: 30_000,
        poll_time: 0,
        born_time: apogee_common::time::now_ms(),
        init_mode: 0,
        exp_type: Some("TAG".to_owned()),
        exp: Some("*".to_owned()),
        order: Some(false),
        attempt_id: None,
        bname: Some(broker.to_owned()),
    }
}

async fn pop_all(relay: &Relay, group: &str, broker: &str) -> Vec<ReceivedMessage> {
    match relay.pop(broker, pop_header(group, broker)).await.expect("pop answered") {
        PopOutcome::Found(found) => found,
        PopOutcome::NotFound => Vec::new(),
        PopOutcome::PollingFull => panic!("polling full on {broker}"),
    }
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| String::from_utf8_lossy(&message.message().message.body).into_owned())
        .collect()
}

#[tokio::test]
async fn requests_reach_the_broker_they_name() {
    let cluster = Cluster::builder().broker_groups(2).start().await;
    cluster.create_topic(TOPIC, 2, perm::READ_WRITE).await;
    let relay = relay_for(&cluster, "relay-named").await;
    let brokers = [cluster.broker_name(0).to_owned(), cluster.broker_name(1).to_owned()];
    for (index, broker) in brokers.iter().enumerate() {
        let header = send_header("relay-producer", 1, &format!("ID-{index}"), broker, 0);
        let sent = relay.send_to_queue(broker, header, Bytes::from(format!("to {broker}"))).await.unwrap();
        assert_eq!(sent.code, response_code::SUCCESS);
        assert_eq!((sent.header.queue_id, sent.header.queue_offset), (1, 0));
    }
    let config = relay.topic_config(&brokers[1], TOPIC).await.unwrap();
    assert_eq!((config.read_queue_nums, config.write_queue_nums), (2, 2));
    assert_eq!(relay.group_config(&brokers[0], TOPIC, "relay-nobody").await.unwrap(), None);

    for broker in &brokers {
        let popped = pop_all(&relay, "relay-consumer", broker).await;
        assert_eq!(bodies(&popped), [format!("to {broker}")], "popped from {broker}");
        let message = &popped[0];
        assert_eq!(message.broker_name(), broker);
        assert_eq!(message.message().queue_id, 1);
        let handle = apogee_remoting::receipt::ExtraInfo::parse(message.receipt_handle()).expect("a handle");
        let ack = AckMessageRequestHeader {
            consumer_group: "relay-consumer".to_owned(),
            topic: message.ack_topic().to_owned(),
            queue_id: handle.queue_id,
            extra_info: message.receipt_handle().to_owned(),
            offset: handle.queue_offset.unwrap_or(-1),
            bname: Some(broker.clone()),
        };
        relay.ack(broker, ack).await.unwrap();
        assert!(pop_all(&relay, "relay-consumer", broker).await.is_empty(), "nothing left on {broker}");
    }
    let group = relay.group_config(&brokers[0], TOPIC, "relay-consumer").await.unwrap();
    assert_eq!(group.map(|config| config.group_name), Some("relay-consumer".to_owned()));

    let unknown =
        relay.pop("no-such-broker", pop_header("relay-consumer", "no-such-broker")).await.unwrap_err();
    assert!(
        matches!(&unknown, ClientError::NoBroker { broker_name } if broker_name == "no-such-broker"),
        "{unknown}"
    );
    relay.shutdown().await;
    cluster.shutdown().await;
}

/// Hands each check to the test.
struct Checks(mpsc::UnboundedSender<TransactionCheck>);

impl TransactionCheckForwarder for Checks {
    fn forward(&self, check: TransactionCheck) {
        let _ = self.0.send(check);
    }
}

#[tokio::test]
async fn transaction_checks_are_forwarded_and_ended_where_the_half_is() {
    let cluster = Cluster::builder()
        .broker_groups(2)
        .configure(|_, config| {
            config.transaction_check_interval_ms = 300;
            config.transaction_timeout_ms = 500;
        })
        .start()
        .await;
    cluster.create_topic(TOPIC, 2, perm::READ_WRITE).await;
    let relay = relay_for(&cluster, "relay-checks").await;
    let group = TOPIC;
    let (sender, mut checks) = mpsc::unbounded_channel();
    relay.hold_producer(group, &[TOPIC.to_owned()], Arc::new(Checks(sender))).await.unwrap();
    let broker = cluster.broker_name(1).to_owned();
    let header = send_header(group, 0, "TX-ON-B", &broker, sysflag::TRANSACTION_PREPARED_TYPE);
    let sent = relay.send_to_queue(&broker, header, Bytes::from_static(b"half")).await.unwrap();
    assert_eq!(sent.code, response_code::SUCCESS);

    let check =
        tokio::time::timeout(WAIT, checks.recv()).await.expect("a check within 20 s").expect("a check");
    assert_eq!(check.header.bname.as_deref(), Some(broker.as_str()));
    assert_eq!(check.message.message.uniq_key(), Some("TX-ON-B"));
    assert_eq!(check.broker_addr.to_string(), cluster.broker_addr(1));
    let end = EndTransactionRequestHeader {
        topic: Some(TOPIC.to_owned()),
        producer_group: group.to_owned(),
        tran_state_table_offset: check.header.tran_state_table_offset,
        commit_log_offset: check.header.commit_log_offset,
        commit_or_rollback: sysflag::TRANSACTION_COMMIT_TYPE,
        from_transaction_check: Some(true),
        msg_id: "TX-ON-B".to_owned(),
        transaction_id: check.header.transaction_id.clone(),
        bname: Some(broker.clone()),
    };
    relay.end_transaction(&broker, end).await.unwrap();
    let delivered = eventually("the committed message", WAIT, || async {
        let popped = pop_all(&relay, "relay-tx-reader", &broker).await;
        (!popped.is_empty()).then_some(popped)
    })
    .await;
    assert_eq!(bodies(&delivered), ["half"]);
    assert!(
        pop_all(&relay, "relay-tx-reader", cluster.broker_name(0)).await.is_empty(),
        "the other group has none"
    );
    relay.release_producer(group).await;
    relay.shutdown().await;
    cluster.shutdown().await;
}
