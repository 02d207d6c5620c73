//! Rebalance (spec behaviour §4.3): which queues this consumer holds, their start offsets
//! (§4.6), and the broker locks of orderly consumers (§4.12).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::{perm, topic, MessageQueue};
use apogee_remoting::body::consumer::{
    GetConsumerListByGroupResponseBody, LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody,
};
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    GetConsumerListByGroupRequestHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    LockBatchMqRequestHeader, SearchOffsetResponseHeader, UnlockBatchMqRequestHeader,
};
use apogee_remoting::header::CommandHeader;
use apogee_remoting::{request_code, RemotingCommand};

use super::Shared;
use crate::admin::requests;
use crate::consumer::offset_store::ReadOffsetType;
use crate::consumer::process_queue::ProcessQueue;
use crate::ClientError;

/// Two rebalances are at least this far apart (`minInterval`).
pub(crate) const REBALANCE_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// After a round that left the assignment unbalanced, the next one comes this soon.
const UNBALANCED_RETRY_DELAY: Duration = Duration::from_secs(1);
/// A failed lock of a new orderly queue asks for another rebalance after this long.
const LOCK_FAILED_REBALANCE_DELAY: Duration = Duration::from_millis(500);
/// Orderly consumers renew their broker locks this often (`rocketmq.client.rebalance.lockInterval`).
pub(crate) const LOCK_RENEW_INTERVAL: Duration = Duration::from_secs(20);
/// First lock renewal after start.
const FIRST_LOCK_RENEW_DELAY: Duration = Duration::from_secs(1);
/// Offsets are first committed this long after start.
pub(crate) const FIRST_PERSIST_DELAY: Duration = Duration::from_secs(10);
/// Removing an orderly queue waits this long for the batch in progress.
const REMOVE_ORDERLY_QUEUE_WAIT: Duration = Duration::from_millis(500);
/// A dropped orderly queue is released without waiting once its lock is this old
/// (`rocketmq.client.unlockDelayTimeMills`).
const FORCE_UNLOCK_AFTER: Duration = Duration::from_secs(20);
/// The first pull of a new queue waits this long (the heartbeat announcing the new
/// subscription version goes first).
pub(crate) const FIRST_PULL_DELAY: Duration = Duration::from_millis(500);

/// The readable queues of `topic` in `route`, sorted (Java `topicRouteData2TopicSubscribeInfo`).
pub(crate) fn subscribe_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut queues: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|data| perm::is_readable(data.perm))
        .flat_map(|data| {
            (0..data.read_queue_nums.max(0)).map(|id| MessageQueue::new(topic, data.broker_name.clone(), id))
        })
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

/// A pseudo-random index below `len` (which broker answers a group query does not matter,
/// only that the load spreads).
fn random_index(len: usize) -> usize {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    usize::try_from(hasher.finish() % (len.max(1) as u64)).unwrap_or(0)
}

/// Encodes a request body in the fastjson dialect.
pub(crate) fn json_body<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ClientError> {
    fastjson::to_vec(body, Dialect::Fastjson)
        .map_err(|error| ClientError::Malformed(format!("request body: {error}")))
}

/// A request with a typed header.
fn request<H: CommandHeader>(code: i32, header: &H) -> RemotingCommand {
    RemotingCommand::request(code).with_header(header)
}

impl Shared {
    /// Rebalances every `rebalance_interval`, when woken, and 1 s after an unbalanced round;
    /// never twice within [`REBALANCE_MIN_INTERVAL`].
    pub(crate) async fn rebalance_loop(self: Arc<Self>) {
        let mut wait = self.settings.rebalance_interval;
        let mut last_round: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.rebalance_wakeup.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if let Some(since) = last_round.map(|last| last.elapsed()) {
                if since < REBALANCE_MIN_INTERVAL {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(REBALANCE_MIN_INTERVAL - since) => {}
                    }
                }
            }
            last_round = Some(Instant::now());
            if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
                wait = self.settings.rebalance_interval;
                continue;
            }
            let balanced = self.rebalance().await;
            wait = if balanced { self.settings.rebalance_interval } else { UNBALANCED_RETRY_DELAY };
        }
    }

    /// One round over every subscribed topic; returns whether every topic's assignment now
    /// equals its allocation.
    pub(crate) async fn rebalance(self: &Arc<Self>) -> bool {
        let _serial = self.rebalance_serial.lock().await;
        let topics: Vec<String> = self.subscriptions.lock().keys().cloned().collect();
        let mut balanced = true;
        for topic in &topics {
            if self.shutdown.is_cancelled() {
                return true;
            }
            match self.rebalance_topic(topic).await {
                Ok(topic_balanced) => balanced &= topic_balanced,
                Err(error) => {
                    if !topic::is_retry_topic(topic) {
                        tracing::warn!(group = %self.group, %topic, %error, "rebalance skipped the topic");
                    }
                }
            }
        }
        self.drop_queues_not_subscribed(&topics).await;
        balanced
    }

    async fn rebalance_topic(self: &Arc<Self>, topic: &str) -> Result<bool, ClientError> {
        let route = self.instance.topic_route(topic).await?;
        let mq_all = subscribe_queues(topic, &route);
        let target: BTreeSet<MessageQueue> = if self.settings.clustering() {
            let mut cid_all = self.find_consumer_ids(&route).await?;
            cid_all.sort();
            cid_all.dedup();
            match self.settings.allocate.allocate(&self.group, &self.client_id, &mq_all, &cid_all) {
                Ok(mine) => mine.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(group = %self.group, %topic, %error, "allocation refused; assignment kept");
                    return Ok(true);
                }
            }
        } else {
            mq_all.into_iter().collect()
        };
        self.update_process_queues(topic, &target).await;
        let working: BTreeSet<MessageQueue> = self
            .process_queues
            .lock()
            .iter()
            .filter(|(mq, pq)| mq.topic == topic && !pq.is_dropped())
            .map(|(mq, _)| mq.clone())
            .collect();
        Ok(working == target)
    }

    /// GET_CONSUMER_LIST_BY_GROUP to one broker of the topic (its master, else any member).
    async fn find_consumer_ids(&self, route: &TopicRouteData) -> Result<Vec<String>, ClientError> {
        let brokers: Vec<_> =
            route.broker_datas.iter().filter(|broker| !broker.broker_addrs.is_empty()).collect();
        if brokers.is_empty() {
            return Err(ClientError::NoBroker { broker_name: String::from("<any>") });
        }
        let broker = brokers[random_index(brokers.len())];
        let addr = match broker.broker_addrs.get(&MASTER_ID) {
            Some(addr) => addr.clone(),
            None => {
                let members: Vec<&String> = broker.broker_addrs.values().collect();
                members[random_index(members.len())].clone()
            }
        };
        let header = GetConsumerListByGroupRequestHeader {
            consumer_group: self.group.clone(),
            bname: Some(broker.broker_name.clone()),
        };
        let response =
            self.invoke_for_success(addr, request(request_code::GET_CONSUMER_LIST_BY_GROUP, &header)).await?;
        let body: GetConsumerListByGroupResponseBody = fastjson::from_slice(&response.body)
            .map_err(|error| ClientError::Malformed(format!("consumer list: {error}")))?;
        Ok(body.consumer_id_list)
    }

    /// Applies the allocation of `topic`: releases queues no longer ours (or whose pull
    /// stalled), takes the new ones, and when anything changed bumps the subscription
    /// version, heartbeats, and only then starts the new queues' pulls.
    async fn update_process_queues(self: &Arc<Self>, topic: &str, target: &BTreeSet<MessageQueue>) -> bool {
        let mut changed = false;
        let leaving: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .process_queues
            .lock()
            .iter()
            .filter(|(mq, pq)| mq.topic == topic && (!target.contains(*mq) || pq.is_pull_expired()))
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in leaving {
            pq.set_dropped();
            if self.remove_unnecessary_queue(&mq, &pq).await {
                self.forget_queue(&mq, &pq);
                changed = true;
                tracing::info!(group = %self.group, ?mq, "queue released");
            }
        }

        let mut all_locked = true;
        let mut started: Vec<(MessageQueue, Arc<ProcessQueue>, i64)> = Vec::new();
        for mq in target {
            let existing = self.process_queues.lock().get(mq).cloned();
            if let Some(pq) = existing {
                if !pq.is_dropped() {
                    continue;
                }
                // Dropped earlier but not yet released (an orderly batch was running).
                if !self.remove_unnecessary_queue(mq, &pq).await {
                    continue;
                }
                self.forget_queue(mq, &pq);
                changed = true;
            }
            let pq = Arc::new(ProcessQueue::new(self.shutdown.child_token()));
            if self.settings.locks_queues() {
                if !self.lock_queue(mq, &pq).await {
                    tracing::warn!(group = %self.group, ?mq, "new queue not locked; retrying later");
                    all_locked = false;
                    continue;
                }
            } else {
                pq.set_locked(true);
            }
            self.offset_store.remove_offset(mq);
            match self.compute_pull_from_where(mq).await {
                Ok(offset) => {
                    self.process_queues.lock().insert(mq.clone(), pq.clone());
                    started.push((mq.clone(), pq, offset));
                    changed = true;
                    tracing::info!(group = %self.group, ?mq, offset, "queue taken");
                }
                Err(error) => {
                    tracing::warn!(group = %self.group, ?mq, %error, "no start offset; queue not taken this round");
                    if self.settings.locks_queues() {
                        self.unlock_queue(mq, true).await;
                    }
                }
            }
        }
        if !all_locked {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = me.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(LOCK_FAILED_REBALANCE_DELAY) => me.rebalance_wakeup.notify_one(),
                }
            });
        }
        if changed {
            if let Some(subscription) = self.subscriptions.lock().get_mut(topic) {
                subscription.sub_version = apogee_common::time::now_ms();
            }
            self.instance.send_heartbeat_to_all_brokers().await;
        }
        for (mq, pq, offset) in started {
            tokio::spawn(self.clone().pull_loop(mq.clone(), pq.clone(), offset));
            if self.settings.orderly {
                tokio::spawn(self.clone().consume_orderly_loop(mq, pq));
            }
        }
        changed
    }

    /// Removes `mq` from the table if `pq` is still its entry.
    pub(crate) fn forget_queue(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) {
        let mut table = self.process_queues.lock();
        if table.get(mq).is_some_and(|current| Arc::ptr_eq(current, pq)) {
            table.remove(mq);
        }
    }

    /// Drops the queues of topics no longer subscribed.
    async fn drop_queues_not_subscribed(&self, topics: &[String]) {
        let stale: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .process_queues
            .lock()
            .iter()
            .filter(|(mq, _)| !topics.contains(&mq.topic))
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in stale {
            pq.set_dropped();
            if self.remove_unnecessary_queue(&mq, &pq).await {
                self.forget_queue(&mq, &pq);
            }
        }
    }

    /// Commits and forgets the offset of a dropped queue; orderly consumers also wait briefly
    /// for the batch in progress and release the broker lock. `false` keeps the queue for the
    /// next round.
    pub(crate) async fn remove_unnecessary_queue(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) -> bool {
        self.offset_store.persist(mq).await;
        if !self.settings.locks_queues() {
            self.offset_store.remove_offset(mq);
            return true;
        }
        let lock_age_ms = apogee_common::time::now_ms().saturating_sub(pq.last_lock_ms());
        let force = pq.is_dropped()
            && lock_age_ms > i64::try_from(FORCE_UNLOCK_AFTER.as_millis()).unwrap_or(i64::MAX);
        let guard = if force {
            None
        } else {
            match tokio::time::timeout(REMOVE_ORDERLY_QUEUE_WAIT, pq.consume_lock().lock()).await {
                Ok(guard) => Some(guard),
                Err(_) => {
                    pq.inc_try_unlock_times();
                    return false;
                }
            }
        };
        // The commit must reach the broker before the lock is released, or the next owner
        // could read the older offset and consume the last batch again.
        if let Err(error) = self.offset_store.persist_and_wait(mq).await {
            tracing::warn!(group = %self.group, ?mq, %error, "committing the offset of a released queue failed");
        }
        self.offset_store.remove_offset(mq);
        pq.set_locked(false);
        self.unlock_queue(mq, true).await;
        drop(guard);
        true
    }

    /// The start offset of a newly assigned queue (§4.6): the stored offset, else what
    /// `consume_from_where` says.
    pub(crate) async fn compute_pull_from_where(&self, mq: &MessageQueue) -> Result<i64, ClientError> {
        if let Some(offset) = self.offset_store.read_offset(mq, ReadOffsetType::ReadFromStore).await? {
            if offset >= 0 {
                return Ok(offset);
            }
        }
        let retry = topic::is_retry_topic(&mq.topic);
        let offset = match self.settings.consume_from_where {
            ConsumeFromWhere::ConsumeFromFirstOffset => 0,
            ConsumeFromWhere::ConsumeFromTimestamp if retry => self.max_offset(mq).await?,
            ConsumeFromWhere::ConsumeFromTimestamp => {
                self.search_offset(mq, self.settings.consume_timestamp_ms).await?
            }
            _ if retry => 0,
            _ => self.max_offset(mq).await?,
        };
        if offset < 0 {
            return Err(ClientError::Malformed(format!("negative start offset {offset} for {mq:?}")));
        }
        Ok(offset)
    }

    /// The master of a broker group (any member without one), refreshing the route once.
    pub(crate) async fn broker_addr_of(&self, mq: &MessageQueue) -> Result<String, ClientError> {
        self.instance.master_addr_of(mq).await
    }

    /// GET_MAX_OFFSET: the queue's next offset to be written.
    async fn max_offset(&self, mq: &MessageQueue) -> Result<i64, ClientError> {
        let header = GetMaxOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            committed: None,
            bname: Some(mq.broker_name.clone()),
        };
        let answer: GetMaxOffsetResponseHeader = self
            .ask_queue_broker(mq, request(request_code::GET_MAX_OFFSET, &header), "GET_MAX_OFFSET")
            .await?;
        Ok(answer.offset)
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP: the queue offset of the first message stored at or after
    /// `timestamp_ms`.
    async fn search_offset(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<i64, ClientError> {
        let request = requests::search_offset(mq, timestamp_ms);
        let answer: SearchOffsetResponseHeader =
            self.ask_queue_broker(mq, request, "SEARCH_OFFSET_BY_TIMESTAMP").await?;
        Ok(answer.offset)
    }

    /// Sends `request` (a `what` query about `mq`) to the master of the queue's broker group
    /// and decodes the header of its successful answer.
    async fn ask_queue_broker<H: CommandHeader>(
        &self,
        mq: &MessageQueue,
        request: RemotingCommand,
        what: &str,
    ) -> Result<H, ClientError> {
        let response = self.invoke_for_success(self.broker_addr_of(mq).await?, request).await?;
        response.decode_header().map_err(|error| ClientError::Malformed(format!("{what}: {error}")))
    }

    /// LOCK_BATCH_MQ for `queues` (all of one broker group); returns the ones now held.
    async fn lock_batch(
        &self,
        broker_name: &str,
        queues: BTreeSet<MessageQueue>,
    ) -> Result<BTreeSet<MessageQueue>, ClientError> {
        let body = LockBatchRequestBody {
            client_id: self.client_id.clone(),
            consumer_group: self.group.clone(),
            mq_set: queues,
            only_this_broker: false,
        };
        let header = LockBatchMqRequestHeader { bname: Some(broker_name.to_owned()) };
        let command = request(request_code::LOCK_BATCH_MQ, &header).with_body(json_body(&body)?);
        let response = self.call_master(broker_name, command).await?;
        let locked: LockBatchResponseBody = fastjson::from_slice(&response.body)
            .map_err(|error| ClientError::Malformed(format!("LOCK_BATCH_MQ response: {error}")))?;
        Ok(locked.lock_ok_mq_set)
    }

    /// Locks one queue at its broker and records the answer in `pq`.
    pub(crate) async fn lock_queue(&self, mq: &MessageQueue, pq: &ProcessQueue) -> bool {
        let locked = match self.lock_batch(&mq.broker_name, BTreeSet::from([mq.clone()])).await {
            Ok(locked) => locked.contains(mq),
            Err(error) => {
                tracing::debug!(group = %self.group, ?mq, %error, "lock request failed");
                false
            }
        };
        pq.set_locked(locked);
        locked
    }

    /// Renews the locks of every held queue, broker by broker, marking each granted or not.
    /// Runs between rebalance rounds, so that a renewal cannot overtake the unlock of a queue
    /// the round gave away.
    pub(crate) async fn lock_all(&self) {
        let _serial = self.rebalance_serial.lock().await;
        let mut by_broker: BTreeMap<String, Vec<(MessageQueue, Arc<ProcessQueue>)>> = BTreeMap::new();
        for (mq, pq) in self.process_queues.lock().iter() {
            if !pq.is_dropped() {
                by_broker.entry(mq.broker_name.clone()).or_default().push((mq.clone(), pq.clone()));
            }
        }
        for (broker_name, queues) in by_broker {
            let wanted: BTreeSet<MessageQueue> = queues.iter().map(|(mq, _)| mq.clone()).collect();
            match self.lock_batch(&broker_name, wanted).await {
                Ok(locked) => {
                    for (mq, pq) in &queues {
                        if !locked.contains(mq) && pq.is_locked() {
                            tracing::warn!(group = %self.group, ?mq, "queue lock lost");
                        }
                        pq.set_locked(locked.contains(mq));
                    }
                }
                Err(error) => {
                    tracing::warn!(group = %self.group, %broker_name, %error, "lock renewal failed")
                }
            }
        }
    }

    /// Renews the broker locks every [`LOCK_RENEW_INTERVAL`].
    pub(crate) async fn relock_loop(self: Arc<Self>) {
        let mut wait = FIRST_LOCK_RENEW_DELAY;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = LOCK_RENEW_INTERVAL;
            self.lock_all().await;
        }
    }

    /// UNLOCK_BATCH_MQ for `queues` (all of one broker group).
    async fn unlock_batch(
        &self,
        broker_name: &str,
        queues: BTreeSet<MessageQueue>,
        oneway: bool,
    ) -> Result<(), ClientError> {
        let body = UnlockBatchRequestBody {
            client_id: self.client_id.clone(),
            consumer_group: self.group.clone(),
            mq_set: queues,
            only_this_broker: false,
        };
        let header = UnlockBatchMqRequestHeader { bname: Some(broker_name.to_owned()) };
        let command = request(request_code::UNLOCK_BATCH_MQ, &header).with_body(json_body(&body)?);
        if oneway {
            return self.instance.invoke_oneway(&self.master_addr_of(broker_name)?, command).await;
        }
        self.call_master(broker_name, command).await.map(drop)
    }

    /// Sends `command` to the master of `broker_name` and returns its successful answer.
    async fn call_master(
        &self,
        broker_name: &str,
        command: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        self.invoke_for_success(self.master_addr_of(broker_name)?, command).await
    }

    /// Sends `command` to `addr` within `api_timeout` and returns the answer when it is
    /// SUCCESS; any other code becomes [`ClientError::Broker`] naming `addr`.
    pub(crate) async fn invoke_for_success(
        &self,
        addr: String,
        command: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let response = self.instance.invoke(&addr, command, self.settings.api_timeout).await?;
        requests::expect_success(&addr, response)
    }

    /// The address of the master of `broker_name`, which the queue locks live on.
    fn master_addr_of(&self, broker_name: &str) -> Result<String, ClientError> {
        self.instance
            .master_addr(broker_name)
            .ok_or_else(|| ClientError::NoBroker { broker_name: broker_name.to_owned() })
    }

    /// Releases one queue's broker lock.
    pub(crate) async fn unlock_queue(&self, mq: &MessageQueue, oneway: bool) {
        if let Err(error) = self.unlock_batch(&mq.broker_name, BTreeSet::from([mq.clone()]), oneway).await {
            tracing::debug!(group = %self.group, ?mq, %error, "unlock failed");
        }
    }

    /// Releases every held queue's broker lock (shutdown), waiting for the brokers.
    pub(crate) async fn unlock_all(&self) {
        let mut by_broker: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
        for (mq, pq) in self.process_queues.lock().iter() {
            pq.set_locked(false);
            by_broker.entry(mq.broker_name.clone()).or_default().insert(mq.clone());
        }
        for (broker_name, queues) in by_broker {
            if let Err(error) = self.unlock_batch(&broker_name, queues, false).await {
                tracing::warn!(group = %self.group, %broker_name, %error, "unlock at shutdown failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apogee_remoting::body::route::QueueData;

    use super::*;

    #[test]
    fn only_readable_queues_are_subscribed() {
        let route = TopicRouteData {
            queue_datas: vec![
                QueueData {
                    broker_name: "b".into(),
                    perm: perm::READ_WRITE,
                    read_queue_nums: 2,
                    write_queue_nums: 4,
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "a".into(),
                    perm: perm::READ,
                    read_queue_nums: 1,
                    write_queue_nums: 1,
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "c".into(),
                    perm: perm::WRITE,
                    read_queue_nums: 8,
                    write_queue_nums: 8,
                    topic_sys_flag: 0,
                },
            ],
            ..TopicRouteData::default()
        };
        assert_eq!(
            subscribe_queues("T", &route),
            vec![
                MessageQueue::new("T", "a", 0),
                MessageQueue::new("T", "b", 0),
                MessageQueue::new("T", "b", 1)
            ]
        );
    }

    #[test]
    fn random_index_stays_in_range() {
        for len in 1..20 {
            assert!(random_index(len) < len);
        }
        assert_eq!(random_index(0), 0);
    }
}
