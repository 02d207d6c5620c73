//! The lite pull consumer (Java `DefaultLitePullConsumer`, behaviour spec §4.14): the
//! application calls [`LitePullConsumer::poll`] and gets the next batch of messages; background
//! tasks keep a bounded local cache per queue filled with LITE_PULL_MESSAGE requests.
//!
//! Queues come either from [`LitePullConsumer::subscribe`] (rebalanced every 20 s, and whenever
//! a broker reports a membership change, among the group's consumers with the averagely
//! strategy) or from [`LitePullConsumer::assign`] (exactly the queues given). The two modes
//! exclude each other.
//!
//! Offsets: polling a batch makes its messages consumed; with auto-commit (the default), the
//! consumed offsets are committed at the first poll after each commit interval (5 s), so an
//! offset is committed only once the application came back for more. [`LitePullConsumer::commit_sync`]
//! commits at once and waits for the brokers. A queue without a committed offset starts where
//! `consume_from_where` says.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apogee_client::ClientError> {
//! use std::time::Duration;
//! use apogee_client::LitePullConsumer;
//! let consumer = LitePullConsumer::builder().group("g").namesrv("127.0.0.1:9876").start().await?;
//! consumer.subscribe("test-topic", "TagA || TagB").await?;
//! loop {
//!     for message in consumer.poll(Duration::from_secs(5)).await {
//!         println!("{} {}", message.queue_offset, message.msg_id());
//!     }
//! }
//! # }
//! ```

pub(crate) mod pull;
mod queues;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::{topic, MessageQueue};
use apogee_remoting::body::consumer::GetConsumerListByGroupResponseBody;
use apogee_remoting::body::enums::{ConsumeType, MessageModel};
use apogee_remoting::body::heartbeat::{ConsumerData, SubscriptionData};
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::fastjson;
use apogee_remoting::header::consumer::GetConsumerListByGroupRequestHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::pull::{read_pull_response, start_from, tag_subscription, PullOutcome, StartFrom};
use self::queues::{CacheLimits, Plan, Queues};
use crate::admin::requests::{self, expect_success};
use crate::consumer::allocate::{AllocateStrategy, Averagely};
use crate::consumer::offset_store::RemoteOffsetStore;
use crate::consumer::{LiveConsumer, Registration};
use crate::instance::ClientInstance;
use crate::{ClientConfig, ClientError, MessageExt};

/// Where queues without a committed offset start; re-exported so that callers of
/// [`LitePullConsumerBuilder::consume_from_where`] need not depend on the protocol crate.
pub use apogee_remoting::body::enums::ConsumeFromWhere;

/// Messages asked for per pull unless set (Java `pullBatchSize`).
pub const DEFAULT_PULL_BATCH_SIZE: usize = 10;
/// Largest pull batch accepted by the builder (Java's range check).
pub const MAX_PULL_BATCH_SIZE: usize = 1024;
/// Default period between automatic commits (Java `autoCommitIntervalMillis`).
pub const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest automatic commit period; shorter settings are raised to it (as Java ignores them).
pub const MIN_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default wait of [`LitePullConsumer::poll_default`] (Java `pollTimeoutMillis`).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// Period of the subscription rebalance (`rocketmq.client.rebalance.waitInterval`).
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(20);
/// Shortest gap between two rebalances, however often one is asked for.
const REBALANCE_MIN_GAP: Duration = Duration::from_secs(1);
/// Wait before rebalancing again after a round that could not complete.
const REBALANCE_RETRY: Duration = Duration::from_secs(1);
/// Wait of a pull task whose start offset could not be found (Java 3 s).
const START_OFFSET_RETRY: Duration = Duration::from_secs(3);
/// Wait of a pull task after a failed pull (Java `pullTimeDelayMillsWhenException`).
const PULL_ERROR_RETRY: Duration = Duration::from_millis(1000);
/// Wait of a pull task after the broker answered FLOW_CONTROL (Java 20 ms).
const BROKER_FLOW_CONTROL_RETRY: Duration = Duration::from_millis(20);
/// Default look-back of CONSUME_FROM_TIMESTAMP (Java: now − 30 min).
const DEFAULT_CONSUME_LOOKBACK_MS: i64 = 30 * 60 * 1000;

/// How a [`LitePullConsumer`] is set up; [`LitePullConsumer::builder`] gives Java's defaults.
#[derive(Debug, Clone)]
pub struct LitePullConsumerBuilder {
    group: String,
    config: ClientConfig,
    auto_commit: bool,
    auto_commit_interval: Duration,
    poll_timeout: Duration,
    consume_from_where: ConsumeFromWhere,
    consume_timestamp_ms: Option<i64>,
    limits: CacheLimits,
}

impl Default for LitePullConsumerBuilder {
    fn default() -> Self {
        Self {
            group: String::new(),
            config: ClientConfig::default(),
            auto_commit: true,
            auto_commit_interval: DEFAULT_AUTO_COMMIT_INTERVAL,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            consume_from_where: ConsumeFromWhere::ConsumeFromLastOffset,
            consume_timestamp_ms: None,
            limits: CacheLimits::default(),
        }
    }
}

impl LitePullConsumerBuilder {
    crate::consumer::consumer_setters!();

    crate::config::client_config_setters!(config);

    /// Whether consumed offsets are committed automatically (default true); without it only
    /// [`LitePullConsumer::commit_sync`] commits.
    pub fn auto_commit(mut self, enabled: bool) -> Self {
        self.auto_commit = enabled;
        self
    }

    /// Period of automatic commits (default 5 s, at least 1 s).
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval.max(MIN_AUTO_COMMIT_INTERVAL);
        self
    }

    /// Messages asked for per pull, which is also the largest batch `poll` returns
    /// (default 10, 1..=1024).
    pub fn pull_batch_size(mut self, messages: usize) -> Self {
        self.limits.batch_size = messages;
        self
    }

    /// The wait of [`LitePullConsumer::poll_default`] (default 5 s).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Messages cached per queue before its pulls pause (default 1000).
    pub fn pull_threshold_messages_per_queue(mut self, messages: usize) -> Self {
        self.limits.max_messages_per_queue = messages;
        self
    }

    /// Body bytes cached per queue before its pulls pause (default 100 MiB).
    pub fn pull_threshold_bytes_per_queue(mut self, bytes: usize) -> Self {
        self.limits.max_bytes_per_queue = bytes;
        self
    }

    /// Messages waiting for `poll`, all queues together, before every pull pauses
    /// (default 10000).
    pub fn pull_threshold_messages_all(mut self, messages: usize) -> Self {
        self.limits.max_messages_all = messages;
        self
    }

    /// Starts the consumer on the shared client instance of its NameServers and instance
    /// name. It holds no queue until [`LitePullConsumer::subscribe`] or
    /// [`LitePullConsumer::assign`]. Must run inside a Tokio runtime.
    pub async fn start(self) -> Result<LitePullConsumer, ClientError> {
        self.validate()?;
        let instance = ClientInstance::get(&self.config).await?;
        self.start_on(instance)
    }

    fn validate(&self) -> Result<(), ClientError> {
        crate::consumer::check_group_name(&self.group)?;
        if !(1..=MAX_PULL_BATCH_SIZE).contains(&self.limits.batch_size) {
            return Err(ClientError::IllegalArgument(format!(
                "pull batch size {} is outside 1..={MAX_PULL_BATCH_SIZE}",
                self.limits.batch_size
            )));
        }
        Ok(())
    }

    /// Starts the consumer on `instance`.
    fn start_on(self, instance: Arc<ClientInstance>) -> Result<LitePullConsumer, ClientError> {
        self.validate()?;
        let runtime = Handle::try_current().map_err(|_| {
            ClientError::IllegalArgument("the consumer must start inside a Tokio runtime".into())
        })?;
        let started_ms = apogee_common::time::now_ms();
        let settings = Settings {
            auto_commit: self.auto_commit,
            auto_commit_interval: self.auto_commit_interval,
            poll_timeout: self.poll_timeout,
            consume_from_where: self.consume_from_where,
            consume_timestamp_ms: self
                .consume_timestamp_ms
                .unwrap_or(started_ms - DEFAULT_CONSUME_LOOKBACK_MS),
            limits: self.limits,
            namesrv_addr: self.config.namesrv_addr.clone(),
        };
        let shared = Arc::new(Shared {
            group: self.group.clone(),
            offsets: RemoteOffsetStore::new(instance.clone(), self.group.clone()),
            instance,
            runtime,
            settings,
            state: Mutex::new(State {
                mode: Mode::Unset,
                subscriptions: BTreeMap::new(),
                queues: Queues::default(),
                committed: HashMap::new(),
                next_auto_commit: instant_after(self.auto_commit_interval),
                background: Vec::new(),
            }),
            ready: Notify::new(),
            rebalance: Notify::new(),
            running: AtomicBool::new(true),
            poll_gate: tokio::sync::Mutex::new(()),
            started_ms,
        });
        let registration = Registration { group: self.group, shared: Arc::downgrade(&shared) };
        shared.instance.register_consumer(Arc::new(registration))?;
        let rebalancer = shared.runtime.spawn(rebalance_loop(shared.clone()));
        shared.state.lock().background.push(rebalancer);
        Ok(LitePullConsumer { shared })
    }
}

/// A consumer the application pulls from: see the [module documentation](self).
pub struct LitePullConsumer {
    shared: Arc<Shared>,
}

impl fmt::Debug for LitePullConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LitePullConsumer")
            .field("group", &self.shared.group)
            .field("running", &self.shared.running.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl LitePullConsumer {
    /// A builder with Java's defaults; set at least the group.
    pub fn builder() -> LitePullConsumerBuilder {
        LitePullConsumerBuilder::default()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// Subscribes to `topic` with a tag expression (`*` or `tagA || tagB`); the group's
    /// consumers share its queues from the next rebalance on (started at once). Subscribing
    /// again to a topic replaces its expression. Fails if the consumer uses `assign`.
    pub async fn subscribe(&self, topic_name: &str, expression: &str) -> Result<(), ClientError> {
        self.shared.ensure_running()?;
        topic::validate_topic_name(topic_name)
            .map_err(|error| ClientError::IllegalArgument(format!("topic {topic_name:?}: {error}")))?;
        let subscription = tag_subscription(topic_name, expression, apogee_common::time::now_ms())?;
        {
            let mut state = self.shared.state.lock();
            state.set_mode(Mode::Subscribe)?;
            state.subscriptions.insert(topic_name.to_owned(), subscription);
        }
        if let Err(error) = self.shared.instance.topic_route(topic_name).await {
            tracing::debug!(topic = topic_name, %error, "no route for a subscribed topic yet");
        }
        self.shared.instance.send_heartbeat_to_all_brokers().await;
        self.shared.rebalance.notify_one();
        Ok(())
    }

    /// Stops consuming `topic`: its queues are released (their committed offsets persisted).
    pub async fn unsubscribe(&self, topic_name: &str) {
        let released = {
            let mut state = self.shared.state.lock();
            state.subscriptions.remove(topic_name);
            state.release(|queue| queue.topic == topic_name)
        };
        self.shared.persist_in_background(released);
        self.shared.instance.send_heartbeat_to_all_brokers().await;
    }

    /// Consumes exactly `queues` (replacing any earlier assignment), with no rebalancing.
    /// Queues left out are released. Fails if the consumer subscribes, or with no queue.
    pub fn assign(&self, queues: impl IntoIterator<Item = MessageQueue>) -> Result<(), ClientError> {
        self.shared.ensure_running()?;
        let wanted: BTreeSet<MessageQueue> = queues.into_iter().collect();
        if wanted.is_empty() {
            return Err(ClientError::IllegalArgument("no message queue to assign".into()));
        }
        let released = {
            let mut state = self.shared.state.lock();
            state.set_mode(Mode::Assign)?;
            let released = state.release(|queue| !wanted.contains(queue));
            self.shared.hold(&mut state, wanted);
            released
        };
        self.shared.persist_in_background(released);
        Ok(())
    }

    /// The queues held now (assigned, or allocated by the last rebalance), sorted.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.shared.state.lock().queues.assigned()
    }

    /// Waits up to `timeout` for pulled messages and returns the next batch (at most the pull
    /// batch size, all from one queue, in offset order); empty when nothing arrived in time or
    /// the consumer is shut down. With auto-commit, commits the consumed offsets first when
    /// the commit interval has passed.
    pub async fn poll(&self, timeout: Duration) -> Vec<MessageExt> {
        let shared = &self.shared;
        let _turn = shared.poll_gate.lock().await;
        if !shared.is_running() {
            return Vec::new();
        }
        if shared.settings.auto_commit {
            shared.maybe_auto_commit();
        }
        let deadline = instant_after(timeout);
        loop {
            let notified = shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch = shared.state.lock().queues.take_batch();
            if let Some(batch) = batch {
                return batch.messages;
            }
            if !shared.is_running() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                let batch = shared.state.lock().queues.take_batch();
                return batch.map(|batch| batch.messages).unwrap_or_default();
            }
        }
    }

    /// [`Self::poll`] with the builder's poll timeout.
    pub async fn poll_default(&self) -> Vec<MessageExt> {
        self.poll(self.shared.settings.poll_timeout).await
    }

    /// Restarts `queue` at `offset`: cached messages are dropped and the next batches come
    /// from there. The offset must lie within the queue (min..=max, asked from the broker) and
    /// the queue must be held.
    pub async fn seek(&self, queue: &MessageQueue, offset: i64) -> Result<(), ClientError> {
        self.shared.ensure_held(queue)?;
        let min = self.shared.min_offset(queue).await?;
        let max = self.shared.max_offset(queue).await?;
        if offset < min || offset > max {
            return Err(ClientError::IllegalArgument(format!(
                "seek offset {offset} is outside {min}..={max} of {queue:?}"
            )));
        }
        self.restart(queue, offset)
    }

    /// Restarts `queue` at its first stored message.
    pub async fn seek_to_begin(&self, queue: &MessageQueue) -> Result<(), ClientError> {
        self.shared.ensure_held(queue)?;
        let offset = self.shared.min_offset(queue).await?;
        self.restart(queue, offset)
    }

    /// Restarts `queue` after its last stored message (only new messages are read).
    pub async fn seek_to_end(&self, queue: &MessageQueue) -> Result<(), ClientError> {
        self.shared.ensure_held(queue)?;
        let offset = self.shared.max_offset(queue).await?;
        self.restart(queue, offset)
    }

    fn restart(&self, queue: &MessageQueue, offset: i64) -> Result<(), ClientError> {
        if self.shared.restart_queue(queue, offset) {
            Ok(())
        } else {
            Err(not_held(queue))
        }
    }

    /// Stops pulling `queues` (already cached messages are still returned) until resumed.
    pub fn pause<'q>(&self, queues: impl IntoIterator<Item = &'q MessageQueue>) {
        self.set_paused(queues, true);
    }

    /// Resumes pulling `queues`.
    pub fn resume<'q>(&self, queues: impl IntoIterator<Item = &'q MessageQueue>) {
        self.set_paused(queues, false);
    }

    fn set_paused<'q>(&self, queues: impl IntoIterator<Item = &'q MessageQueue>, paused: bool) {
        let mut state = self.shared.state.lock();
        for queue in queues {
            if let Some(queue_state) = state.queues.get_mut(queue) {
                queue_state.paused = paused;
            }
        }
    }

    /// Commits the consumed offsets of every held queue now and waits for the brokers' answers;
    /// the first failure is returned (the other queues are still committed).
    pub async fn commit_sync(&self) -> Result<(), ClientError> {
        self.shared.ensure_running()?;
        let entries = {
            let mut state = self.shared.state.lock();
            state.commit_consumed();
            state.held_commits()
        };
        let mut first_error = None;
        for (queue, offset) in entries {
            let result = self.shared.offsets.update_consume_offset_to_broker(&queue, offset, false).await;
            if let Err(error) = result {
                tracing::warn!(?queue, offset, %error, "offset commit failed");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The group's committed offset of `queue`: this consumer's last commit if it made one,
    /// else the broker's; `None` when the group has none.
    pub async fn committed(&self, queue: &MessageQueue) -> Result<Option<i64>, ClientError> {
        self.shared.ensure_running()?;
        let known = self.shared.state.lock().committed.get(queue).copied();
        match known {
            Some(offset) => Ok(Some(offset)),
            None => self.shared.offsets.fetch_consume_offset_from_broker(queue).await,
        }
    }

    /// The readable queues of `topic` from its route, sorted: what `assign` can be given.
    pub async fn fetch_message_queues(&self, topic_name: &str) -> Result<Vec<MessageQueue>, ClientError> {
        let route = self.shared.instance.topic_route(topic_name).await?;
        Ok(readable_queues(topic_name, &route))
    }

    /// Stops the consumer: pulls end, consumed offsets are committed (with auto-commit) and
    /// every held queue's committed offset is written to its broker, then the group is
    /// unregistered. Later polls return nothing. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        if !shared.running.swap(false, Ordering::SeqCst) {
            return;
        }
        let entries = {
            let mut state = shared.state.lock();
            if shared.settings.auto_commit {
                state.commit_consumed();
            }
            let entries = state.held_commits();
            state.stop_tasks();
            entries
        };
        shared.ready.notify_waiters();
        for (queue, offset) in entries {
            if let Err(error) = shared.offsets.update_consume_offset_to_broker(&queue, offset, false).await {
                tracing::warn!(?queue, offset, %error, "offset not committed at shutdown");
            }
        }
        shared.instance.unregister_consumer(&shared.group).await;
    }
}

impl Drop for LitePullConsumer {
    /// Without [`LitePullConsumer::shutdown`], offsets consumed since the last commit are not
    /// committed; the tasks stop and the group is unregistered in the background.
    fn drop(&mut self) {
        let shared = &self.shared;
        if shared.running.swap(false, Ordering::SeqCst) {
            tracing::warn!(group = %shared.group, "lite pull consumer dropped without shutdown; offsets since the last commit are not committed");
            shared.state.lock().stop_tasks();
            let (instance, group) = (shared.instance.clone(), shared.group.clone());
            shared.runtime.spawn(async move { instance.unregister_consumer(&group).await });
        }
    }
}

/// The instant `wait` from now; waits too long to represent end a century from now instead.
fn instant_after(wait: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(wait).or_else(|| now.checked_add(CENTURY)).unwrap_or(now)
}

fn not_held(queue: &MessageQueue) -> ClientError {
    ClientError::IllegalArgument(format!(
        "{queue:?} is not held by this consumer (not assigned, or rebalanced away)"
    ))
}

/// Java `topicRouteData2TopicSubscribeInfo`: every read queue of every readable queue data.
fn readable_queues(topic_name: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut queues: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|data| apogee_common::perm::is_readable(data.perm))
        .flat_map(|data| {
            (0..data.read_queue_nums).map(|id| MessageQueue::new(topic_name, data.broker_name.clone(), id))
        })
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

/// An address of broker group `broker_name` in `route`: member `broker_id` if listed, else
/// the master, else any member.
fn broker_addr_in_route(route: &TopicRouteData, broker_name: &str, broker_id: i64) -> Option<String> {
    let broker = route.broker_datas.iter().find(|broker| broker.broker_name == broker_name)?;
    broker
        .broker_addrs
        .get(&broker_id)
        .or_else(|| broker.broker_addrs.get(&MASTER_ID))
        .or_else(|| broker.broker_addrs.values().next())
        .cloned()
}

/// Which way queues are chosen; fixed by the first `subscribe` or `assign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unset,
    Subscribe,
    Assign,
}

/// Settings fixed at start.
#[derive(Debug)]
struct Settings {
    auto_commit: bool,
    auto_commit_interval: Duration,
    poll_timeout: Duration,
    consume_from_where: ConsumeFromWhere,
    consume_timestamp_ms: i64,
    limits: CacheLimits,
    namesrv_addr: String,
}

/// Everything mutable, under one lock that is never held across an await.
#[derive(Debug)]
struct State {
    mode: Mode,
    subscriptions: BTreeMap<String, SubscriptionData>,
    queues: Queues,
    /// The offset store: committed offsets per queue (next message to consume), in memory
    /// until written to the broker.
    committed: HashMap<MessageQueue, i64>,
    next_auto_commit: Instant,
    background: Vec<JoinHandle<()>>,
}

impl State {
    fn set_mode(&mut self, mode: Mode) -> Result<(), ClientError> {
        match self.mode {
            Mode::Unset => {
                self.mode = mode;
                Ok(())
            }
            current if current == mode => Ok(()),
            _ => Err(ClientError::IllegalArgument("subscribe and assign are mutually exclusive".into())),
        }
    }

    /// Moves every consumed offset into the offset store.
    fn commit_consumed(&mut self) {
        for (queue, offset) in self.queues.consumed_offsets() {
            self.committed.insert(queue, offset);
        }
    }

    /// The stored offsets of the held queues.
    fn held_commits(&self) -> Vec<(MessageQueue, i64)> {
        let mut entries: Vec<(MessageQueue, i64)> = self
            .queues
            .assigned()
            .into_iter()
            .filter_map(|queue| self.committed.get(&queue).map(|offset| (queue, *offset)))
            .collect();
        entries.sort();
        entries
    }

    /// Drops the held queues `matching` (tasks aborted, caches and stored offsets dropped);
    /// returns their stored offsets, to be written to the brokers.
    fn release(&mut self, matching: impl Fn(&MessageQueue) -> bool) -> Vec<(MessageQueue, i64)> {
        let mut released = Vec::new();
        for queue in self.queues.assigned().into_iter().filter(|queue| matching(queue)) {
            if let Some(state) = self.queues.remove(&queue) {
                if let Some(task) = state.task {
                    task.abort();
                }
            }
            if let Some(offset) = self.committed.remove(&queue) {
                released.push((queue, offset));
            }
        }
        released
    }

    /// Aborts every task and drops every queue.
    fn stop_tasks(&mut self) {
        for task in self.background.drain(..) {
            task.abort();
        }
        for (_, state) in self.queues.drain() {
            if let Some(task) = state.task {
                task.abort();
            }
        }
    }
}

/// What the consumer's tasks and its registration share.
struct Shared {
    group: String,
    instance: Arc<ClientInstance>,
    /// Where committed offsets are read from and written to (the group's brokers).
    offsets: RemoteOffsetStore,
    runtime: Handle,
    settings: Settings,
    state: Mutex<State>,
    /// Woken when a batch becomes ready.
    ready: Notify,
    /// Woken to rebalance now.
    rebalance: Notify,
    running: AtomicBool,
    /// Serializes `poll` calls.
    poll_gate: tokio::sync::Mutex<()>,
    started_ms: i64,
}

impl Shared {
    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn ensure_running(&self) -> Result<(), ClientError> {
        if self.is_running() {
            Ok(())
        } else {
            Err(ClientError::ShutDown)
        }
    }

    fn ensure_held(&self, queue: &MessageQueue) -> Result<(), ClientError> {
        self.ensure_running()?;
        if self.state.lock().queues.contains(queue) {
            Ok(())
        } else {
            Err(not_held(queue))
        }
    }

    /// Starts holding every queue of `wanted` not held yet, each with its pull task.
    fn hold(self: &Arc<Self>, state: &mut State, wanted: impl IntoIterator<Item = MessageQueue>) {
        for queue in wanted {
            if let Some(generation) = state.queues.add(queue.clone()) {
                state.committed.remove(&queue);
                let task = self.runtime.spawn(pull_task(self.clone(), queue.clone(), generation));
                if let Some(queue_state) = state.queues.get_mut(&queue) {
                    queue_state.task = Some(task);
                }
            }
        }
    }

    /// Restarts a held queue at `offset` with a fresh pull task; false if it is not held.
    fn restart_queue(self: &Arc<Self>, queue: &MessageQueue, offset: i64) -> bool {
        let mut state = self.state.lock();
        let Some((generation, old_task)) = state.queues.restart_at(queue, offset) else {
            return false;
        };
        if let Some(task) = old_task {
            task.abort();
        }
        let task = self.runtime.spawn(pull_task(self.clone(), queue.clone(), generation));
        if let Some(queue_state) = state.queues.get_mut(queue) {
            queue_state.task = Some(task);
        }
        true
    }

    /// Auto-commit, checked at poll time: once per interval, consumed offsets become committed
    /// and the held queues' committed offsets are written to the brokers (oneway).
    fn maybe_auto_commit(self: &Arc<Self>) {
        let entries = {
            let mut state = self.state.lock();
            let now = Instant::now();
            if now < state.next_auto_commit {
                return;
            }
            state.next_auto_commit = instant_after(self.settings.auto_commit_interval);
            state.commit_consumed();
            state.held_commits()
        };
        self.persist_in_background(entries);
    }

    /// Writes offsets to their brokers from a task of its own (oneway).
    fn persist_in_background(self: &Arc<Self>, entries: Vec<(MessageQueue, i64)>) {
        if entries.is_empty() {
            return;
        }
        let shared = self.clone();
        self.runtime.spawn(async move {
            for (queue, offset) in entries {
                if let Err(error) = shared.offsets.update_consume_offset_to_broker(&queue, offset, true).await
                {
                    tracing::warn!(?queue, offset, %error, "offset commit failed");
                }
            }
        });
    }

    /// The subscription a pull of `topic` carries; `None` once the topic is unsubscribed.
    fn subscription_of(&self, topic_name: &str) -> Option<SubscriptionData> {
        let state = self.state.lock();
        match state.mode {
            Mode::Subscribe => state.subscriptions.get(topic_name).cloned(),
            _ => tag_subscription(topic_name, "*", 0).ok(),
        }
    }

    /// Where a queue without a pull position starts: the committed offset (this consumer's,
    /// else the broker's), else the consume-from-where policy.
    async fn find_start(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        let known = self.state.lock().committed.get(queue).copied();
        let committed = match known {
            Some(offset) => Some(offset),
            None => self.offsets.fetch_consume_offset_from_broker(queue).await?,
        };
        match start_from(
            committed,
            self.settings.consume_from_where,
            &queue.topic,
            self.settings.consume_timestamp_ms,
        ) {
            StartFrom::Offset(offset) => Ok(offset),
            StartFrom::QueueEnd => self.max_offset(queue).await,
            StartFrom::Time(timestamp_ms) => {
                let addr = self.queue_master_addr(queue).await?;
                let request = requests::search_offset(queue, timestamp_ms);
                let response = self.instance.invoke(&addr, request, self.api_timeout()).await?;
                requests::read_offset(&addr, response)
            }
        }
    }

    /// Timeout of offset and admin-style calls.
    fn api_timeout(&self) -> Duration {
        self.instance.config().api_timeout
    }

    /// The master (else any member) address of the broker group holding `queue`, from its
    /// topic's route.
    async fn queue_master_addr(&self, queue: &MessageQueue) -> Result<String, ClientError> {
        let route = self.instance.topic_route(&queue.topic).await?;
        broker_addr_in_route(&route, &queue.broker_name, MASTER_ID)
            .ok_or_else(|| ClientError::NoBroker { broker_name: queue.broker_name.clone() })
    }

    /// The queue's min offset (GET_MIN_OFFSET).
    async fn min_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        let addr = self.queue_master_addr(queue).await?;
        let response = self.instance.invoke(&addr, requests::min_offset(queue), self.api_timeout()).await?;
        requests::read_offset(&addr, response)
    }

    /// The queue's max offset, exclusive (GET_MAX_OFFSET).
    async fn max_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        let addr = self.queue_master_addr(queue).await?;
        let response = self.instance.invoke(&addr, requests::max_offset(queue), self.api_timeout()).await?;
        requests::read_offset(&addr, response)
    }

    /// One LITE_PULL_MESSAGE of `queue` from `offset`.
    async fn pull(
        &self,
        queue: &MessageQueue,
        subscription: &SubscriptionData,
        offset: i64,
        broker_id: i64,
    ) -> Result<PullOutcome, ClientError> {
        let route = self.instance.topic_route(&queue.topic).await?;
        let addr = broker_addr_in_route(&route, &queue.broker_name, broker_id)
            .ok_or_else(|| ClientError::NoBroker { broker_name: queue.broker_name.clone() })?;
        let batch = i32::try_from(self.settings.limits.batch_size).unwrap_or(i32::MAX);
        let request = pull::lite_pull_request(&self.group, queue, subscription, offset, batch);
        let response = self.instance.invoke(&addr, request, pull::PULL_TIMEOUT_WHEN_SUSPENDED).await?;
        read_pull_response(&addr, response, subscription)
    }

    /// One rebalance round; false if some topic could not be balanced (retried soon).
    async fn rebalance_once(self: &Arc<Self>) -> bool {
        let topics: Vec<String> = {
            let state = self.state.lock();
            if state.mode != Mode::Subscribe {
                return true;
            }
            state.subscriptions.keys().cloned().collect()
        };
        let client_id = self.instance.client_id().to_owned();
        let mut balanced = true;
        for topic_name in &topics {
            match self.allocate(topic_name, &client_id).await {
                Ok(Some(allocated)) => self.apply_allocation(topic_name, allocated),
                Ok(None) => balanced = false,
                Err(error) => {
                    tracing::debug!(group = %self.group, topic = %topic_name, %error, "rebalance failed");
                    balanced = false;
                }
            }
        }
        let released = self.state.lock().release(|queue| !topics.contains(&queue.topic));
        self.persist_in_background(released);
        balanced
    }

    /// This consumer's share of `topic`; `None` when the brokers do not list it yet (the
    /// heartbeat is then sent again and the current queues kept).
    async fn allocate(
        &self,
        topic_name: &str,
        client_id: &str,
    ) -> Result<Option<Vec<MessageQueue>>, ClientError> {
        let route = self.instance.topic_route(topic_name).await?;
        let all = readable_queues(topic_name, &route);
        let mut ids = self.consumer_ids(topic_name, &route).await?;
        ids.sort();
        if !ids.iter().any(|id| id == client_id) {
            self.instance.send_heartbeat_to_all_brokers().await;
            return Ok(None);
        }
        // Empty inputs leave the assignment empty, as Java does for a group without members.
        Ok(Some(Averagely.allocate(&self.group, client_id, &all, &ids).unwrap_or_default()))
    }

    /// GET_CONSUMER_LIST_BY_GROUP to the brokers of `route`, starting at a varying one, until
    /// one answers.
    async fn consumer_ids(
        &self,
        topic_name: &str,
        route: &TopicRouteData,
    ) -> Result<Vec<String>, ClientError> {
        let addrs: Vec<(String, String)> = route
            .broker_datas
            .iter()
            .filter_map(|broker| {
                broker_addr_in_route(route, &broker.broker_name, MASTER_ID)
                    .map(|addr| (broker.broker_name.clone(), addr))
            })
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::NoRoute { topic: topic_name.to_owned() });
        }
        let first =
            usize::try_from(apogee_common::time::now_ms().rem_euclid(addrs.len() as i64)).unwrap_or(0);
        let mut last_error = None;
        for step in 0..addrs.len() {
            let (broker_name, addr) = &addrs[(first + step) % addrs.len()];
            let header = GetConsumerListByGroupRequestHeader {
                consumer_group: self.group.clone(),
                bname: Some(broker_name.clone()),
            };
            let request =
                RemotingCommand::request(request_code::GET_CONSUMER_LIST_BY_GROUP).with_header(&header);
            let answer = match self.instance.invoke(addr, request, self.api_timeout()).await {
                Ok(response) => expect_success(addr, response).and_then(|response| {
                    fastjson::from_slice::<GetConsumerListByGroupResponseBody>(&response.body).map_err(
                        |error| ClientError::Malformed(format!("consumer list from {addr}: {error}")),
                    )
                }),
                Err(error) => Err(error),
            };
            match answer {
                Ok(body) => return Ok(body.consumer_id_list),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(ClientError::ShutDown))
    }

    /// Makes `allocated` the held queues of `topic`: others released, new ones pulled.
    fn apply_allocation(self: &Arc<Self>, topic_name: &str, allocated: Vec<MessageQueue>) {
        let wanted: BTreeSet<MessageQueue> = allocated.into_iter().collect();
        let released = {
            let mut state = self.state.lock();
            if !state.subscriptions.contains_key(topic_name) {
                return;
            }
            let released = state.release(|queue| queue.topic == topic_name && !wanted.contains(queue));
            let before = state.queues.assigned().len();
            self.hold(&mut state, wanted);
            if before != state.queues.assigned().len() || !released.is_empty() {
                tracing::info!(group = %self.group, topic = topic_name, held = ?state.queues.assigned(), "rebalanced");
            }
            released
        };
        self.persist_in_background(released);
    }
}

/// The pull task of one queue generation: find the start, then pull, cache and repeat while
/// the queue is held, pausing while it is paused or the caches are full.
async fn pull_task(shared: Arc<Shared>, queue: MessageQueue, generation: u64) {
    loop {
        let plan = shared.state.lock().queues.plan(&queue, generation, &shared.settings.limits);
        match plan {
            Plan::Stop => return,
            Plan::Wait(pause) => tokio::time::sleep(pause).await,
            Plan::FindStart => match shared.find_start(&queue).await {
                Ok(offset) => {
                    if !shared.state.lock().queues.set_start(&queue, generation, offset) {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(group = %shared.group, ?queue, %error, "start offset not found");
                    tokio::time::sleep(START_OFFSET_RETRY).await;
                }
            },
            Plan::Pull { offset, broker_id } => {
                let Some(subscription) = shared.subscription_of(&queue.topic) else {
                    return;
                };
                match shared.pull(&queue, &subscription, offset, broker_id).await {
                    Ok(outcome) => match shared.state.lock().queues.apply(&queue, generation, outcome) {
                        None => return,
                        Some(true) => shared.ready.notify_waiters(),
                        Some(false) => {}
                    },
                    Err(error) => {
                        let pause = match &error {
                            ClientError::Broker { code: response_code::FLOW_CONTROL, .. } => {
                                BROKER_FLOW_CONTROL_RETRY
                            }
                            _ => PULL_ERROR_RETRY,
                        };
                        tracing::debug!(group = %shared.group, ?queue, offset, %error, "pull failed");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    }
}

/// Rebalances every [`REBALANCE_INTERVAL`] and when woken, at most once per second; soon
/// again after a round that could not complete.
async fn rebalance_loop(shared: Arc<Shared>) {
    let mut wait = REBALANCE_INTERVAL;
    loop {
        let _woken = tokio::time::timeout(wait, shared.rebalance.notified()).await;
        if !shared.is_running() {
            return;
        }
        wait = if shared.rebalance_once().await { REBALANCE_INTERVAL } else { REBALANCE_RETRY };
        tokio::time::sleep(REBALANCE_MIN_GAP).await;
    }
}

/// The runtime info's `mqTable`: every held queue (keyed by its JSON, as Java writes a map
/// with object keys) with its committed offset in memory (-1 when none) and its cache.
fn mq_table(state: &State) -> serde_json::Map<String, serde_json::Value> {
    let mut table = serde_json::Map::new();
    for (queue, info) in state.queues.infos() {
        let commit_offset = state.committed.get(&queue).copied().unwrap_or(-1);
        let key = serde_json::to_string(&queue).unwrap_or_default();
        let value = serde_json::json!({
            "commitOffset": commit_offset,
            "cachedMsgMinOffset": info.cached_min_offset,
            "cachedMsgMaxOffset": info.cached_max_offset,
            "cachedMsgCount": info.cached_count,
            "cachedMsgSizeInMiB": info.cached_bytes / (1024 * 1024),
            "locked": false,
            "droped": false,
            "lastPullTimestamp": info.last_pull_ms,
            "lastConsumeTimestamp": info.last_consume_ms,
        });
        table.insert(key, value);
    }
    table
}

/// The consumer as the client instance sees it (heartbeats, broker callbacks).
impl LiveConsumer for Shared {
    const CONSUME_TYPE: ConsumeType = ConsumeType::ConsumeActively;
    const NO_DIRECT_CONSUME_REMARK: &'static str = "a lite pull consumer does not consume messages directly";

    fn consumer_data(&self) -> ConsumerData {
        let state = self.state.lock();
        ConsumerData {
            consume_from_where: Some(self.settings.consume_from_where),
            consume_type: Some(ConsumeType::ConsumeActively),
            group_name: self.group.clone(),
            message_model: Some(MessageModel::Clustering),
            subscription_data_set: state.subscriptions.values().cloned().collect(),
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        let state = self.state.lock();
        let topics: BTreeSet<String> = match state.mode {
            Mode::Subscribe => state.subscriptions.keys().cloned().collect(),
            _ => state.queues.assigned().into_iter().map(|queue| queue.topic).collect(),
        };
        topics.into_iter().collect()
    }

    fn rebalance_now(&self) {
        self.rebalance.notify_one();
    }

    fn reset_offsets(self: &Arc<Self>, topic_name: &str, offsets: HashMap<MessageQueue, i64>) {
        for (queue, offset) in offsets.into_iter().filter(|(queue, _)| queue.topic == topic_name) {
            self.state.lock().committed.insert(queue.clone(), offset);
            if self.restart_queue(&queue, offset) {
                tracing::info!(group = %self.group, ?queue, offset, "offset reset by the broker");
            }
        }
    }

    fn running_info(&self) -> serde_json::Value {
        let state = self.state.lock();
        let subscriptions: Vec<serde_json::Value> = state
            .subscriptions
            .values()
            .map(|subscription| serde_json::to_value(subscription).unwrap_or(serde_json::Value::Null))
            .collect();
        serde_json::json!({
            "properties": {
                "consumerGroup": self.group,
                "PROP_CONSUME_TYPE": ConsumeType::ConsumeActively.name(),
                "messageModel": MessageModel::Clustering.name(),
                "consumeFromWhere": self.settings.consume_from_where.name(),
                "PROP_NAMESERVER_ADDR": self.settings.namesrv_addr,
                "pullBatchSize": self.settings.limits.batch_size.to_string(),
                "autoCommit": self.settings.auto_commit.to_string(),
                "PROP_CONSUMER_START_TIMESTAMP": self.started_ms.to_string(),
                "heldQueues": state.queues.assigned().len().to_string(),
                "readyMessages": state.queues.ready_messages().to_string(),
            },
            "subscriptionSet": subscriptions,
            "mqTable": mq_table(&state),
            // Consume statistics exist only where a listener consumes (push); Java's lite pull
            // consumer reports none either.
            "statusTable": {},
        })
    }
}
