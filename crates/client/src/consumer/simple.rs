//! The simple consumer (5.x POP consumption, behaviour spec §4.15): the broker keeps the
//! group's place. [`SimpleConsumer::receive`] pops messages that stay invisible to the rest
//! of the group for the invisible duration; the application then acks each one
//! ([`SimpleConsumer::ack`], [`SimpleConsumer::ack_batch`]) or asks for more time
//! ([`SimpleConsumer::change_invisible_duration`]). A message not acked in time comes back,
//! with one more reconsume time. Several members of a group share the messages with no
//! rebalancing: any member pops from any queue.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apogee_client::ClientError> {
//! use std::time::Duration;
//! use apogee_client::{FilterExpression, SimpleConsumer};
//! let consumer = SimpleConsumer::builder()
//!     .group("g")
//!     .namesrv("127.0.0.1:9876")
//!     .subscribe("test-topic", FilterExpression::tag("TagA || TagB"))
//!     .start()
//!     .await?;
//! for message in consumer.receive(16, Duration::from_secs(30)).await? {
//!     println!("{} {}", message.message().queue_offset, message.message().msg_id());
//!     consumer.ack(&message).await?;
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::property;
use apogee_common::message::record::decode_all_shared;
use apogee_common::{perm, topic};
use apogee_remoting::body::enums::{ConsumeType, ExpressionType, MessageModel};
use apogee_remoting::body::heartbeat::{ConsumerData, SubscriptionData};
use apogee_remoting::body::pop::{BatchAck, BatchAckMessageRequestBody, BitSet};
use apogee_remoting::body::route::MASTER_ID;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
use apogee_remoting::receipt::{self, ExtraInfo};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use crate::consumer::{LiveConsumer, Registration};
use crate::instance::ClientInstance;
use crate::{ClientConfig, ClientError, MessageExt};

/// Where a group new to a queue starts; re-exported so callers of
/// [`SimpleConsumerBuilder::consume_from_where`] need not depend on the protocol crate.
pub use apogee_remoting::body::enums::ConsumeFromWhere;

/// Most messages one receive asks for (the broker's limit).
pub const MAX_RECEIVE_MESSAGES: usize = 32;
/// How long a receive waits for a message unless set.
pub const DEFAULT_AWAIT_DURATION: Duration = Duration::from_secs(30);
/// How long received messages stay invisible unless a receive says otherwise.
pub const DEFAULT_INVISIBLE_DURATION: Duration = Duration::from_secs(30);
/// Shortest invisible duration accepted (Java's proxy refuses less than 10 s; the broker
/// itself takes anything, and tests use short ones).
pub const MIN_INVISIBLE_DURATION: Duration = Duration::from_millis(100);
/// Longest await: the broker holds a pop for at most 120 s.
pub const MAX_AWAIT_DURATION: Duration = Duration::from_secs(120);
/// `initMode` of a group starting at the first message of each queue.
const INIT_MODE_MIN: i32 = 0;
/// `initMode` of a group starting at the last message.
const INIT_MODE_MAX: i32 = 1;

/// What a subscription lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterExpression {
    /// A tag expression: `*`, or `TagA || TagB`.
    Tag(String),
    /// An SQL92 selector over message properties (the broker needs `enablePropertyFilter`).
    Sql92(String),
}

impl FilterExpression {
    /// A tag expression.
    pub fn tag(expression: impl Into<String>) -> Self {
        Self::Tag(expression.into())
    }

    /// An SQL92 selector.
    pub fn sql92(expression: impl Into<String>) -> Self {
        Self::Sql92(expression.into())
    }

    fn parts(&self) -> (ExpressionType, &str) {
        match self {
            Self::Tag(expression) => (ExpressionType::Tag, expression),
            Self::Sql92(expression) => (ExpressionType::Sql92, expression),
        }
    }
}

/// How a [`SimpleConsumer`] is set up.
#[derive(Debug, Clone)]
pub struct SimpleConsumerBuilder {
    group: String,
    config: ClientConfig,
    subscriptions: BTreeMap<String, FilterExpression>,
    await_duration: Duration,
    invisible_duration: Duration,
    consume_from_where: ConsumeFromWhere,
    fifo: bool,
}

impl Default for SimpleConsumerBuilder {
    fn default() -> Self {
        Self {
            group: String::new(),
            config: ClientConfig::default(),
            subscriptions: BTreeMap::new(),
            await_duration: DEFAULT_AWAIT_DURATION,
            invisible_duration: DEFAULT_INVISIBLE_DURATION,
            consume_from_where: ConsumeFromWhere::ConsumeFromLastOffset,
            fifo: false,
        }
    }
}

impl SimpleConsumerBuilder {
    crate::config::client_config_setters!(config);

    /// The consumer group (required): the broker keeps one place per group, and members of a
    /// group share its messages.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Consumes `topic` through `filter` (replacing an earlier filter of the topic).
    pub fn subscribe(mut self, topic_name: impl Into<String>, filter: FilterExpression) -> Self {
        self.subscriptions.insert(topic_name.into(), filter);
        self
    }

    /// How long a receive waits for a message when none is there (default 30 s, at most
    /// 120 s; zero answers at once).
    pub fn await_duration(mut self, duration: Duration) -> Self {
        self.await_duration = duration.min(MAX_AWAIT_DURATION);
        self
    }

    /// The invisible duration of [`SimpleConsumer::receive_default`] (default 30 s).
    pub fn invisible_duration(mut self, duration: Duration) -> Self {
        self.invisible_duration = duration;
        self
    }

    /// Where a group new to a queue starts: CONSUME_FROM_FIRST_OFFSET at its first message,
    /// anything else at its last one (the broker's choice, as Java's `initMode`).
    pub fn consume_from_where(mut self, from: ConsumeFromWhere) -> Self {
        self.consume_from_where = from;
        self
    }

    /// FIFO consumption (orderly POP): the broker hands out one batch per queue at a time and
    /// holds the queue's later messages back until the batch is acked or its invisible
    /// duration passes, so the messages of a queue (of one message group, when producers
    /// pick the queue by group) are received in order. A batch not acked in time comes again,
    /// from its first un-acked message, each message counting one more reconsume time.
    pub fn fifo(mut self, enabled: bool) -> Self {
        self.fifo = enabled;
        self
    }

    /// Starts the consumer on the shared client instance of its NameServers and instance
    /// name, and heartbeats its group as a POP consumer. Must run inside a Tokio runtime.
    pub async fn start(self) -> Result<SimpleConsumer, ClientError> {
        crate::consumer::check_group_name(&self.group)?;
        if self.subscriptions.is_empty() {
            return Err(ClientError::IllegalArgument("subscribe to at least one topic".into()));
        }
        let mut subscriptions = BTreeMap::new();
        for (topic_name, filter) in &self.subscriptions {
            topic::validate_topic_name(topic_name)
                .map_err(|error| ClientError::IllegalArgument(format!("topic {topic_name:?}: {error}")))?;
            let (expression_type, expression) = filter.parts();
            let data = crate::consumer::subscription::build_subscription(
                topic_name,
                expression.trim(),
                expression_type,
            )?;
            subscriptions.insert(topic_name.clone(), (filter.clone(), data));
        }
        let instance = ClientInstance::get(&self.config).await?;
        let shared = Arc::new(Shared {
            group: self.group.clone(),
            instance,
            subscriptions,
            await_duration: self.await_duration,
            invisible_duration: self.invisible_duration,
            init_mode: if self.consume_from_where == ConsumeFromWhere::ConsumeFromFirstOffset {
                INIT_MODE_MIN
            } else {
                INIT_MODE_MAX
            },
            fifo: self.fifo,
            next: AtomicUsize::new(0),
            attempts: AtomicU64::new(0),
            running: AtomicBool::new(true),
        });
        let registration = Registration { group: self.group, shared: Arc::downgrade(&shared) };
        shared.instance.register_consumer(Arc::new(registration))?;
        for topic_name in shared.subscriptions.keys() {
            if let Err(error) = shared.instance.topic_route(topic_name).await {
                tracing::debug!(topic = %topic_name, %error, "no route for a subscribed topic yet");
            }
        }
        shared.instance.send_heartbeat_to_all_brokers().await;
        Ok(SimpleConsumer { shared })
    }
}

/// A received message and what acknowledging it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    message: MessageExt,
    receipt_handle: String,
    /// The topic an ack names: the consumed topic, or its pop retry topic for a redelivery.
    ack_topic: String,
    broker_name: String,
    broker_addr: String,
}

impl ReceivedMessage {
    /// The message, its topic the subscribed one (also for redeliveries).
    pub fn message(&self) -> &MessageExt {
        &self.message
    }

    /// The message, taken out.
    pub fn into_message(self) -> MessageExt {
        self.message
    }

    /// The receipt handle the broker knows this delivery by (its `POP_CK` text).
    pub fn receipt_handle(&self) -> &str {
        &self.receipt_handle
    }

    /// Deliveries before this one (0 the first time).
    pub fn reconsume_times(&self) -> i32 {
        self.message.reconsume_times
    }

    /// The broker the message came from.
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    /// The topic an ack or a change of invisible time names: the consumed topic, or its pop
    /// retry topic when this delivery is a redelivery.
    pub fn ack_topic(&self) -> &str {
        &self.ack_topic
    }

    fn handle(&self) -> Result<ExtraInfo, ClientError> {
        ExtraInfo::parse(&self.receipt_handle).ok_or_else(|| {
            ClientError::IllegalArgument(format!("receipt handle {:?} is malformed", self.receipt_handle))
        })
    }
}

/// What the messages of one check point share: one entry of a batch ack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CheckPointKey {
    topic: String,
    retry_flag: String,
    queue_id: i32,
    start_offset: i64,
    pop_time_ms: i64,
    revive_qid: i32,
    invisible_ms: i64,
}

/// A POP consumer: see the [module documentation](self).
pub struct SimpleConsumer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SimpleConsumer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SimpleConsumer")
            .field("group", &self.shared.group)
            .field("topics", &self.shared.subscriptions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the consumer and its heartbeat registration share.
struct Shared {
    group: String,
    instance: Arc<ClientInstance>,
    subscriptions: BTreeMap<String, (FilterExpression, SubscriptionData)>,
    await_duration: Duration,
    invisible_duration: Duration,
    init_mode: i32,
    fifo: bool,
    /// Which (topic, broker) a receive tries first, round-robin.
    next: AtomicUsize,
    /// Numbers the attempt ids of FIFO receives.
    attempts: AtomicU64,
    running: AtomicBool,
}

/// One place a receive may pop from: a topic on one broker.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) topic: String,
    pub(crate) broker_name: String,
    pub(crate) broker_addr: String,
}

impl SimpleConsumer {
    /// A builder; set at least the group, the NameServers and one subscription.
    pub fn builder() -> SimpleConsumerBuilder {
        SimpleConsumerBuilder::default()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// [`Self::receive`] with the builder's invisible duration.
    pub async fn receive_default(&self, max_messages: usize) -> Result<Vec<ReceivedMessage>, ClientError> {
        self.receive(max_messages, self.shared.invisible_duration).await
    }

    /// Pops up to `max_messages` (1..=32) messages, invisible to the group for `invisible`:
    /// every subscribed topic on every broker is asked in turn without waiting; when none
    /// has a message, the next one in turn is asked with the await duration (the broker
    /// answers as soon as a message arrives). Empty when nothing came.
    pub async fn receive(
        &self,
        max_messages: usize,
        invisible: Duration,
    ) -> Result<Vec<ReceivedMessage>, ClientError> {
        let shared = &self.shared;
        shared.ensure_running()?;
        if !(1..=MAX_RECEIVE_MESSAGES).contains(&max_messages) {
            return Err(ClientError::IllegalArgument(format!(
                "max messages {max_messages} outside 1..={MAX_RECEIVE_MESSAGES}"
            )));
        }
        if invisible < MIN_INVISIBLE_DURATION {
            return Err(ClientError::IllegalArgument(format!(
                "invisible duration {invisible:?} below {MIN_INVISIBLE_DURATION:?}"
            )));
        }
        let sources = shared.sources().await?;
        if sources.is_empty() {
            return Err(ClientError::NoRoute {
                topic: shared.subscriptions.keys().cloned().collect::<Vec<_>>().join(","),
            });
        }
        let first = shared.next.fetch_add(1, Ordering::Relaxed);
        for step in 0..sources.len() {
            let source = &sources[(first + step) % sources.len()];
            let found = shared.pop(source, max_messages, invisible, Duration::ZERO).await?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        if shared.await_duration.is_zero() {
            return Ok(Vec::new());
        }
        let source = &sources[first % sources.len()];
        shared.pop(source, max_messages, invisible, shared.await_duration).await
    }

    /// Acknowledges a message: the broker will not deliver it again. Fails when the broker
    /// refuses (for instance a handle from before a change of invisible duration).
    pub async fn ack(&self, message: &ReceivedMessage) -> Result<(), ClientError> {
        let handle = message.handle()?;
        let header = AckMessageRequestHeader {
            consumer_group: self.shared.group.clone(),
            topic: message.ack_topic.clone(),
            queue_id: handle.queue_id,
            extra_info: message.receipt_handle.clone(),
            offset: handle.queue_offset.unwrap_or(message.message.queue_offset),
            bname: Some(message.broker_name.clone()),
        };
        let request = RemotingCommand::request(request_code::ACK_MESSAGE).with_header(&header);
        self.shared.call(&message.broker_addr, request).await.map(drop)
    }

    /// Acknowledges several messages, with one request per broker (BATCH_ACK_MESSAGE).
    pub async fn ack_batch(&self, messages: &[ReceivedMessage]) -> Result<(), ClientError> {
        let mut by_broker: BTreeMap<(String, String), BTreeMap<CheckPointKey, BitSet>> = BTreeMap::new();
        for message in messages {
            let handle = message.handle()?;
            let offset = handle.queue_offset.unwrap_or(message.message.queue_offset);
            let bit = offset
                .checked_sub(handle.ck_start_offset)
                .and_then(|diff| usize::try_from(diff).ok())
                .ok_or_else(|| {
                    ClientError::IllegalArgument("receipt handle offset before its start".into())
                })?;
            let key = CheckPointKey {
                topic: message.message.message.topic.clone(),
                retry_flag: handle.retry_flag.clone(),
                queue_id: handle.queue_id,
                start_offset: handle.ck_start_offset,
                pop_time_ms: handle.pop_time_ms,
                revive_qid: handle.revive_qid,
                invisible_ms: handle.invisible_ms,
            };
            let bits = by_broker
                .entry((message.broker_name.clone(), message.broker_addr.clone()))
                .or_default()
                .entry(key)
                .or_default();
            if !bits.set(bit) {
                return Err(ClientError::IllegalArgument(format!(
                    "offset {offset} too far from its check point"
                )));
            }
        }
        for ((broker_name, broker_addr), check_points) in by_broker {
            let acks = check_points
                .into_iter()
                .map(|(key, bit_set)| BatchAck {
                    bit_set,
                    consumer_group: self.shared.group.clone(),
                    invisible_time: key.invisible_ms,
                    pop_time: key.pop_time_ms,
                    queue_id: key.queue_id,
                    retry: key.retry_flag,
                    revive_queue_id: key.revive_qid,
                    start_offset: key.start_offset,
                    topic: key.topic,
                })
                .collect();
            let body = BatchAckMessageRequestBody { acks, broker_name };
            let bytes = fastjson::to_vec(&body, Dialect::Fastjson)
                .map_err(|error| ClientError::Malformed(error.to_string()))?;
            let request = RemotingCommand::request(request_code::BATCH_ACK_MESSAGE).with_body(bytes);
            self.shared.call(&broker_addr, request).await?;
        }
        Ok(())
    }

    /// Makes a received message invisible for `invisible` from now (longer or shorter than
    /// before). The message gets a new receipt handle, which later acks must use.
    pub async fn change_invisible_duration(
        &self,
        message: &mut ReceivedMessage,
        invisible: Duration,
    ) -> Result<(), ClientError> {
        let handle = message.handle()?;
        let offset = handle.queue_offset.unwrap_or(message.message.queue_offset);
        let header = ChangeInvisibleTimeRequestHeader {
            consumer_group: self.shared.group.clone(),
            topic: message.ack_topic.clone(),
            queue_id: handle.queue_id,
            extra_info: message.receipt_handle.clone(),
            offset,
            invisible_time: duration_ms(invisible),
            bname: Some(message.broker_name.clone()),
        };
        let request =
            RemotingCommand::request(request_code::CHANGE_MESSAGE_INVISIBLETIME).with_header(&header);
        let response = self.shared.call(&message.broker_addr, request).await?;
        let changed: ChangeInvisibleTimeResponseHeader =
            response.decode_header().map_err(|error| ClientError::Malformed(error.to_string()))?;
        // Java's client: the new check point starts at the message itself.
        let renewed = ExtraInfo {
            ck_start_offset: offset,
            pop_time_ms: changed.pop_time,
            invisible_ms: changed.invisible_time,
            revive_qid: changed.revive_qid,
            queue_offset: Some(offset),
            ..handle
        };
        message.receipt_handle = renewed.to_text();
        Ok(())
    }

    /// Stops the consumer: the group is unregistered from the brokers. Messages received and
    /// not acked come back after their invisible time. Calling it again does nothing.
    pub async fn shutdown(&self) {
        if self.shared.running.swap(false, Ordering::SeqCst) {
            self.shared.instance.unregister_consumer(&self.shared.group).await;
        }
    }
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        if self.shared.running.swap(false, Ordering::SeqCst) {
            let (instance, group) = (self.shared.instance.clone(), self.shared.group.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { instance.unregister_consumer(&group).await });
            }
        }
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Shared {
    fn ensure_running(&self) -> Result<(), ClientError> {
        if self.running.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ClientError::ShutDown)
        }
    }

    /// Every (topic, master broker) with readable queues, from the route cache (refreshed
    /// when a topic has no route yet).
    async fn sources(&self) -> Result<Vec<Source>, ClientError> {
        let mut sources = Vec::new();
        for topic_name in self.subscriptions.keys() {
            let route = match self.instance.cached_topic_route(topic_name) {
                Some(route) => route,
                None => self.instance.topic_route(topic_name).await?,
            };
            for queues in route
                .queue_datas
                .iter()
                .filter(|queues| perm::is_readable(queues.perm) && queues.read_queue_nums > 0)
            {
                let addr = route
                    .broker_datas
                    .iter()
                    .find(|broker| broker.broker_name == queues.broker_name)
                    .and_then(|broker| broker.broker_addrs.get(&MASTER_ID).cloned());
                if let Some(broker_addr) = addr {
                    sources.push(Source {
                        topic: topic_name.clone(),
                        broker_name: queues.broker_name.clone(),
                        broker_addr,
                    });
                }
            }
        }
        Ok(sources)
    }

    /// A request answered SUCCESS, else the broker's code as an error.
    async fn call(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand, ClientError> {
        let response = self.instance.invoke(addr, request, self.instance.config().api_timeout).await?;
        if response.code == response_code::SUCCESS {
            Ok(response)
        } else {
            Err(ClientError::Broker {
                code: response.code,
                remark: response.remark.unwrap_or_default(),
                addr: addr.to_owned(),
            })
        }
    }

    /// One POP_MESSAGE to `source`, every queue, waiting up to `poll`.
    async fn pop(
        &self,
        source: &Source,
        max_messages: usize,
        invisible: Duration,
        poll: Duration,
    ) -> Result<Vec<ReceivedMessage>, ClientError> {
        let (filter, _) = &self.subscriptions[&source.topic];
        let (expression_type, expression) = filter.parts();
        let header = PopMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: source.topic.clone(),
            queue_id: -1,
            max_msg_nums: i32::try_from(max_messages).unwrap_or(1),
            invisible_time: duration_ms(invisible),
            poll_time: duration_ms(poll),
            born_time: apogee_common::time::now_ms(),
            init_mode: self.init_mode,
            exp_type: Some(expression_type.name().to_owned()),
            exp: Some(expression.to_owned()),
            order: Some(self.fifo),
            attempt_id: self.fifo.then(|| {
                let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
                format!("{}-{}-{attempt}", self.instance.client_id(), self.group)
            }),
            bname: Some(source.broker_name.clone()),
        };
        let request = RemotingCommand::request(request_code::POP_MESSAGE).with_header(&header);
        let timeout = poll + self.instance.config().api_timeout;
        let response = self.instance.invoke(&source.broker_addr, request, timeout).await?;
        match response.code {
            response_code::SUCCESS => popped(&self.group, source, &response),
            response_code::POLLING_TIMEOUT | response_code::POLLING_FULL | response_code::PULL_NOT_FOUND => {
                Ok(Vec::new())
            }
            code => Err(ClientError::Broker {
                code,
                remark: response.remark.unwrap_or_default(),
                addr: source.broker_addr.clone(),
            }),
        }
    }
}

/// The messages of a SUCCESS pop of `source` for `group`, each with its receipt handle built
/// as Java's client builds it: the broker's `POP_CK` when present (redeliveries), else from the
/// header's per-queue start offsets. Shared by [`SimpleConsumer`] and the relay's pop.
pub(crate) fn popped(
    group: &str,
    source: &Source,
    response: &RemotingCommand,
) -> Result<Vec<ReceivedMessage>, ClientError> {
    let header: PopMessageResponseHeader =
        response.decode_header().map_err(|error| ClientError::Malformed(error.to_string()))?;
    let starts = receipt::parse_start_offsets(header.start_offset_info.as_deref().unwrap_or(""));
    let counts = receipt::parse_order_counts(header.order_count_info.as_deref().unwrap_or(""));
    let messages =
        decode_all_shared(&response.body).map_err(|error| ClientError::Malformed(error.to_string()))?;
    let mut received = Vec::with_capacity(messages.len());
    for mut message in messages {
        let pop_header = receipt::PopHeader {
            start_offsets: &starts,
            pop_time_ms: header.pop_time,
            invisible_ms: header.invisible_time,
            revive_qid: header.revive_qid,
            broker_name: &source.broker_name,
        };
        let pop_ck = message.message.properties.get(property::POP_CK);
        let key = receipt::queue_key(&message.message.topic, message.queue_id);
        let Some(handle) = receipt::popped_handle(
            &pop_header,
            &message.message.topic,
            message.queue_id,
            message.queue_offset,
            pop_ck,
        ) else {
            return Err(ClientError::Malformed(format!("pop response names no start offset for {key}")));
        };
        let count = counts
            .get(&receipt::offset_key(&message.message.topic, message.queue_id, message.queue_offset))
            .or_else(|| counts.get(&receipt::queue_key(&message.message.topic, message.queue_id)));
        if let Some(count) = count.filter(|count| **count > 0) {
            message.reconsume_times = i32::try_from(*count).unwrap_or(i32::MAX);
        }
        if !message.message.properties.contains_key(property::FIRST_POP_TIME) {
            message.message.properties.insert(property::FIRST_POP_TIME, header.pop_time.to_string());
        }
        let parsed = ExtraInfo::parse(&handle)
            .ok_or_else(|| ClientError::Malformed(format!("receipt handle {handle:?} is malformed")))?;
        let ack_topic = parsed.real_topic(&source.topic, group);
        message.message.topic = source.topic.clone();
        received.push(ReceivedMessage {
            message,
            receipt_handle: handle,
            ack_topic,
            broker_name: source.broker_name.clone(),
            broker_addr: source.broker_addr.clone(),
        });
    }
    Ok(received)
}

/// The consumer as the client instance sees it (heartbeats, broker callbacks).
impl LiveConsumer for Shared {
    const CONSUME_TYPE: ConsumeType = ConsumeType::ConsumePop;
    const NO_DIRECT_CONSUME_REMARK: &'static str = "a simple consumer has no listener to consume directly";

    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: Some(if self.init_mode == INIT_MODE_MIN {
                ConsumeFromWhere::ConsumeFromFirstOffset
            } else {
                ConsumeFromWhere::ConsumeFromLastOffset
            }),
            consume_type: Some(ConsumeType::ConsumePop),
            group_name: self.group.clone(),
            message_model: Some(MessageModel::Clustering),
            subscription_data_set: self.subscriptions.values().map(|(_, data)| data.clone()).collect(),
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.subscriptions.keys().cloned().collect()
    }

    // POP needs no rebalance (every member pops from every queue) and the broker keeps a POP
    // group's offsets (a reset is applied there): the default no-ops serve.

    fn running_info(&self) -> serde_json::Value {
        serde_json::json!({
            "properties": {
                "consumerGroup": self.group,
                "PROP_CONSUME_TYPE": ConsumeType::ConsumePop.name(),
                "messageModel": MessageModel::Clustering.name(),
            },
            "subscriptionSet": self.subscriptions.values().map(|(_, data)| serde_json::to_value(data).unwrap_or(serde_json::Value::Null)).collect::<Vec<_>>(),
            "mqTable": {},
            "statusTable": {},
        })
    }
}
