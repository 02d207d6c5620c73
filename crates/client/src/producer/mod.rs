//! The producer (Java `DefaultMQProducer`, behaviour spec §3).
//!
//! ```no_run
//! # async fn demo() -> Result<(), apogee_client::ClientError> {
//! use apogee_client::producer::select_by_hash;
//! use apogee_client::{Message, Producer};
//!
//! let producer = Producer::builder().group("PG").namesrv("127.0.0.1:9876").start().await?;
//! let result = producer.send(Message::new("TopicTest", &b"hello"[..]).with_tags("TagA")).await?;
//! println!("{} stored in {:?} at {}", result.msg_id, result.queue, result.queue_offset);
//! // Ordered: the same key always goes to the same queue.
//! producer.send_with_selector(Message::new("TopicTest", &b"step 1"[..]), select_by_hash("order-42")).await?;
//! producer.send_with_callback(Message::new("TopicTest", &b"later"[..]), |result| {
//!     if let Err(error) = result {
//!         eprintln!("async send failed: {error}");
//!     }
//! })?;
//! producer.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::compression::{
    self, CompressionType, DEFAULT_COMPRESS_OVER_BYTES, DEFAULT_LEVEL,
};
use apogee_common::topic::{self, AUTO_CREATE_TOPIC_KEY, GROUP_MAX_LENGTH};
use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::client::RemotingError;
use apogee_remoting::recall::RecallHandle;
use apogee_remoting::response_code;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::instance::{route::MAX_QUEUE_NUMS_PER_BROKER, ClientInstance, MAX_TOPICS_PER_PRODUCER};
use crate::{ClientConfig, ClientError, Message, MessageQueue};

mod latency;
mod prepare;
mod publish;
pub(crate) mod recall;
pub mod request;
pub mod selector;
pub mod transaction;

pub use latency::{
    not_available_duration_ms, LatencyFaultTolerance, ISOLATION_LATENCY_MS, LATENCY_MAX_MS,
    NOT_AVAILABLE_DURATION_MS,
};
pub use prepare::{validate_message, Compression, NOT_ALLOWED_SEND_TOPICS};
pub use publish::{borrow_template_route, RouteSource, TopicPublishInfo, MAX_PUBLISH_QUEUES};
pub use request::{create_reply_message, is_reply};
pub use selector::{select_by_hash, select_by_hash_code, select_random};
pub use transaction::{
    LocalTransactionState, TransactionCheck, TransactionCheckForwarder, TransactionListener,
    TransactionProducer, TransactionSendResult,
};

use prepare::{Prepared, Sender};

/// Java's default producer group; refused at start, a producer must name its own.
pub const DEFAULT_PRODUCER_GROUP: &str = "DEFAULT_PRODUCER";

/// The group of producers the client itself runs (consumer send-back); it keeps the
/// `DEFAULT` instance name.
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// Default time budget of one send, all retries included (`sendMsgTimeout`).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_millis(3_000);

/// Default largest body (or encoded batch) a producer sends (`maxMessageSize`, 4 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE_BYTES: usize = 4 * 1024 * 1024;

/// Largest `max_message_size_bytes` accepted: the request must still fit a 16 MiB frame.
pub const MAX_MESSAGE_SIZE_LIMIT_BYTES: usize = 15 * 1024 * 1024;

/// Default number of asynchronous sends waiting at once (Java's async executor queue).
pub const DEFAULT_MAX_ASYNC_IN_FLIGHT: usize = 50_000;

/// Bodies at least this large are compressed on the blocking pool, off the async workers.
pub const COMPRESS_OFF_THREAD_BYTES: usize = 256 * 1024;

/// Response codes after which a synchronous send tries again (`retryResponseCodes`).
pub const DEFAULT_RETRY_RESPONSE_CODES: [i32; 8] = [
    response_code::TOPIC_NOT_EXIST,
    response_code::SERVICE_NOT_AVAILABLE,
    response_code::SYSTEM_ERROR,
    response_code::SYSTEM_BUSY,
    response_code::NO_PERMISSION,
    response_code::NO_BUYER_ID,
    response_code::NOT_IN_CURRENT_UNIT,
    response_code::GO_AWAY,
];

/// A random 32-bit value for spreading load (round-robin starts, NameServer choice); not for
/// anything secret.
pub(crate) fn random_u32() -> u32 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    // Truncation keeps the low half of a well-mixed hash.
    RandomState::new().hash_one((call, Instant::now())) as u32
}

/// Outcome of a stored send (Java `SendStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored.
    SendOk,
    /// Stored, not flushed in time (SYNC_FLUSH broker).
    FlushDiskTimeout,
    /// Stored, not replicated in time.
    FlushSlaveTimeout,
    /// Stored, no slave available.
    SlaveNotAvailable,
}

/// What a send returns.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// Status.
    pub status: SendStatus,
    /// The client message id (UNIQ_KEY); comma-joined for batches.
    pub msg_id: String,
    /// The broker's offset id(s).
    pub offset_msg_id: String,
    /// Queue used.
    pub queue: MessageQueue,
    /// Queue offset of the (first) message.
    pub queue_offset: i64,
    /// The broker's `transactionId` (the message's UNIQ_KEY on Java brokers), needed to end a
    /// transaction.
    pub transaction_id: Option<String>,
    /// The broker's region (`MSG_REGION`), for tracing.
    pub region_id: Option<String>,
    /// For a timer message, what [`Producer::recall`] takes to cancel it before it is due.
    pub recall_handle: Option<String>,
}

/// Every producer setting, with Java's names and defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `producerGroup`; required, [`DEFAULT_PRODUCER_GROUP`] is refused.
    pub group: String,
    /// `createTopicKey`: the template the broker creates unknown topics from.
    pub create_topic_key: String,
    /// `defaultTopicQueueNums`: queues of an auto-created topic (and of a borrowed route).
    pub default_topic_queue_nums: i32,
    /// `sendMsgTimeout`: budget of one send, route lookup and all retries included.
    pub send_timeout: Duration,
    /// `retryTimesWhenSendFailed`: extra attempts of a synchronous send.
    pub retry_times_when_send_failed: u32,
    /// `retryTimesWhenSendAsyncFailed`: extra attempts of an asynchronous send after
    /// transport failures.
    pub retry_times_when_send_async_failed: u32,
    /// `retryAnotherBrokerWhenNotStoreOK`: retry FLUSH_DISK_TIMEOUT & co. elsewhere.
    pub retry_another_broker_when_not_store_ok: bool,
    /// `maxMessageSize`: largest body, or encoded batch, in bytes.
    pub max_message_size_bytes: usize,
    /// `compressMsgBodyOverHowmuch`: bodies of at least this many bytes are compressed.
    pub compress_over_bytes: usize,
    /// `compressType`.
    pub compress_type: CompressionType,
    /// `compressLevel`.
    pub compress_level: i32,
    /// `sendLatencyFaultEnable`: avoid slow and failing brokers when picking queues.
    pub send_latency_fault_enable: bool,
    /// `retryResponseCodes`: broker codes after which a synchronous send tries again.
    pub retry_response_codes: Vec<i32>,
    /// Most asynchronous sends waiting at once; more are refused with
    /// [`ClientError::TooManyRequests`].
    pub max_async_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            group: DEFAULT_PRODUCER_GROUP.to_owned(),
            create_topic_key: AUTO_CREATE_TOPIC_KEY.to_owned(),
            default_topic_queue_nums: 4,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            retry_another_broker_when_not_store_ok: false,
            max_message_size_bytes: DEFAULT_MAX_MESSAGE_SIZE_BYTES,
            compress_over_bytes: DEFAULT_COMPRESS_OVER_BYTES,
            compress_type: CompressionType::Zlib,
            compress_level: DEFAULT_LEVEL,
            send_latency_fault_enable: false,
            retry_response_codes: DEFAULT_RETRY_RESPONSE_CODES.to_vec(),
            max_async_in_flight: DEFAULT_MAX_ASYNC_IN_FLIGHT,
        }
    }
}

impl ProducerConfig {
    /// Checks the settings the producer relies on.
    pub fn validate(&self) -> Result<(), ClientError> {
        let illegal = |why: String| Err(ClientError::IllegalArgument(why));
        let group = self.group.as_str();
        if group.trim().is_empty() {
            return illegal("the producer group is blank".into());
        }
        if group == DEFAULT_PRODUCER_GROUP {
            return illegal(format!(
                "the producer group {group} can not equal {DEFAULT_PRODUCER_GROUP}; name your own"
            ));
        }
        if group.len() > GROUP_MAX_LENGTH {
            return illegal(format!("the producer group is longer than {GROUP_MAX_LENGTH} bytes"));
        }
        if topic::validate_topic_name(group).is_err() {
            return illegal(format!(
                "the producer group {group:?} contains illegal characters (allowed: ^[%|a-zA-Z0-9_-]+$)"
            ));
        }
        if !(1..=MAX_QUEUE_NUMS_PER_BROKER).contains(&self.default_topic_queue_nums) {
            return illegal(format!("default_topic_queue_nums must be in 1..={MAX_QUEUE_NUMS_PER_BROKER}"));
        }
        if self.send_timeout.is_zero() {
            return illegal("send_timeout must be positive".into());
        }
        if !(1..=MAX_MESSAGE_SIZE_LIMIT_BYTES).contains(&self.max_message_size_bytes) {
            return illegal(format!("max_message_size_bytes must be in 1..={MAX_MESSAGE_SIZE_LIMIT_BYTES}"));
        }
        if self.max_async_in_flight == 0 {
            return illegal("max_async_in_flight must be positive".into());
        }
        Ok(())
    }

    fn compression(&self) -> Compression {
        Compression {
            over_bytes: self.compress_over_bytes,
            kind: self.compress_type,
            level: self.compress_level,
        }
    }
}

/// Builds and starts a [`Producer`]: `Producer::builder().group("PG").namesrv(addr).start()`.
#[derive(Debug, Clone, Default)]
pub struct ProducerBuilder {
    config: ProducerConfig,
    client: ClientConfig,
}

impl ProducerBuilder {
    /// Producer group (required).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.config.group = group.into();
        self
    }

    crate::config::client_config_setters!(client);

    /// All producer settings at once; the group set before is replaced by `config.group`.
    pub fn config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    /// Budget of one send, retries included (default 3 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// Extra attempts of a synchronous send (default 2).
    pub fn retry_times(mut self, retries: u32) -> Self {
        self.config.retry_times_when_send_failed = retries;
        self
    }

    /// Extra attempts of an asynchronous send after transport failures (default 2).
    pub fn async_retry_times(mut self, retries: u32) -> Self {
        self.config.retry_times_when_send_async_failed = retries;
        self
    }

    /// Retry sends whose status is not SEND_OK on another broker (default off).
    pub fn retry_another_broker_when_not_store_ok(mut self, retry: bool) -> Self {
        self.config.retry_another_broker_when_not_store_ok = retry;
        self
    }

    /// Compress bodies of at least this many bytes (default 4096).
    pub fn compress_over_bytes(mut self, bytes: usize) -> Self {
        self.config.compress_over_bytes = bytes;
        self
    }

    /// Compression algorithm (default zlib).
    pub fn compress_type(mut self, kind: CompressionType) -> Self {
        self.config.compress_type = kind;
        self
    }

    /// Compression level (default 5).
    pub fn compress_level(mut self, level: i32) -> Self {
        self.config.compress_level = level;
        self
    }

    /// Largest body or encoded batch, in bytes (default 4 MiB).
    pub fn max_message_size_bytes(mut self, bytes: usize) -> Self {
        self.config.max_message_size_bytes = bytes;
        self
    }

    /// Latency fault tolerance on or off (default off).
    pub fn latency_fault_tolerance(mut self, enabled: bool) -> Self {
        self.config.send_latency_fault_enable = enabled;
        self
    }

    /// Queues of auto-created topics (default 4).
    pub fn default_topic_queue_nums(mut self, queue_nums: i32) -> Self {
        self.config.default_topic_queue_nums = queue_nums;
        self
    }

    /// Template topic for auto-creation (default TBW102).
    pub fn create_topic_key(mut self, topic: impl Into<String>) -> Self {
        self.config.create_topic_key = topic.into();
        self
    }

    /// Validates the settings, joins (or starts) the client instance and registers the group.
    pub async fn start(self) -> Result<Producer, ClientError> {
        let ProducerBuilder { config, mut client } = self;
        config.validate()?;
        if config.group != CLIENT_INNER_PRODUCER_GROUP {
            client.change_instance_name_to_pid();
        }
        let runtime = Handle::try_current()
            .map_err(|_| ClientError::IllegalArgument("a producer needs a tokio runtime".into()))?;
        // An instance being released between `get` and `register` is replaced by a new one.
        let mut tries = 0;
        let instance = loop {
            let instance = ClientInstance::get(&client).await?;
            match instance.register_producer(&config.group) {
                Ok(()) => break instance,
                Err(ClientError::ShutDown) if tries < 3 => tries += 1,
                Err(error) => return Err(error),
            }
        };
        // As Java's producer does, the template topic is in use from the start: its route names
        // the brokers, so heartbeats reach them before the first send, and a transaction
        // producer that never sends still gets the brokers' checks.
        instance.add_producer_topic(&config.group, &config.create_topic_key);
        let beat = Arc::clone(&instance);
        let template_topic = config.create_topic_key.clone();
        runtime.spawn(async move {
            if let Err(error) = beat.refresh_topic_route(&template_topic).await {
                tracing::debug!(%error, topic = %template_topic, "no route for the template topic");
            }
            beat.send_heartbeat_to_all_brokers().await
        });
        tracing::info!(group = %config.group, client_id = instance.client_id(), "producer started");
        Ok(Producer {
            inner: Arc::new(Inner {
                faults: LatencyFaultTolerance::new(config.send_latency_fault_enable),
                config,
                instance,
                publish: Mutex::default(),
                running: AtomicBool::new(true),
                async_in_flight: AtomicUsize::new(0),
                runtime,
            }),
        })
    }
}

/// A producer. Cheap to clone; clones share everything. Call [`Producer::shutdown`] when done
/// (dropping the last clone unregisters in the background).
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ProducerConfig,
    instance: Arc<ClientInstance>,
    /// Topic → publish list, rebuilt when the instance's route changes.
    publish: Mutex<HashMap<String, Arc<TopicPublishInfo>>>,
    faults: LatencyFaultTolerance,
    running: AtomicBool,
    async_in_flight: AtomicUsize,
    runtime: Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.running.swap(false, Ordering::AcqRel) {
            let instance = Arc::clone(&self.instance);
            let group = self.config.group.clone();
            self.runtime.spawn(async move { instance.unregister_producer(&group).await });
        }
    }
}

/// How one attempt is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Oneway,
}

impl Producer {
    /// A builder with Java's defaults.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.inner.config.group
    }

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// The client instance this producer sends through.
    pub fn instance(&self) -> &Arc<ClientInstance> {
        &self.inner.instance
    }

    /// The broker fault table (empty unless latency fault tolerance is on).
    pub fn fault_tolerance(&self) -> &LatencyFaultTolerance {
        &self.inner.faults
    }

    fn check_running(&self) -> Result<(), ClientError> {
        if self.inner.running.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ClientError::ShutDown)
        }
    }

    /// Sends and waits for the broker's answer.
    pub async fn send(&self, message: Message) -> Result<SendResult, ClientError> {
        self.send_with_timeout(message, self.inner.config.send_timeout).await
    }

    /// [`Self::send`] with a time budget of its own instead of `send_timeout`: up to
    /// `1 + retry_times_when_send_failed` attempts, each on the next queue (another broker when
    /// there is one), retrying after transport failures and the retry response codes.
    pub async fn send_with_timeout(
        &self,
        message: Message,
        timeout: Duration,
    ) -> Result<SendResult, ClientError> {
        let started = Instant::now();
        self.check_running()?;
        let prepared = self.prepare(message).await?;
        self.send_with_retries(&prepared, timeout, started).await
    }

    /// Sends a batch (one topic, no delay, no retry topic; encoded as a SEND_BATCH_MESSAGE body
    /// of at most `max_message_size_bytes`), retried like [`Self::send`]. The result's
    /// `msg_id` lists the messages' ids, comma-joined.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult, ClientError> {
        let started = Instant::now();
        self.check_running()?;
        let prepared = prepare::prepare_batch(messages, self.inner.config.max_message_size_bytes)?;
        self.send_with_retries(&prepared, self.inner.config.send_timeout, started).await
    }

    /// Sends without waiting: returns at once, and `callback` gets the result from a runtime
    /// task. Transport failures are retried up to `retry_times_when_send_async_failed` times on
    /// other brokers within `send_timeout`; broker refusals are not retried. Fails at once only
    /// when the producer is shut down or `max_async_in_flight` sends are already waiting. The
    /// callback runs on a runtime worker and should not block.
    pub fn send_with_callback<F>(&self, message: Message, callback: F) -> Result<(), ClientError>
    where
        F: FnOnce(Result<SendResult, ClientError>) + Send + 'static,
    {
        self.check_running()?;
        let limit = self.inner.config.max_async_in_flight;
        if self.inner.async_in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            self.inner.async_in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ClientError::TooManyRequests { limit });
        }
        let started = Instant::now();
        let producer = self.clone();
        self.inner.runtime.spawn(async move {
            let result = producer.send_async(message, started).await;
            producer.inner.async_in_flight.fetch_sub(1, Ordering::AcqRel);
            callback(result);
        });
        Ok(())
    }

    /// Sends once without waiting for the broker: no result, no retry.
    pub async fn send_oneway(&self, message: Message) -> Result<(), ClientError> {
        let started = Instant::now();
        self.check_running()?;
        let timeout = self.inner.config.send_timeout;
        let prepared = self.prepare(message).await?;
        let info = self.publish_info_within(&prepared.topic, timeout, started).await?;
        let queue = self.pick(&prepared.topic, &info, None, false)?;
        let remaining = remaining(timeout, started).ok_or_else(|| timed_out(&prepared.topic, timeout))?;
        let began = Instant::now();
        let outcome = self.send_once(&prepared, &queue, remaining, Mode::Oneway).await;
        let (isolate, reachable) = if outcome.is_ok() { (false, true) } else { (true, true) };
        self.inner.faults.update(&queue.broker_name, began.elapsed(), isolate, reachable);
        outcome.map(|_| ())
    }

    /// Sends once to `queue` (whose topic must be the message's), for ordered messages: no
    /// retry, no fault tolerance.
    pub async fn send_to_queue(
        &self,
        message: Message,
        queue: MessageQueue,
    ) -> Result<SendResult, ClientError> {
        let started = Instant::now();
        self.check_running()?;
        if queue.topic != message.topic {
            return Err(ClientError::IllegalArgument(format!(
                "the message's topic {} is not the queue's topic {}",
                message.topic, queue.topic
            )));
        }
        let timeout = self.inner.config.send_timeout;
        let prepared = self.prepare(message).await?;
        self.inner.instance.add_producer_topic(&self.inner.config.group, &prepared.topic);
        let remaining = remaining(timeout, started).ok_or_else(|| timed_out(&prepared.topic, timeout))?;
        self.send_once(&prepared, &queue, remaining, Mode::Sync).await?.ok_or_else(no_result)
    }

    /// Sends once to the queue `selector` picks from the topic's publish list (an index into
    /// it), for ordered messages: no retry, no fault tolerance. See [`select_by_hash`].
    pub async fn send_with_selector(
        &self,
        message: Message,
        selector: impl FnOnce(&[MessageQueue], &Message) -> usize,
    ) -> Result<SendResult, ClientError> {
        let started = Instant::now();
        self.check_running()?;
        let timeout = self.inner.config.send_timeout;
        validate_message(&message, self.inner.config.max_message_size_bytes)?;
        let info = self.publish_info_within(&message.topic, timeout, started).await?;
        let index = selector(&info.queues, &message);
        let queue = info.queues.get(index).cloned().ok_or_else(|| {
            ClientError::IllegalArgument(format!(
                "the selector picked queue index {index} of a list of {}",
                info.queues.len()
            ))
        })?;
        let prepared = self.prepare(message).await?;
        let remaining = remaining(timeout, started).ok_or_else(|| timed_out(&prepared.topic, timeout))?;
        self.send_once(&prepared, &queue, remaining, Mode::Sync).await?.ok_or_else(no_result)
    }

    /// The queues this producer would send `topic`'s messages to (Java
    /// `fetchPublishMessageQueues`), for selectors that need the list up front.
    pub async fn publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>, ClientError> {
        self.check_running()?;
        Ok(self
            .publish_info_within(topic, self.inner.config.send_timeout, Instant::now())
            .await?
            .queues
            .clone())
    }

    /// Recalls a timer message not yet delivered (RECALL_MESSAGE, Java `recallMessage`): the
    /// broker named in `recall_handle` (a send result's) stores a delete marker and the
    /// message is never delivered. Returns the recalled message's id. The broker refuses with
    /// NO_PERMISSION unless `recallMessageEnable` is on, and with ILLEGAL_OPERATION for a
    /// handle of another topic or broker or a time already passed.
    pub async fn recall(&self, topic: &str, recall_handle: &str) -> Result<String, ClientError> {
        self.check_running()?;
        let handle = RecallHandle::decode(recall_handle)
            .map_err(|error| ClientError::IllegalArgument(error.to_string()))?;
        let queue = MessageQueue::new(topic.to_owned(), handle.broker_name.clone(), 0);
        let addr = self.inner.instance.master_addr_of(&queue).await?;
        let request =
            recall::recall_request(topic, recall_handle, &handle.broker_name, Some(&self.inner.config.group));
        let response = self.inner.instance.invoke(&addr, request, self.inner.config.send_timeout).await?;
        recall::recalled_id(&response, &addr)
    }

    /// Stops the producer: later sends fail with [`ClientError::ShutDown`], the brokers are told
    /// (UNREGISTER_CLIENT), and the client instance is released if nothing else uses it.
    pub async fn shutdown(&self) {
        if self.inner.running.swap(false, Ordering::AcqRel) {
            self.inner.instance.unregister_producer(&self.inner.config.group).await;
            tracing::info!(group = %self.inner.config.group, "producer shut down");
        }
    }

    /// The synchronous retry loop (behaviour spec §3.5).
    async fn send_with_retries(
        &self,
        prepared: &Prepared,
        timeout: Duration,
        started: Instant,
    ) -> Result<SendResult, ClientError> {
        let config = &self.inner.config;
        let info = self.publish_info_within(&prepared.topic, timeout, started).await?;
        let attempts = config.retry_times_when_send_failed.saturating_add(1);
        let mut last_broker: Option<String> = None;
        let mut last_result: Option<SendResult> = None;
        let mut last_error: Option<ClientError> = None;
        let mut tried: Vec<String> = Vec::new();
        for attempt in 0..attempts {
            let queue = self.pick(&prepared.topic, &info, last_broker.as_deref(), attempt > 0)?;
            let Some(remaining) = remaining(timeout, started) else {
                if let Some(result) = last_result {
                    return Ok(result);
                }
                tracing::debug!(topic = %prepared.topic, ?tried, "send budget exhausted");
                return Err(timed_out(&prepared.topic, timeout));
            };
            last_broker = Some(queue.broker_name.clone());
            tried.push(queue.broker_name.clone());
            let began = Instant::now();
            match self.send_once(prepared, &queue, remaining, Mode::Sync).await {
                Ok(Some(result)) => {
                    self.inner.faults.update(&queue.broker_name, began.elapsed(), false, true);
                    if result.status != SendStatus::SendOk && config.retry_another_broker_when_not_store_ok {
                        last_result = Some(result);
                        continue;
                    }
                    return Ok(result);
                }
                Ok(None) => return Err(no_result()),
                Err(error) => {
                    let latency = began.elapsed();
                    match &error {
                        ClientError::Remoting(_) | ClientError::Malformed(_) => {
                            self.inner.faults.update(&queue.broker_name, latency, true, true);
                        }
                        ClientError::Broker { code, .. } => {
                            self.inner.faults.update(&queue.broker_name, latency, true, false);
                            if !config.retry_response_codes.contains(code) {
                                return Err(error);
                            }
                        }
                        ClientError::ShutDown => return Err(error),
                        _ => self.inner.faults.update(&queue.broker_name, latency, false, true),
                    }
                    tracing::debug!(
                        topic = %prepared.topic, broker = %queue.broker_name, attempt, %error,
                        "send attempt failed"
                    );
                    last_error = Some(error);
                }
            }
        }
        if let Some(result) = last_result {
            return Ok(result);
        }
        tracing::warn!(topic = %prepared.topic, ?tried, "send failed on every attempt");
        Err(last_error.unwrap_or_else(|| ClientError::NoRoute { topic: prepared.topic.clone() }))
    }

    /// The asynchronous path (behaviour spec §3.5): transport failures are retried on other
    /// brokers, everything else goes to the callback as it is.
    async fn send_async(&self, message: Message, started: Instant) -> Result<SendResult, ClientError> {
        self.check_running()?;
        let config = &self.inner.config;
        let timeout = config.send_timeout;
        let prepared = self.prepare(message).await?;
        let info = self.publish_info_within(&prepared.topic, timeout, started).await?;
        let attempts = config.retry_times_when_send_async_failed.saturating_add(1);
        let mut last_broker: Option<String> = None;
        let mut last_error: Option<ClientError> = None;
        for _ in 0..attempts {
            let queue = self.pick(&prepared.topic, &info, last_broker.as_deref(), false)?;
            let Some(remaining) = remaining(timeout, started) else { break };
            last_broker = Some(queue.broker_name.clone());
            let began = Instant::now();
            match self.send_once(&prepared, &queue, remaining, Mode::Sync).await {
                Ok(Some(result)) => {
                    self.inner.faults.update(&queue.broker_name, began.elapsed(), false, true);
                    return Ok(result);
                }
                Ok(None) => return Err(no_result()),
                Err(ClientError::Remoting(error)) => {
                    // Not even connected: the broker is unreachable; otherwise it may be slow.
                    let reachable = !matches!(
                        error,
                        RemotingError::Connect { .. } | RemotingError::ConnectTimeout { .. }
                    );
                    self.inner.faults.update(&queue.broker_name, began.elapsed(), true, reachable);
                    if matches!(error, RemotingError::Shutdown) {
                        return Err(ClientError::ShutDown);
                    }
                    tracing::debug!(
                        topic = %prepared.topic, broker = %queue.broker_name, %error,
                        "async send attempt failed"
                    );
                    last_error = Some(ClientError::Remoting(error));
                }
                Err(error) => {
                    if matches!(error, ClientError::Broker { .. }) {
                        self.inner.faults.update(&queue.broker_name, began.elapsed(), true, true);
                    }
                    return Err(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| timed_out(&prepared.topic, timeout)))
    }

    /// One attempt on `queue`: resolves the group's master address (refreshing the route once
    /// if it is unknown) and sends.
    async fn send_once(
        &self,
        prepared: &Prepared,
        queue: &MessageQueue,
        timeout: Duration,
        mode: Mode,
    ) -> Result<Option<SendResult>, ClientError> {
        let instance = &self.inner.instance;
        let started = Instant::now();
        let addr = match instance.master_addr(&queue.broker_name) {
            Some(addr) => addr,
            None => {
                // A topic never seen learns its brokers the way sends do (TBW102 included); a
                // known one re-reads its route.
                let learn = async {
                    if instance.cached_topic_route(&queue.topic).is_some() {
                        let _ = instance.refresh_topic_route(&queue.topic).await;
                    } else {
                        let _ = self.publish_info(&queue.topic).await;
                    }
                };
                let _ = tokio::time::timeout(timeout, learn).await;
                instance
                    .master_addr(&queue.broker_name)
                    .ok_or_else(|| ClientError::NoBroker { broker_name: queue.broker_name.clone() })?
            }
        };
        let config = &self.inner.config;
        let sender = Sender {
            group: &config.group,
            create_topic_key: &config.create_topic_key,
            default_topic_queue_nums: config.default_topic_queue_nums,
        };
        let request = prepare::send_request(sender, prepared, queue, apogee_common::time::now_ms());
        match mode {
            Mode::Oneway => {
                instance.invoke_oneway(&addr, request).await?;
                Ok(None)
            }
            Mode::Sync => {
                let remaining = timeout.saturating_sub(started.elapsed());
                if remaining.is_zero() {
                    return Err(timed_out(&prepared.topic, timeout));
                }
                let response = instance.invoke(&addr, request, remaining).await?;
                prepare::parse_send_response(&response, &addr, queue, prepared).map(Some)
            }
        }
    }

    fn pick(
        &self,
        topic: &str,
        info: &TopicPublishInfo,
        last_broker: Option<&str>,
        reset: bool,
    ) -> Result<MessageQueue, ClientError> {
        info.select(last_broker, &self.inner.faults, reset)
            .ok_or_else(|| ClientError::NoRoute { topic: topic.to_owned() })
    }

    /// What every single-message send does first: checks `message` and prepares it, then
    /// compresses its body when it reaches the threshold (large bodies on the blocking pool).
    async fn prepare(&self, message: Message) -> Result<Prepared, ClientError> {
        let mut prepared = prepare::prepare_single(message, self.inner.config.max_message_size_bytes)?;
        let settings = self.inner.config.compression();
        if !prepare::wants_compression(&prepared, &settings) {
            return Ok(prepared);
        }
        if prepared.body.len() < COMPRESS_OFF_THREAD_BYTES {
            prepare::compress(&mut prepared, &settings);
            return Ok(prepared);
        }
        let body = prepared.body.clone();
        let compressed =
            tokio::task::spawn_blocking(move || compression::compress(&body, settings.kind, settings.level))
                .await;
        match compressed {
            Ok(compressed) => prepare::apply_compressed(&mut prepared, Bytes::from(compressed), &settings),
            Err(_) => prepare::compress(&mut prepared, &settings),
        }
        Ok(prepared)
    }

    /// [`Self::publish_info`] within what is left of the send's budget.
    async fn publish_info_within(
        &self,
        topic: &str,
        timeout: Duration,
        started: Instant,
    ) -> Result<Arc<TopicPublishInfo>, ClientError> {
        let remaining = remaining(timeout, started).ok_or_else(|| timed_out(topic, timeout))?;
        tokio::time::timeout(remaining, self.publish_info(topic))
            .await
            .map_err(|_| timed_out(topic, timeout))?
    }

    /// The publish list of `topic` (Java `tryToFindTopicPublishInfo`): from the instance's
    /// cached route when there is one (rebuilt when that route changed), else a borrowed list
    /// kept from before, else fetched now; a topic without a route borrows TBW102's (behaviour
    /// spec §2.3).
    async fn publish_info(&self, topic: &str) -> Result<Arc<TopicPublishInfo>, ClientError> {
        let group = &self.inner.config.group;
        let instance = &self.inner.instance;
        instance.add_producer_topic(group, topic);
        if let Some(route) = instance.cached_topic_route(topic) {
            return self.own_publish_info(topic, route);
        }
        let kept =
            self.inner.publish.lock().get(topic).filter(|info| info.is_borrowed() && info.ok()).cloned();
        if let Some(info) = kept {
            return Ok(info);
        }
        match instance.refresh_topic_route(topic).await {
            Ok(route) => self.own_publish_info(topic, route),
            Err(ClientError::NoRoute { .. }) => {
                let template = instance.refresh_topic_route(AUTO_CREATE_TOPIC_KEY).await.map_err(
                    |error| match error {
                        ClientError::NoRoute { .. } => ClientError::NoRoute { topic: topic.to_owned() },
                        other => other,
                    },
                )?;
                let borrowed = borrow_template_route(&template, self.inner.config.default_topic_queue_nums);
                let info = TopicPublishInfo::from_route(topic, RouteSource::Borrowed(Arc::new(borrowed)));
                tracing::debug!(topic, queues = info.queues.len(), "no route yet; borrowing TBW102's");
                self.store_publish_info(topic, info)
            }
            Err(error) => Err(error),
        }
    }

    fn own_publish_info(
        &self,
        topic: &str,
        route: Arc<TopicRouteData>,
    ) -> Result<Arc<TopicPublishInfo>, ClientError> {
        let current = self.inner.publish.lock().get(topic).cloned();
        if let Some(info) = current {
            if matches!(&info.source, RouteSource::Own(source) if Arc::ptr_eq(source, &route)) {
                return Ok(info);
            }
        }
        self.store_publish_info(topic, TopicPublishInfo::from_route(topic, RouteSource::Own(route)))
    }

    fn store_publish_info(
        &self,
        topic: &str,
        info: TopicPublishInfo,
    ) -> Result<Arc<TopicPublishInfo>, ClientError> {
        if !info.ok() {
            return Err(ClientError::NoRoute { topic: topic.to_owned() });
        }
        let info = Arc::new(info);
        let evicted = {
            let mut table = self.inner.publish.lock();
            let evicted = if !table.contains_key(topic) && table.len() >= MAX_TOPICS_PER_PRODUCER {
                table.keys().next().cloned()
            } else {
                None
            };
            if let Some(old) = &evicted {
                table.remove(old);
            }
            table.insert(topic.to_owned(), Arc::clone(&info));
            evicted
        };
        if let Some(old) = evicted {
            self.inner.instance.remove_producer_topic(&self.inner.config.group, &old);
        }
        Ok(info)
    }
}

/// What is left of `timeout` since `started`, if anything.
fn remaining(timeout: Duration, started: Instant) -> Option<Duration> {
    timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero())
}

fn timed_out(topic: &str, timeout: Duration) -> ClientError {
    ClientError::Timeout {
        operation: format!("send to topic {topic}"),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

fn no_result() -> ClientError {
    ClientError::Malformed("a synchronous send produced no result".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_defaults() {
        let config = ProducerConfig::default();
        assert_eq!(config.send_timeout, Duration::from_millis(3000));
        assert_eq!(config.retry_times_when_send_failed, 2);
        assert_eq!(config.retry_times_when_send_async_failed, 2);
        assert_eq!(config.compress_over_bytes, 4096);
        assert_eq!((config.compress_type, config.compress_level), (CompressionType::Zlib, 5));
        assert_eq!(config.max_message_size_bytes, 4 * 1024 * 1024);
        assert_eq!(config.default_topic_queue_nums, 4);
        assert_eq!(config.create_topic_key, "TBW102");
        assert!(!config.send_latency_fault_enable);
        assert!(!config.retry_another_broker_when_not_store_ok);
        assert_eq!(config.retry_response_codes, [17, 14, 1, 2, 16, 204, 205, 1500]);
    }

    #[test]
    fn group_validation() {
        let with_group = |group: &str| ProducerConfig { group: group.into(), ..ProducerConfig::default() };
        assert!(with_group("PG_1-a").validate().is_ok());
        for bad in ["", " ", "DEFAULT_PRODUCER", "bad group", &"g".repeat(121)] {
            assert!(matches!(with_group(bad).validate(), Err(ClientError::IllegalArgument(_))), "{bad:?}");
        }
        let zero_timeout = ProducerConfig { send_timeout: Duration::ZERO, ..with_group("PG") };
        assert!(zero_timeout.validate().is_err());
        let huge = ProducerConfig { max_message_size_bytes: 64 * 1024 * 1024, ..with_group("PG") };
        assert!(huge.validate().is_err());
        let no_queues = ProducerConfig { default_topic_queue_nums: 0, ..with_group("PG") };
        assert!(no_queues.validate().is_err());
    }

    #[tokio::test]
    async fn start_refuses_the_default_group() {
        let error = Producer::builder().namesrv("127.0.0.1:1").start().await.unwrap_err();
        assert!(matches!(error, ClientError::IllegalArgument(_)), "{error}");
    }

    #[tokio::test]
    async fn sends_fail_cleanly_without_a_name_server() {
        let producer = Producer::builder()
            .group("PG_NO_NAMESRV")
            .namesrv("127.0.0.1:1")
            .send_timeout(Duration::from_secs(2))
            .start()
            .await
            .unwrap();
        let error = producer.send(Message::new("T", &b"x"[..])).await.unwrap_err();
        assert!(error.is_transport() || matches!(error, ClientError::Timeout { .. }), "{error}");
        // Invalid messages never reach the network.
        let error = producer.send(Message::new("T", Bytes::new())).await.unwrap_err();
        assert!(matches!(error, ClientError::IllegalArgument(_)));
        let (tx, rx) = tokio::sync::oneshot::channel();
        producer
            .send_with_callback(Message::new("T", &b"x"[..]), move |result| {
                let _ = tx.send(result);
            })
            .unwrap();
        assert!(rx.await.unwrap().is_err());
        let instance = Arc::clone(producer.instance());
        producer.shutdown().await;
        assert!(instance.is_released());
        assert!(matches!(producer.send(Message::new("T", &b"x"[..])).await, Err(ClientError::ShutDown)));
        assert!(matches!(
            producer.send_with_callback(Message::new("T", &b"x"[..]), |_| {}),
            Err(ClientError::ShutDown)
        ));
    }

    #[test]
    fn random_values_vary() {
        let values: std::collections::HashSet<u32> = (0..64).map(|_| random_u32()).collect();
        assert!(values.len() > 60);
    }
}
