//! `apogee bench pop`: POP consumption of a topic from its start, as fast as the broker
//! answers: each task pops (every queue, up to `--pop-batch` messages) and acknowledges what
//! it got, with one BATCH_ACK_MESSAGE per pop or one ACK_MESSAGE per message, before popping
//! again. A message counts once acknowledged, so the figure is POP + ack throughput, to be
//! set against `consume` (PULL) on the same data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apogee_common::message::record::RecordView;
use apogee_remoting::body::pop::{BatchAck, BatchAckMessageRequestBody, BitSet};
use apogee_remoting::client::RemotingClient;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, PopMessageRequestHeader, PopMessageResponseHeader,
};
use apogee_remoting::receipt::{self, ExtraInfo};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use super::setup;
use super::stats::Recorder;
use super::stats::WorkerStats;
use super::Target;

/// How long popped messages stay invisible: far longer than any ack takes here, so nothing is
/// redelivered during a run.
const INVISIBLE_MS: i64 = 60_000;
/// Timeout of one request (longer than the hold).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// `initMode` starting a new group at each queue's first message.
const INIT_MODE_MIN: i32 = 0;

/// How popped messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// One BATCH_ACK_MESSAGE per pop.
    Batch,
    /// One ACK_MESSAGE per message.
    Single,
}

/// What one pop task needs.
struct Popper {
    client: Arc<RemotingClient>,
    addr: String,
    broker_name: String,
    topic: String,
    group: String,
    batch: i32,
    hold_ms: i64,
    ack_mode: AckMode,
}

/// Runs the pop workload and prints the report.
pub async fn run(
    target: Target,
    group: String,
    concurrency: usize,
    batch: i32,
    ack_mode: AckMode,
    until_drained: bool,
) -> Result<()> {
    anyhow::ensure!((1..=32).contains(&batch), "--pop-batch must be 1..=32");
    anyhow::ensure!((1..=1024).contains(&concurrency), "--concurrency must be 1..=1024");
    let recorder = Recorder::new();
    let client = Arc::new(setup::admin_client());
    let queues = setup::queues_of(&client, &target.namesrv, &target.topic, target.queues).await?;
    let Some(first) = queues.first() else { anyhow::bail!("topic {} has no queue", target.topic) };
    let hold_ms = if until_drained { 200 } else { 1000 };
    let elapsed = recorder
        .measure("pop", target.duration, target.quiet, |_, deadline| {
            (0..concurrency)
                .map(|_| {
                    let popper = Popper {
                        client: Arc::clone(&client),
                        addr: first.addr.clone(),
                        broker_name: first.broker_name.clone(),
                        topic: target.topic.clone(),
                        group: group.clone(),
                        batch,
                        hold_ms,
                        ack_mode,
                    };
                    tokio::spawn(popper.run(deadline, until_drained, recorder.worker()))
                })
                .collect()
        })
        .await?;
    recorder.report(
        "pop",
        serde_json::json!({
            "topic": target.topic,
            "pop_batch": batch,
            "concurrency": concurrency,
            "ack": format!("{ack_mode:?}").to_lowercase(),
            "until_drained": until_drained,
        }),
        elapsed,
    );
    Ok(())
}

impl Popper {
    async fn run(self, deadline: Instant, until_drained: bool, stats: WorkerStats) {
        while Instant::now() < deadline {
            let header = PopMessageRequestHeader {
                consumer_group: self.group.clone(),
                topic: self.topic.clone(),
                queue_id: -1,
                max_msg_nums: self.batch,
                invisible_time: INVISIBLE_MS,
                poll_time: self.hold_ms,
                born_time: apogee_common::time::now_ms(),
                init_mode: INIT_MODE_MIN,
                ..PopMessageRequestHeader::default()
            };
            let request = RemotingCommand::request(request_code::POP_MESSAGE).with_header(&header);
            let response = match self.client.invoke(&self.addr, request, CALL_TIMEOUT).await {
                Ok(response) => response,
                Err(error) => {
                    stats.error_and_pause(error.to_string()).await;
                    continue;
                }
            };
            match response.code {
                response_code::SUCCESS => {
                    if let Err(error) = self.ack_all(&response, &stats).await {
                        stats.recorder().error(error);
                    }
                }
                response_code::POLLING_TIMEOUT if until_drained => return,
                response_code::POLLING_TIMEOUT | response_code::POLLING_FULL => {}
                code => {
                    stats.error_and_pause(format!("code {code}")).await;
                }
            }
        }
    }

    /// Acknowledges every message of a pop; counts those acknowledged.
    async fn ack_all(&self, response: &RemotingCommand, stats: &WorkerStats) -> Result<(), String> {
        let header: PopMessageResponseHeader = response.decode_header().map_err(|error| error.to_string())?;
        let starts = receipt::parse_start_offsets(header.start_offset_info.as_deref().unwrap_or(""));
        let mut popped = Vec::new();
        let mut at = 0;
        while at < response.body.len() {
            let view = RecordView::parse(&response.body[at..], false).map_err(|error| error.to_string())?;
            at += usize::try_from(view.total_size()).unwrap_or(usize::MAX);
            let start =
                *starts.get(&receipt::queue_key(view.topic(), view.queue_id())).ok_or("no start offset")?;
            popped.push((view.queue_id(), start, view.queue_offset(), view.body().len() as u64));
        }
        match self.ack_mode {
            AckMode::Batch => {
                let mut by_check_point: BTreeMap<(i32, i64), BitSet> = BTreeMap::new();
                for (queue_id, start, offset, _) in &popped {
                    let bit = offset
                        .checked_sub(*start)
                        .and_then(|diff| usize::try_from(diff).ok())
                        .ok_or("offset before its start")?;
                    by_check_point.entry((*queue_id, *start)).or_default().set(bit);
                }
                let acks = by_check_point
                    .into_iter()
                    .map(|((queue_id, start_offset), bit_set)| BatchAck {
                        bit_set,
                        consumer_group: self.group.clone(),
                        invisible_time: header.invisible_time,
                        pop_time: header.pop_time,
                        queue_id,
                        retry: receipt::NORMAL_TOPIC_FLAG.to_owned(),
                        revive_queue_id: header.revive_qid,
                        start_offset,
                        topic: self.topic.clone(),
                    })
                    .collect();
                let body = BatchAckMessageRequestBody { acks, broker_name: self.broker_name.clone() };
                let bytes = fastjson::to_vec(&body, Dialect::Fastjson).map_err(|error| error.to_string())?;
                self.call(RemotingCommand::request(request_code::BATCH_ACK_MESSAGE).with_body(bytes)).await?;
            }
            AckMode::Single => {
                for (queue_id, start, offset, _) in &popped {
                    let handle = ExtraInfo {
                        ck_start_offset: *start,
                        pop_time_ms: header.pop_time,
                        invisible_ms: header.invisible_time,
                        revive_qid: header.revive_qid,
                        retry_flag: receipt::NORMAL_TOPIC_FLAG.to_owned(),
                        broker_name: self.broker_name.clone(),
                        queue_id: *queue_id,
                        queue_offset: Some(*offset),
                    };
                    let ack = AckMessageRequestHeader {
                        consumer_group: self.group.clone(),
                        topic: self.topic.clone(),
                        queue_id: *queue_id,
                        extra_info: handle.to_text(),
                        offset: *offset,
                        ..AckMessageRequestHeader::default()
                    };
                    self.call(RemotingCommand::request(request_code::ACK_MESSAGE).with_header(&ack)).await?;
                }
            }
        }
        let bytes: u64 = popped.iter().map(|(_, _, _, bytes)| bytes).sum();
        stats.recorder().count(popped.len() as u64, bytes);
        Ok(())
    }

    async fn call(&self, request: RemotingCommand) -> Result<(), String> {
        let response =
            self.client.invoke(&self.addr, request, CALL_TIMEOUT).await.map_err(|error| error.to_string())?;
        if response.code == response_code::SUCCESS {
            Ok(())
        } else {
            Err(format!("ack answered code {}", response.code))
        }
    }
}
