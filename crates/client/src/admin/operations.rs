//! The rest of what `mqadmin` asks: broker and NameServer configs, write permission of a
//! broker group, producer connections, the groups of a topic, broker statistics, and reading
//! messages by queue offset or unique key, with the queue offsets those reads need.

use std::collections::{BTreeMap, BTreeSet};

use apogee_common::MessageQueue;
use apogee_remoting::body::admin::{ConsumerConnection, GroupList, ProducerConnection};
use apogee_remoting::{response_code, RemotingCommand};
use serde::Deserialize;

use super::{merge, requests, Admin};
use crate::consumer::lite_pull::pull::{read_pull_response, tag_subscription, PullStatus};
use crate::{ClientError, MessageExt};

/// The consumer group admin tools read messages as (Java `MixAll.TOOLS_CONSUMER_GROUP`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

/// Most messages one admin pull asks for (Java's pull consumer caps a batch at 32 too).
pub const MAX_PULL_BATCH: i32 = 32;

/// What one admin pull of a queue found ([`Admin::pull`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledMessages {
    /// Messages from the asked offset on, bodies inflated; empty unless `status` is `Found`.
    pub messages: Vec<MessageExt>,
    /// Why there are (or are not) messages.
    pub status: PulledStatus,
    /// The offset to pull next.
    pub next_begin_offset: i64,
    /// The queue's min offset.
    pub min_offset: i64,
    /// The queue's max offset (exclusive).
    pub max_offset: i64,
}

/// Java `PullStatus`, as admin tools print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulledStatus {
    /// Messages were read.
    Found,
    /// Nothing at or after the offset.
    NoNewMsg,
    /// Entries were read, none matched the subscription.
    NoMatchedMsg,
    /// The offset is outside the queue.
    OffsetIllegal,
}

impl PulledStatus {
    /// Java's constant name (`FOUND`, `NO_NEW_MSG`, ...), as `printMsg` shows it.
    pub fn java_name(self) -> &'static str {
        match self {
            PulledStatus::Found => "FOUND",
            PulledStatus::NoNewMsg => "NO_NEW_MSG",
            PulledStatus::NoMatchedMsg => "NO_MATCHED_MSG",
            PulledStatus::OffsetIllegal => "OFFSET_ILLEGAL",
        }
    }
}

/// One statistic of a broker over the last minute, hour and day (Java `BrokerStatsData`),
/// the answer to VIEW_BROKER_STATS_DATA.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsData {
    /// The last minute.
    pub stats_minute: BrokerStatsItem,
    /// The last hour.
    pub stats_hour: BrokerStatsItem,
    /// The last day.
    pub stats_day: BrokerStatsItem,
}

/// One window of [`BrokerStatsData`] (Java `BrokerStatsItem`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsItem {
    /// Events in the window.
    pub sum: i64,
    /// Events per second over the window.
    pub tps: f64,
    /// Mean value per event.
    pub avgpt: f64,
}

impl Admin {
    /// The NameServer addresses this admin was given (`-n`), in order: the commands that
    /// must reach every NameServer (wipe or add write permission, NameServer configs) go to each.
    pub fn namesrv_list(&self) -> Vec<String> {
        self.namesrv_addrs()
    }

    /// The configuration of the broker at `addr` (GET_BROKER_CONFIG, `mqadmin
    /// getBrokerConfig`), key by key.
    pub async fn broker_config(&self, addr: &str) -> Result<BTreeMap<String, String>, ClientError> {
        self.read_config(addr, requests::broker_config()).await
    }

    /// Changes settings of the running broker at `addr` (UPDATE_BROKER_CONFIG, `mqadmin
    /// updateBrokerConfig`); the broker refuses keys it cannot change.
    pub async fn update_broker_config(
        &self,
        addr: &str,
        entries: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        self.expect_success(addr, requests::update_broker_config(entries)).await
    }

    /// The configuration of the NameServer at `addr` (GET_NAMESRV_CONFIG, `mqadmin
    /// getNamesrvConfig`).
    pub async fn namesrv_config(&self, addr: &str) -> Result<BTreeMap<String, String>, ClientError> {
        self.read_config(addr, requests::namesrv_config()).await
    }

    /// Changes settings of the NameServer at `addr` (UPDATE_NAMESRV_CONFIG, `mqadmin
    /// updateNamesrvConfig`).
    pub async fn update_namesrv_config(
        &self,
        addr: &str,
        entries: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        self.expect_success(addr, requests::update_namesrv_config(entries)).await
    }

    /// Sends a GET_*_CONFIG `request` to `addr` and reads the `key=value` body.
    async fn read_config(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<BTreeMap<String, String>, ClientError> {
        requests::read_config(addr, self.instance.invoke(addr, request, self.timeout()).await?)
    }

    /// Sends `request` to `addr` and wants SUCCESS back.
    async fn expect_success(&self, addr: &str, request: RemotingCommand) -> Result<(), ClientError> {
        requests::expect_success(addr, self.instance.invoke(addr, request, self.timeout()).await?).map(drop)
    }

    /// Takes write permission from every topic of broker group `broker_name` on the
    /// NameServer at `namesrv_addr` (WIPE_WRITE_PERM_OF_BROKER, `mqadmin wipeWritePerm`), to
    /// drain it before maintenance. Returns how many topics changed.
    pub async fn wipe_write_perm(&self, namesrv_addr: &str, broker_name: &str) -> Result<i32, ClientError> {
        let request = requests::wipe_write_perm(broker_name);
        let response = self.instance.invoke(namesrv_addr, request, self.timeout()).await?;
        requests::read_wipe_write_perm(namesrv_addr, response)
    }

    /// Gives write permission back to broker group `broker_name` on the NameServer at
    /// `namesrv_addr` (ADD_WRITE_PERM_OF_BROKER, `mqadmin addWritePerm`). Returns how many
    /// topics changed.
    pub async fn add_write_perm(&self, namesrv_addr: &str, broker_name: &str) -> Result<i32, ClientError> {
        let request = requests::add_write_perm(broker_name);
        let response = self.instance.invoke(namesrv_addr, request, self.timeout()).await?;
        requests::read_add_write_perm(namesrv_addr, response)
    }

    /// The live clients of a producer group (GET_PRODUCER_CONNECTION_LIST, `mqadmin
    /// producerConnection`), from the first broker of `topic`'s route that answers.
    pub async fn producer_connections(
        &self,
        group: &str,
        topic_name: &str,
    ) -> Result<ProducerConnection, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let mut last_error = None;
        for (name, addr) in merge::route_brokers(&route) {
            let request = requests::producer_connections(group, &name);
            let answer = match self.instance.invoke(&addr, request, self.timeout()).await {
                Ok(response) => requests::success_body::<ProducerConnection>(&addr, response),
                Err(error) => Err(error),
            };
            match answer {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::NoRoute { topic: topic_name.to_owned() }))
    }

    /// The live clients of a consumer group as the broker at `addr` knows them
    /// (GET_CONSUMER_CONNECTION_LIST, `mqadmin consumerConnection -b`).
    pub async fn consumer_connections_at(
        &self,
        addr: &str,
        group: &str,
    ) -> Result<ConsumerConnection, ClientError> {
        let info = self.cluster_info().await.ok();
        let name = info.and_then(|info| merge::broker_name_of(&info, addr)).unwrap_or_default();
        let request = requests::consumer_connections(group, &name);
        requests::success_body(addr, self.instance.invoke(addr, request, self.timeout()).await?)
    }

    /// The groups that consume `topic` or hold offsets on it, from every broker of its route
    /// (QUERY_TOPIC_CONSUME_BY_WHO; `mqadmin topicList -c`, `statsAll`).
    pub async fn topic_consumed_by(&self, topic_name: &str) -> Result<BTreeSet<String>, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let lists: Vec<GroupList> = self
            .ask_each_broker(merge::route_brokers(&route), self.timeout(), |name| {
                requests::topic_consumed_by(topic_name, name)
            })
            .await?;
        Ok(lists.into_iter().flat_map(|list| list.group_list).collect())
    }

    /// One statistic of the broker at `addr` (VIEW_BROKER_STATS_DATA, `mqadmin statsAll`):
    /// `stats_name` such as `TOPIC_PUT_NUMS` (key: a topic) or `GROUP_GET_NUMS` (key:
    /// `topic@group`). `None` when the broker has no figures for the key (Java answers
    /// SYSTEM_ERROR); a broker that does not serve the request answers
    /// REQUEST_CODE_NOT_SUPPORTED, returned as [`ClientError::Broker`].
    pub async fn broker_stats(
        &self,
        addr: &str,
        stats_name: &str,
        stats_key: &str,
    ) -> Result<Option<BrokerStatsData>, ClientError> {
        let request = requests::view_broker_stats(stats_name, stats_key);
        let response = self.instance.invoke(addr, request, self.timeout()).await?;
        if response.code == response_code::SYSTEM_ERROR {
            return Ok(None);
        }
        requests::success_body(addr, response).map(Some)
    }

    /// The address of the broker (master preferred) serving `queue`, from its topic's route.
    pub async fn queue_broker_addr(&self, queue: &MessageQueue) -> Result<String, ClientError> {
        let route = self.topic_route(&queue.topic).await?;
        merge::route_brokers(&route)
            .into_iter()
            .find(|(name, _)| *name == queue.broker_name)
            .map(|(_, addr)| addr)
            .ok_or_else(|| ClientError::NoBroker { broker_name: queue.broker_name.clone() })
    }

    /// Every readable queue of `topic` (its route's read queue counts), sorted.
    pub async fn read_queues(&self, topic_name: &str) -> Result<Vec<MessageQueue>, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let mut queues = Vec::new();
        for data in &route.queue_datas {
            for queue_id in 0..data.read_queue_nums.max(0) {
                queues.push(MessageQueue::new(topic_name, &data.broker_name, queue_id));
            }
        }
        queues.sort();
        Ok(queues)
    }

    /// The min offset of `queue` (GET_MIN_OFFSET).
    pub async fn min_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        let response = self.instance.invoke(&addr, requests::min_offset(queue), self.timeout()).await?;
        requests::read_offset(&addr, response)
    }

    /// The max offset (exclusive) of `queue` (GET_MAX_OFFSET).
    pub async fn max_offset(&self, queue: &MessageQueue) -> Result<i64, ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        let response = self.instance.invoke(&addr, requests::max_offset(queue), self.timeout()).await?;
        requests::read_offset(&addr, response)
    }

    /// The offset of the first message of `queue` stored at or after `timestamp_ms`
    /// (SEARCH_OFFSET_BY_TIMESTAMP).
    pub async fn search_offset(&self, queue: &MessageQueue, timestamp_ms: i64) -> Result<i64, ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        let request = requests::search_offset(queue, timestamp_ms);
        requests::read_offset(&addr, self.instance.invoke(&addr, request, self.timeout()).await?)
    }

    /// Commits `offset` as `group`'s consumer offset of `queue` (UPDATE_CONSUMER_OFFSET).
    pub async fn update_consumer_offset(
        &self,
        group: &str,
        queue: &MessageQueue,
        offset: i64,
    ) -> Result<(), ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        self.expect_success(&addr, requests::update_consumer_offset(group, queue, offset)).await
    }

    /// Moves `group`'s offset of one queue to exactly `offset` (`mqadmin resetOffsetByTime`
    /// with `-b` and `-q`): UPDATE_CONSUMER_OFFSET, then INVOKE_BROKER_TO_RESET_OFFSET for
    /// that queue, so a broker that resets on the server side (whose pending reset would
    /// otherwise win over the commit) and the group's online clients take it too. A broker
    /// that answers the second with CONSUMER_NOT_ONLINE or REQUEST_CODE_NOT_SUPPORTED has the
    /// commit alone, which is then all there is to do.
    pub async fn reset_queue_offset(
        &self,
        group: &str,
        queue: &MessageQueue,
        offset: i64,
    ) -> Result<(), ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        self.expect_success(&addr, requests::update_consumer_offset(group, queue, offset)).await?;
        let request = requests::reset_queue_offset(group, queue, offset);
        let response = self.instance.invoke(&addr, request, self.timeout()).await?;
        match response.code {
            response_code::CONSUMER_NOT_ONLINE | response_code::REQUEST_CODE_NOT_SUPPORTED => Ok(()),
            _ => requests::expect_success(&addr, response).map(drop),
        }
    }

    /// Reads up to `max_messages` (at most [`MAX_PULL_BATCH`]) of `queue` from `offset` as
    /// `group` (PULL_MESSAGE without a hold, `expression` a tag expression, `*` for all):
    /// what `mqadmin queryMsgByOffset`, `printMsg` and `consumeMessage` read with. Nothing is
    /// committed.
    pub async fn pull(
        &self,
        group: &str,
        queue: &MessageQueue,
        expression: &str,
        offset: i64,
        max_messages: i32,
    ) -> Result<PulledMessages, ClientError> {
        let addr = self.queue_broker_addr(queue).await?;
        let subscription = tag_subscription(&queue.topic, expression, 0)?;
        let request = requests::pull_message(
            group,
            queue,
            &subscription,
            offset,
            max_messages.clamp(1, MAX_PULL_BATCH),
        );
        let response = self.instance.invoke(&addr, request, self.timeout()).await?;
        let outcome = read_pull_response(&addr, response, &subscription)?;
        let (status, messages) = match outcome.status {
            PullStatus::Found(messages) => (PulledStatus::Found, messages),
            PullStatus::NoNewMessage => (PulledStatus::NoNewMsg, Vec::new()),
            PullStatus::NoMatchedMessage => (PulledStatus::NoMatchedMsg, Vec::new()),
            PullStatus::OffsetIllegal => (PulledStatus::OffsetIllegal, Vec::new()),
        };
        Ok(PulledMessages {
            messages,
            status,
            next_begin_offset: outcome.next_begin_offset,
            min_offset: outcome.min_offset,
            max_offset: outcome.max_offset,
        })
    }

    /// The messages of `topic` whose client id (`UNIQ_KEY`) is `id` (QUERY_MESSAGE by unique
    /// key to every broker of the route, `mqadmin queryMsgByUniqueKey`), at most `max` per
    /// broker. A broker without any is not an error; if none has any and one failed, that
    /// failure is returned.
    pub async fn query_messages_by_unique_key(
        &self,
        topic_name: &str,
        id: &str,
        max: i32,
    ) -> Result<Vec<MessageExt>, ClientError> {
        let route = self.topic_route(topic_name).await?;
        let mut found = Vec::new();
        let mut failure = None;
        for (name, addr) in merge::route_brokers(&route) {
            let request = requests::query_message_by_unique_key(topic_name, id, max, &name);
            let answer = match self.instance.invoke(&addr, request, self.timeout()).await {
                Ok(response) => requests::read_query_message(&addr, response),
                Err(error) => Err(error),
            };
            match answer {
                Ok(Some((_, messages))) => found.extend(messages.into_iter().filter(|message| {
                    message.message.topic == topic_name && message.message.uniq_key() == Some(id)
                })),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(addr, %error, "unique key query failed on a broker");
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) if found.is_empty() => Err(error),
            _ => Ok(found),
        }
    }
}
