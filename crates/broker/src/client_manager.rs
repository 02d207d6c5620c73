//! Live producers and consumers, by group (Java `ConsumerManager` and `ProducerManager`,
//! behaviour spec §2.5).
//!
//! Every client instance heartbeats each broker every 30 s, listing its producer and consumer
//! groups and the consumers' subscriptions. The broker keeps, per group, one entry per client
//! connection ("channel"): what push consumers pull with when their pulls carry no
//! subscription, whom GET_CONSUMER_LIST_BY_GROUP lists for rebalancing, and whom admin tools
//! show. A channel goes away when its connection closes, when the client unregisters, or when it
//! has been silent for `channelExpiredTimeout`. Whenever the member set (or the subscribed topic
//! set) of a clustering group changes, every member is told with a oneway
//! NOTIFY_CONSUMER_IDS_CHANGED so it rebalances at once instead of within 20 s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::time::now_ms;
use apogee_remoting::body::admin::{self, ConsumerConnection, ProducerConnection};
use apogee_remoting::body::enums::{ConsumeFromWhere, ConsumeType, MessageModel};
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_remoting::body::ResetOffsetBody;
use apogee_remoting::connection::Connection;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{NotifyConsumerIdsChangedRequestHeader, ResetOffsetRequestHeader};
use apogee_remoting::{request_code, LanguageCode, RemotingCommand};
use parking_lot::{Mutex, RwLock};

use crate::{BrokerConfig, BrokerState};

/// Oldest client version that understands RESET_CONSUMER_CLIENT_OFFSET (Java `MQVersion`
/// ordinal of V3_0_7_SNAPSHOT).
pub const MIN_RESET_OFFSET_CLIENT_VERSION: i32 = 28;

/// How telling a group's members of an offset reset went.
#[derive(Debug)]
pub enum ResetNotice {
    /// Sent (oneway) to this many members.
    Sent {
        /// Members told.
        consumers: usize,
    },
    /// The group has no live member.
    NotOnline,
    /// A member is too old to understand the request; nobody was told.
    ClientTooOld {
        /// That member's version ordinal.
        version: i32,
    },
    /// The offsets could not be written as JSON; nobody was told.
    Unencodable(String),
}

/// How often silent channels are looked for (Java: every 10 s).
pub const EXPIRY_SCAN_INTERVAL_MS: u64 = 10_000;

/// Shortest scan period, whatever `channelExpiredTimeout` says.
pub const MIN_EXPIRY_SCAN_INTERVAL_MS: u64 = 100;

/// One client connection registered in a group (Java `ClientChannelInfo`).
#[derive(Debug, Clone)]
pub struct ClientChannel {
    /// Client instance id from the heartbeat (`ip@instanceName`).
    pub client_id: String,
    /// The connection, for calls back to the client.
    pub connection: Connection,
    /// SDK language of the client's requests.
    pub language: LanguageCode,
    /// Version ordinal of the client's requests.
    pub version: i32,
    /// Wall-clock ms of the last heartbeat.
    pub last_update_ms: i64,
}

impl ClientChannel {
    /// A channel heartbeating now.
    pub fn new(
        client_id: impl Into<String>,
        connection: Connection,
        language: LanguageCode,
        version: i32,
    ) -> Self {
        Self { client_id: client_id.into(), connection, language, version, last_update_ms: now_ms() }
    }

    /// The admin body describing this channel (Java `Connection`).
    pub fn to_body(&self) -> admin::Connection {
        admin::Connection {
            client_addr: self.connection.remote_addr().to_string(),
            client_id: self.client_id.clone(),
            language: Some(self.language),
            version: self.version,
        }
    }
}

/// Everything known about one consumer group's live members (Java `ConsumerGroupInfo`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupInfo {
    /// Group name.
    pub group_name: String,
    /// Push, pull or pop, as the last heartbeat said.
    pub consume_type: Option<ConsumeType>,
    /// Clustering or broadcasting, as the last heartbeat said.
    pub message_model: Option<MessageModel>,
    /// Start policy, as the last heartbeat said.
    pub consume_from_where: Option<ConsumeFromWhere>,
    /// Topic → subscription (the newest `subVersion` wins).
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    /// Connection id → channel.
    pub channels: BTreeMap<u64, ClientChannel>,
    /// Wall-clock ms of the last change or heartbeat.
    pub last_update_ms: i64,
}

impl ConsumerGroupInfo {
    fn new(group_name: &str) -> Self {
        Self {
            group_name: group_name.to_owned(),
            consume_type: None,
            message_model: None,
            consume_from_where: None,
            subscriptions: BTreeMap::new(),
            channels: BTreeMap::new(),
            last_update_ms: now_ms(),
        }
    }

    /// True for broadcasting groups, which are never told about membership changes.
    pub fn is_broadcasting(&self) -> bool {
        self.message_model == Some(MessageModel::Broadcasting)
    }

    /// Client ids of the members, one per channel.
    pub fn client_ids(&self) -> Vec<String> {
        self.channels.values().map(|channel| channel.client_id.clone()).collect()
    }

    /// Records the channel's heartbeat; true when the channel is new to the group.
    fn update_channel(&mut self, channel: ClientChannel, consumer: &ConsumerRegistration<'_>) -> bool {
        self.consume_type = consumer.consume_type;
        self.message_model = consumer.message_model;
        self.consume_from_where = consumer.consume_from_where;
        self.last_update_ms = now_ms();
        let id = channel.connection.id();
        match self.channels.get_mut(&id) {
            Some(existing) => {
                if existing.client_id != channel.client_id {
                    tracing::warn!(
                        group = %self.group_name,
                        old = %existing.client_id,
                        new = %channel.client_id,
                        "consumer connection now heartbeats with another client id"
                    );
                }
                *existing = ClientChannel { last_update_ms: self.last_update_ms, ..channel };
                false
            }
            None => {
                tracing::info!(group = %self.group_name, client = %channel.client_id, remote = %channel.connection.remote_addr(), "consumer joined");
                self.channels.insert(id, channel);
                true
            }
        }
    }

    /// Replaces the subscriptions with the heartbeat's; true when a topic was added or
    /// removed (a newer expression on the same topic replaces the old one without counting
    /// as a change, as in Java).
    fn update_subscriptions(&mut self, subscriptions: &[SubscriptionData]) -> bool {
        let mut changed = false;
        for subscription in subscriptions {
            match self.subscriptions.get_mut(&subscription.topic) {
                None => {
                    self.subscriptions.insert(subscription.topic.clone(), subscription.clone());
                    changed = true;
                }
                Some(old) if subscription.sub_version > old.sub_version => *old = subscription.clone(),
                Some(_) => {}
            }
        }
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|topic, _| subscriptions.iter().any(|subscription| &subscription.topic == topic));
        changed || self.subscriptions.len() != before
    }

    /// The admin body (Java `ConsumerConnection`).
    pub fn to_connection_body(&self) -> ConsumerConnection {
        ConsumerConnection {
            connection_set: self.channels.values().map(ClientChannel::to_body).collect(),
            consume_from_where: self.consume_from_where,
            consume_type: self.consume_type,
            message_model: self.message_model,
            subscription_table: self.subscriptions.clone(),
        }
    }

    fn connections(&self) -> Vec<Connection> {
        self.channels.values().map(|channel| channel.connection.clone()).collect()
    }
}

/// One consumer group of a heartbeat, as the registry needs it.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerRegistration<'a> {
    /// Group name.
    pub group: &'a str,
    /// Push, pull or pop.
    pub consume_type: Option<ConsumeType>,
    /// Clustering or broadcasting.
    pub message_model: Option<MessageModel>,
    /// Start policy.
    pub consume_from_where: Option<ConsumeFromWhere>,
    /// The subscriptions, or `None` for a HeartbeatV2 sent without them (unchanged).
    pub subscriptions: Option<&'a [SubscriptionData]>,
    /// The group's `notifyConsumerIdsChangedEnable`.
    pub notify: bool,
}

/// Live clients.
#[derive(Debug)]
pub struct ClientManager {
    channel_expired_timeout_ms: u64,
    /// Broker-wide `notifyConsumerIdsChangedEnable`.
    notify_enabled: bool,
    consumers: RwLock<HashMap<String, ConsumerGroupInfo>>,
    producers: RwLock<HashMap<String, BTreeMap<u64, ClientChannel>>>,
    /// Last HeartbeatV2 fingerprint per consumer group.
    fingerprints: Mutex<HashMap<String, i32>>,
}

impl ClientManager {
    /// An empty registry.
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            channel_expired_timeout_ms: config.channel_expired_timeout_ms,
            notify_enabled: config.notify_consumer_ids_changed_enable,
            consumers: RwLock::new(HashMap::new()),
            producers: RwLock::new(HashMap::new()),
            fingerprints: Mutex::new(HashMap::new()),
        }
    }

    // ----- registration -----

    /// Registers a consumer channel from a heartbeat; true when the group's members or topics
    /// changed (members are then notified, unless the group is broadcasting or notification is
    /// off for the group or the broker).
    pub fn register_consumer(&self, consumer: ConsumerRegistration<'_>, channel: ClientChannel) -> bool {
        let (changed, notify) = {
            let mut consumers = self.consumers.write();
            let info = consumers
                .entry(consumer.group.to_owned())
                .or_insert_with(|| ConsumerGroupInfo::new(consumer.group));
            let joined = info.update_channel(channel, &consumer);
            let resubscribed =
                consumer.subscriptions.is_some_and(|subscriptions| info.update_subscriptions(subscriptions));
            let changed = joined || resubscribed;
            let notify = (changed && consumer.notify && !info.is_broadcasting()).then(|| info.connections());
            (changed, notify)
        };
        if let Some(connections) = notify {
            self.notify_ids_changed(consumer.group, connections);
        }
        changed
    }

    /// Removes the channel of `connection_id` from a consumer group (UNREGISTER_CLIENT); the
    /// remaining members are notified when `notify` and the group is clustering.
    pub fn unregister_consumer(&self, group: &str, connection_id: u64, notify: bool) {
        let remaining = {
            let mut consumers = self.consumers.write();
            let Some(info) = consumers.get_mut(group) else { return };
            if let Some(channel) = info.channels.remove(&connection_id) {
                tracing::info!(group, client = %channel.client_id, "consumer unregistered");
            }
            let remaining = (notify && !info.is_broadcasting()).then(|| info.connections());
            if info.channels.is_empty() {
                consumers.remove(group);
                self.fingerprints.lock().remove(group);
            }
            remaining
        };
        if let Some(connections) = remaining {
            self.notify_ids_changed(group, connections);
        }
    }

    /// Registers a producer channel from a heartbeat.
    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self.producers.write();
        let channels = producers.entry(group.to_owned()).or_default();
        let id = channel.connection.id();
        if !channels.contains_key(&id) {
            tracing::info!(group, client = %channel.client_id, remote = %channel.connection.remote_addr(), "producer joined");
        }
        channels.insert(id, channel);
    }

    /// Removes the channel of `connection_id` from a producer group (UNREGISTER_CLIENT).
    pub fn unregister_producer(&self, group: &str, connection_id: u64) {
        let mut producers = self.producers.write();
        if let Some(channels) = producers.get_mut(group) {
            channels.remove(&connection_id);
            if channels.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// Records a HeartbeatV2 fingerprint for a group; true when a different one was recorded
    /// before (the client must then send its subscriptions again).
    pub fn swap_fingerprint(&self, group: &str, fingerprint: i32) -> bool {
        let previous = self.fingerprints.lock().insert(group.to_owned(), fingerprint);
        previous.is_some_and(|previous| previous != fingerprint)
    }

    /// Forgets every registration of a connection that ended; the remaining members of
    /// clustering groups it belonged to are notified.
    pub fn remove_connection(&self, connection: &Connection) {
        let id = connection.id();
        let mut notifications = Vec::new();
        {
            let mut consumers = self.consumers.write();
            let mut emptied = Vec::new();
            for (group, info) in consumers.iter_mut() {
                if let Some(channel) = info.channels.remove(&id) {
                    tracing::info!(group = %group, client = %channel.client_id, remote = %connection.remote_addr(), "consumer connection closed");
                    if info.channels.is_empty() {
                        emptied.push(group.clone());
                    } else if !info.is_broadcasting() {
                        notifications.push((group.clone(), info.connections()));
                    }
                }
            }
            for group in emptied {
                consumers.remove(&group);
                self.fingerprints.lock().remove(&group);
            }
        }
        {
            let mut producers = self.producers.write();
            producers.retain(|_, channels| {
                channels.remove(&id);
                !channels.is_empty()
            });
        }
        for (group, connections) in notifications {
            self.notify_ids_changed(&group, connections);
        }
    }

    /// Connections whose channels have been silent longer than `channelExpiredTimeout` at
    /// `now_ms`, in any group (each once).
    pub fn expired_connections(&self, now_ms: i64) -> Vec<Connection> {
        let limit = i64::try_from(self.channel_expired_timeout_ms).unwrap_or(i64::MAX);
        let silent = |channel: &ClientChannel| now_ms.saturating_sub(channel.last_update_ms) > limit;
        let mut expired: BTreeMap<u64, Connection> = BTreeMap::new();
        for info in self.consumers.read().values() {
            for channel in info.channels.values().filter(|channel| silent(channel)) {
                expired.insert(channel.connection.id(), channel.connection.clone());
            }
        }
        for channels in self.producers.read().values() {
            for channel in channels.values().filter(|channel| silent(channel)) {
                expired.insert(channel.connection.id(), channel.connection.clone());
            }
        }
        expired.into_values().collect()
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) to each connection, from a task of its own so
    /// registration never waits on a slow client.
    fn notify_ids_changed(&self, group: &str, connections: Vec<Connection>) {
        if !self.notify_enabled || connections.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let header = NotifyConsumerIdsChangedRequestHeader { consumer_group: group.to_owned(), bname: None };
        runtime.spawn(async move {
            for connection in connections {
                let mut request =
                    RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED).with_header(&header);
                request.serialize_type = connection.last_serialize_type();
                if let Err(error) = connection.invoke_oneway(request).await {
                    tracing::debug!(%error, group = %header.consumer_group, remote = %connection.remote_addr(), "consumer ids change not delivered");
                }
            }
        });
    }

    /// Tells every live member of `group` to restart `topic`'s queues at the offsets of `body`
    /// (RESET_CONSUMER_CLIENT_OFFSET, oneway). Every member's version is checked first, so a
    /// group with one member too old is not half reset.
    pub async fn notify_offsets_reset(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
        body: &ResetOffsetBody,
    ) -> ResetNotice {
        let Some(info) = self.consumer_group(group).filter(|info| !info.channels.is_empty()) else {
            return ResetNotice::NotOnline;
        };
        if let Some(old) =
            info.channels.values().find(|channel| channel.version < MIN_RESET_OFFSET_CLIENT_VERSION)
        {
            tracing::warn!(group, client = %old.client_id, version = old.version, "offset reset refused: client too old");
            return ResetNotice::ClientTooOld { version: old.version };
        }
        let encoded = match fastjson::to_vec(body, Dialect::Fastjson) {
            Ok(encoded) => bytes::Bytes::from(encoded),
            Err(error) => return ResetNotice::Unencodable(error.to_string()),
        };
        let header = ResetOffsetRequestHeader {
            group: group.to_owned(),
            topic: topic.to_owned(),
            timestamp: timestamp_ms,
            ..ResetOffsetRequestHeader::default()
        };
        for channel in info.channels.values() {
            let mut request = RemotingCommand::request(request_code::RESET_CONSUMER_CLIENT_OFFSET)
                .with_header(&header)
                .with_body(encoded.clone());
            request.serialize_type = channel.connection.last_serialize_type();
            match channel.connection.invoke_oneway(request).await {
                Ok(()) => tracing::info!(group, topic, client = %channel.client_id, "offset reset sent"),
                Err(error) => {
                    tracing::warn!(group, topic, client = %channel.client_id, %error, "offset reset not delivered")
                }
            }
        }
        ResetNotice::Sent { consumers: info.channels.len() }
    }

    // ----- queries -----

    /// The subscription a group registered for a topic.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.consumers.read().get(group).and_then(|info| info.subscriptions.get(topic)).cloned()
    }

    /// What a pull without a subscription needs: `None` when the group has no live member,
    /// else its message model and its subscription of `topic` (if any).
    pub fn pull_subscription(
        &self,
        group: &str,
        topic: &str,
    ) -> Option<(Option<MessageModel>, Option<SubscriptionData>)> {
        let consumers = self.consumers.read();
        let info = consumers.get(group)?;
        Some((info.message_model, info.subscriptions.get(topic).cloned()))
    }

    /// A copy of a consumer group's registration (`None` when it has no live member).
    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupInfo> {
        self.consumers.read().get(group).cloned()
    }

    /// Client ids of a consumer group's live members (empty when none).
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.consumers.read().get(group).map(ConsumerGroupInfo::client_ids).unwrap_or_default()
    }

    /// GET_CONSUMER_CONNECTION_LIST's body for a group, `None` when it has no live member.
    pub fn consumer_connection(&self, group: &str) -> Option<ConsumerConnection> {
        self.consumers.read().get(group).map(ConsumerGroupInfo::to_connection_body)
    }

    /// The channel of a consumer group's member `client_id` (to forward a call to it).
    pub fn find_consumer_channel(&self, group: &str, client_id: &str) -> Option<ClientChannel> {
        let consumers = self.consumers.read();
        consumers.get(group)?.channels.values().find(|channel| channel.client_id == client_id).cloned()
    }

    /// Names of the consumer groups with live members, sorted.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.consumers.read().keys().cloned().collect();
        groups.sort_unstable();
        groups
    }

    /// Consumer groups with live members subscribing `topic`, sorted
    /// (QUERY_TOPIC_CONSUME_BY_WHO).
    pub fn groups_subscribing(&self, topic: &str) -> Vec<String> {
        let consumers = self.consumers.read();
        let mut groups: Vec<String> = consumers
            .values()
            .filter(|info| info.subscriptions.contains_key(topic))
            .map(|info| info.group_name.clone())
            .collect();
        groups.sort_unstable();
        groups
    }

    /// The live channels of a producer group (transaction check-back goes to one of them).
    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .read()
            .get(group)
            .map(|channels| channels.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The live channel of the producer with `client_id`, whatever its group (Java's
    /// `ProducerManager.findChannel`): where a reply to that client's request goes. A scan, as
    /// producer groups are few.
    pub fn find_producer_channel(&self, client_id: &str) -> Option<ClientChannel> {
        let producers = self.producers.read();
        producers
            .values()
            .flat_map(|channels| channels.values())
            .filter(|channel| channel.client_id == client_id && !channel.connection.is_closed())
            .max_by_key(|channel| channel.last_update_ms)
            .cloned()
    }

    /// GET_PRODUCER_CONNECTION_LIST's body for a group, `None` when it has no live member.
    pub fn producer_connection(&self, group: &str) -> Option<ProducerConnection> {
        let producers = self.producers.read();
        let channels = producers.get(group)?;
        Some(ProducerConnection { connection_set: channels.values().map(ClientChannel::to_body).collect() })
    }

    /// Every producer group with its live channels (GET_ALL_PRODUCER_INFO).
    pub fn producer_groups(&self) -> BTreeMap<String, Vec<ClientChannel>> {
        let producers = self.producers.read();
        producers
            .iter()
            .map(|(group, channels)| (group.clone(), channels.values().cloned().collect()))
            .collect()
    }
}

/// Drops clients silent past `channelExpiredTimeout`, closing their connections, until the
/// broker stops. Scans every [`EXPIRY_SCAN_INTERVAL_MS`] (more often when the timeout is
/// shorter than that).
pub async fn run_expiry(state: Arc<BrokerState>) {
    let timeout = state.config.channel_expired_timeout_ms.max(1);
    let period = Duration::from_millis(
        EXPIRY_SCAN_INTERVAL_MS.min(timeout.div_ceil(2)).max(MIN_EXPIRY_SCAN_INTERVAL_MS),
    );
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopping.changed() => return,
        }
        for connection in state.clients.expired_connections(now_ms()) {
            tracing::warn!(remote = %connection.remote_addr(), "client silent past channelExpiredTimeout; closing");
            state.clients.remove_connection(&connection);
            connection.close();
        }
    }
}
