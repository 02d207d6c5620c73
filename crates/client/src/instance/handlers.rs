//! The requests brokers send to a client over the client's own connections (protocol §3.4,
//! §3.5): rebalance now, reset offsets, report running info, consume one message directly,
//! check a transaction, take a reply. Each is routed by its group: a consumer request by `consumerGroup` to
//! the registered [`ConsumerHandle`], a transaction check by the message's producer group to
//! its checker.

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
use apogee_remoting::header::CommandHeader;
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use parking_lot::RwLock;

use super::ConsumerHandle;
use crate::producer::request::{self, ReplyTable};
use crate::producer::transaction::{self, Checker};

/// The consumers of an instance by group, shared between the instance and its router.
pub(crate) type ConsumerTable = Arc<RwLock<HashMap<String, Arc<dyn ConsumerHandle>>>>;

/// The transaction checkers of an instance by producer group, shared the same way.
pub(crate) type CheckerTable = Arc<RwLock<HashMap<String, Checker>>>;

/// The router of an instance's remoting client.
pub(crate) fn router(consumers: &ConsumerTable, checkers: &CheckerTable, replies: &ReplyTable) -> Router {
    let mut router = Router::new();
    let replies = Arc::clone(replies);
    router.register(
        request_code::PUSH_REPLY_MESSAGE_TO_CLIENT,
        move |_: Connection, request: RemotingCommand| {
            let answer = request::answer_push(&replies, &request);
            async move { Some(answer) }
        },
    );
    let checkers = Arc::clone(checkers);
    router.register(
        request_code::CHECK_TRANSACTION_STATE,
        move |connection: Connection, request: RemotingCommand| {
            transaction::answer_check(&checkers, connection, &request);
            async move { None }
        },
    );
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
/// table; a refusal is the answer too.
fn route<F, Fut>(router: &mut Router, code: i32, consumers: &ConsumerTable, handler: F)
where
    F: Fn(ConsumerTable, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let table = Arc::clone(consumers);
    router.register(code, move |_: Connection, request: RemotingCommand| {
        let answer = handler(Arc::clone(&table), request);
        async move { Some(answer.await.unwrap_or_else(|refusal| *refusal)) }
    });
}

/// What a handler answers: success, or a refusal (boxed, a command being large) that `?`
/// returns early.
pub(crate) type Answer = Result<RemotingCommand, Box<RemotingCommand>>;

fn lookup(table: &ConsumerTable, group: &str) -> Option<Arc<dyn ConsumerHandle>> {
    table.read().get(group).cloned()
}

fn error(request: &RemotingCommand, remark: String) -> Box<RemotingCommand> {
    Box::new(RemotingCommand::respond_to(request, response_code::SYSTEM_ERROR, Some(remark)))
}

/// The header of `request` and the registered consumer of the group `group` names in it, or
/// the refusal (malformed header, unknown group).
fn addressed<H: CommandHeader>(
    table: &ConsumerTable,
    request: &RemotingCommand,
    group: impl FnOnce(&H) -> &str,
) -> Result<(H, Arc<dyn ConsumerHandle>), Box<RemotingCommand>> {
    let header = request.decode_header::<H>().map_err(|err| error(request, err.to_string()))?;
    let group = group(&header);
    let consumer = lookup(table, group)
        .ok_or_else(|| error(request, format!("The Consumer Group <{group}> not exist in this consumer")))?;
    Ok((header, consumer))
}

/// NOTIFY_CONSUMER_IDS_CHANGED (oneway): wake the group's rebalance.
pub(crate) fn notify_consumer_ids_changed(table: &ConsumerTable, request: &RemotingCommand) -> Answer {
    let (header, consumer) =
        addressed(table, request, |header: &NotifyConsumerIdsChangedRequestHeader| &header.consumer_group)?;
    tracing::debug!(group = %header.consumer_group, "consumer ids changed; rebalancing now");
    consumer.rebalance_now();
    Ok(RemotingCommand::success_for(request))
}

/// RESET_CONSUMER_CLIENT_OFFSET: restart the group's queues of a topic at the given offsets.
pub(crate) fn reset_offset(table: &ConsumerTable, request: &RemotingCommand) -> Answer {
    let (header, consumer) = addressed(table, request, |header: &ResetOffsetRequestHeader| &header.group)?;
    let offsets = if request.body.is_empty() {
        HashMap::new()
    } else {
        let body = fastjson::from_slice::<ResetOffsetBody>(&request.body)
            .map_err(|err| error(request, format!("malformed ResetOffsetBody: {err}")))?;
        body.offset_table.into_iter().collect()
    };
    tracing::info!(group = %header.group, topic = %header.topic, queues = offsets.len(), "resetting offsets");
    consumer.reset_offsets(&header.topic, offsets);
    Ok(RemotingCommand::success_for(request))
}

/// GET_CONSUMER_RUNNING_INFO: the consumer's ConsumerRunningInfo JSON as the body.
pub(crate) async fn running_info(table: &ConsumerTable, request: &RemotingCommand) -> Answer {
    let (_, consumer) =
        addressed(table, request, |header: &GetConsumerRunningInfoRequestHeader| &header.consumer_group)?;
    // The consumer may walk large tables; keep that off the connection's reactor thread.
    answer_from_blocking(request, "running info", move || consumer.running_info()).await
}

/// CONSUME_MESSAGE_DIRECTLY: decode the stored record in the body and hand it to the consumer.
pub(crate) async fn consume_directly(table: &ConsumerTable, request: &RemotingCommand) -> Answer {
    let (_, consumer) = addressed(table, request, |header: &ConsumeMessageDirectlyResultRequestHeader| {
        &header.consumer_group
    })?;
    let mut message = match record::decode_all(&request.body).map(|messages| messages.into_iter().next()) {
        Ok(Some(message)) => message,
        Ok(None) => return Err(error(request, "no message in the request body".to_owned())),
        Err(err) => return Err(error(request, format!("malformed message: {err}"))),
    };
    message
        .decompress_body()
        .map_err(|err| error(request, format!("message body cannot be inflated: {err}")))?;
    // User code runs here and may block for as long as it likes.
    answer_from_blocking(request, "consume directly", move || consumer.consume_directly(message)).await
}

/// Runs `work` (consumer code that may block) on the blocking pool and answers `request` with
/// its JSON, or refuses it naming `what` when the work panicked.
async fn answer_from_blocking(
    request: &RemotingCommand,
    what: &str,
    work: impl FnOnce() -> serde_json::Value + Send + 'static,
) -> Answer {
    let value = tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| error(request, format!("{what} failed: {err}")))?;
    let body = fastjson::to_vec(&value, Dialect::Fastjson)
        .map_err(|err| error(request, format!("cannot encode the answer: {err}")))?;
    Ok(RemotingCommand::success_for(request).with_body(body))
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

    /// The command a handler's answer sends, success or refusal.
    fn flat(answer: Answer) -> RemotingCommand {
        answer.unwrap_or_else(|refusal| *refusal)
    }

    #[test]
    fn notify_reaches_the_group() {
        let probe = Arc::new(Probe::default());
        let table = table_with(&probe);
        let request = RemotingCommand::request(40).with_ext("consumerGroup", "G");
        assert_eq!(flat(notify_consumer_ids_changed(&table, &request)).code, 0);
        assert_eq!(probe.rebalances.load(Ordering::SeqCst), 1);
        let other = RemotingCommand::request(40).with_ext("consumerGroup", "X");
        assert_eq!(flat(notify_consumer_ids_changed(&table, &other)).code, response_code::SYSTEM_ERROR);
        let bad = RemotingCommand::request(40);
        assert_eq!(flat(notify_consumer_ids_changed(&table, &bad)).code, response_code::SYSTEM_ERROR);
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
        assert_eq!(flat(reset_offset(&table, &request)).code, 0);
        let resets = probe.resets.lock();
        assert_eq!(resets[0].0, "T");
        assert_eq!(resets[0].1[&MessageQueue::new("T", "b", 1)], 42);
        let garbage = request.clone().with_body(&b"{{{"[..]);
        assert_eq!(flat(reset_offset(&table, &garbage)).code, response_code::SYSTEM_ERROR);
    }

    #[tokio::test]
    async fn running_info_and_consume_directly() {
        let probe = Arc::new(Probe::default());
        let table = table_with(&probe);
        let request = RemotingCommand::request(307).with_ext("consumerGroup", "G").with_ext("clientId", "c");
        let answer = flat(running_info(&table, &request).await);
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
        let answer = flat(consume_directly(&table, &request).await);
        assert_eq!(answer.code, 0, "{:?}", answer.remark);
        let consumed = probe.consumed.lock().remove(0);
        assert_eq!(&consumed.message.body[..], b"direct");
        assert_eq!(consumed.message.tags(), Some("A"));

        let truncated = request.clone().with_body(&b"\0\0\0\x40"[..]);
        assert_eq!(flat(consume_directly(&table, &truncated).await).code, response_code::SYSTEM_ERROR);
        let unknown = RemotingCommand::request(309).with_ext("consumerGroup", "nobody");
        assert_eq!(flat(consume_directly(&table, &unknown).await).code, response_code::SYSTEM_ERROR);
    }
}
