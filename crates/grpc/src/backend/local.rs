//! Local mode: the endpoint runs inside the broker, and each call is a function of
//! `apogee_broker::core` over the shared `BrokerState`, with no remoting in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use apogee_broker::core::messages::{self, KeyQuery};
use apogee_broker::core::pop::ack::{self, Changed};
use apogee_broker::core::pop::pop_message::{self, PopRequest, PopStatus};
use apogee_broker::core::send::{self, SendRequest, SendStatus};
use apogee_broker::core::send_back::{self, SendBackRequest};
use apogee_broker::core::timer::recall::{self as timer_recall, RecallRequest};
use apogee_broker::core::transaction::{self, EndRequest};
use apogee_broker::BrokerState;
use apogee_common::message::{property, record, RecordView};
use apogee_common::perm;
use apogee_common::topic::{TopicConfig, AUTO_CREATE_TOPIC_KEY, TRANS_HALF_TOPIC};
use apogee_remoting::body::SubscriptionGroupConfig;
use apogee_remoting::receipt::{self, PopHeader};

use super::{
    ack_refused, change_refused, check_type, queue_position, BrokerQueues, EndTransaction, PopOutcome,
    Popped, TopicRoute,
};
use crate::consume::{filter_refusal, AckTarget, Handle, DEAD_LETTER_DELAY_LEVEL};
use crate::context::CallContext;
use crate::pb::{Code, SendResultEntry, Settings};
use crate::send::{Outgoing, DEFAULT_TOPIC_QUEUE_NUMS};
use crate::status::{ok, status, Refusal};

/// The broker this endpoint is embedded in.
#[derive(Debug)]
pub struct Local {
    state: Arc<BrokerState>,
    /// Round-robin position of sends without a message group.
    send_turn: AtomicU64,
}

impl Local {
    /// The backend over `state`.
    pub fn new(state: Arc<BrokerState>) -> Self {
        Self { state, send_turn: AtomicU64::new(0) }
    }

    /// The broker's state.
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// The topic's config on this broker; TOPIC_NOT_FOUND when it has none.
    fn topic_config(&self, topic: &str) -> Result<Arc<TopicConfig>, Refusal> {
        self.state.topics.lookup(topic).ok_or_else(|| {
            Refusal::new(
                Code::TopicNotFound,
                format!("No topic route info in name server for the topic: {topic}"),
            )
        })
    }

    pub(super) async fn route(&self, topic: &str) -> Result<TopicRoute, Refusal> {
        let config = self.topic_config(topic)?;
        Ok(TopicRoute {
            brokers: vec![BrokerQueues {
                broker_name: self.state.config.broker_name.clone(),
                perm: config.perm,
                read_queue_nums: config.read_queue_nums,
                write_queue_nums: config.write_queue_nums,
            }],
            accepted: crate::topic_type::accepted(&config),
        })
    }

    pub(super) async fn group_config(
        &self,
        group: &str,
        _topic: Option<&str>,
    ) -> Option<SubscriptionGroupConfig> {
        self.state.groups.get(group)
    }

    pub(super) async fn send(
        &self,
        context: &CallContext,
        topic: &str,
        messages: Vec<Outgoing>,
        check: bool,
    ) -> Result<Vec<SendResultEntry>, Refusal> {
        let config = self.topic_config(topic)?;
        if check {
            if let Some(first) = messages.first() {
                check_type(&crate::topic_type::accepted(&config), first.kind)?;
            }
        }
        if !perm::is_writeable(config.perm) || config.write_queue_nums <= 0 {
            return Err(Refusal::new(Code::Forbidden, "no writable queue"));
        }
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            let turn = if message.message_group.is_none() {
                self.send_turn.fetch_add(1, Ordering::Relaxed)
            } else {
                0
            };
            let queue_id = queue_position(message.message_group.as_deref(), config.write_queue_nums, turn);
            entries.push(self.store_one(context, topic, queue_id, message).await);
        }
        Ok(entries)
    }

    async fn store_one(
        &self,
        context: &CallContext,
        topic: &str,
        queue_id: i32,
        message: Outgoing,
    ) -> SendResultEntry {
        let request = SendRequest {
            producer_group: topic,
            topic,
            default_topic: AUTO_CREATE_TOPIC_KEY,
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            queue_id,
            sys_flag: message.sys_flag,
            born_timestamp_ms: message.born_timestamp_ms,
            flag: 0,
            properties: Some(&message.properties),
            reconsume_times: Some(0),
            unit_mode: false,
            max_reconsume_times: None,
            batch: false,
            body: &message.body,
        };
        match send::send(&self.state, &context.caller(), &request).await {
            Ok(result) => {
                let (code, remark) = match result.status {
                    SendStatus::Ok => (Code::Ok, ""),
                    SendStatus::FlushDiskTimeout => (Code::MasterPersistenceTimeout, "flush disk timeout"),
                    SendStatus::FlushSlaveTimeout => (Code::SlavePersistenceTimeout, "flush slave timeout"),
                    SendStatus::SlaveNotAvailable => (Code::HaNotAvailable, "no slave available"),
                };
                SendResultEntry {
                    status: Some(if code == Code::Ok { ok() } else { status(code, remark) }),
                    message_id: message.message_id.clone(),
                    transaction_id: message.message_id,
                    offset: result.queue_offset,
                    recall_handle: result.recall_handle.unwrap_or_default(),
                }
            }
            Err(error) => crate::send::failed_entry(Refusal::from(error)),
        }
    }

    pub(super) async fn recall(
        &self,
        context: &CallContext,
        topic: &str,
        recall_handle: &str,
    ) -> Result<String, Refusal> {
        let request = RecallRequest { producer_group: None, topic, recall_handle };
        let recalled = timer_recall::recall(&self.state, &context.caller(), &request).await?;
        Ok(recalled.msg_id)
    }

    pub(super) async fn pop(
        &self,
        context: &CallContext,
        pop: &PopRequest<'_>,
    ) -> Result<PopOutcome, Refusal> {
        let popped = pop_message::pop(&self.state, &context.caller(), pop).await.map_err(filter_refusal)?;
        match popped.status {
            PopStatus::Found => {}
            PopStatus::PollingTimeout => return Ok(PopOutcome::NotFound),
            PopStatus::PollingFull => return Ok(PopOutcome::PollingFull),
        }
        let start_offsets = receipt::parse_start_offsets(&popped.info.start);
        let header = PopHeader {
            start_offsets: &start_offsets,
            pop_time_ms: popped.pop_time_ms,
            invisible_ms: popped.invisible_ms,
            revive_qid: popped.revive_qid,
            broker_name: &self.state.config.broker_name,
        };
        let mut found = Vec::with_capacity(popped.records.len());
        for stored in &popped.records {
            let Ok(mut decoded) = record::decode_all_shared(stored) else {
                tracing::warn!(
                    topic = pop.topic,
                    group = pop.group,
                    "a popped record cannot be decoded; left to redelivery"
                );
                continue;
            };
            let Some(message) = decoded.pop() else { continue };
            let pop_ck = message.message.properties.get(property::POP_CK);
            let Some(extra) = receipt::popped_handle(
                &header,
                &message.message.topic,
                message.queue_id,
                message.queue_offset,
                pop_ck,
            ) else {
                tracing::warn!(
                    topic = pop.topic,
                    group = pop.group,
                    "a popped message has no start offset; left to redelivery"
                );
                continue;
            };
            let handle = format!("{extra} {}", message.commit_log_offset);
            found.push(Popped { message, handle });
        }
        Ok(PopOutcome::Found(found))
    }

    pub(super) async fn ack(&self, group: &str, target: &AckTarget) -> Result<(), Refusal> {
        ack::ack(&self.state, &target.request(group)).await.map_err(|error| ack_refused(&error.remark))
    }

    pub(super) async fn change_invisible(
        &self,
        group: &str,
        target: &AckTarget,
        invisible_ms: i64,
    ) -> Result<Changed, Refusal> {
        ack::change_invisible(&self.state, &target.request(group), invisible_ms)
            .await
            .map_err(|error| change_refused(&error.remark))
    }

    pub(super) async fn dead_letter(
        &self,
        context: &CallContext,
        group: &str,
        real_topic: &str,
        handle: &Handle,
    ) -> Result<(), Refusal> {
        let request = SendBackRequest {
            group,
            commit_log_offset: handle.commit_log_offset,
            delay_level: DEAD_LETTER_DELAY_LEVEL,
            max_reconsume_times: Some(0),
            origin_topic: Some(real_topic),
        };
        send_back::send_back(&self.state, &context.caller(), &request).await?;
        Ok(())
    }

    /// EndTransaction finds the half itself, by its unique key in the half topic's index, so
    /// a commit that comes late (or after a restart) still finds it. The latest copy wins: a
    /// check-back stores copies of a half, and the broker decides each transaction once
    /// whichever copy is named.
    pub(super) async fn end_transaction(&self, end: EndTransaction<'_>) -> Result<(), Refusal> {
        let (queue_offset, commit_log_offset) = self.find_half(end.transaction_id).await?;
        let request = EndRequest {
            producer_group: end.topic,
            tran_state_table_offset: queue_offset,
            commit_log_offset,
            decision: end.decision,
            from_transaction_check: end.from_transaction_check,
            msg_id: end.message_id,
        };
        transaction::end(&self.state, &request).await?;
        Ok(())
    }

    /// The queue and commit-log offsets of the latest stored copy of the half message with
    /// unique key `transaction_id`.
    async fn find_half(&self, transaction_id: &str) -> Result<(i64, i64), Refusal> {
        let query = KeyQuery {
            topic: TRANS_HALF_TOPIC,
            key: transaction_id,
            unique_key: true,
            max_num: messages::DEFAULT_QUERY_MAX_NUM,
            begin_timestamp_ms: 0,
            end_timestamp_ms: i64::MAX,
        };
        let found = messages::by_key(&self.state, &query).await?;
        found
            .messages
            .iter()
            .filter_map(|record| RecordView::parse(record.as_ref(), false).ok())
            .filter(|view| view.property(property::UNIQ_KEY) == Some(transaction_id))
            .map(|view| (view.queue_offset(), view.physical_offset()))
            .max_by_key(|(_, commit_log_offset)| *commit_log_offset)
            .ok_or_else(|| {
                Refusal::new(
                    Code::InternalServerError,
                    format!("cannot found transaction data: {transaction_id}"),
                )
            })
    }

    /// Local producers need no announcement: the broker's check service reaches the endpoint
    /// through `core::fronts`.
    pub(super) async fn client_settled(&self, _client_id: &str, _settings: &Settings) {}

    pub(super) async fn client_left(&self, _client_id: &str) {}

    pub(super) fn max_body_bytes(&self) -> usize {
        usize::try_from(self.state.config.store.max_message_size).unwrap_or(usize::MAX)
    }
}
