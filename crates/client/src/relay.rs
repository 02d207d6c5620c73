//! Requests to a named broker group, for relays that choose brokers and queues themselves.
//!
//! A [`Producer`](crate::Producer) or a [`SimpleConsumer`](crate::SimpleConsumer) decides
//! where each request goes; a relay in front of a cluster (the gRPC proxy in cluster mode,
//! `apogee proxy`) has already decided: its own clients named the queue, the broker of a
//! receipt handle, or the transaction. [`Relay`] gives such a relay the protocol's requests
//! addressed to a broker name, with the routes, connections and heartbeats of one shared
//! [`ClientInstance`]: a send of prepared properties to one queue (SEND_MESSAGE_V2), a pop,
//! an ack and a change of invisible time by receipt handle, a send back, END_TRANSACTION, the
//! topic's and the group's configs, and producer groups announced in heartbeats whose
//! transaction checks are forwarded rather than answered. Every call is bounded by the
//! client's `api_timeout` (a pop by its long poll plus that).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::{MessageQueue, TopicConfig};
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::fastjson;
use apogee_remoting::header::admin::GetTopicConfigRequestHeader;
use apogee_remoting::header::consumer::ConsumerSendMsgBackRequestHeader;
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader,
};
use apogee_remoting::header::send::{
    EndTransactionRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use bytes::Bytes;
use parking_lot::Mutex;

use crate::consumer::simple::{popped, Source};
use crate::instance::ClientInstance;
use crate::producer::TransactionCheckForwarder;
use crate::{ClientConfig, ClientError, ReceivedMessage};

/// The producer group a relay announces for as long as it runs, so that its client instance
/// is never released between its clients' groups (Java's `CLIENT_INNER_PRODUCER`, a group
/// brokers know as internal).
pub const RELAY_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// What a broker answered to a send: the stored message's place, or its refusal code kept
/// for the caller to map.
#[derive(Debug, Clone)]
pub struct QueueSendResult {
    /// The broker's response code: SUCCESS, or FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT and
    /// SLAVE_NOT_AVAILABLE for a stored message that is not yet as safe as asked.
    pub code: i32,
    /// The response header (offset message id, queue, queue offset, transaction id).
    pub header: SendMessageResponseHeader,
}

/// What a pop found.
#[derive(Debug)]
pub enum PopOutcome {
    /// Messages, each with its receipt handle.
    Found(Vec<ReceivedMessage>),
    /// Nothing arrived within the poll time.
    NotFound,
    /// The broker holds as many waiting pops as it allows (POLLING_FULL).
    PollingFull,
}

/// Requests to named broker groups; see the [module documentation](self).
pub struct Relay {
    instance: Arc<ClientInstance>,
    /// Producer groups announced for the relay's clients, with how many clients hold each.
    producers: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Relay").field("client_id", &self.instance.client_id()).finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts a relay on the client instance of `config` (its NameServers and instance name).
    /// Must run inside a Tokio runtime.
    pub async fn start(config: &ClientConfig) -> Result<Relay, ClientError> {
        let instance = ClientInstance::get(config).await?;
        instance.register_producer(RELAY_PRODUCER_GROUP)?;
        Ok(Relay { instance, producers: Mutex::default() })
    }

    /// The client instance underneath.
    pub fn instance(&self) -> &Arc<ClientInstance> {
        &self.instance
    }

    /// The route of `topic`, cached by the instance (fetched when missing).
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        self.instance.topic_route(topic).await
    }

    /// The master address of `broker_name`, from the routes seen, refreshing `topic`'s route
    /// once when the broker is unknown.
    pub async fn master_addr(&self, broker_name: &str, topic: &str) -> Result<String, ClientError> {
        let queue = MessageQueue::new(topic.to_owned(), broker_name.to_owned(), 0);
        self.instance.master_addr_of(&queue).await
    }

    fn api_timeout(&self) -> Duration {
        self.instance.config().api_timeout
    }

    /// A request to the master of `broker_name`; the response whatever its code.
    async fn call(
        &self,
        broker_name: &str,
        topic: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<(String, RemotingCommand), ClientError> {
        let addr = self.master_addr(broker_name, topic).await?;
        let response = self.instance.invoke(&addr, request, timeout).await?;
        Ok((addr, response))
    }

    /// A request answered SUCCESS, else the broker's refusal.
    async fn call_ok(
        &self,
        broker_name: &str,
        topic: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let (addr, response) = self.call(broker_name, topic, request, self.api_timeout()).await?;
        if response.code == response_code::SUCCESS {
            Ok(response)
        } else {
            Err(ClientError::from_response(&response, &addr))
        }
    }

    /// The topic's config on `broker_name` (GET_TOPIC_CONFIG): its attributes, such as the
    /// message type, are not in routes.
    pub async fn topic_config(&self, broker_name: &str, topic: &str) -> Result<TopicConfig, ClientError> {
        let header =
            GetTopicConfigRequestHeader { topic: topic.to_owned(), bname: Some(broker_name.to_owned()) };
        let request = RemotingCommand::request(request_code::GET_TOPIC_CONFIG).with_header(&header);
        let response = self.call_ok(broker_name, topic, request).await?;
        Ok(fastjson::from_slice(&response.body)?)
    }

    /// The consumer group's config on `broker_name` (GET_SUBSCRIPTIONGROUP_CONFIG); `None`
    /// when the broker has none (SUBSCRIPTION_GROUP_NOT_EXIST). `topic` locates the broker
    /// when its address is not known yet.
    pub async fn group_config(
        &self,
        broker_name: &str,
        topic: &str,
        group: &str,
    ) -> Result<Option<SubscriptionGroupConfig>, ClientError> {
        let request =
            RemotingCommand::request(request_code::GET_SUBSCRIPTIONGROUP_CONFIG).with_ext("group", group);
        let (addr, response) = self.call(broker_name, topic, request, self.api_timeout()).await?;
        match response.code {
            response_code::SUCCESS => Ok(Some(fastjson::from_slice(&response.body)?)),
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST => Ok(None),
            _ => Err(ClientError::from_response(&response, &addr)),
        }
    }

    /// Recalls the timer message `recall_handle` names on `broker_name` (RECALL_MESSAGE) and
    /// gives the recalled message's id.
    pub async fn recall(
        &self,
        broker_name: &str,
        topic: &str,
        recall_handle: &str,
        producer_group: Option<&str>,
    ) -> Result<String, ClientError> {
        let request =
            crate::producer::recall::recall_request(topic, recall_handle, broker_name, producer_group);
        let (addr, response) = self.call(broker_name, topic, request, self.api_timeout()).await?;
        crate::producer::recall::recalled_id(&response, &addr)
    }

    /// Sends one message, or a batch body, to the queue `header.queue_id` of `broker_name`
    /// (SEND_MESSAGE_V2, or SEND_BATCH_MESSAGE when `header.batch`), with the properties and
    /// flags the caller prepared; nothing is added or checked here.
    pub async fn send_to_queue(
        &self,
        broker_name: &str,
        header: SendMessageRequestHeader,
        body: Bytes,
    ) -> Result<QueueSendResult, ClientError> {
        let topic = header.topic.as_str().to_owned();
        let code = if header.batch == Some(true) {
            request_code::SEND_BATCH_MESSAGE
        } else {
            request_code::SEND_MESSAGE_V2
        };
        let request = RemotingCommand::request(code)
            .with_header(&SendMessageRequestHeaderV2::from(header))
            .with_body(body);
        let (addr, response) = self.call(broker_name, &topic, request, self.api_timeout()).await?;
        match response.code {
            response_code::SUCCESS
            | response_code::FLUSH_DISK_TIMEOUT
            | response_code::FLUSH_SLAVE_TIMEOUT
            | response_code::SLAVE_NOT_AVAILABLE => {
                let parsed: SendMessageResponseHeader = response
                    .decode_header()
                    .map_err(|error| ClientError::Malformed(format!("send response from {addr}: {error}")))?;
                Ok(QueueSendResult { code: response.code, header: parsed })
            }
            _ => Err(ClientError::from_response(&response, &addr)),
        }
    }

    /// Pops from `broker_name` (POP_MESSAGE) as `header` says, waiting at most its poll time
    /// (plus the api timeout for the answer); the messages' topic is `header.topic`.
    pub async fn pop(
        &self,
        broker_name: &str,
        header: PopMessageRequestHeader,
    ) -> Result<PopOutcome, ClientError> {
        let poll = Duration::from_millis(u64::try_from(header.poll_time).unwrap_or(0));
        let (group, topic) = (header.consumer_group.clone(), header.topic.clone());
        let request = RemotingCommand::request(request_code::POP_MESSAGE).with_header(&header);
        let (addr, response) = self.call(broker_name, &topic, request, poll + self.api_timeout()).await?;
        match response.code {
            response_code::SUCCESS => {
                let source = Source { topic, broker_name: broker_name.to_owned(), broker_addr: addr };
                Ok(PopOutcome::Found(popped(&group, &source, &response)?))
            }
            response_code::POLLING_TIMEOUT | response_code::PULL_NOT_FOUND => Ok(PopOutcome::NotFound),
            response_code::POLLING_FULL => Ok(PopOutcome::PollingFull),
            _ => Err(ClientError::from_response(&response, &addr)),
        }
    }

    /// Acks a popped message on `broker_name` (ACK_MESSAGE); `header.extra_info` is its
    /// receipt handle.
    pub async fn ack(&self, broker_name: &str, header: AckMessageRequestHeader) -> Result<(), ClientError> {
        let topic = header.topic.clone();
        let request = RemotingCommand::request(request_code::ACK_MESSAGE).with_header(&header);
        self.call_ok(broker_name, &topic, request).await.map(drop)
    }

    /// Changes the invisible time of a popped message on `broker_name`
    /// (CHANGE_MESSAGE_INVISIBLETIME); the broker's new pop time, invisible time and revive
    /// queue, from which the new receipt handle is built.
    pub async fn change_invisible(
        &self,
        broker_name: &str,
        header: ChangeInvisibleTimeRequestHeader,
    ) -> Result<ChangeInvisibleTimeResponseHeader, ClientError> {
        let topic = header.topic.clone();
        let request =
            RemotingCommand::request(request_code::CHANGE_MESSAGE_INVISIBLETIME).with_header(&header);
        let response = self.call_ok(broker_name, &topic, request).await?;
        response.decode_header().map_err(|error| ClientError::Malformed(error.to_string()))
    }

    /// Sends a consumed message back to `broker_name` (CONSUMER_SEND_MSG_BACK): to the group's
    /// retry topic, or with delay level −1 to its dead-letter queue. `topic` locates the broker
    /// when its address is not known yet.
    pub async fn send_back(
        &self,
        broker_name: &str,
        topic: &str,
        header: ConsumerSendMsgBackRequestHeader,
    ) -> Result<(), ClientError> {
        let request = RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK).with_header(&header);
        self.call_ok(broker_name, topic, request).await.map(drop)
    }

    /// Ends a transaction on the broker that stored its half (END_TRANSACTION, oneway as Java
    /// sends it: the broker answers nothing a producer could act on).
    pub async fn end_transaction(
        &self,
        broker_name: &str,
        header: EndTransactionRequestHeader,
    ) -> Result<(), ClientError> {
        let topic = header.topic.clone().unwrap_or_default();
        let addr = self.master_addr(broker_name, &topic).await?;
        let request = RemotingCommand::request(request_code::END_TRANSACTION).with_header(&header);
        self.instance.invoke_oneway(&addr, request).await
    }

    /// Announces producer `group` of `topics` in heartbeats for one more client, so the
    /// brokers of those topics send its transaction checks here, to `forwarder`. The first
    /// holder also fetches the topics' routes and heartbeats at once.
    pub async fn hold_producer(
        &self,
        group: &str,
        topics: &[String],
        forwarder: Arc<dyn TransactionCheckForwarder>,
    ) -> Result<(), ClientError> {
        let first = {
            let mut producers = self.producers.lock();
            let holders = producers.entry(group.to_owned()).or_insert(0);
            *holders += 1;
            *holders == 1
        };
        if !first {
            return Ok(());
        }
        if let Err(error) = self.instance.register_producer(group) {
            self.producers.lock().remove(group);
            return Err(error);
        }
        self.instance.register_transaction_check_forwarder(group, forwarder);
        for topic in topics {
            self.instance.add_producer_topic(group, topic);
            if let Err(error) = self.instance.topic_route(topic).await {
                tracing::debug!(topic, %error, "no route yet for a relayed producer's topic");
            }
        }
        self.instance.send_heartbeat_to_all_brokers().await;
        Ok(())
    }

    /// One client fewer holds producer `group`; the last one unregisters it from the brokers.
    pub async fn release_producer(&self, group: &str) {
        let last = {
            let mut producers = self.producers.lock();
            match producers.get_mut(group) {
                Some(holders) if *holders > 1 => {
                    *holders -= 1;
                    false
                }
                Some(_) => {
                    producers.remove(group);
                    true
                }
                None => false,
            }
        };
        if last {
            self.instance.unregister_transaction_checker(group);
            self.instance.unregister_producer(group).await;
        }
    }

    /// Stops the relay: every producer group is unregistered and the instance released.
    pub async fn shutdown(&self) {
        let groups: Vec<String> = self.producers.lock().drain().map(|(group, _)| group).collect();
        for group in groups {
            self.instance.unregister_transaction_checker(&group);
            self.instance.unregister_producer(&group).await;
        }
        self.instance.unregister_producer(RELAY_PRODUCER_GROUP).await;
    }
}

/// The master broker names of `route` with readable queues of its topic, in name order.
pub fn readable_brokers(route: &TopicRouteData) -> Vec<String> {
    let mut names: Vec<String> = route
        .queue_datas
        .iter()
        .filter(|queues| apogee_common::perm::is_readable(queues.perm) && queues.read_queue_nums > 0)
        .filter(|queues| {
            route.broker_datas.iter().any(|broker| {
                broker.broker_name == queues.broker_name && broker.broker_addrs.contains_key(&MASTER_ID)
            })
        })
        .map(|queues| queues.broker_name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}
