//! `apogee bench consume`: every queue of a topic pulled from its start, one long-polling
//! task per queue, as fast as the broker answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apogee_common::message::record::RecordView;
use apogee_remoting::client::RemotingClient;
use apogee_remoting::flags::pull as pull_flags;
use apogee_remoting::header::consumer::{
    GetMaxOffsetRequestHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use super::send_frame;
use super::setup::{self, Queue};
use super::stats::{Recorder, WorkerStats};
use super::Target;

/// PullSysFlag bits: suspend (long polling) and subscription carried in the request.
const PULL_FLAGS: i32 = pull_flags::SUSPEND | pull_flags::SUBSCRIPTION;
/// Group the bench pulls as.
pub const BENCH_GROUP: &str = "apogee-bench-consumer";
/// Timeout of one pull (longer than the hold).
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the consume workload and prints the report.
pub async fn run(target: Target, pull_batch: i32, until_drained: bool) -> Result<()> {
    let recorder = Recorder::new();
    let client = Arc::new(setup::admin_client());
    let queues = setup::queues_of(&client, &target.namesrv, &target.topic, target.queues).await?;
    let hold_ms = if until_drained { 200 } else { 1000 };
    let elapsed = recorder
        .measure("consume", target.duration, target.quiet, |_, deadline| {
            queues
                .into_iter()
                .map(|queue| {
                    let puller = Puller {
                        client: Arc::clone(&client),
                        topic: target.topic.clone(),
                        queue,
                        batch: pull_batch,
                        hold_ms,
                    };
                    tokio::spawn(puller.run(0, deadline, until_drained, recorder.worker(), false))
                })
                .collect()
        })
        .await?;
    recorder.report(
        "consume",
        serde_json::json!({"topic": target.topic, "pull_batch": pull_batch, "until_drained": until_drained}),
        elapsed,
    );
    Ok(())
}

/// Pulls one queue.
pub struct Puller {
    /// Connection to the broker.
    pub client: Arc<RemotingClient>,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue: Queue,
    /// Messages per pull.
    pub batch: i32,
    /// Long-polling hold.
    pub hold_ms: i64,
}

impl Puller {
    /// The queue's max offset (where an e2e consumer starts).
    pub async fn max_offset(&self) -> Result<i64> {
        let header = GetMaxOffsetRequestHeader {
            topic: self.topic.clone(),
            queue_id: self.queue.queue_id,
            ..GetMaxOffsetRequestHeader::default()
        };
        let request = RemotingCommand::request(request_code::GET_MAX_OFFSET).with_header(&header);
        let response = self.client.invoke(&self.queue.addr, request, PULL_TIMEOUT).await?;
        Ok(response.ext("offset").and_then(|offset| offset.parse().ok()).unwrap_or(0))
    }

    /// Pulls from `offset` until `deadline` (or until the queue is drained). With `stamped`,
    /// each message's first 8 body bytes are its send time (µs since the epoch) and the
    /// produce-to-consume latency is recorded.
    pub async fn run(
        self,
        mut offset: i64,
        deadline: Instant,
        until_drained: bool,
        mut stats: WorkerStats,
        stamped: bool,
    ) {
        while Instant::now() < deadline {
            let header = PullMessageRequestHeader {
                consumer_group: BENCH_GROUP.to_owned(),
                topic: self.topic.clone(),
                queue_id: self.queue.queue_id,
                queue_offset: offset,
                max_msg_nums: self.batch,
                sys_flag: PULL_FLAGS,
                commit_offset: 0,
                suspend_timeout_millis: self.hold_ms,
                subscription: Some("*".to_owned()),
                sub_version: 0,
                expression_type: Some("TAG".to_owned()),
                ..PullMessageRequestHeader::default()
            };
            let request = RemotingCommand::request(request_code::PULL_MESSAGE).with_header(&header);
            let response = match self.client.invoke(&self.queue.addr, request, PULL_TIMEOUT).await {
                Ok(response) => response,
                Err(error) => {
                    stats.error_and_pause(error.to_string()).await;
                    continue;
                }
            };
            let next =
                response.decode_header::<PullMessageResponseHeader>().map(|h| h.next_begin_offset).ok();
            match response.code {
                response_code::SUCCESS => {
                    let now_us = apogee_common::time::now_us();
                    let mut at = 0;
                    while at < response.body.len() {
                        let Ok(view) = RecordView::parse(&response.body[at..], false) else { break };
                        at += view.total_size() as usize;
                        if stamped {
                            let body = view.body();
                            let Some(sent_us) = send_frame::stamp_of(body) else {
                                stats.recorder().error("a body shorter than the send time");
                                continue;
                            };
                            stats.record(
                                Duration::from_micros(now_us.saturating_sub(sent_us)),
                                1,
                                body.len() as u64,
                            );
                        } else {
                            stats.recorder().count(1, view.body().len() as u64);
                        }
                    }
                }
                response_code::PULL_NOT_FOUND if until_drained => return,
                response_code::PULL_NOT_FOUND
                | response_code::PULL_RETRY_IMMEDIATELY
                | response_code::PULL_OFFSET_MOVED => {}
                code => {
                    stats.error_and_pause(format!("code {code}")).await;
                }
            }
            if let Some(next) = next {
                offset = next;
            }
        }
    }
}
