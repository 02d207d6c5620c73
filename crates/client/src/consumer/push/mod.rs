//! The push consumer (Java `DefaultMQPushConsumer`): the library pulls and calls the
//! application's listener (spec behaviour §4.3–§4.13).
//!
//! How it works, per consumer:
//! - a rebalance task (every 20 s, and at once when a broker says the group changed) shares
//!   the subscribed topics' queues among the group's live clients with an
//!   [`AllocateStrategy`] (clustering) or takes them all (broadcasting);
//! - each assigned queue gets a [`ProcessQueue`] and a long-polling pull task that keeps it
//!   filled within the flow-control limits;
//! - concurrent consumers hand batches to the listener on up to `consume_thread_count` tokio
//!   tasks; failed messages go back to the broker (CONSUMER_SEND_MSG_BACK) and return through
//!   the group's retry topic. Orderly consumers hold the broker's lock of each queue and run
//!   one batch at a time per queue, retrying failures locally;
//! - offsets (the smallest offset still in flight) are committed every
//!   `persist_consumer_offset_interval` and at shutdown.

mod consume;
mod pull;
mod rebalance;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use apogee_common::message::MessageExt;
use apogee_common::{topic, MessageQueue};
use apogee_remoting::body::consumer::CheckClientRequestBody;
use apogee_remoting::body::enums::{ConsumeFromWhere, ConsumeType, ExpressionType, MessageModel};
use apogee_remoting::body::heartbeat::{ConsumerData, SubscriptionData, SUB_ALL};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::{request_code, RemotingCommand};
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::consumer::allocate::{AllocateStrategy, Averagely};
use crate::consumer::offset_store::{LocalOffsetStore, OffsetStore, RemoteOffsetStore};
use crate::consumer::process_queue::{FlowControlLimits, ProcessQueue};
use crate::consumer::subscription::build_subscription;
use crate::instance::{ClientInstance, ConsumerHandle};
use crate::{ClientConfig, ClientError};

/// What a listener says about the messages it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed: the offset may move past these messages.
    Success,
    /// Failed. Concurrent consumers redeliver later through the group's retry topic
    /// (clustering) or drop the messages (broadcasting); orderly consumers pause the queue for
    /// `suspend_current_queue_time` and retry the same batch in place.
    ReconsumeLater,
}

/// The future a listener returns, boxed so the consumer can store any listener.
pub type ListenerFuture = Pin<Box<dyn Future<Output = ConsumeResult> + Send + 'static>>;

/// A stored listener.
pub(crate) type Listener = Arc<dyn Fn(Vec<MessageExt>) -> ListenerFuture + Send + Sync>;

/// Java's `maxReconsumeTimes` default for concurrent consumers: 16 redeliveries, then the DLQ.
pub const DEFAULT_MAX_RECONSUME_TIMES: i32 = 16;

/// The group name Java refuses as a real consumer group.
pub const DEFAULT_CONSUMER_GROUP: &str = "DEFAULT_CONSUMER";

/// Longest consumer group name (spec §0.3).
pub const MAX_GROUP_NAME_CHARS: usize = 120;

/// Default time between two rebalances (`rocketmq.client.rebalance.waitInterval`).
pub const DEFAULT_REBALANCE_INTERVAL: Duration = Duration::from_secs(20);

/// Default pause of an orderly queue after a failed batch (`suspendCurrentQueueTimeMillis`).
pub const DEFAULT_SUSPEND_CURRENT_QUEUE_TIME: Duration = Duration::from_millis(1000);

/// Bounds of the orderly suspend time (Java clamps to 10..30000 ms).
const SUSPEND_TIME_RANGE_MS: (u64, u64) = (10, 30_000);

/// Default `consumeTimestamp` look-back for CONSUME_FROM_TIMESTAMP: 30 minutes.
const DEFAULT_CONSUME_TIMESTAMP_LOOKBACK_MS: i64 = 30 * 60 * 1000;

/// Everything the consumer's tasks read; fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) message_model: MessageModel,
    pub(crate) consume_from_where: ConsumeFromWhere,
    pub(crate) consume_timestamp_ms: i64,
    pub(crate) allocate: Arc<dyn AllocateStrategy>,
    pub(crate) consume_thread_count: usize,
    pub(crate) consume_batch_max_size: usize,
    pub(crate) pull_batch_size: i32,
    pub(crate) flow_control: FlowControlLimits,
    pub(crate) max_reconsume_times: i32,
    pub(crate) suspend_current_queue_time: Duration,
    pub(crate) pull_interval: Duration,
    pub(crate) orderly: bool,
    pub(crate) rebalance_interval: Duration,
    pub(crate) persist_interval: Duration,
    pub(crate) api_timeout: Duration,
    pub(crate) await_termination_when_shutdown: Duration,
}

impl Settings {
    pub(crate) fn clustering(&self) -> bool {
        self.message_model == MessageModel::Clustering
    }

    /// Orderly consumption that needs the broker's queue locks.
    pub(crate) fn locks_queues(&self) -> bool {
        self.orderly && self.clustering()
    }
}

/// Builds a [`PushConsumer`]: `PushConsumer::builder().group(..).namesrv(..).subscribe(..)`
/// then [`start`](Self::start) (or [`start_orderly`](Self::start_orderly)) with the listener.
#[derive(Debug, Clone)]
pub struct PushConsumerBuilder {
    group: String,
    client_config: ClientConfig,
    subscriptions: Vec<(String, String, ExpressionType)>,
    message_model: MessageModel,
    allocate_strategy: Arc<dyn AllocateStrategy>,
    consume_from_where: ConsumeFromWhere,
    consume_timestamp_ms: Option<i64>,
    consume_thread_count: usize,
    consume_batch_max_size: usize,
    pull_batch_size: u32,
    pull_threshold_for_queue: usize,
    pull_threshold_size_for_queue_mib: u64,
    consume_concurrently_max_span: i64,
    max_reconsume_times: Option<i32>,
    suspend_current_queue_time: Duration,
    pull_interval: Duration,
    orderly: bool,
    offset_store_dir: Option<PathBuf>,
    rebalance_interval: Duration,
    await_termination_when_shutdown: Duration,
}

impl Default for PushConsumerBuilder {
    fn default() -> Self {
        Self {
            group: String::new(),
            client_config: ClientConfig::default(),
            subscriptions: Vec::new(),
            message_model: MessageModel::Clustering,
            allocate_strategy: Arc::new(Averagely),
            consume_from_where: ConsumeFromWhere::ConsumeFromLastOffset,
            consume_timestamp_ms: None,
            consume_thread_count: 20,
            consume_batch_max_size: 1,
            pull_batch_size: 32,
            pull_threshold_for_queue: 1000,
            pull_threshold_size_for_queue_mib: 100,
            consume_concurrently_max_span: 2000,
            max_reconsume_times: None,
            suspend_current_queue_time: DEFAULT_SUSPEND_CURRENT_QUEUE_TIME,
            pull_interval: Duration::ZERO,
            orderly: false,
            offset_store_dir: None,
            rebalance_interval: DEFAULT_REBALANCE_INTERVAL,
            await_termination_when_shutdown: Duration::ZERO,
        }
    }
}

impl PushConsumerBuilder {
    crate::consumer::consumer_setters!();

    crate::config::client_config_setters!(client_config);

    /// Subscribes `topic` with a tag expression: `*` (everything) or `TagA || TagB`.
    /// Repeatable; a second call for the same topic replaces the first.
    pub fn subscribe(mut self, topic: impl Into<String>, expression: impl Into<String>) -> Self {
        self.subscriptions.push((topic.into(), expression.into(), ExpressionType::Tag));
        self
    }

    /// Subscribes `topic` with an SQL92 property filter, evaluated by the broker (which must
    /// have `enablePropertyFilter`).
    pub fn subscribe_sql92(mut self, topic: impl Into<String>, expression: impl Into<String>) -> Self {
        self.subscriptions.push((topic.into(), expression.into(), ExpressionType::Sql92));
        self
    }

    /// CLUSTERING (default: the group shares the queues) or BROADCASTING (every member gets
    /// everything; offsets in a local file).
    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.message_model = model;
        self
    }

    /// How queues are shared in clustering mode (default [`Averagely`]).
    pub fn allocate_strategy(mut self, strategy: impl AllocateStrategy) -> Self {
        self.allocate_strategy = Arc::new(strategy);
        self
    }

    /// Listener calls running at once (default 20; 1..=1000).
    pub fn consume_thread_count(mut self, count: usize) -> Self {
        self.consume_thread_count = count;
        self
    }

    /// Most messages per listener call (default 1; 1..=1024).
    pub fn consume_batch_max_size(mut self, size: usize) -> Self {
        self.consume_batch_max_size = size;
        self
    }

    /// Most messages per pull (default 32; 1..=1024).
    pub fn pull_batch_size(mut self, size: u32) -> Self {
        self.pull_batch_size = size;
        self
    }

    /// Pulling a queue pauses above this many cached messages (default 1000; 1..=65535).
    pub fn pull_threshold_for_queue(mut self, messages: usize) -> Self {
        self.pull_threshold_for_queue = messages;
        self
    }

    /// Pulling a queue pauses above this many cached body MiB (default 100; 1..=1024).
    pub fn pull_threshold_size_for_queue_mib(mut self, mib: u64) -> Self {
        self.pull_threshold_size_for_queue_mib = mib;
        self
    }

    /// Concurrent consumers pause pulling a queue when its cached offsets span more than this
    /// (default 2000; 1..=65535).
    pub fn consume_concurrently_max_span(mut self, offsets: i64) -> Self {
        self.consume_concurrently_max_span = offsets;
        self
    }

    /// Redeliveries before a message goes to the dead-letter topic (default 16 concurrent,
    /// unlimited orderly).
    pub fn max_reconsume_times(mut self, times: i32) -> Self {
        self.max_reconsume_times = Some(times);
        self
    }

    /// Pause of an orderly queue after a failed batch (default 1 s; clamped to 10 ms..30 s).
    pub fn suspend_current_queue_time(mut self, pause: Duration) -> Self {
        self.suspend_current_queue_time = pause;
        self
    }

    /// Pause between two pulls of a queue that returned messages (default none).
    pub fn pull_interval(mut self, pause: Duration) -> Self {
        self.pull_interval = pause;
        self
    }

    /// Orderly consumption: one batch at a time per queue, holding the broker's queue lock
    /// in clustering mode.
    pub fn orderly(mut self, orderly: bool) -> Self {
        self.orderly = orderly;
        self
    }

    /// Directory of the broadcasting offsets file (default
    /// [`LocalOffsetStore::default_dir`]).
    pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.offset_store_dir = Some(dir.into());
        self
    }

    /// Time between two periodic rebalances (default 20 s; at least 1 s).
    pub fn rebalance_interval(mut self, interval: Duration) -> Self {
        self.rebalance_interval = interval;
        self
    }

    /// How long shutdown waits for listener calls in progress before committing offsets
    /// (default 0: their messages are redelivered).
    pub fn await_termination_when_shutdown(mut self, wait: Duration) -> Self {
        self.await_termination_when_shutdown = wait;
        self
    }

    /// Starts an orderly consumer: [`Self::orderly`] then [`Self::start`].
    pub async fn start_orderly<F, Fut>(self, listener: F) -> Result<PushConsumer, ClientError>
    where
        F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ConsumeResult> + Send + 'static,
    {
        self.orderly(true).start(listener).await
    }

    /// Validates the settings, joins the client instance, announces the group to the brokers
    /// and starts rebalancing, pulling and consuming. `listener` gets each batch of messages
    /// (at most `consume_batch_max_size`) and says whether they were consumed.
    pub async fn start<F, Fut>(self, listener: F) -> Result<PushConsumer, ClientError>
    where
        F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ConsumeResult> + Send + 'static,
    {
        let listener: Listener = Arc::new(move |messages| Box::pin(listener(messages)) as ListenerFuture);
        self.validate()?;
        let mut client_config = self.client_config.clone();
        if self.message_model == MessageModel::Clustering && client_config.instance_name == "DEFAULT" {
            client_config.instance_name = unique_instance_name();
        }
        let settings = self.settings(&client_config);
        let subscriptions = self.build_subscriptions()?;
        let instance = ClientInstance::get(&client_config).await?;
        let client_id = instance.client_id().to_owned();
        let offset_store = match self.message_model {
            MessageModel::Clustering => {
                OffsetStore::Remote(RemoteOffsetStore::new(instance.clone(), self.group.clone()))
            }
            MessageModel::Broadcasting => {
                let dir = self.offset_store_dir.clone().unwrap_or_else(LocalOffsetStore::default_dir);
                let store = LocalOffsetStore::new(dir, &client_id, &self.group);
                store.load()?;
                OffsetStore::Local(store)
            }
        };
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            group: self.group.clone(),
            permits: Arc::new(Semaphore::new(settings.consume_thread_count)),
            settings,
            instance: instance.clone(),
            client_id,
            listener,
            subscriptions: Mutex::new(subscriptions),
            offset_store,
            process_queues: Mutex::new(HashMap::new()),
            rebalance_wakeup: Notify::new(),
            rebalance_serial: tokio::sync::Mutex::new(()),
            shutdown: CancellationToken::new(),
            paused: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            start_ms: apogee_common::time::now_ms(),
        });
        instance.register_consumer(shared.clone())?;
        if let Err(error) = shared.check_client_config().await {
            instance.unregister_consumer(&self.group).await;
            return Err(error);
        }
        for topic in shared.subscribed_topics() {
            if let Err(error) = instance.refresh_topic_route(&topic).await {
                tracing::debug!(group = %self.group, %topic, %error, "no route yet");
            }
        }
        instance.send_heartbeat_to_all_brokers().await;
        shared.spawn_background_tasks();
        shared.rebalance_wakeup.notify_one();
        tracing::info!(group = %shared.group, client_id = %shared.client_id, "push consumer started");
        Ok(PushConsumer { shared })
    }

    fn validate(&self) -> Result<(), ClientError> {
        let illegal = |what: String| Err(ClientError::IllegalArgument(what));
        if self.group.is_empty() {
            return illegal("the consumer group is required".into());
        }
        if self.group.chars().count() > MAX_GROUP_NAME_CHARS {
            return illegal(format!("consumer group is longer than {MAX_GROUP_NAME_CHARS} characters"));
        }
        if !self.group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')) {
            return illegal(format!(
                "consumer group {:?} has characters outside [%|a-zA-Z0-9_-]",
                self.group
            ));
        }
        if self.group == DEFAULT_CONSUMER_GROUP {
            return illegal(format!("{DEFAULT_CONSUMER_GROUP} is reserved; choose another consumer group"));
        }
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("consume_thread_count", self.consume_thread_count as u64, 1, 1000),
            ("consume_batch_max_size", self.consume_batch_max_size as u64, 1, 1024),
            ("pull_batch_size", u64::from(self.pull_batch_size), 1, 1024),
            ("pull_threshold_for_queue", self.pull_threshold_for_queue as u64, 1, 65_535),
            ("pull_threshold_size_for_queue_mib", self.pull_threshold_size_for_queue_mib, 1, 1024),
            (
                "consume_concurrently_max_span",
                u64::try_from(self.consume_concurrently_max_span).unwrap_or(0),
                1,
                65_535,
            ),
        ];
        for (name, value, min, max) in ranges {
            if value < min || value > max {
                return illegal(format!("{name} must be within {min}..={max}, not {value}"));
            }
        }
        for (topic, _, _) in &self.subscriptions {
            topic::validate_topic_name(topic)
                .map_err(|error| ClientError::IllegalArgument(format!("{topic}: {error}")))?;
        }
        Ok(())
    }

    fn settings(&self, client_config: &ClientConfig) -> Settings {
        let (min_suspend, max_suspend) = SUSPEND_TIME_RANGE_MS;
        let suspend_ms = u64::try_from(self.suspend_current_queue_time.as_millis()).unwrap_or(max_suspend);
        Settings {
            message_model: self.message_model,
            consume_from_where: self.consume_from_where,
            consume_timestamp_ms: self
                .consume_timestamp_ms
                .unwrap_or_else(|| apogee_common::time::now_ms() - DEFAULT_CONSUME_TIMESTAMP_LOOKBACK_MS),
            allocate: self.allocate_strategy.clone(),
            consume_thread_count: self.consume_thread_count,
            consume_batch_max_size: self.consume_batch_max_size,
            pull_batch_size: i32::try_from(self.pull_batch_size).unwrap_or(32),
            flow_control: FlowControlLimits {
                max_cached_messages: self.pull_threshold_for_queue,
                max_cached_mib: self.pull_threshold_size_for_queue_mib,
                max_offset_span: (!self.orderly).then_some(self.consume_concurrently_max_span),
            },
            max_reconsume_times: self
                .max_reconsume_times
                .filter(|times| *times >= 0)
                .unwrap_or(if self.orderly { i32::MAX } else { DEFAULT_MAX_RECONSUME_TIMES }),
            suspend_current_queue_time: Duration::from_millis(suspend_ms.clamp(min_suspend, max_suspend)),
            pull_interval: self.pull_interval,
            orderly: self.orderly,
            rebalance_interval: self.rebalance_interval.max(rebalance::REBALANCE_MIN_INTERVAL),
            persist_interval: client_config.persist_consumer_offset_interval.max(Duration::from_millis(100)),
            api_timeout: client_config.api_timeout,
            await_termination_when_shutdown: self.await_termination_when_shutdown,
        }
    }

    fn build_subscriptions(&self) -> Result<BTreeMap<String, SubscriptionData>, ClientError> {
        let mut subscriptions = BTreeMap::new();
        for (topic, expression, expression_type) in &self.subscriptions {
            subscriptions
                .insert(topic.clone(), build_subscription(topic, expression, expression_type.clone())?);
        }
        if self.message_model == MessageModel::Clustering {
            let retry = topic::retry_topic(&self.group);
            subscriptions.insert(retry.clone(), build_subscription(&retry, SUB_ALL, ExpressionType::Tag)?);
        }
        Ok(subscriptions)
    }
}

/// `<pid>#<nanos>`: Java's replacement of the `DEFAULT` instance name, unique per consumer.
fn unique_instance_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{}#{nanos}", std::process::id())
}

/// A running push consumer. Stop it with [`PushConsumer::shutdown`] so that its offsets are
/// committed and its queues released at once; dropping it only starts that in the background.
///
/// ```no_run
/// # async fn demo() -> Result<(), apogee_client::ClientError> {
/// use apogee_client::{ConsumeResult, PushConsumer};
/// let consumer = PushConsumer::builder()
///     .group("g")
///     .namesrv("127.0.0.1:9876")
///     .subscribe("test-topic", "TagA || TagB")
///     .start(|messages| async move {
///         for message in &messages {
///             println!("{} {:?}", message.msg_id(), message.message.body);
///         }
///         ConsumeResult::Success
///     })
///     .await?;
/// // ... later:
/// consumer.shutdown().await;
///
/// // Orderly: one batch at a time per queue, holding the broker's queue locks.
/// let orderly = PushConsumer::builder()
///     .group("g-orderly")
///     .namesrv("127.0.0.1:9876")
///     .subscribe("order-topic", "*")
///     .start_orderly(|_messages| async { ConsumeResult::Success })
///     .await?;
/// orderly.shutdown().await;
/// # Ok(()) }
/// ```
pub struct PushConsumer {
    shared: Arc<Shared>,
}

impl PushConsumer {
    /// A builder with Java's defaults.
    pub fn builder() -> PushConsumerBuilder {
        PushConsumerBuilder::default()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// The client id the brokers know this consumer by.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// Asks for a rebalance now (it still waits 1 s after the previous one).
    pub fn rebalance_now(&self) {
        self.shared.rebalance_wakeup.notify_one();
    }

    /// Stops pulling (and rebalancing) until [`Self::resume`]; cached messages are still
    /// consumed.
    pub fn suspend(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Undoes [`Self::suspend`] and rebalances.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        self.rebalance_now();
    }

    /// The queues this consumer currently consumes, sorted.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        self.shared.assigned_queues()
    }

    /// The offset store (committed offsets as known in memory).
    pub fn offset_store(&self) -> &OffsetStore {
        &self.shared.offset_store
    }

    /// Stops pulling and consuming, commits the offsets of the held queues (waiting for the
    /// brokers), releases orderly queue locks and leaves the group. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.shutdown().await;
    }
}

impl fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumer").field("shared", &self.shared).finish()
    }
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        if self.shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        self.shared.shutdown.cancel();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            runtime.spawn(async move { shared.shutdown().await });
        }
    }
}

/// The state the consumer's tasks share; also the [`ConsumerHandle`] the client instance
/// calls.
pub(crate) struct Shared {
    /// Itself, for the instance's callbacks that must start tasks.
    pub(crate) me: Weak<Shared>,
    pub(crate) group: String,
    pub(crate) settings: Settings,
    pub(crate) instance: Arc<ClientInstance>,
    pub(crate) client_id: String,
    pub(crate) listener: Listener,
    /// Topic → subscription, the retry topic included (clustering).
    pub(crate) subscriptions: Mutex<BTreeMap<String, SubscriptionData>>,
    pub(crate) offset_store: OffsetStore,
    /// The assigned queues.
    pub(crate) process_queues: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    pub(crate) rebalance_wakeup: Notify,
    /// One rebalance (or offset reset) at a time.
    pub(crate) rebalance_serial: tokio::sync::Mutex<()>,
    /// Cancelled at shutdown: every task of the consumer ends.
    pub(crate) shutdown: CancellationToken,
    /// One permit per listener call allowed to run.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) paused: AtomicBool,
    pub(crate) stopped: AtomicBool,
    pub(crate) start_ms: i64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.group)
            .field("client_id", &self.client_id)
            .field("settings", &self.settings)
            .field("queues", &self.process_queues.lock().len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn spawn_background_tasks(self: &Arc<Self>) {
        tokio::spawn(self.clone().rebalance_loop());
        tokio::spawn(self.clone().persist_loop());
        if self.settings.locks_queues() {
            tokio::spawn(self.clone().relock_loop());
        }
    }

    /// The subscription of `topic`, if still subscribed.
    pub(crate) fn subscription(&self, topic: &str) -> Option<SubscriptionData> {
        self.subscriptions.lock().get(topic).cloned()
    }

    pub(crate) fn assigned_queues(&self) -> Vec<MessageQueue> {
        let mut queues: Vec<MessageQueue> = self
            .process_queues
            .lock()
            .iter()
            .filter(|(_, pq)| !pq.is_dropped())
            .map(|(mq, _)| mq.clone())
            .collect();
        queues.sort();
        queues
    }

    fn held_queues(&self) -> HashSet<MessageQueue> {
        self.process_queues.lock().keys().cloned().collect()
    }

    /// Commits the held queues' offsets every `persist_consumer_offset_interval`, the first
    /// time 10 s after start.
    async fn persist_loop(self: Arc<Self>) {
        let mut wait = rebalance::FIRST_PERSIST_DELAY;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = self.settings.persist_interval;
            let held = self.held_queues();
            self.offset_store.persist_all(&held).await;
        }
    }

    /// CHECK_CLIENT_CONFIG for every non-TAG subscription on every master of its topic: a
    /// broker that cannot evaluate the expression fails the start.
    async fn check_client_config(&self) -> Result<(), ClientError> {
        let subscriptions: Vec<SubscriptionData> = self
            .subscriptions
            .lock()
            .values()
            .filter(|data| data.expression_type != ExpressionType::Tag)
            .cloned()
            .collect();
        for data in subscriptions {
            let Ok(route) = self.instance.topic_route(&data.topic).await else { continue };
            let body = CheckClientRequestBody {
                client_id: self.client_id.clone(),
                group: self.group.clone(),
                namespace: None,
                subscription_data: Some(data.clone()),
            };
            let body = fastjson::to_vec(&body, Dialect::Fastjson)
                .map_err(|error| ClientError::Malformed(format!("CHECK_CLIENT_CONFIG body: {error}")))?;
            for broker in &route.broker_datas {
                let Some(addr) = self.instance.master_addr(&broker.broker_name) else { continue };
                let request =
                    RemotingCommand::request(request_code::CHECK_CLIENT_CONFIG).with_body(body.clone());
                self.invoke_for_success(addr, request).await?;
            }
        }
        Ok(())
    }

    /// Shutdown: stop the tasks, optionally wait for listener calls, commit offsets, release
    /// locks and leave the group.
    pub(crate) async fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shutdown.cancel();
        let wait = self.settings.await_termination_when_shutdown;
        if !wait.is_zero() {
            let all = u32::try_from(self.settings.consume_thread_count).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(wait, self.permits.acquire_many(all)).await;
        }
        // No rebalance round or lock renewal may run past this point.
        let _serial = self.rebalance_serial.lock().await;
        let held = self.held_queues();
        self.offset_store.flush_all(&held).await;
        if self.settings.locks_queues() {
            self.unlock_all().await;
        }
        let queues: Vec<Arc<ProcessQueue>> = self.process_queues.lock().drain().map(|(_, pq)| pq).collect();
        for pq in queues {
            pq.set_dropped();
        }
        self.instance.unregister_consumer(&self.group).await;
        tracing::info!(group = %self.group, client_id = %self.client_id, "push consumer shut down");
    }

    /// RESET_CONSUMER_CLIENT_OFFSET: drop the named queues, store the new offsets, and let
    /// the next rebalance take the queues again from there.
    async fn reset_offsets_now(self: Arc<Self>, topic: String, offsets: HashMap<MessageQueue, i64>) {
        let serial = self.rebalance_serial.lock().await;
        let targets: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .process_queues
            .lock()
            .iter()
            .filter(|(mq, _)| mq.topic == topic && offsets.contains_key(*mq))
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in &targets {
            pq.set_dropped();
            pq.clear();
            if let Some(offset) = offsets.get(mq) {
                self.offset_store.update_and_freeze_offset(mq, *offset);
                if let Err(error) = self.offset_store.persist_and_wait(mq).await {
                    tracing::warn!(group = %self.group, ?mq, %error, "committing the reset offset failed");
                }
            }
            if self.remove_unnecessary_queue(mq, pq).await {
                let mut table = self.process_queues.lock();
                if table.get(mq).is_some_and(|current| Arc::ptr_eq(current, pq)) {
                    table.remove(mq);
                }
            }
        }
        drop(serial);
        tracing::info!(group = %self.group, %topic, queues = targets.len(), "offsets reset");
        self.rebalance_wakeup.notify_one();
    }
}

impl ConsumerHandle for Shared {
    fn group(&self) -> &str {
        &self.group
    }

    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: Some(self.settings.consume_from_where),
            consume_type: Some(ConsumeType::ConsumePassively),
            group_name: self.group.clone(),
            message_model: Some(self.settings.message_model),
            subscription_data_set: self.subscriptions.lock().values().cloned().collect(),
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.subscriptions.lock().keys().cloned().collect()
    }

    fn rebalance_now(&self) {
        self.rebalance_wakeup.notify_one();
    }

    fn reset_offsets(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        let (Some(me), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        runtime.spawn(me.reset_offsets_now(topic.to_owned(), offsets));
    }

    fn running_info(&self) -> serde_json::Value {
        self.running_info_json()
    }

    fn consume_directly(&self, message: MessageExt) -> serde_json::Value {
        self.consume_directly_json(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_javas() {
        let builder = PushConsumer::builder();
        assert_eq!(builder.message_model, MessageModel::Clustering);
        assert_eq!(builder.consume_from_where, ConsumeFromWhere::ConsumeFromLastOffset);
        assert_eq!(builder.allocate_strategy.name(), "AVG");
        assert_eq!(builder.consume_thread_count, 20);
        assert_eq!(builder.consume_batch_max_size, 1);
        assert_eq!(builder.pull_batch_size, 32);
        let settings = builder.settings(&ClientConfig::default());
        assert_eq!(settings.flow_control, FlowControlLimits::default());
        assert_eq!(settings.max_reconsume_times, 16);
        assert_eq!(settings.suspend_current_queue_time, Duration::from_secs(1));
        assert_eq!(settings.rebalance_interval, Duration::from_secs(20));
        assert_eq!(settings.persist_interval, Duration::from_secs(5));
        let orderly = PushConsumer::builder().orderly(true).settings(&ClientConfig::default());
        assert_eq!(orderly.max_reconsume_times, i32::MAX);
        assert_eq!(orderly.flow_control.max_offset_span, None);
        let clamped = PushConsumer::builder()
            .suspend_current_queue_time(Duration::from_secs(99))
            .settings(&ClientConfig::default());
        assert_eq!(clamped.suspend_current_queue_time, Duration::from_secs(30));
    }

    #[test]
    fn validation_refuses_bad_groups_and_limits() {
        let ok = PushConsumer::builder().group("g-1").subscribe("T", "*");
        assert!(ok.validate().is_ok());
        assert!(PushConsumer::builder().validate().is_err());
        assert!(PushConsumer::builder().group(DEFAULT_CONSUMER_GROUP).validate().is_err());
        assert!(PushConsumer::builder().group("bad group").validate().is_err());
        assert!(PushConsumer::builder().group("g".repeat(121)).validate().is_err());
        assert!(ok.clone().consume_thread_count(0).validate().is_err());
        assert!(ok.clone().pull_batch_size(1025).validate().is_err());
        assert!(ok.clone().consume_concurrently_max_span(0).validate().is_err());
        assert!(ok.clone().subscribe("bad topic", "*").validate().is_err());
    }

    #[test]
    fn clustering_subscribes_the_retry_topic() {
        let builder =
            PushConsumer::builder().group("g").subscribe("T", "TagA || TagB").subscribe_sql92("S", "a > 1");
        let subscriptions = builder.build_subscriptions().unwrap();
        assert_eq!(subscriptions.keys().map(String::as_str).collect::<Vec<_>>(), ["%RETRY%g", "S", "T"]);
        assert_eq!(subscriptions["%RETRY%g"].sub_string, "*");
        assert_eq!(subscriptions["S"].expression_type, ExpressionType::Sql92);
        let broadcasting = builder.message_model(MessageModel::Broadcasting).build_subscriptions().unwrap();
        assert!(!broadcasting.contains_key("%RETRY%g"));
    }

    #[test]
    fn unique_instance_names_differ() {
        let (first, second) = (unique_instance_name(), unique_instance_name());
        assert!(first.starts_with(&format!("{}#", std::process::id())));
        assert_ne!(first, second);
    }
}
