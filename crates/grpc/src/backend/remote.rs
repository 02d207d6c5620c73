//! Cluster mode (`apogee proxy -n NAMESRV`): one gRPC endpoint in front of every broker group
//! a NameServer knows, reached over remoting through [`apogee_client::Relay`]. Sends go to
//! the broker of the queue the endpoint chose among the topic's writable master queues;
//! receives pop the brokers holding readable queues in turn within the long-polling budget;
//! acks, changes of invisible time and dead-lettering go to the broker named in the receipt
//! handle; END_TRANSACTION goes to the broker that stored the half, remembered from the send
//! or from the broker's check. Producers of the endpoint's clients are announced in the
//! relay's heartbeats (producer group = topic), so the brokers' CHECK_TRANSACTION_STATE comes
//! here and is forwarded to a gRPC producer's Telemetry stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use apogee_broker::core::pop::ack::Changed;
use apogee_broker::core::pop::pop_message::PopRequest;
use apogee_broker::core::transaction::Decision;
use apogee_client::error::ClientError;
use apogee_client::producer::{TransactionCheck, TransactionCheckForwarder};
use apogee_client::relay::{readable_brokers, PopOutcome as RelayPop, QueueSendResult, Relay};
use apogee_common::message::msg_id::decode_offset_msg_id;
use apogee_common::message::{property, sysflag};
use apogee_common::perm;
use apogee_common::time::now_ms;
use apogee_common::topic::AUTO_CREATE_TOPIC_KEY;
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::body::SubscriptionGroupConfig;
use apogee_remoting::client::RemotingError;
use apogee_remoting::header::consumer::ConsumerSendMsgBackRequestHeader;
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, PopMessageRequestHeader,
};
use apogee_remoting::header::send::{EndTransactionRequestHeader, SendMessageRequestHeader};
use apogee_remoting::recall::RecallHandle;
use apogee_remoting::response_code;
use parking_lot::Mutex;

use super::{
    ack_refused, change_refused, check_type, queue_position, BrokerQueues, EndTransaction, PopOutcome,
    Popped, TopicRoute,
};
use crate::consume::{AckTarget, Handle, DEAD_LETTER_DELAY_LEVEL};
use crate::context::CallContext;
use crate::pb::{settings, Code, MessageType, SendResultEntry, Settings};
use crate::send::{Outgoing, DEFAULT_TOPIC_QUEUE_NUMS};
use crate::status::{code_of, ok, status, Refusal};
use crate::Messaging;

/// How long a topic's route, message type or a group's config is used before it is asked
/// again (the reference proxy refreshes routes every 20 s).
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(20);
/// Topics and groups whose metadata is cached at once; the cache starts over when full.
pub const MAX_CACHED_METADATA: usize = 10_000;
/// Half messages remembered until their transaction ends; beyond, new ones are not
/// remembered and an EndTransaction for them is refused.
pub const MAX_PENDING_TRANSACTIONS: usize = 100_000;
/// How long an undecided half is remembered (a producer answering later than this must wait
/// for the broker's next check, which is remembered again).
pub const TRANSACTION_MEMORY: Duration = Duration::from_secs(3_600);
/// Most queues of one broker group a route may announce for a topic; a route announcing
/// more is cut (a NameServer's numbers are not trusted with the proxy's memory).
pub const MAX_QUEUES_PER_BROKER: i32 = 65_536;
/// How long a broker that did not answer is passed over by sends without a message group
/// and tried last by receives (then it is tried again).
pub const BROKER_DOWN_PAUSE: Duration = Duration::from_secs(10);
/// Clients whose producer groups are announced at once.
pub const MAX_ANNOUNCED_CLIENTS: usize = 100_000;

/// Where a half message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HalfPlace {
    broker_name: String,
    queue_offset: i64,
    commit_log_offset: i64,
    remembered: Instant,
}

/// A cached piece of metadata.
#[derive(Debug, Clone)]
struct Cached<T> {
    value: T,
    fetched: Instant,
}

/// A bounded cache of metadata by name.
#[derive(Debug)]
struct MetadataCache<T>(Mutex<HashMap<String, Cached<T>>>);

impl<T: Clone> MetadataCache<T> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn fresh(&self, key: &str) -> Option<T> {
        let cache = self.0.lock();
        cache
            .get(key)
            .filter(|cached| cached.fetched.elapsed() < METADATA_MAX_AGE)
            .map(|cached| cached.value.clone())
    }

    fn put(&self, key: &str, value: T) {
        let mut cache = self.0.lock();
        if cache.len() >= MAX_CACHED_METADATA && !cache.contains_key(key) {
            cache.clear();
        }
        cache.insert(key.to_owned(), Cached { value, fetched: Instant::now() });
    }
}

/// The broker groups behind a proxy.
pub struct Remote {
    relay: Relay,
    /// The service this backend serves, for forwarding transaction checks.
    messaging: Weak<Messaging>,
    max_body_bytes: usize,
    send_turn: AtomicU64,
    pop_turn: AtomicU64,
    /// When each topic's route was last fetched from the NameServer.
    routes_fetched: MetadataCache<()>,
    accepted: MetadataCache<Vec<MessageType>>,
    groups: MetadataCache<Option<SubscriptionGroupConfig>>,
    /// Half messages by (producer group, transaction id).
    halves: Mutex<HashMap<(String, String), HalfPlace>>,
    /// The producer groups announced for each client.
    announced: Mutex<HashMap<String, Vec<String>>>,
    /// Brokers that did not answer, with when they are tried first again.
    down_until: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Remote").field("relay", &self.relay).finish_non_exhaustive()
    }
}

/// The refusal for a failed call to `broker`, with the codes the reference proxy answers: a
/// broker's own refusal mapped from its response code, a call that timed out PROXY_TIMEOUT,
/// anything else (a broker down, a connection closed) INTERNAL_SERVER_ERROR; the message names
/// the broker.
pub fn refusal_of(error: &ClientError, broker: &str) -> Refusal {
    match error {
        ClientError::Broker { code, remark, .. } => Refusal::new(code_of(*code), remark.clone()),
        ClientError::NoRoute { topic } => Refusal::new(
            Code::TopicNotFound,
            format!("No topic route info in name server for the topic: {topic}"),
        ),
        ClientError::Remoting(RemotingError::Timeout { .. } | RemotingError::ConnectTimeout { .. })
        | ClientError::Timeout { .. } => {
            Refusal::new(Code::ProxyTimeout, format!("broker {broker} did not answer in time: {error}"))
        }
        ClientError::NoBroker { broker_name } => {
            Refusal::new(Code::BadRequest, format!("cannot find broker {broker_name}"))
        }
        ClientError::TooManyRequests { .. } => {
            Refusal::new(Code::TooManyRequests, format!("too many requests to broker {broker}: {error}"))
        }
        _ => Refusal::new(Code::InternalServerError, format!("broker {broker} failed: {error}")),
    }
}

impl Remote {
    /// The backend over `relay`, serving `messaging` (whose producers get the checks), with
    /// `max_body_bytes` as the body limit.
    pub fn new(relay: Relay, messaging: Weak<Messaging>, max_body_bytes: usize) -> Self {
        Self {
            relay,
            messaging,
            max_body_bytes,
            send_turn: AtomicU64::new(0),
            pop_turn: AtomicU64::new(0),
            routes_fetched: MetadataCache::new(),
            accepted: MetadataCache::new(),
            groups: MetadataCache::new(),
            halves: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            down_until: Mutex::new(HashMap::new()),
        }
    }

    /// Notes a call to `broker` that got no answer (connection refused, closed, timed out).
    fn note_failure(&self, broker: &str, error: &ClientError) {
        if error.is_transport() {
            let mut down = self.down_until.lock();
            if down.len() >= MAX_CACHED_METADATA {
                down.clear();
            }
            down.insert(broker.to_owned(), Instant::now() + BROKER_DOWN_PAUSE);
        }
    }

    /// The refusal of a call to `broker` that got no answer, noted.
    fn call_refused(&self, broker: &str, error: &ClientError) -> Refusal {
        self.note_failure(broker, error);
        refusal_of(error, broker)
    }

    /// Whether `broker` failed to answer within the last [`BROKER_DOWN_PAUSE`].
    fn is_down(&self, broker: &str) -> bool {
        self.down_until.lock().get(broker).is_some_and(|until| *until > Instant::now())
    }

    /// The relay underneath.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The topic's route, fetched again from the NameServer when older than
    /// [`METADATA_MAX_AGE`] (the cached one is kept when the NameServer cannot be reached).
    async fn fresh_route(&self, topic: &str) -> Result<Arc<TopicRouteData>, Refusal> {
        let instance = self.relay.instance();
        if self.routes_fetched.fresh(topic).is_some() {
            if let Some(route) = instance.cached_topic_route(topic) {
                return Ok(route);
            }
        }
        match instance.refresh_topic_route(topic).await {
            Ok(route) => {
                self.routes_fetched.put(topic, ());
                Ok(route)
            }
            Err(error) => match instance.cached_topic_route(topic) {
                Some(route) if error.is_transport() => {
                    tracing::warn!(topic, %error, "name server unreachable; the cached route is used");
                    Ok(route)
                }
                _ => Err(refusal_of(&error, "(name server)")),
            },
        }
    }

    /// What the topic accepts, from its `message.type` on a broker holding it.
    async fn accepted_types(&self, topic: &str, route: &TopicRouteData) -> Result<Vec<MessageType>, Refusal> {
        if let Some(accepted) = self.accepted.fresh(topic) {
            return Ok(accepted);
        }
        let mut last = Refusal::new(Code::TopicNotFound, format!("no broker holds the topic {topic}"));
        for broker in master_names(route) {
            match self.relay.topic_config(&broker, topic).await {
                Ok(config) => {
                    let accepted = crate::topic_type::accepted(&config);
                    self.accepted.put(topic, accepted.clone());
                    return Ok(accepted);
                }
                Err(error) => last = refusal_of(&error, &broker),
            }
        }
        Err(last)
    }

    pub(super) async fn route(&self, topic: &str) -> Result<TopicRoute, Refusal> {
        let route = self.fresh_route(topic).await?;
        let accepted = self.accepted_types(topic, &route).await?;
        let mut brokers: Vec<BrokerQueues> = route
            .queue_datas
            .iter()
            .filter(|queues| has_master(&route, &queues.broker_name))
            .map(|queues| BrokerQueues {
                broker_name: queues.broker_name.clone(),
                perm: queues.perm,
                read_queue_nums: queues.read_queue_nums.clamp(0, MAX_QUEUES_PER_BROKER),
                write_queue_nums: queues.write_queue_nums.clamp(0, MAX_QUEUES_PER_BROKER),
            })
            .collect();
        brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        if brokers.is_empty() {
            return Err(Refusal::new(
                Code::TopicNotFound,
                format!("No topic route info in name server for the topic: {topic}"),
            ));
        }
        Ok(TopicRoute { brokers, accepted })
    }

    pub(super) async fn group_config(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Option<SubscriptionGroupConfig> {
        if let Some(config) = self.groups.fresh(group) {
            return config;
        }
        let topic = topic?;
        let route = self.fresh_route(topic).await.ok()?;
        for broker in master_names(&route) {
            match self.relay.group_config(&broker, topic, group).await {
                Ok(config) => {
                    self.groups.put(group, config.clone());
                    return config;
                }
                Err(error) => tracing::debug!(group, broker, %error, "group config not read"),
            }
        }
        None
    }

    pub(super) async fn send(
        &self,
        _context: &CallContext,
        topic: &str,
        messages: Vec<Outgoing>,
        check: bool,
    ) -> Result<Vec<SendResultEntry>, Refusal> {
        let route = self.fresh_route(topic).await?;
        if check {
            if let Some(first) = messages.first() {
                let accepted = self.accepted_types(topic, &route).await?;
                check_type(&accepted, first.kind)?;
            }
        }
        let queues = writable_queues(&route);
        let count = i32::try_from(queues.len()).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(Refusal::new(Code::Forbidden, "no writable queue"));
        }
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            let position = match message.message_group.as_deref() {
                // A message group keeps its queue, whatever its broker's state.
                Some(group) => queue_position(Some(group), count, 0),
                None => self.next_send_position(&queues, count),
            };
            let Some((broker, queue_id)) = usize::try_from(position).ok().and_then(|index| queues.get(index))
            else {
                entries.push(crate::send::failed_entry(Refusal::new(
                    Code::InternalServerError,
                    "no queue chosen",
                )));
                continue;
            };
            entries.push(self.send_one(topic, broker, *queue_id, message).await);
        }
        Ok(entries)
    }

    /// The next queue in turn, passing over the queues of brokers that did not answer lately
    /// (at most one round; when every broker is down, the next queue in turn).
    fn next_send_position(&self, queues: &[(String, i32)], count: i32) -> i32 {
        let first = queue_position(None, count, self.send_turn.fetch_add(1, Ordering::Relaxed));
        for step in 0..count {
            let position = (first + step) % count;
            let up = usize::try_from(position)
                .ok()
                .and_then(|index| queues.get(index))
                .is_some_and(|(broker, _)| !self.is_down(broker));
            if up {
                if step > 0 {
                    self.send_turn.fetch_add(u64::try_from(step).unwrap_or(0), Ordering::Relaxed);
                }
                return position;
            }
        }
        first
    }

    async fn send_one(&self, topic: &str, broker: &str, queue_id: i32, message: Outgoing) -> SendResultEntry {
        let header = SendMessageRequestHeader {
            producer_group: topic.into(),
            topic: topic.into(),
            default_topic: AUTO_CREATE_TOPIC_KEY.into(),
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            queue_id,
            sys_flag: message.sys_flag,
            born_timestamp: message.born_timestamp_ms,
            flag: 0,
            properties: Some(message.properties.as_str().into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(false),
            bname: Some(broker.into()),
        };
        let transactional = sysflag::transaction_type(message.sys_flag) == sysflag::TRANSACTION_PREPARED_TYPE;
        match self.relay.send_to_queue(broker, header, message.body).await {
            Ok(QueueSendResult { code, header }) => {
                if transactional {
                    match decode_offset_msg_id(header.msg_id.as_str()) {
                        Ok((_, commit_log_offset)) => self.remember_half(
                            topic,
                            &message.message_id,
                            HalfPlace {
                                broker_name: broker.to_owned(),
                                queue_offset: header.queue_offset,
                                commit_log_offset,
                                remembered: Instant::now(),
                            },
                        ),
                        Err(error) => {
                            tracing::warn!(broker, %error, "a half message's offset id cannot be read")
                        }
                    }
                }
                let entry_status = match code {
                    response_code::SUCCESS => ok(),
                    response_code::FLUSH_DISK_TIMEOUT => {
                        status(Code::MasterPersistenceTimeout, "flush disk timeout")
                    }
                    response_code::FLUSH_SLAVE_TIMEOUT => {
                        status(Code::SlavePersistenceTimeout, "flush slave timeout")
                    }
                    _ => status(Code::HaNotAvailable, "slave not available"),
                };
                SendResultEntry {
                    status: Some(entry_status),
                    message_id: message.message_id.clone(),
                    transaction_id: message.message_id,
                    offset: header.queue_offset,
                    recall_handle: header.recall_handle.unwrap_or_default(),
                }
            }
            Err(error) => {
                tracing::debug!(broker, topic, %error, "relayed send failed");
                self.note_failure(broker, &error);
                crate::send::failed_entry(refusal_of(&error, broker))
            }
        }
    }

    pub(super) async fn pop(
        &self,
        _context: &CallContext,
        pop: &PopRequest<'_>,
    ) -> Result<PopOutcome, Refusal> {
        let route = self.fresh_route(pop.topic).await?;
        let brokers = readable_brokers(&route);
        if brokers.is_empty() {
            return Err(Refusal::new(Code::Forbidden, "no readable queue"));
        }
        let started = Instant::now();
        let first = usize::try_from(self.pop_turn.fetch_add(1, Ordering::Relaxed)).unwrap_or(0);
        // In turn, brokers that did not answer lately last.
        let mut order: Vec<&String> =
            (0..brokers.len()).map(|step| &brokers[(first + step) % brokers.len()]).collect();
        order.sort_by_key(|broker| self.is_down(broker));
        let mut last_error = None;
        let mut reachable = Vec::with_capacity(brokers.len());
        let mut full = false;
        // Every broker without waiting; then a long poll, for what is left of the budget, on
        // the first one that answered.
        for broker in order {
            match self.relay.pop(broker, pop_header(pop, broker, 0)).await {
                Ok(RelayPop::Found(found)) if !found.is_empty() => {
                    return Ok(PopOutcome::Found(popped(found)))
                }
                Ok(RelayPop::PollingFull) => {
                    full = true;
                    reachable.push(broker);
                }
                Ok(_) => reachable.push(broker),
                Err(error) => {
                    tracing::debug!(broker, topic = pop.topic, %error, "pop failed");
                    self.note_failure(broker, &error);
                    last_error = Some(refusal_of(&error, broker));
                }
            }
        }
        let Some(broker) = reachable.first() else {
            return Err(
                last_error.unwrap_or_else(|| Refusal::new(Code::InternalServerError, "no broker answered"))
            );
        };
        let spent_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let poll_ms = pop.poll_ms.saturating_sub(spent_ms);
        if poll_ms <= 0 {
            return Ok(if full { PopOutcome::PollingFull } else { PopOutcome::NotFound });
        }
        match self.relay.pop(broker, pop_header(pop, broker, poll_ms)).await {
            Ok(RelayPop::Found(found)) => Ok(PopOutcome::Found(popped(found))),
            Ok(RelayPop::NotFound) => Ok(PopOutcome::NotFound),
            Ok(RelayPop::PollingFull) => Ok(PopOutcome::PollingFull),
            Err(error) => {
                self.note_failure(broker, &error);
                Err(refusal_of(&error, broker))
            }
        }
    }

    pub(super) async fn ack(&self, group: &str, target: &AckTarget) -> Result<(), Refusal> {
        let header = AckMessageRequestHeader {
            consumer_group: group.to_owned(),
            topic: target.real_topic.clone(),
            queue_id: target.queue_id,
            extra_info: target.extra.clone(),
            offset: target.offset,
            bname: Some(target.broker_name.clone()),
        };
        self.relay.ack(&target.broker_name, header).await.map_err(|error| match &error {
            ClientError::Broker { remark, .. } => ack_refused(remark),
            _ => self.call_refused(&target.broker_name, &error),
        })
    }

    pub(super) async fn change_invisible(
        &self,
        group: &str,
        target: &AckTarget,
        invisible_ms: i64,
    ) -> Result<Changed, Refusal> {
        let header = ChangeInvisibleTimeRequestHeader {
            consumer_group: group.to_owned(),
            topic: target.real_topic.clone(),
            queue_id: target.queue_id,
            extra_info: target.extra.clone(),
            offset: target.offset,
            invisible_time: invisible_ms,
            bname: Some(target.broker_name.clone()),
        };
        let changed =
            self.relay.change_invisible(&target.broker_name, header).await.map_err(|error| match &error {
                ClientError::Broker { remark, .. } => change_refused(remark),
                _ => self.call_refused(&target.broker_name, &error),
            })?;
        Ok(Changed {
            pop_time_ms: changed.pop_time,
            invisible_ms: changed.invisible_time,
            revive_qid: changed.revive_qid,
        })
    }

    pub(super) async fn dead_letter(
        &self,
        _context: &CallContext,
        group: &str,
        real_topic: &str,
        handle: &Handle,
    ) -> Result<(), Refusal> {
        let broker = &handle.extra.broker_name;
        let header = ConsumerSendMsgBackRequestHeader {
            offset: handle.commit_log_offset,
            group: group.to_owned(),
            delay_level: DEAD_LETTER_DELAY_LEVEL,
            origin_msg_id: None,
            origin_topic: Some(real_topic.to_owned()),
            unit_mode: Some(false),
            max_reconsume_times: Some(0),
            bname: Some(broker.clone()),
        };
        self.relay.send_back(broker, real_topic, header).await.map_err(|error| refusal_of(&error, broker))
    }

    /// Forwards the recall to the broker the handle names, as the reference proxy does.
    pub(super) async fn recall(&self, topic: &str, recall_handle: &str) -> Result<String, Refusal> {
        let handle = RecallHandle::decode(recall_handle).map_err(|error| {
            Refusal::new(Code::InternalServerError, format!("recall handle is invalid: {error}"))
        })?;
        let broker = handle.broker_name.as_str();
        self.relay
            .recall(broker, topic, recall_handle, None)
            .await
            .map_err(|error| refusal_of(&error, broker))
    }

    pub(super) async fn end_transaction(&self, end: EndTransaction<'_>) -> Result<(), Refusal> {
        let key = (end.topic.to_owned(), end.transaction_id.to_owned());
        let place = self.halves.lock().get(&key).cloned();
        let Some(place) = place else {
            // As the reference proxy: its TRANSACTION_DATA_NOT_FOUND has no code of its own.
            return Err(Refusal::new(
                Code::InternalServerError,
                format!("cannot found transaction data: {}", end.transaction_id),
            ));
        };
        let commit_or_rollback = match end.decision {
            Decision::Commit => sysflag::TRANSACTION_COMMIT_TYPE,
            Decision::Rollback => sysflag::TRANSACTION_ROLLBACK_TYPE,
            Decision::Unknown => sysflag::TRANSACTION_NOT_TYPE,
        };
        let header = EndTransactionRequestHeader {
            topic: Some(end.topic.to_owned()),
            producer_group: end.topic.to_owned(),
            tran_state_table_offset: place.queue_offset,
            commit_log_offset: place.commit_log_offset,
            commit_or_rollback,
            from_transaction_check: Some(end.from_transaction_check),
            msg_id: end.message_id.to_owned(),
            transaction_id: Some(end.transaction_id.to_owned()),
            bname: Some(place.broker_name.clone()),
        };
        self.relay
            .end_transaction(&place.broker_name, header)
            .await
            .map_err(|error| refusal_of(&error, &place.broker_name))?;
        if end.decision != Decision::Unknown {
            self.halves.lock().remove(&key);
        }
        Ok(())
    }

    /// Remembers where the half of `transaction_id` (of producer group `group`) is stored.
    fn remember_half(&self, group: &str, transaction_id: &str, place: HalfPlace) {
        let mut halves = self.halves.lock();
        if halves.len() >= MAX_PENDING_TRANSACTIONS {
            halves.retain(|_, kept| kept.remembered.elapsed() < TRANSACTION_MEMORY);
        }
        if halves.len() >= MAX_PENDING_TRANSACTIONS {
            tracing::warn!(group, transaction_id, "too many undecided transactions; one is not remembered");
            return;
        }
        halves.insert((group.to_owned(), transaction_id.to_owned()), place);
    }

    pub(super) async fn client_settled(&self, client_id: &str, settings: &Settings) {
        let Some(settings::PubSub::Publishing(publishing)) = &settings.pub_sub else { return };
        {
            // Claimed before any call, so a client's Settings sent again are not announced
            // twice, and no lock is held across the calls.
            let mut announced = self.announced.lock();
            if announced.contains_key(client_id) || announced.len() >= MAX_ANNOUNCED_CLIENTS {
                return;
            }
            announced.insert(client_id.to_owned(), Vec::new());
        }
        let forwarder: Arc<dyn TransactionCheckForwarder> = Arc::new(CheckForwarder(self.messaging.clone()));
        let mut held = Vec::new();
        for topic in &publishing.topics {
            let group = topic.name.clone();
            match self.relay.hold_producer(&group, std::slice::from_ref(&group), Arc::clone(&forwarder)).await
            {
                Ok(()) => held.push(group),
                Err(error) => {
                    tracing::warn!(client_id, group, %error, "producer group not announced to brokers")
                }
            }
        }
        let left_meanwhile = match self.announced.lock().get_mut(client_id) {
            Some(entry) => {
                entry.clone_from(&held);
                false
            }
            None => true,
        };
        if left_meanwhile {
            for group in held {
                self.relay.release_producer(&group).await;
            }
        }
    }

    pub(super) async fn client_left(&self, client_id: &str) {
        let held = self.announced.lock().remove(client_id);
        for group in held.unwrap_or_default() {
            self.relay.release_producer(&group).await;
        }
    }

    pub(super) fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// Forwards the brokers' checks of a relayed producer group to a gRPC producer: where the
/// half is stored is remembered for the EndTransaction that answers it.
struct CheckForwarder(Weak<Messaging>);

impl TransactionCheckForwarder for CheckForwarder {
    fn forward(&self, check: TransactionCheck) {
        let Some(messaging) = self.0.upgrade() else { return };
        let crate::backend::Brokers::Remote(remote) = &messaging.backend else { return };
        let properties = &check.message.message.properties;
        let group = properties.get(property::PGROUP).unwrap_or_default().to_owned();
        let transaction_id = properties.get(property::UNIQ_KEY).unwrap_or_default().to_owned();
        match check.header.bname.clone() {
            Some(broker_name) if !transaction_id.is_empty() => remote.remember_half(
                &group,
                &transaction_id,
                HalfPlace {
                    broker_name,
                    queue_offset: check.header.tran_state_table_offset,
                    commit_log_offset: check.header.commit_log_offset,
                    remembered: Instant::now(),
                },
            ),
            _ => {
                tracing::warn!(broker = %check.broker_addr, group, "a transaction check names no broker or id")
            }
        }
        if !messaging.forward_check(&group, &check.message) {
            tracing::debug!(group, transaction_id, "no grpc producer took a transaction check");
        }
    }
}

/// The messages of a relayed pop with their gRPC handles.
fn popped(found: Vec<apogee_client::ReceivedMessage>) -> Vec<Popped> {
    found
        .into_iter()
        .map(|received| {
            let handle = format!("{} {}", received.receipt_handle(), received.message().commit_log_offset);
            Popped { message: received.into_message(), handle }
        })
        .collect()
}

/// The POP_MESSAGE header of `pop` for `broker`, waiting up to `poll_ms`.
fn pop_header(pop: &PopRequest<'_>, broker: &str, poll_ms: i64) -> PopMessageRequestHeader {
    PopMessageRequestHeader {
        consumer_group: pop.group.to_owned(),
        topic: pop.topic.to_owned(),
        queue_id: -1,
        max_msg_nums: pop.max_msg_nums,
        invisible_time: pop.invisible_ms,
        poll_time: poll_ms,
        born_time: now_ms(),
        init_mode: pop.init_mode,
        exp_type: pop.expression_type.map(str::to_owned),
        exp: pop.expression.map(str::to_owned),
        order: Some(pop.order),
        attempt_id: pop.attempt_id.map(str::to_owned),
        bname: Some(broker.to_owned()),
    }
}

fn has_master(route: &TopicRouteData, broker_name: &str) -> bool {
    route
        .broker_datas
        .iter()
        .any(|broker| broker.broker_name == broker_name && broker.broker_addrs.contains_key(&MASTER_ID))
}

/// The broker names of `route` with a master, in name order.
fn master_names(route: &TopicRouteData) -> Vec<String> {
    let mut names: Vec<String> = route
        .queue_datas
        .iter()
        .filter(|queues| has_master(route, &queues.broker_name))
        .map(|queues| queues.broker_name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every writable master queue of `route`, by broker name then queue id: the list a message
/// group is hashed over, the same on every proxy.
fn writable_queues(route: &TopicRouteData) -> Vec<(String, i32)> {
    let mut datas: Vec<_> = route
        .queue_datas
        .iter()
        .filter(|queues| perm::is_writeable(queues.perm) && has_master(route, &queues.broker_name))
        .collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    datas
        .into_iter()
        .flat_map(|queues| {
            (0..queues.write_queue_nums.clamp(0, MAX_QUEUES_PER_BROKER))
                .map(move |id| (queues.broker_name.clone(), id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_remoting::body::route::{BrokerData, QueueData};
    use std::collections::BTreeMap;

    fn route() -> TopicRouteData {
        let broker = |name: &str, master: bool| {
            let mut addrs = BTreeMap::new();
            addrs.insert(if master { MASTER_ID } else { 1 }, format!("{name}:10911"));
            BrokerData {
                cluster: "c".into(),
                broker_name: name.into(),
                broker_addrs: addrs,
                ..BrokerData::default()
            }
        };
        let queues = |name: &str, write: i32, perm: i32| QueueData {
            broker_name: name.into(),
            read_queue_nums: write,
            write_queue_nums: write,
            perm,
            ..QueueData::default()
        };
        TopicRouteData {
            broker_datas: vec![broker("b", true), broker("a", true), broker("c", false)],
            queue_datas: vec![queues("b", 2, 6), queues("a", 1, 6), queues("c", 4, 6)],
            ..TopicRouteData::default()
        }
    }

    #[test]
    fn writable_queues_are_every_master_queue_by_broker_name() {
        assert_eq!(writable_queues(&route()), [("a".into(), 0), ("b".into(), 0), ("b".into(), 1)]);
        let mut read_only = route();
        read_only.queue_datas[0].perm = perm::READ;
        assert_eq!(writable_queues(&read_only), [("a".to_owned(), 0)]);
        assert_eq!(master_names(&route()), ["a", "b"]);
    }

    #[test]
    fn failures_map_to_the_reference_codes_and_name_the_broker() {
        let down = ClientError::Remoting(RemotingError::Closed);
        let refusal = refusal_of(&down, "broker-b");
        assert_eq!(refusal.code, Code::InternalServerError);
        assert!(refusal.message.contains("broker-b"), "{}", refusal.message);
        let slow = ClientError::Remoting(RemotingError::Timeout { addr: "x".into(), timeout_ms: 3 });
        assert_eq!(refusal_of(&slow, "broker-b").code, Code::ProxyTimeout);
        let busy =
            ClientError::Broker { code: response_code::SYSTEM_BUSY, remark: "busy".into(), addr: "x".into() };
        assert_eq!(refusal_of(&busy, "broker-b"), Refusal::new(Code::TooManyRequests, "busy"));
        let unknown = ClientError::NoBroker { broker_name: "broker-z".into() };
        assert_eq!(
            refusal_of(&unknown, "broker-z"),
            Refusal::new(Code::BadRequest, "cannot find broker broker-z")
        );
    }
}
