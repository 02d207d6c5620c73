//! The shared client instance against a real broker: consumer heartbeats, the broker's
//! NOTIFY_CONSUMER_IDS_CHANGED reaching the registered consumer through the instance's router,
//! and UNREGISTER_CLIENT on release.

mod producer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apogee_client::instance::{ClientInstance, ConsumerHandle};
use apogee_client::{MessageExt, MessageQueue};
use apogee_remoting::body::heartbeat::{ConsumerData, SubscriptionData};
use apogee_remoting::body::{ConsumeFromWhere, ConsumeType, MessageModel};
use producer_support::{eventually, Cluster};

const GROUP: &str = "CG_NOTIFY";
const TOPIC: &str = "NotifyTopic";

#[derive(Default)]
struct Probe {
    rebalances: AtomicUsize,
}

impl ConsumerHandle for Probe {
    fn group(&self) -> &str {
        GROUP
    }

    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: Some(ConsumeFromWhere::ConsumeFromLastOffset),
            consume_type: Some(ConsumeType::ConsumePassively),
            group_name: GROUP.into(),
            message_model: Some(MessageModel::Clustering),
            subscription_data_set: vec![SubscriptionData {
                sub_string: "*".into(),
                sub_version: 1,
                topic: TOPIC.into(),
                ..SubscriptionData::default()
            }],
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        vec![TOPIC.into()]
    }

    fn rebalance_now(&self) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }

    fn reset_offsets(&self, _topic: &str, _offsets: HashMap<MessageQueue, i64>) {}

    fn running_info(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    fn consume_directly(&self, _message: MessageExt) -> serde_json::Value {
        serde_json::json!({})
    }
}

#[tokio::test]
async fn membership_changes_reach_consumers_through_the_instance() {
    let cluster = Cluster::with_topic("broker-a", TOPIC, 2).await;
    let first = ClientInstance::get(&cluster.client_config().with_instance_name("notify-a")).await.unwrap();
    let second = ClientInstance::get(&cluster.client_config().with_instance_name("notify-b")).await.unwrap();
    assert_ne!(first.client_id(), second.client_id());
    let first_probe = Arc::new(Probe::default());
    let second_probe = Arc::new(Probe::default());
    first.register_consumer(first_probe.clone()).unwrap();
    assert!(
        first.register_consumer(Arc::new(Probe::default())).is_err(),
        "one consumer per group and instance"
    );
    second.register_consumer(second_probe.clone()).unwrap();
    for instance in [&first, &second] {
        let route = instance.topic_route(TOPIC).await.unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert!(instance.master_addr("broker-a").is_some());
    }

    first.send_heartbeat_to_all_brokers().await;
    second.send_heartbeat_to_all_brokers().await;
    let clients = &cluster.broker(0).state().clients;
    let mut ids = clients.consumer_ids(GROUP);
    ids.sort();
    let mut expected = vec![first.client_id().to_owned(), second.client_id().to_owned()];
    expected.sort();
    assert_eq!(ids, expected);
    // The second member joining makes the broker tell the first one to rebalance.
    eventually("a rebalance notification", || async {
        (first_probe.rebalances.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;

    // The first leaves: UNREGISTER_CLIENT, the remaining member is told, the instance is gone.
    let before = second_probe.rebalances.load(Ordering::SeqCst);
    first.unregister_consumer(GROUP).await;
    assert!(first.is_released());
    eventually("the first member to leave", || async {
        (clients.consumer_ids(GROUP) == [second.client_id().to_owned()]).then_some(())
    })
    .await;
    eventually("the remaining member to be told", || async {
        (second_probe.rebalances.load(Ordering::SeqCst) > before).then_some(())
    })
    .await;
    second.unregister_consumer(GROUP).await;
    assert!(second.is_released());
    cluster.shutdown().await;
}
