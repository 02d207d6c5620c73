//! The admin client: what an `mqadmin`-style tool or a dashboard asks of NameServers and
//! brokers (behaviour spec §9) — topics, clusters, statistics, groups, messages by id or key,
//! offset resets and the NameServer KV config.
//!
//! Calls that concern a topic or a cluster find their brokers first (route or cluster info)
//! and merge the answers; refusals come back as [`ClientError::Broker`] with the broker's code
//! and remark.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apogee_client::ClientError> {
//! use apogee_client::Admin;
//! use apogee_common::TopicConfig;
//! let admin = Admin::builder().namesrv("127.0.0.1:9876").start().await?;
//! admin.create_topic("DefaultCluster", &TopicConfig::with_queues("orders", 8, 8, 6)).await?;
//! for line in admin.consumer_progress("order-service", Some("orders")).await?.queues {
//!     println!("{:?} lag {}", line.queue, line.lag);
//! }
//! # Ok(()) }
//! ```

mod merge;
mod operations;
pub(crate) mod requests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::msg_id::decode_offset_msg_id;
use apogee_common::{topic, MessageQueue, TopicConfig};
use apogee_remoting::body::admin::{
    ConsumeStats, ConsumerConnection, SubscriptionGroupConfig, TopicStatsTable,
};
use apogee_remoting::body::consumer::ResetOffsetBody;
use apogee_remoting::body::namesrv::{KVTable, TopicList};
use apogee_remoting::body::route::{ClusterInfo, TopicRouteData};
use apogee_remoting::{response_code, RemotingCommand};

pub use self::merge::{ConsumerProgress, QueryResult, QueueProgress};
pub use self::operations::{
    BrokerStatsData, BrokerStatsItem, PulledMessages, PulledStatus, MAX_PULL_BATCH, TOOLS_CONSUMER_GROUP,
};
use crate::instance::ClientInstance;
use crate::{ClientConfig, ClientError, MessageExt};

/// Name given to the NameServers in errors of calls that go to any of them.
const NAMESRV: &str = "namesrv";

/// Longest an admin call waiting on a broker's statistics may take, as a multiple of the API
/// timeout (Java gives GET_CONSUME_STATS three times the usual timeout).
const STATS_TIMEOUT_FACTOR: u32 = 3;

/// How an [`Admin`] is set up.
#[derive(Debug, Clone)]
pub struct AdminBuilder {
    config: ClientConfig,
}

impl AdminBuilder {
    crate::config::client_config_setters!(config);

    /// Starts the admin client on the shared client instance of its NameServers.
    pub async fn start(self) -> Result<Admin, ClientError> {
        let instance = ClientInstance::get(&self.config).await?;
        Ok(Admin { instance })
    }
}

/// The admin client: see the [module documentation](self).
pub struct Admin {
    instance: Arc<ClientInstance>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").field("namesrv", &self.namesrv_addrs()).finish_non_exhaustive()
    }
}

impl Admin {
    /// A builder with the default client settings.
    pub fn builder() -> AdminBuilder {
        AdminBuilder { config: ClientConfig { instance_name: "ADMIN".to_owned(), ..ClientConfig::default() } }
    }

    fn timeout(&self) -> Duration {
        self.instance.config().api_timeout
    }

    /// The configured NameServer addresses, for the calls that must reach every one of them.
    fn namesrv_addrs(&self) -> Vec<String> {
        split_namesrv_addrs(&self.instance.config().namesrv_addr)
    }

    /// Every topic the NameServer knows (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, `mqadmin topicList`).
    pub async fn topic_list(&self) -> Result<TopicList, ClientError> {
        let response = self.instance.invoke_namesrv(requests::topic_list(), self.timeout()).await?;
        requests::success_body(NAMESRV, response)
    }

    /// The route of `topic`, fresh from the NameServer (`mqadmin topicRoute`);
    /// [`ClientError::NoRoute`] when it has none.
    pub async fn topic_route(&self, topic_name: &str) -> Result<TopicRouteData, ClientError> {
        let response =
            self.instance.invoke_namesrv(requests::topic_route(topic_name), self.timeout()).await?;
        requests::read_topic_route(topic_name, NAMESRV, response)
    }

    /// Every cluster and broker group the NameServer knows (GET_BROKER_CLUSTER_INFO,
    /// `mqadmin clusterList`).
    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let response = self.instance.invoke_namesrv(requests::cluster_info(), self.timeout()).await?;
        requests::success_body(NAMESRV, response)
    }

    /// Creates or updates a topic (`mqadmin updateTopic`): on one broker when `target` is a
    /// `host:port` address, otherwise on every master of the cluster named `target`. Returns
    /// the broker addresses written. The route appears once the brokers re-register.
    pub async fn create_topic(&self, target: &str, config: &TopicConfig) -> Result<Vec<String>, ClientError> {
        topic::validate_topic_name(&config.topic_name).map_err(|error| {
            ClientError::IllegalArgument(format!("topic {:?}: {error}", config.topic_name))
        })?;
        let brokers = if is_address(target) {
            let info = self.cluster_info().await.ok();
            let name = info.and_then(|info| merge::broker_name_of(&info, target));
            vec![(name, target.to_owned())]
        } else {
            let info = self.cluster_info().await?;
            merge::cluster_addrs(&info, target, true)?
                .into_iter()
                .map(|(name, addr)| (Some(name), addr))
                .collect()
        };
        if brokers.is_empty() {
            return Err(ClientError::IllegalArgument(format!("cluster {target:?} has no master broker")));
        }
        let mut written = Vec::with_capacity(brokers.len());
        for (name, addr) in brokers {
            let request = requests::create_topic(config, name.as_deref());
            requests::expect_success(&addr, self.instance.invoke(&addr, request, self.timeout()).await?)?;
            written.push(addr);
        }
        Ok(written)
    }

    /// Deletes a topic from every broker of `cluster` (DELETE_TOPIC_IN_BROKER), then that
    /// cluster's route of it from every NameServer (DELETE_TOPIC_IN_NAMESRV), as
    /// `mqadmin deleteTopic` does.
    pub async fn delete_topic(&self, cluster: &str, topic_name: &str) -> Result<(), ClientError> {
        let info = self.cluster_info().await?;
        for (name, addr) in merge::cluster_addrs(&info, cluster, false)? {
            let request = requests::delete_topic_in_broker(topic_name, Some(&name));
            requests::expect_success(&addr, self.instance.invoke(&addr, request, self.timeout()).await?)?;
        }
        for addr in self.namesrv_addrs() {
            let request = requests::delete_topic_in_namesrv(topic_name, cluster);
            requests::expect_success(&addr, self.instance.invoke(&addr, request, self.timeout()).await?)?;
        }
        Ok(())
    }

    /// Min and max offsets and last store time of every queue of `topic`, from each broker of
    /// its route (GET_TOPIC_STATS_INFO, `mqadmin topicStatus`).
    pub async fn topic_stats(&self, topic_name: &str) -> Result<TopicStatsTable, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let tables = self
            .ask_each_broker(merge::route_brokers(&route), self.timeout(), |name| {
                requests::topic_stats(topic_name, name)
            })
            .await?;
        Ok(merge::merge_topic_stats(tables))
    }

    /// A consumer group's offsets per queue (GET_CONSUME_STATS) on `topic`, or on every topic
    /// it has offsets for, from the brokers of the topic and of the group's retry topic.
    pub async fn consume_stats(
        &self,
        group: &str,
        topic_name: Option<&str>,
    ) -> Result<ConsumeStats, ClientError> {
        let retry = topic::retry_topic(group);
        let mut route_topics = vec![retry.as_str()];
        route_topics.extend(topic_name);
        let mut brokers = BTreeMap::new();
        for route_topic in route_topics {
            match self.topic_route(route_topic).await {
                Ok(route) => brokers.extend(merge::route_brokers(&route)),
                Err(ClientError::NoRoute { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        if brokers.is_empty() {
            return Err(ClientError::NoRoute { topic: topic_name.unwrap_or(&retry).to_owned() });
        }
        let timeout = self.timeout().saturating_mul(STATS_TIMEOUT_FACTOR);
        let tables = self
            .ask_each_broker(brokers, timeout, |name| requests::consume_stats(group, topic_name, name))
            .await?;
        Ok(merge::merge_consume_stats(tables))
    }

    /// Sends each `(broker name, address)` of `brokers` the request `request_for` builds for that
    /// broker name, one after the other, and decodes every successful answer's body.
    async fn ask_each_broker<T: serde::de::DeserializeOwned>(
        &self,
        brokers: impl IntoIterator<Item = (String, String)>,
        timeout: Duration,
        request_for: impl Fn(&str) -> RemotingCommand,
    ) -> Result<Vec<T>, ClientError> {
        let mut bodies = Vec::new();
        for (name, addr) in brokers {
            let response = self.instance.invoke(&addr, request_for(&name), timeout).await?;
            bodies.push(requests::success_body(&addr, response)?);
        }
        Ok(bodies)
    }

    /// [`Self::consume_stats`] as `mqadmin consumerProgress` shows it: per queue the broker
    /// offset, the consumer offset and the lag.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topic_name: Option<&str>,
    ) -> Result<ConsumerProgress, ClientError> {
        Ok(merge::progress(&self.consume_stats(group, topic_name).await?))
    }

    /// The live clients of a consumer group and their subscriptions
    /// (GET_CONSUMER_CONNECTION_LIST, `mqadmin consumerConnection`), from the first broker of
    /// the group's retry topic (or of any master, when that topic has no route) that knows
    /// them. A group nobody runs is refused with CONSUMER_NOT_ONLINE.
    pub async fn consumer_connections(&self, group: &str) -> Result<ConsumerConnection, ClientError> {
        let brokers = match self.topic_route(&topic::retry_topic(group)).await {
            Ok(route) => merge::route_brokers(&route),
            Err(ClientError::NoRoute { .. }) => self.all_masters().await?,
            Err(error) => return Err(error),
        };
        let mut last_error = None;
        for (name, addr) in brokers {
            let answer = match self
                .instance
                .invoke(&addr, requests::consumer_connections(group, &name), self.timeout())
                .await
            {
                Ok(response) => requests::success_body::<ConsumerConnection>(&addr, response),
                Err(error) => Err(error),
            };
            match answer {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Broker {
            code: response_code::CONSUMER_NOT_ONLINE,
            remark: format!("the consumer group[{group}] not online"),
            addr: NAMESRV.to_owned(),
        }))
    }

    /// Every master of every cluster.
    async fn all_masters(&self) -> Result<Vec<(String, String)>, ClientError> {
        let info = self.cluster_info().await?;
        let mut masters = Vec::new();
        for cluster in info.cluster_addr_table.keys() {
            masters.extend(merge::cluster_addrs(&info, cluster, true)?);
        }
        Ok(masters)
    }

    /// Creates or updates a subscription group on the broker at `addr`
    /// (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, `mqadmin updateSubGroup`).
    pub async fn create_subscription_group(
        &self,
        addr: &str,
        config: &SubscriptionGroupConfig,
    ) -> Result<(), ClientError> {
        let request = requests::create_subscription_group(config)?;
        requests::expect_success(addr, self.instance.invoke(addr, request, self.timeout()).await?).map(drop)
    }

    /// Removes a subscription group from the broker at `addr` (DELETE_SUBSCRIPTIONGROUP,
    /// `mqadmin deleteSubGroup`); with `clean_offset` its committed offsets go too.
    pub async fn delete_subscription_group(
        &self,
        addr: &str,
        group: &str,
        clean_offset: bool,
    ) -> Result<(), ClientError> {
        let request = requests::delete_subscription_group(group, clean_offset);
        requests::expect_success(addr, self.instance.invoke(addr, request, self.timeout()).await?).map(drop)
    }

    /// The broker's runtime figures (GET_BROKER_RUNTIME_INFO, `mqadmin brokerStatus`), every
    /// value a string (`brokerVersionDesc`, `putTps`, `msgPutTotalTodayNow`, ...).
    pub async fn broker_runtime_info(&self, addr: &str) -> Result<KVTable, ClientError> {
        let response = self.instance.invoke(addr, requests::broker_runtime_info(), self.timeout()).await?;
        requests::success_body(addr, response)
    }

    /// The message with broker offset id `offset_msg_id` (`mqadmin queryMsgById`): the id gives
    /// the broker address and commit-log offset, read with VIEW_MESSAGE_BY_ID. The body comes
    /// back inflated.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt, ClientError> {
        let (store_host, offset) = decode_offset_msg_id(offset_msg_id)
            .map_err(|error| ClientError::IllegalArgument(format!("not an offset message id: {error}")))?;
        let addr = store_host.to_string();
        let response = self.instance.invoke(&addr, requests::view_message(offset), self.timeout()).await?;
        requests::read_view_message(&addr, response)
    }

    /// Messages of `topic` with business key `key` stored between `begin_ms` and `end_ms`
    /// (QUERY_MESSAGE to every broker of the route, `mqadmin queryMsgByKey`), at most `max`
    /// per broker. A broker without any is not an error; if none has any and one failed, that
    /// failure is returned.
    pub async fn query_messages_by_key(
        &self,
        topic_name: &str,
        key: &str,
        max: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<QueryResult, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let mut result = QueryResult::default();
        let mut failure = None;
        for (name, addr) in merge::route_brokers(&route) {
            let request = requests::query_message(topic_name, key, max, begin_ms, end_ms, &name);
            let answer = match self.instance.invoke(&addr, request, self.timeout()).await {
                Ok(response) => requests::read_query_message(&addr, response),
                Err(error) => Err(error),
            };
            match answer {
                Ok(Some((index_time, messages))) => {
                    result.index_last_update_timestamp = result.index_last_update_timestamp.max(index_time);
                    result.messages.extend(merge::keep_key_matches(messages, topic_name, key));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(addr, %error, "key query failed on a broker");
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) if result.messages.is_empty() => Err(error),
            _ => Ok(result),
        }
    }

    /// Moves `group`'s offsets on `topic` to the first message stored at or after
    /// `timestamp_ms` (−1: the end) on every broker of the route (`mqadmin resetOffsetByTime`):
    /// INVOKE_BROKER_TO_RESET_OFFSET, and where the broker answers that no consumer is online
    /// or does not know the request, the old way — each queue's committed offset written
    /// directly, backwards only unless `force`. Returns the new offset of every queue moved.
    pub async fn reset_offset_by_time(
        &self,
        group: &str,
        topic_name: &str,
        timestamp_ms: i64,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let mut offsets = BTreeMap::new();
        for (name, addr) in merge::route_brokers(&route) {
            let request = requests::reset_offset(group, topic_name, timestamp_ms, force, &name);
            let response = self.instance.invoke(&addr, request, self.timeout()).await?;
            match response.code {
                response_code::CONSUMER_NOT_ONLINE | response_code::REQUEST_CODE_NOT_SUPPORTED => {
                    let moved =
                        self.reset_directly(&addr, &name, group, topic_name, timestamp_ms, force).await?;
                    merge::merge_offsets(&mut offsets, moved);
                }
                _ if response.body.is_empty() => {
                    requests::expect_success(&addr, response)?;
                }
                _ => {
                    let body: ResetOffsetBody = requests::success_body(&addr, response)?;
                    merge::merge_offsets(&mut offsets, body.offset_table);
                }
            }
        }
        Ok(offsets)
    }

    /// Java `resetOffsetByTimestampOld` on one broker: for each queue the group has offsets
    /// for, find the offset at the time and commit it when the rule allows.
    async fn reset_directly(
        &self,
        addr: &str,
        broker_name: &str,
        group: &str,
        topic_name: &str,
        timestamp_ms: i64,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>, ClientError> {
        let timeout = self.timeout();
        let response = self
            .instance
            .invoke(
                addr,
                requests::consume_stats(group, Some(topic_name), broker_name),
                timeout.saturating_mul(STATS_TIMEOUT_FACTOR),
            )
            .await?;
        let stats: ConsumeStats = requests::success_body(addr, response)?;
        let mut moved = BTreeMap::new();
        for (queue, offsets) in stats.offset_table {
            if queue.topic != topic_name || queue.broker_name != broker_name {
                continue;
            }
            let target = if timestamp_ms < 0 {
                requests::read_offset(
                    addr,
                    self.instance.invoke(addr, requests::max_offset(&queue), timeout).await?,
                )?
            } else {
                let request = requests::search_offset(&queue, timestamp_ms);
                requests::read_offset(addr, self.instance.invoke(addr, request, timeout).await?)?
            };
            if merge::should_reset(force, target, offsets.consumer_offset) {
                let request = requests::update_consumer_offset(group, &queue, target);
                requests::expect_success(addr, self.instance.invoke(addr, request, timeout).await?)?;
                moved.insert(queue, target);
            }
        }
        Ok(moved)
    }

    /// One NameServer KV config entry (GET_KV_CONFIG); `None` when absent.
    pub async fn get_kv_config(&self, namespace: &str, key: &str) -> Result<Option<String>, ClientError> {
        let response =
            self.instance.invoke_namesrv(requests::get_kv_config(namespace, key), self.timeout()).await?;
        requests::read_kv_config(NAMESRV, response)
    }

    /// Stores a KV config entry on every NameServer (PUT_KV_CONFIG, `mqadmin updateKvConfig`).
    pub async fn put_kv_config(&self, namespace: &str, key: &str, value: &str) -> Result<(), ClientError> {
        let addrs = self.namesrv_addrs();
        if addrs.is_empty() {
            return Err(ClientError::IllegalArgument("no NameServer address configured".into()));
        }
        for addr in addrs {
            let request = requests::put_kv_config(namespace, key, value);
            requests::expect_success(&addr, self.instance.invoke(&addr, request, self.timeout()).await?)?;
        }
        Ok(())
    }
}

/// Splits a `;`-separated NameServer list, dropping blanks.
fn split_namesrv_addrs(list: &str) -> Vec<String> {
    list.split(';').map(str::trim).filter(|addr| !addr.is_empty()).map(str::to_owned).collect()
}

/// Whether `target` is a broker address (`host:port`) rather than a cluster name.
fn is_address(target: &str) -> bool {
    target.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod unit_tests {
    use super::{is_address, split_namesrv_addrs};

    #[test]
    fn namesrv_lists_are_split_on_semicolons() {
        assert_eq!(split_namesrv_addrs("a:1; b:2;;"), ["a:1", "b:2"]);
        assert!(split_namesrv_addrs(" ").is_empty());
    }

    #[test]
    fn addresses_are_told_from_cluster_names() {
        assert!(is_address("127.0.0.1:10911"));
        assert!(is_address("[::1]:10911"));
        assert!(is_address("broker-host:10911"));
        assert!(!is_address("DefaultCluster"));
        assert!(!is_address(":10911"));
        assert!(!is_address("host:port"));
    }
}
