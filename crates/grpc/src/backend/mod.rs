//! What the RPCs need from brokers, as one trait with two implementations: [`Local`], the
//! broker this endpoint runs in (Apache's "local" proxy mode: each call is a function of
//! `apogee_broker::core` over the shared `BrokerState`), and [`Remote`], the broker groups a
//! NameServer knows, reached over remoting through `apogee_client::Relay` (Apache's
//! "cluster" mode, `apogee proxy`). The front (checks, property mapping, receipt handles,
//! renewal, Telemetry) is the same for both; only the broker work differs.
//!
//! The service holds a [`Brokers`], an enum of the two, which implements the trait by
//! dispatch: no boxed future per call, and the local send path is the code it was before.

pub mod local;
pub mod remote;

use std::future::Future;

use apogee_broker::core::pop::ack::Changed;
use apogee_broker::core::pop::pop_message::PopRequest;
use apogee_broker::core::transaction::Decision;
use apogee_common::message::MessageExt;
use apogee_remoting::body::SubscriptionGroupConfig;

pub use local::Local;
pub use remote::Remote;

use crate::consume::{AckTarget, Handle};
use crate::context::CallContext;
use crate::pb::{MessageType, SendResultEntry, Settings};
use crate::send::Outgoing;
use crate::status::Refusal;

/// One broker group's share of a topic, as QueryRoute and QueryAssignment present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerQueues {
    /// The broker name (kept in `MessageQueue.broker.name`).
    pub broker_name: String,
    /// Permission bits of the topic on that broker.
    pub perm: i32,
    /// Read queue count.
    pub read_queue_nums: i32,
    /// Write queue count.
    pub write_queue_nums: i32,
}

/// A topic as routes present it: its broker groups and the message types it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    /// Every broker group holding the topic, in name order.
    pub brokers: Vec<BrokerQueues>,
    /// What the topic's `message.type` accepts.
    pub accepted: Vec<MessageType>,
}

/// A popped message and its gRPC receipt handle (the broker's extra info and the message's
/// commit-log offset).
#[derive(Debug)]
pub struct Popped {
    /// The message, its topic the one popped from (a retry topic for a redelivery).
    pub message: MessageExt,
    /// The handle's text.
    pub handle: String,
}

/// What a pop found.
#[derive(Debug)]
pub enum PopOutcome {
    /// Messages (possibly none left after decoding).
    Found(Vec<Popped>),
    /// Nothing within the poll time.
    NotFound,
    /// The broker holds as many waiting pops as it allows.
    PollingFull,
}

/// An END_TRANSACTION as the RPC asks it.
#[derive(Debug, Clone, Copy)]
pub struct EndTransaction<'a> {
    /// The topic (a gRPC producer's group).
    pub topic: &'a str,
    /// The transaction id (the half's unique key).
    pub transaction_id: &'a str,
    /// The message id the client names.
    pub message_id: &'a str,
    /// Commit, rollback or unknown.
    pub decision: Decision,
    /// Whether it answers a check.
    pub from_transaction_check: bool,
}

/// What the RPCs need from brokers; see the [module documentation](self).
pub trait Backend: Send + Sync + 'static {
    /// The topic's broker groups and accepted types; TOPIC_NOT_FOUND when none holds it.
    fn route(&self, topic: &str) -> impl Future<Output = Result<TopicRoute, Refusal>> + Send;

    /// The consumer group's config (FIFO, retries, retry policy); `None` when unknown. `topic`
    /// says where to ask when the groups live on brokers.
    fn group_config(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> impl Future<Output = Option<SubscriptionGroupConfig>> + Send;

    /// Stores checked messages of `topic` (one entry each): the topic-type check when
    /// `check_type`, the queue chosen by the server, each sent with the properties the front
    /// built.
    fn send(
        &self,
        context: &CallContext,
        topic: &str,
        messages: Vec<Outgoing>,
        check_type: bool,
    ) -> impl Future<Output = Result<Vec<SendResultEntry>, Refusal>> + Send;

    /// Recalls the timer message `recall_handle` names (RecallMessage); gives its message id.
    fn recall(
        &self,
        context: &CallContext,
        topic: &str,
        recall_handle: &str,
    ) -> impl Future<Output = Result<String, Refusal>> + Send;

    /// Pops for a receive, long polling at most `pop.poll_ms`.
    fn pop(
        &self,
        context: &CallContext,
        pop: &PopRequest<'_>,
    ) -> impl Future<Output = Result<PopOutcome, Refusal>> + Send;

    /// Acks the message of `target` for `group`.
    fn ack(&self, group: &str, target: &AckTarget) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Changes the invisible time of the message of `target`; the broker's new check point
    /// values.
    fn change_invisible(
        &self,
        group: &str,
        target: &AckTarget,
        invisible_ms: i64,
    ) -> impl Future<Output = Result<Changed, Refusal>> + Send;

    /// Sends the message of `handle` (popped from `real_topic`) to `%DLQ%<group>`.
    fn dead_letter(
        &self,
        context: &CallContext,
        group: &str,
        real_topic: &str,
        handle: &Handle,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Ends the transaction of a half message.
    fn end_transaction(&self, end: EndTransaction<'_>) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// A client's Settings were stored: a producer's groups are announced to brokers so their
    /// transaction checks reach this endpoint.
    fn client_settled(&self, client_id: &str, settings: &Settings) -> impl Future<Output = ()> + Send;

    /// A client left (terminated or expired): what was announced for it is withdrawn.
    fn client_left(&self, client_id: &str) -> impl Future<Output = ()> + Send;

    /// The largest body a producer may send, in bytes.
    fn max_body_bytes(&self) -> usize;
}

/// The backend the service runs on: the broker it is embedded in, or the cluster behind a
/// proxy.
#[derive(Debug)]
pub enum Brokers {
    /// Local mode.
    Local(Local),
    /// Cluster mode (boxed: its caches and tables make it large; boxing costs one
    /// allocation at start, none per call).
    Remote(Box<Remote>),
}

impl Backend for Brokers {
    async fn route(&self, topic: &str) -> Result<TopicRoute, Refusal> {
        match self {
            Brokers::Local(local) => local.route(topic).await,
            Brokers::Remote(remote) => remote.route(topic).await,
        }
    }

    async fn group_config(&self, group: &str, topic: Option<&str>) -> Option<SubscriptionGroupConfig> {
        match self {
            Brokers::Local(local) => local.group_config(group, topic).await,
            Brokers::Remote(remote) => remote.group_config(group, topic).await,
        }
    }

    async fn send(
        &self,
        context: &CallContext,
        topic: &str,
        messages: Vec<Outgoing>,
        check_type: bool,
    ) -> Result<Vec<SendResultEntry>, Refusal> {
        match self {
            Brokers::Local(local) => local.send(context, topic, messages, check_type).await,
            Brokers::Remote(remote) => remote.send(context, topic, messages, check_type).await,
        }
    }

    async fn recall(
        &self,
        context: &CallContext,
        topic: &str,
        recall_handle: &str,
    ) -> Result<String, Refusal> {
        match self {
            Brokers::Local(local) => local.recall(context, topic, recall_handle).await,
            Brokers::Remote(remote) => remote.recall(topic, recall_handle).await,
        }
    }

    async fn pop(&self, context: &CallContext, pop: &PopRequest<'_>) -> Result<PopOutcome, Refusal> {
        match self {
            Brokers::Local(local) => local.pop(context, pop).await,
            Brokers::Remote(remote) => remote.pop(context, pop).await,
        }
    }

    async fn ack(&self, group: &str, target: &AckTarget) -> Result<(), Refusal> {
        match self {
            Brokers::Local(local) => local.ack(group, target).await,
            Brokers::Remote(remote) => remote.ack(group, target).await,
        }
    }

    async fn change_invisible(
        &self,
        group: &str,
        target: &AckTarget,
        invisible_ms: i64,
    ) -> Result<Changed, Refusal> {
        match self {
            Brokers::Local(local) => local.change_invisible(group, target, invisible_ms).await,
            Brokers::Remote(remote) => remote.change_invisible(group, target, invisible_ms).await,
        }
    }

    async fn dead_letter(
        &self,
        context: &CallContext,
        group: &str,
        real_topic: &str,
        handle: &Handle,
    ) -> Result<(), Refusal> {
        match self {
            Brokers::Local(local) => local.dead_letter(context, group, real_topic, handle).await,
            Brokers::Remote(remote) => remote.dead_letter(context, group, real_topic, handle).await,
        }
    }

    async fn end_transaction(&self, end: EndTransaction<'_>) -> Result<(), Refusal> {
        match self {
            Brokers::Local(local) => local.end_transaction(end).await,
            Brokers::Remote(remote) => remote.end_transaction(end).await,
        }
    }

    async fn client_settled(&self, client_id: &str, settings: &Settings) {
        match self {
            Brokers::Local(local) => local.client_settled(client_id, settings).await,
            Brokers::Remote(remote) => remote.client_settled(client_id, settings).await,
        }
    }

    async fn client_left(&self, client_id: &str) {
        match self {
            Brokers::Local(local) => local.client_left(client_id).await,
            Brokers::Remote(remote) => remote.client_left(client_id).await,
        }
    }

    fn max_body_bytes(&self) -> usize {
        match self {
            Brokers::Local(local) => local.max_body_bytes(),
            Brokers::Remote(remote) => remote.max_body_bytes(),
        }
    }
}

/// The topic-type check (spec §5.5 step 11): the first message's kind must be one the topic
/// takes. A message carrying `TRANSFER_FLAG` (no kind) is not checked.
pub(crate) fn check_type(accepted: &[MessageType], first: Option<MessageType>) -> Result<(), Refusal> {
    let Some(kind) = first else { return Ok(()) };
    if accepted.contains(&kind) {
        return Ok(());
    }
    let expected = match accepted {
        [only] => crate::topic_type::name(*only),
        _ => "MIXED",
    };
    Err(Refusal::new(
        crate::pb::Code::MessagePropertyConflictWithType,
        format!(
            "TopicMessageType validate failed, the expected type is {expected}, but actual type is {}",
            crate::topic_type::name(kind)
        ),
    ))
}

/// The refusal of a broker that answered an ack with a failure (the reference's message).
pub(crate) fn ack_refused(remark: &str) -> Refusal {
    Refusal::new(crate::pb::Code::InternalServerError, format!("ack failed: status is abnormal: {remark}"))
}

/// The refusal of a broker that answered a change of invisible time with a failure.
pub(crate) fn change_refused(remark: &str) -> Refusal {
    Refusal::new(
        crate::pb::Code::InternalServerError,
        format!("changeInvisibleDuration failed: status is abnormal: {remark}"),
    )
}

/// The queue position (among `count` writable queues) of a message: a message group hashes
/// to its queue (Guava's consistent hash of Java's `String.hashCode`, spec §6.4); other
/// messages take turns.
pub(crate) fn queue_position(message_group: Option<&str>, count: i32, turn: u64) -> i32 {
    match message_group {
        Some(group) => crate::send::consistent_hash(
            i64::from(apogee_common::hash::java_string_hash(group)),
            count.max(1),
        ),
        None => i32::try_from(turn % u64::try_from(count.max(1)).unwrap_or(1)).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_check_names_what_the_topic_expects() {
        assert!(check_type(&[MessageType::Normal], Some(MessageType::Normal)).is_ok());
        assert!(check_type(&[MessageType::Fifo], None).is_ok());
        let refused = check_type(&[MessageType::Transaction], Some(MessageType::Normal)).unwrap_err();
        assert_eq!(refused.code, crate::pb::Code::MessagePropertyConflictWithType);
        assert_eq!(
            refused.message,
            "TopicMessageType validate failed, the expected type is TRANSACTION, but actual type is NORMAL"
        );
    }

    #[test]
    fn groups_keep_their_queue_and_others_take_turns() {
        let first = queue_position(Some("order-1"), 8, 0);
        assert_eq!(queue_position(Some("order-1"), 8, 5), first);
        assert_eq!(
            (0..8).map(|turn| queue_position(None, 8, turn)).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(queue_position(None, 0, 3), 0);
    }
}
