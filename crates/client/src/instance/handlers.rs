//! The requests brokers send to a client over the client's own connections (protocol §3.4,
//! §3.5): rebalance now, reset offsets, report running info, consume one message directly.
//! Each is routed by its `consumerGroup` to the registered [`ConsumerHandle`].

use std::collections::HashMap;
use std::future::{ready, Future};
use std::sync::Arc;

use apogee_common::message::record;
use apogee_remoting::body::ResetOffsetBody;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::connection::Connection;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    ConsumeMessageDirectlyResultRequestHeader, GetConsumerRunningInfoRequestHeader,
    NotifyConsumerIdsChangedRequestHeader, ResetOffsetRequestHeader,
};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use parking_lot::RwLock;

use super::ConsumerHandle;

/// The consumers of an instance by group, shared between the instance and its router.
pub(crate) type ConsumerTable = Arc<RwLock<HashMap<String, Arc<dyn ConsumerHandle>>>>;

/// The router of an instance's remoting client.
pub(crate) fn router(consumers: &ConsumerTable) -> Router {
    let mut router = Router::new();
    route(&mut router, request_code::NOTIFY_CONSUMER_IDS_CHANGED, consumers, |table, request| {
        ready(notify_consumer_ids_changed(&table, &request))
    });
    route(&mut router, request_code::RESET_CONSUMER_CLIENT_OFFSET, consumers, |table, request| {
        ready(reset_offset(&table, &request))
    });
    route(&mut router, request_code::GET_CONSUMER_RUNNING_INFO, consumers, |table, request| async move {
        running_info(&table, &request).await
    });
    route(&mut router, request_code::CONSUME_MESSAGE_DIRECTLY, consumers, |table, request| async move {
        consume_directly(&table, &request).await
    });
    router
}

/// Routes the broker's requests with `code` to `handler`, which answers each from the consumer
/// table.
fn route<F, Fut>(router: &mut Router, code: i32, consumers: &ConsumerTable, handler: F)
where
    F: Fn(ConsumerTable, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RemotingCommand> + Send + 'static,
{
    let table = Arc::clone(consumers);
    router.register(code, move |_: Connection, request: RemotingCommand| {
        let answer = handler(Arc::clone(&table), request);
        async move { Some(answer.await) }
    });
}

fn lookup(table: &ConsumerTable, group: &str) -> Option<Arc<dyn ConsumerHandle>> {
    table.read().get(group).cloned()
}

fn error(request: &RemotingCommand, remark: String) -> RemotingCommand {
    RemotingCommand::respond_to(request, response_code::SYSTEM_ERROR, Some(remark))
}

fn no_such_group(request: &RemotingCommand, group: &str) -> RemotingCommand {
    error(request, format!("The Consumer Group <{group}> not exist in this consumer"))
}

/// NOTIFY_CONSUMER_IDS_CHANGED (oneway): wake the group's rebalance.
pub(crate) fn notify_consumer_ids_changed(
    table: &ConsumerTable,
    request: &RemotingCommand,
) -> RemotingCommand {
    let header = match request.decode_header::<NotifyConsumerIdsChangedRequestHeader>() {
        Ok(header) => header,
        Err(err) => return error(request, err.to_string()),
    };
    match lookup(table, &header.consumer_group) {
        Some(consumer) => {
            tracing::debug!(group = %header.consumer_group, "consumer ids changed; rebalancing now");
            consumer.rebalance_now();
            RemotingCommand::success_for(request)
        }
        None => no_such_group(request, &header.consumer_group),
    }
}

/// RESET_CONSUMER_CLIENT_OFFSET: restart the group's queues of a topic at the given offsets.
pub(crate) fn reset_offset(table: &ConsumerTable, request: &RemotingCommand) -> RemotingCommand {
    let header = match request.decode_header::<ResetOffsetRequestHeader>() {
        Ok(header) => header,
        Err(err) => return error(request, err.to_string()),
    };
    let offsets = if request.body.is_empty() {
        HashMap::new()
    } else {
        match fastjson::from_slice::<ResetOffsetBody>(&request.body) {
            Ok(body) => body.offset_table.into_iter().collect(),
            Err(err) => return error(request, format!("malformed ResetOffsetBody: {err}")),
        }
    };
    match lookup(table, &header.group) {
        Some(consumer) => {
            tracing::info!(group = %header.group, topic = %header.topic, queues = offsets.len(), "resetting offsets");
            consumer.reset_offsets(&header.topic, offsets);
            RemotingCommand::success_for(request)
        }
        None => no_such_group(request, &header.group),
    }
}

/// GET_CONSUMER_RUNNING_INFO: the consumer's ConsumerRunningInfo JSON as the body.
pub(crate) async fn running_info(table: &ConsumerTable, request: &RemotingCommand) -> RemotingCommand {
    let header = match request.decode_header::<GetConsumerRunningInfoRequestHeader>() {
        Ok(header) => header,
        Err(err) => return error(request, err.to_string()),
    };
    let Some(consumer) = lookup(table, &header.consumer_group) else {
        return no_such_group(request, &header.consumer_group);
    };
    // The consumer may walk large tables; keep that off the connection's reactor thread.
    let info = match tokio::task::spawn_blocking(move || consumer.running_info()).await {
        Ok(info) => info,
        Err(err) => return error(request, format!("running info failed: {err}")),
    };
    json_response(request, &info)
}

/// CONSUME_MESSAGE_DIRECTLY: decode the stored record in the body and hand it to the consumer.
pub(crate) async fn consume_directly(table: &ConsumerTable, request: &RemotingCommand) -> RemotingCommand {
    let header = match request.decode_header::<ConsumeMessageDirectlyResultRequestHeader>() {
        Ok(header) => header,
        Err(err) => return error(request, err.to_string()),
    };
    let Some(consumer) = lookup(table, &header.consumer_group) else {
        return no_such_group(request, &header.consumer_group);
    };
    let mut message = match record::decode_all(&request.body).map(|messages| messages.into_iter().next()) {
        Ok(Some(message)) => message,
        Ok(None) => return error(request, "no message in the request body".to_owned()),
        Err(err) => return error(request, format!("malformed message: {err}")),
    };
    if let Err(err) = message.decompress_body() {
        return error(request, format!("message body cannot be inflated: {err}"));
    }
    // User code runs here and may block for as long as it likes.
    let result = match tokio::task::spawn_blocking(move || consumer.consume_directly(message)).await {
        Ok(result) => result,
        Err(err) => return error(request, format!("consume directly failed: {err}")),
    };
    json_response(request, &result)
}

fn json_response(request: &RemotingCommand, value: &serde_json::Value) -> RemotingCommand {
    match fastjson::to_vec(value, Dialect::Fastjson) {
        Ok(body) => RemotingCommand::success_for(request).with_body(body),
        Err(err) => error(request, format!("cannot encode the answer: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use apogee_common::message::{Message, MessageExt};
    use apogee_common::MessageQueue;
    use apogee_remoting::body::heartbeat::ConsumerData;
    use parking_lot::Mutex;

    use super::*;

    #[derive(Default)]
    struct Probe {
        rebalances: AtomicUsize,
        resets: Mutex<Vec<(String, HashMap<MessageQueue, i64>)>>,
        consumed: Mutex<Vec<MessageExt>>,
    }

    impl ConsumerHandle for Probe {
        fn group(&self) -> &str {
            "G"
        }
        fn consumer_data(&self) -> ConsumerData {
            ConsumerData { group_name: "G".into(), ..ConsumerData::default() }
        }
        fn subscribed_topics(&self) -> Vec<String> {
            vec!["T".into()]
        }
        fn rebalance_now(&self) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
        fn reset_offsets(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
            self.resets.lock().push((topic.to_owned(), offsets));
        }
        fn running_info(&self) -> serde_json::Value {
            serde_json::json!({"properties": {"consumeType": "CONSUME_PASSIVELY"}})
        }
        fn consume_directly(&self, message: MessageExt) -> serde_json::Value {
            self.consumed.lock().push(message);
            serde_json::json!({"consumeResult": "CR_SUCCESS", "order": false})
        }
    }

    fn table_with(probe: &Arc<Probe>) -> ConsumerTable {
        let table: ConsumerTable = Arc::default();
        table.write().insert("G".into(), Arc::clone(probe) as Arc<dyn ConsumerHandle>);
        table
    }

    #[test]
    fn notify_reaches_the_group() {
        let probe = Arc::new(Probe::default());
        let table = table_with(&probe);
        let request = RemotingCommand::request(40).with_ext("consumerGroup", "G");
        assert_eq!(notify_consumer_ids_changed(&table, &request).code, 0);
        assert_eq!(probe.rebalances.load(Ordering::SeqCst), 1);
        let other = RemotingCommand::request(40).with_ext("consumerGroup", "X");
        assert_eq!(notify_consumer_ids_changed(&table, &other).code, response_code::SYSTEM_ERROR);
        let bad = RemotingCommand::request(40);
        assert_eq!(notify_consumer_ids_changed(&table, &bad).code, response_code::SYSTEM_ERROR);
    }

    #[test]
    fn reset_passes_the_offset_table() {
        let probe = Arc::new(Probe::default());
        let table = table_with(&probe);
        let body = ResetOffsetBody { offset_table: [(MessageQueue::new("T", "b", 1), 42)].into() };
        let request = RemotingCommand::request(220)
            .with_ext("group", "G")
            .with_ext("topic", "T")
            .with_ext("timestamp", "0")
            .with_ext("isForce", "true")
            .with_body(fastjson::to_vec(&body, Dialect::Fastjson).unwrap());
        assert_eq!(reset_offset(&table, &request).code, 0);
        let resets = probe.resets.lock();
        assert_eq!(resets[0].0, "T");
        assert_eq!(resets[0].1[&MessageQueue::new("T", "b", 1)], 42);
        let garbage = request.clone().with_body(&b"{{{"[..]);
        assert_eq!(reset_offset(&table, &garbage).code, response_code::SYSTEM_ERROR);
    }

    #[tokio::test]
    async fn running_info_and_consume_directly() {
        let probe = Arc::new(Probe::default());
        let table = table_with(&probe);
        let request = RemotingCommand::request(307).with_ext("consumerGroup", "G").with_ext("clientId", "c");
        let answer = running_info(&table, &request).await;
        assert_eq!(answer.code, 0);
        let info: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(info["properties"]["consumeType"], "CONSUME_PASSIVELY");

        let mut stored = Vec::new();
        let ext = MessageExt {
            message: Message::new("T", &b"direct"[..]).with_tags("A"),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            born_host: "127.0.0.1:5000".parse().unwrap(),
            ..MessageExt::default()
        };
        record::encode(&ext, &mut stored).unwrap();
        let request = RemotingCommand::request(309).with_ext("consumerGroup", "G").with_body(stored);
        let answer = consume_directly(&table, &request).await;
        assert_eq!(answer.code, 0, "{:?}", answer.remark);
        let consumed = probe.consumed.lock().remove(0);
        assert_eq!(&consumed.message.body[..], b"direct");
        assert_eq!(consumed.message.tags(), Some("A"));

        let truncated = request.clone().with_body(&b"\0\0\0\x40"[..]);
        assert_eq!(consume_directly(&table, &truncated).await.code, response_code::SYSTEM_ERROR);
        let unknown = RemotingCommand::request(309).with_ext("consumerGroup", "nobody");
        assert_eq!(consume_directly(&table, &unknown).await.code, response_code::SYSTEM_ERROR);
    }
}
