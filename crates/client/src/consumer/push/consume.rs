//! Handing messages to the listener: concurrently (spec behaviour §4.11) or one batch at a
//! time per queue (§4.12), and sending failed messages back for redelivery (§4.13).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::{property, MessageExt};
use apogee_common::{topic, MessageQueue};
use apogee_remoting::header::consumer::ConsumerSendMsgBackRequestHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};

use super::{ConsumeResult, Listener, Shared};
use crate::consumer::process_queue::ProcessQueue;

/// Messages whose send-back failed are consumed again locally after this long.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Delay level that sends a message straight to the dead-letter topic.
const DLQ_DELAY_LEVEL: i32 = -1;
/// Delay level that lets the broker choose (`3 + reconsumeTimes`).
const BROKER_CHOOSES_DELAY_LEVEL: i32 = 0;
/// An orderly queue whose lock is missing asks for it again after this long.
const ORDERLY_RELOCK_DELAY: Duration = Duration::from_millis(10);
/// After a successful relock the queue's consumption resumes this soon.
const ORDERLY_LOCKED_RESUME_DELAY: Duration = Duration::from_millis(10);
/// After a refused relock the queue's consumption waits this long.
const ORDERLY_NOT_LOCKED_DELAY: Duration = Duration::from_secs(3);

/// Runs the listener on its own task, so that a panic counts as [`ConsumeResult::ReconsumeLater`]
/// instead of killing the consumer's task.
pub(crate) async fn call_listener(listener: &Listener, messages: Vec<MessageExt>) -> ConsumeResult {
    match tokio::spawn(listener(messages)).await {
        Ok(result) => result,
        Err(error) => {
            tracing::warn!(%error, "the listener panicked; the messages will be consumed again");
            ConsumeResult::ReconsumeLater
        }
    }
}

/// What the listener sees: messages of the group's retry topic carry their original topic
/// again, and every message the time consumption started.
pub(crate) fn prepare_for_listener(group: &str, messages: &mut [MessageExt]) {
    let retry_topic = topic::retry_topic(group);
    let now = apogee_common::time::now_ms().to_string();
    for message in messages {
        if message.message.topic == retry_topic {
            if let Some(original) = message.message.property(property::RETRY_TOPIC).map(str::to_owned) {
                message.message.topic = original;
            }
        }
        message.message.properties.insert(property::CONSUME_START_TIME, now.clone());
    }
}

impl Shared {
    /// Splits freshly pulled messages into listener batches and starts a task for each.
    pub(crate) fn submit_concurrently(
        self: &Arc<Self>,
        mq: &MessageQueue,
        pq: &Arc<ProcessQueue>,
        messages: Vec<MessageExt>,
    ) {
        for batch in messages.chunks(self.settings.consume_batch_max_size.max(1)) {
            tokio::spawn(self.clone().consume_concurrently(
                mq.clone(),
                pq.clone(),
                batch.to_vec(),
                Duration::ZERO,
            ));
        }
    }

    /// One concurrent batch: listener, send-back of failures, offset update. Boxed because
    /// a batch whose send-back failed schedules itself again.
    fn consume_concurrently(
        self: Arc<Self>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        messages: Vec<MessageExt>,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.consume_batch(mq, pq, messages, delay))
    }

    async fn consume_batch(
        self: Arc<Self>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        mut messages: Vec<MessageExt>,
        delay: Duration,
    ) {
        if !delay.is_zero() {
            tokio::select! {
                _ = pq.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let permit = tokio::select! {
            _ = pq.cancelled() => return,
            permit = self.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        if pq.is_dropped() {
            return;
        }
        prepare_for_listener(&self.group, &mut messages);
        let result = call_listener(&self.listener, messages.clone()).await;
        drop(permit);
        if pq.is_dropped() {
            // The queue has a new owner, which consumes these messages again.
            return;
        }
        let mut retry_locally = Vec::new();
        if result == ConsumeResult::ReconsumeLater {
            if self.settings.clustering() {
                for message in &messages {
                    if !self.send_message_back(&mq, message, BROKER_CHOOSES_DELAY_LEVEL).await {
                        let mut again = message.clone();
                        again.reconsume_times += 1;
                        retry_locally.push(again);
                    }
                }
            } else {
                for message in &messages {
                    tracing::warn!(group = %self.group, ?mq, msg_id = %message.msg_id(), "broadcast message failed; dropped");
                }
            }
        }
        let done = messages
            .iter()
            .map(|message| message.queue_offset)
            .filter(|offset| !retry_locally.iter().any(|again| again.queue_offset == *offset));
        if let Some(offset) = pq.remove_messages(done) {
            if !pq.is_dropped() {
                self.offset_store.update_offset(&mq, offset, true);
            }
        }
        if !retry_locally.is_empty() {
            tokio::spawn(self.clone().consume_concurrently(mq, pq, retry_locally, LOCAL_RETRY_DELAY));
        }
    }

    /// CONSUMER_SEND_MSG_BACK to the master of the message's broker group; true when the
    /// broker took it (for the retry topic or the DLQ).
    pub(crate) async fn send_message_back(
        &self,
        mq: &MessageQueue,
        message: &MessageExt,
        delay_level: i32,
    ) -> bool {
        let addr = match self.broker_addr_of(mq).await {
            Ok(addr) => addr,
            Err(_) => message.store_host.to_string(),
        };
        let header = ConsumerSendMsgBackRequestHeader {
            offset: message.commit_log_offset,
            group: self.group.clone(),
            delay_level,
            origin_msg_id: Some(message.msg_id()),
            origin_topic: Some(message.message.topic.clone()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.settings.max_reconsume_times),
            bname: Some(mq.broker_name.clone()),
        };
        let request = RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK).with_header(&header);
        match self.instance.invoke(&addr, request, self.settings.api_timeout).await {
            Ok(response) if response.code == response_code::SUCCESS => true,
            Ok(response) => {
                tracing::warn!(
                    group = %self.group, msg_id = %message.msg_id(), code = response.code,
                    remark = response.remark.as_deref().unwrap_or(""), "send-back refused"
                );
                false
            }
            Err(error) => {
                tracing::warn!(group = %self.group, msg_id = %message.msg_id(), %error, "send-back failed");
                false
            }
        }
    }

    /// Orderly consumption of one queue: one batch at a time, in offset order, only while
    /// the broker lock is held (clustering).
    pub(crate) async fn consume_orderly_loop(self: Arc<Self>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
        loop {
            if pq.is_dropped() || pq.is_cancelled() {
                return;
            }
            if !pq.has_pending() {
                tokio::select! {
                    _ = pq.cancelled() => return,
                    _ = pq.messages_arrived() => {}
                }
                continue;
            }
            let Some(guard) = lock_live_queue(&pq).await else {
                return;
            };
            if self.settings.clustering() && (!pq.is_locked() || pq.is_lock_expired()) {
                drop(guard);
                if !self.pause(&pq, ORDERLY_RELOCK_DELAY).await {
                    return;
                }
                // Locking under the consume lock: a rebalance releasing the queue waits for
                // it, so its unlock cannot overtake this lock request.
                let Some(guard) = lock_live_queue(&pq).await else {
                    return;
                };
                let locked = self.lock_queue(&mq, &pq).await;
                drop(guard);
                let wait = if locked { ORDERLY_LOCKED_RESUME_DELAY } else { ORDERLY_NOT_LOCKED_DELAY };
                if !self.pause(&pq, wait).await {
                    return;
                }
                continue;
            }
            let permit = tokio::select! {
                _ = pq.cancelled() => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let mut messages = pq.take_messages(self.settings.consume_batch_max_size.max(1));
            if messages.is_empty() {
                continue;
            }
            prepare_for_listener(&self.group, &mut messages);
            let result = call_listener(&self.listener, messages.clone()).await;
            drop(permit);
            let suspend = match result {
                ConsumeResult::Success => false,
                // The queue's new owner consumes these messages again.
                ConsumeResult::ReconsumeLater if pq.is_dropped() => return,
                ConsumeResult::ReconsumeLater => self.check_reconsume_times(&mq, &mut messages).await,
            };
            if suspend {
                pq.make_messages_consume_again(messages);
                drop(guard);
                if !self.pause(&pq, self.settings.suspend_current_queue_time).await {
                    return;
                }
                continue;
            }
            // Committed even when the queue was released meanwhile: the rebalance releasing it
            // waits for the consume lock held here and commits the offset after this update,
            // so the next owner does not consume this batch again.
            if let Some(offset) = pq.commit() {
                self.offset_store.update_offset(&mq, offset, false);
            }
            drop(guard);
            if pq.is_dropped() {
                return;
            }
        }
    }

    /// Orderly failure: messages below the reconsume limit are retried locally (their count
    /// goes up); the others are dead-lettered through the broker. True when the batch must be
    /// consumed again (a local retry or a failed dead-lettering).
    async fn check_reconsume_times(&self, mq: &MessageQueue, messages: &mut [MessageExt]) -> bool {
        let mut suspend = false;
        for message in messages.iter_mut() {
            if message.reconsume_times >= self.settings.max_reconsume_times {
                message
                    .message
                    .properties
                    .insert(property::RECONSUME_TIME, message.reconsume_times.to_string());
                if self.settings.clustering() && self.send_message_back(mq, message, DLQ_DELAY_LEVEL).await {
                    continue;
                }
                if !self.settings.clustering() {
                    tracing::warn!(group = %self.group, msg_id = %message.msg_id(), "broadcast message failed too often; dropped");
                    continue;
                }
            }
            suspend = true;
            message.reconsume_times += 1;
        }
        suspend
    }

    /// Sleeps unless the queue is dropped first; false when it was.
    async fn pause(&self, pq: &ProcessQueue, wait: Duration) -> bool {
        tokio::select! {
            _ = pq.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// CONSUME_MESSAGE_DIRECTLY: runs the listener on one message right now and reports the
    /// result as Java's `ConsumeMessageDirectlyResult`.
    pub(crate) fn consume_directly_json(&self, message: MessageExt) -> serde_json::Value {
        let mut messages = vec![message];
        prepare_for_listener(&self.group, &mut messages);
        let started = Instant::now();
        let future = (self.listener)(messages);
        let outcome = run_to_completion(future);
        let (result, remark) = match outcome {
            Some(ConsumeResult::Success) => ("CR_SUCCESS", None),
            Some(ConsumeResult::ReconsumeLater) => ("CR_LATER", None),
            None => ("CR_THROW_EXCEPTION", Some("the listener panicked")),
        };
        let mut json = serde_json::json!({
            "order": self.settings.orderly,
            "autoCommit": true,
            "consumeResult": result,
            "spentTimeMills": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(remark) = remark {
            json["remark"] = serde_json::Value::from(remark);
        }
        json
    }

    /// GET_CONSUMER_RUNNING_INFO: Java's `ConsumerRunningInfo` (properties, subscriptions and
    /// each queue's cache). Queue keys are the queue's JSON text, as a JSON value cannot have
    /// object keys.
    pub(crate) fn running_info_json(&self) -> serde_json::Value {
        let subscriptions: Vec<serde_json::Value> = self
            .subscriptions
            .lock()
            .values()
            .map(|data| serde_json::to_value(data).unwrap_or(serde_json::Value::Null))
            .collect();
        let queues: Vec<(MessageQueue, Arc<ProcessQueue>)> =
            self.process_queues.lock().iter().map(|(mq, pq)| (mq.clone(), pq.clone())).collect();
        let mut mq_table = serde_json::Map::new();
        for (mq, pq) in queues {
            let commit_offset = self.offset_store.read_memory(&mq).unwrap_or(-1);
            let key = serde_json::to_string(&mq).unwrap_or_default();
            mq_table.insert(key, pq.info(commit_offset));
        }
        serde_json::json!({
            "properties": {
                "PROP_NAMESERVER_ADDR": self.instance.config().namesrv_addr,
                "PROP_CONSUME_TYPE": "CONSUME_PASSIVELY",
                "PROP_CONSUMEORDERLY": self.settings.orderly.to_string(),
                "PROP_THREADPOOL_CORE_SIZE": self.settings.consume_thread_count.to_string(),
                "PROP_CONSUMER_START_TIMESTAMP": self.start_ms.to_string(),
                "PROP_CLIENT_VERSION": env!("CARGO_PKG_VERSION"),
                "messageModel": self.settings.message_model.name(),
                "consumeFromWhere": self.settings.consume_from_where.name(),
                "allocateMessageQueueStrategy": self.settings.allocate.name(),
                "consumeMessageBatchMaxSize": self.settings.consume_batch_max_size.to_string(),
                "pullBatchSize": self.settings.pull_batch_size.to_string(),
                "maxReconsumeTimes": self.settings.max_reconsume_times.to_string(),
            },
            "subscriptionSet": subscriptions,
            "mqTable": mq_table,
            "statusTable": {},
            "jstack": "",
        })
    }
}

/// Drives `future` to completion from synchronous code: inside a multi-threaded runtime by
/// blocking this worker, otherwise on a helper thread with a runtime of its own. `None` when
/// the listener panicked.
fn run_to_completion(future: super::ListenerFuture) -> Option<ConsumeResult> {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| runtime.block_on(tokio::spawn(future))).ok();
        }
    }
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async move { tokio::spawn(future).await }).ok()
    })
    .join()
    .ok()
    .flatten()
}

/// Takes `pq`'s consume lock for an orderly batch: `None`, which ends the queue's orderly loop,
/// when the queue is cancelled while waiting or dropped by the time the lock is held.
async fn lock_live_queue(pq: &ProcessQueue) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    let guard = tokio::select! {
        _ = pq.cancelled() => return None,
        guard = pq.consume_lock().lock() => guard,
    };
    (!pq.is_dropped()).then_some(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_messages_get_their_topic_back() {
        let mut retried = MessageExt::default();
        retried.message.topic = "%RETRY%g".into();
        retried.message.properties.insert(property::RETRY_TOPIC, "TopicTest");
        let mut other_group = MessageExt::default();
        other_group.message.topic = "%RETRY%h".into();
        other_group.message.properties.insert(property::RETRY_TOPIC, "TopicTest");
        let mut plain = MessageExt::default();
        plain.message.topic = "TopicTest".into();
        let mut messages = vec![retried, other_group, plain];
        prepare_for_listener("g", &mut messages);
        assert_eq!(
            messages.iter().map(|m| m.message.topic.as_str()).collect::<Vec<_>>(),
            ["TopicTest", "%RETRY%h", "TopicTest"]
        );
        assert!(messages.iter().all(|m| m.message.property(property::CONSUME_START_TIME).is_some()));
    }

    #[tokio::test]
    async fn a_panicking_listener_means_reconsume_later() {
        let listener: Listener = Arc::new(|messages: Vec<MessageExt>| {
            Box::pin(async move {
                if messages.is_empty() {
                    panic!("boom");
                }
                ConsumeResult::Success
            }) as super::super::ListenerFuture
        });
        assert_eq!(call_listener(&listener, vec![]).await, ConsumeResult::ReconsumeLater);
        assert_eq!(call_listener(&listener, vec![MessageExt::default()]).await, ConsumeResult::Success);
    }

    #[test]
    fn listeners_run_to_completion_from_sync_code() {
        let future: super::super::ListenerFuture = Box::pin(async { ConsumeResult::ReconsumeLater });
        assert_eq!(run_to_completion(future), Some(ConsumeResult::ReconsumeLater));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let result = runtime.block_on(async {
            tokio::spawn(async { run_to_completion(Box::pin(async { ConsumeResult::Success })) })
                .await
                .unwrap()
        });
        assert_eq!(result, Some(ConsumeResult::Success));
        // The client instance calls from a blocking thread of the runtime.
        let result = runtime.block_on(async {
            tokio::task::spawn_blocking(|| run_to_completion(Box::pin(async { ConsumeResult::Success })))
                .await
                .unwrap()
        });
        assert_eq!(result, Some(ConsumeResult::Success));
        let panicking: super::super::ListenerFuture = Box::pin(async { panic!("listener bug") });
        assert_eq!(
            runtime.block_on(async {
                tokio::task::spawn_blocking(|| run_to_completion(panicking)).await.unwrap()
            }),
            None
        );
    }
}
