//! `apogee bench grpc-receive`: ReceiveMessage + AckMessage of a topic from its first
//! message, as fast as the endpoint answers. Each of `--concurrency` tasks receives up to
//! `--receive-batch` messages, acknowledges them (one AckMessage for the batch, or one per
//! message) and receives again. A message counts once acknowledged, so the figure is
//! receive + ack throughput, to be set against `pop` (the same POP underneath, over remoting).
//!
//! A 5.x group without an offset starts at each queue's end (as the reference does); the
//! bench commits offset 0 for every queue of a new group first (over remoting), so the run
//! reads what was stored before it, as `pop` does. The measured period ends at the last
//! acknowledgement: the endpoint holds an empty receive for at least 5 s, which is waiting
//! rather than work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apogee_grpc_proto::messaging_service_client::MessagingServiceClient;
use apogee_grpc_proto::receive_message_response::Content;
use apogee_grpc_proto::{
    AckMessageEntry, AckMessageRequest, Code, FilterExpression, FilterType, MessageQueue,
    ReceiveMessageRequest,
};
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::client::RemotingClient;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use tonic::transport::Channel;

use super::{call_error_label, client_id, code_label, connect, request, resource};
use crate::pop::AckMode;
use crate::setup::{self, Queue, SETUP_TIMEOUT};
use crate::stats::{Recorder, WorkerStats};
use crate::Target;

/// How long a received message stays invisible: far longer than its ack takes here, so
/// nothing is redelivered during a run.
const INVISIBLE: Duration = Duration::from_secs(60);
/// The long poll of a receive: the endpoint's shortest.
const LONG_POLL: Duration = Duration::from_secs(5);
/// Deadline of a call beyond its long poll.
const CALL_MARGIN: Duration = Duration::from_secs(10);
/// Most messages one receive asks for (the endpoint's limit).
pub const MAX_RECEIVE_BATCH: i32 = 32;
/// Frames read from one receive's stream at most: a status, the messages, a timestamp.
const MAX_FRAMES: usize = MAX_RECEIVE_BATCH as usize + 2;

/// What `grpc-receive` is asked to do.
#[derive(Debug, Clone)]
pub struct ReceiveBench {
    /// Topic and NameServer, run time and progress.
    pub target: Target,
    /// The gRPC endpoint, `host:port`.
    pub grpc: String,
    /// Consumer group.
    pub group: String,
    /// HTTP/2 connections the tasks share.
    pub connections: usize,
    /// Receive tasks.
    pub concurrency: usize,
    /// Messages per receive.
    pub batch: i32,
    /// How received messages are acknowledged.
    pub ack: AckMode,
    /// Stop when a receive finds nothing.
    pub until_drained: bool,
}

/// Runs the workload and prints the report.
pub async fn run(bench: ReceiveBench) -> Result<()> {
    anyhow::ensure!(
        (1..=MAX_RECEIVE_BATCH).contains(&bench.batch),
        "--receive-batch must be 1..={MAX_RECEIVE_BATCH}"
    );
    anyhow::ensure!((1..=1024).contains(&bench.concurrency), "--concurrency must be 1..=1024");
    anyhow::ensure!(
        (1..=bench.concurrency).contains(&bench.connections),
        "--connections must be 1..=concurrency"
    );
    setup::with_admin_client(async |client| {
        let queues =
            setup::queues_of(client, &bench.target.namesrv, &bench.target.topic, bench.target.queues).await?;
        start_new_group_at_first_message(client, &bench.group, &bench.target.topic, &queues).await
    })
    .await?;
    let mut clients = Vec::with_capacity(bench.connections);
    for _ in 0..bench.connections {
        clients.push(connect(&bench.grpc).await?);
    }
    let recorder = Recorder::new();
    let last_ack_us = Arc::new(AtomicU64::new(0));
    let ran = recorder
        .measure("grpc-receive", bench.target.duration, bench.target.quiet, |started, deadline| {
            (0..bench.concurrency)
                .map(|worker| {
                    let receiver = Receiver {
                        client: clients[worker % clients.len()].clone(),
                        client_id: client_id(worker),
                        bench: bench.clone(),
                        started,
                        last_ack_us: Arc::clone(&last_ack_us),
                    };
                    tokio::spawn(receiver.run(deadline, recorder.worker()))
                })
                .collect()
        })
        .await?;
    let elapsed = match last_ack_us.load(Ordering::Relaxed) {
        0 => ran,
        micros => Duration::from_micros(micros),
    };
    recorder.report(
        "grpc-receive",
        serde_json::json!({
            "topic": bench.target.topic, "grpc": bench.grpc, "group": bench.group,
            "connections": bench.connections, "concurrency": bench.concurrency,
            "receive_batch": bench.batch, "ack": format!("{:?}", bench.ack).to_lowercase(),
            "until_drained": bench.until_drained,
        }),
        elapsed,
    );
    Ok(())
}

/// Commits offset 0 on every queue where `group` has none, so a new group reads from the
/// first message; a group with offsets goes on from them.
async fn start_new_group_at_first_message(
    client: &RemotingClient,
    group: &str,
    topic: &str,
    queues: &[Queue],
) -> Result<()> {
    for queue in queues {
        let query = QueryConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id: queue.queue_id,
            set_zero_if_not_found: Some(false),
            bname: None,
        };
        let request = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET).with_header(&query);
        let response =
            client.invoke(&queue.addr, request, SETUP_TIMEOUT).await.context("asking the group's offset")?;
        match response.code {
            response_code::SUCCESS => continue,
            response_code::QUERY_NOT_FOUND => {}
            code => bail!("{} refused QUERY_CONSUMER_OFFSET: code {code} {:?}", queue.addr, response.remark),
        }
        let update = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: query.topic,
            queue_id: queue.queue_id,
            commit_offset: 0,
            bname: None,
        };
        let request = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&update);
        let mut response =
            client.invoke(&queue.addr, request.clone(), SETUP_TIMEOUT).await.context("placing the group")?;
        if response.code == response_code::SUBSCRIPTION_GROUP_NOT_EXIST {
            // A group the broker has never seen: made with the defaults, then placed.
            create_group(client, &queue.addr, group).await?;
            response =
                client.invoke(&queue.addr, request, SETUP_TIMEOUT).await.context("placing the group")?;
        }
        anyhow::ensure!(
            response.code == response_code::SUCCESS,
            "{} refused UPDATE_CONSUMER_OFFSET: code {} {:?}",
            queue.addr,
            response.code,
            response.remark
        );
    }
    Ok(())
}

/// Creates `group` on the broker at `addr` with the defaults (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).
async fn create_group(client: &RemotingClient, addr: &str, group: &str) -> Result<()> {
    let config = SubscriptionGroupConfig::new(group);
    let body = fastjson::to_vec(&config, Dialect::Fastjson).map_err(|error| anyhow::anyhow!("{error}"))?;
    let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body);
    let response = client.invoke(addr, request, SETUP_TIMEOUT).await.context("creating the group")?;
    anyhow::ensure!(
        response.code == response_code::SUCCESS,
        "{addr} refused to create group {group}: code {} {:?}",
        response.code,
        response.remark
    );
    Ok(())
}

/// One receive task.
struct Receiver {
    client: MessagingServiceClient<Channel>,
    client_id: String,
    bench: ReceiveBench,
    started: Instant,
    last_ack_us: Arc<AtomicU64>,
}

/// What one receive brought.
enum Received {
    Messages(Vec<AckMessageEntry>, u64),
    Nothing,
}

impl Receiver {
    async fn run(mut self, deadline: Instant, stats: WorkerStats) {
        while Instant::now() < deadline {
            match self.receive().await {
                Ok(Received::Messages(entries, bytes)) => match self.ack(entries).await {
                    Ok(acked) => {
                        let share = if acked == 0 { 0 } else { bytes };
                        stats.recorder().count(acked, share);
                        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        self.last_ack_us.fetch_max(micros, Ordering::Relaxed);
                    }
                    Err(label) => {
                        stats.error_and_pause(label).await;
                    }
                },
                Ok(Received::Nothing) if self.bench.until_drained => return,
                Ok(Received::Nothing) => {}
                Err(label) => {
                    stats.error_and_pause(label).await;
                }
            }
        }
    }

    async fn receive(&mut self) -> Result<Received, String> {
        let message = ReceiveMessageRequest {
            group: Some(resource(&self.bench.group)),
            message_queue: Some(MessageQueue {
                topic: Some(resource(&self.bench.target.topic)),
                id: -1,
                ..MessageQueue::default()
            }),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".to_owned(),
            }),
            batch_size: self.bench.batch,
            invisible_duration: Some(proto_duration(INVISIBLE)),
            auto_renew: false,
            long_polling_timeout: Some(proto_duration(LONG_POLL)),
            attempt_id: None,
        };
        let call = request(message, &self.client_id, LONG_POLL + CALL_MARGIN);
        let mut frames =
            self.client.receive_message(call).await.map_err(|status| call_error_label(&status))?.into_inner();
        let mut code = None;
        let mut entries = Vec::new();
        let mut bytes = 0;
        for _ in 0..MAX_FRAMES {
            let Some(frame) = frames.message().await.map_err(|status| call_error_label(&status))? else {
                break;
            };
            match frame.content {
                Some(Content::Status(status)) => code = Some(status.code),
                Some(Content::Message(message)) => {
                    bytes += message.body.len() as u64;
                    let system = message.system_properties.unwrap_or_default();
                    entries.push(AckMessageEntry {
                        message_id: system.message_id,
                        receipt_handle: system.receipt_handle.unwrap_or_default(),
                        lite_topic: None,
                    });
                }
                Some(Content::DeliveryTimestamp(_)) | None => {}
            }
        }
        match code {
            Some(code) if code == Code::Ok as i32 && !entries.is_empty() => {
                Ok(Received::Messages(entries, bytes))
            }
            Some(code) if code == Code::MessageNotFound as i32 => Ok(Received::Nothing),
            Some(code) => Err(code_label(code)),
            None => Err("receive without a status".to_owned()),
        }
    }

    /// Acknowledges `entries`; the number acknowledged.
    async fn ack(&mut self, entries: Vec<AckMessageEntry>) -> Result<u64, String> {
        let calls: Vec<Vec<AckMessageEntry>> = match self.bench.ack {
            AckMode::Batch => vec![entries],
            AckMode::Single => entries.into_iter().map(|entry| vec![entry]).collect(),
        };
        let mut acked = 0;
        for entries in calls {
            let message = AckMessageRequest {
                group: Some(resource(&self.bench.group)),
                topic: Some(resource(&self.bench.target.topic)),
                entries,
            };
            let response = self
                .client
                .ack_message(request(message, &self.client_id, CALL_MARGIN))
                .await
                .map_err(|status| call_error_label(&status))?
                .into_inner();
            for entry in &response.entries {
                match entry.status.as_ref().map_or(0, |status| status.code) {
                    code if code == Code::Ok as i32 => acked += 1,
                    code => return Err(format!("ack {}", code_label(code))),
                }
            }
        }
        Ok(acked)
    }
}

fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}
