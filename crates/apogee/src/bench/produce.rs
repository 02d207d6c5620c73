//! `apogee bench produce`: N connections × M requests in flight, closed loop or at a fixed
//! rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apogee_common::message::batch::{encode_batch, BatchItem};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_remoting::client::RemotingClient;
use apogee_remoting::connection::{Connection, RemotingError};
use apogee_remoting::header::send::SendMessageRequestHeaderV2;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use bytes::Bytes;

use super::setup::{self, Queue};
use super::stats::{Recorder, WorkerStats};
use super::{SendOptions, Target};

/// Timeout of one send request.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the produce workload and prints the report.
pub async fn run(target: Target, send: SendOptions) -> Result<()> {
    let recorder = Recorder::new();
    let elapsed = drive(&target, &send, &recorder, None).await?;
    recorder.report("produce", parameters(&target, &send), elapsed);
    Ok(())
}

/// Description of the run for the JSON line.
pub fn parameters(target: &Target, send: &SendOptions) -> serde_json::Value {
    serde_json::json!({
        "topic": target.topic, "size": send.size, "connections": send.connections,
        "in_flight": send.in_flight, "batch": send.batch, "rate": send.rate,
        "duration_s": target.duration.as_secs_f64(),
    })
}

/// Sends for `target.duration`; returns the measured time. `stamp` puts the send time (µs
/// since the epoch) in the first 8 body bytes (the e2e workload).
pub async fn drive(
    target: &Target,
    send: &SendOptions,
    recorder: &Arc<Recorder>,
    stamp: Option<()>,
) -> Result<Duration> {
    let setup_client = setup::admin_client();
    let queues =
        Arc::new(setup::queues_of(&setup_client, &target.namesrv, &target.topic, target.queues).await?);
    let started = Instant::now();
    let deadline = started + target.duration;
    let progress = recorder.spawn_progress("produce", deadline, target.quiet);
    let schedule = Arc::new(Schedule::start(started, deadline, send.rate, send.batch));
    let mut tasks = Vec::new();
    for connection in 0..send.connections {
        let client = Arc::new(setup::admin_client());
        for slot in 0..send.in_flight {
            let worker = Worker {
                client: Arc::clone(&client),
                connection: None,
                queues: Arc::clone(&queues),
                topic: target.topic.clone(),
                send: send.clone(),
                schedule: Arc::clone(&schedule),
                stats: recorder.worker(),
                stamp: stamp.is_some(),
                ids: UniqIdGenerator::global(),
                next_queue: connection * send.in_flight + slot,
            };
            tasks.push(tokio::spawn(worker.run(deadline)));
        }
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    progress.abort();
    setup_client.shutdown().await;
    Ok(elapsed)
}

/// When requests go out. Closed loop: whenever a worker is free. Open loop: request k is due
/// at `started + k × batch / rate`, released by a pacing thread (an OS thread sleeps with
/// microsecond precision; tokio timers tick in milliseconds and would add their own lateness to
/// every latency measured from the due time).
enum Schedule {
    Closed,
    Open(tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>),
}

impl Schedule {
    /// Starts the pacer for `rate` messages per second until `deadline`.
    fn start(started: Instant, deadline: Instant, rate: u64, batch: usize) -> Self {
        if rate == 0 {
            return Schedule::Closed;
        }
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
            for k in 0u64.. {
                let due = started + interval.mul_f64(k as f64);
                if due >= deadline {
                    return;
                }
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if sender.send(due).is_err() {
                    return;
                }
            }
        });
        Schedule::Open(tokio::sync::Mutex::new(receiver))
    }

    /// The due time of the next request: `Some(None)` now (closed loop), `Some(Some(due))` at
    /// `due` (open loop), `None` when the run is over.
    async fn next_due(&self) -> Option<Option<Instant>> {
        match self {
            Schedule::Closed => Some(None),
            Schedule::Open(receiver) => receiver.lock().await.recv().await.map(Some),
        }
    }
}

struct Worker {
    client: Arc<RemotingClient>,
    connection: Option<(String, Connection)>,
    queues: Arc<Vec<Queue>>,
    topic: String,
    send: SendOptions,
    schedule: Arc<Schedule>,
    stats: WorkerStats,
    stamp: bool,
    ids: &'static UniqIdGenerator,
    next_queue: usize,
}

impl Worker {
    async fn run(mut self, deadline: Instant) {
        let payload = Bytes::from(vec![b'x'; self.send.size]);
        let template = self.template();
        while Instant::now() < deadline {
            let Some(due) = self.schedule.next_due().await else { break };
            let queues = Arc::clone(&self.queues);
            let queue = &queues[self.next_queue % queues.len()];
            self.next_queue = self.next_queue.wrapping_add(1);
            let request = self.request(&template, queue, &payload);
            let sent = Instant::now();
            let result = match self.connection(&queue.addr).await {
                Ok(connection) => connection.invoke(request, SEND_TIMEOUT).await,
                Err(error) => Err(error),
            };
            // Open loop: latency counts from when the request was due, not when it went out.
            let latency = due.unwrap_or(sent).elapsed();
            match result {
                Ok(response) if response.code == response_code::SUCCESS => {
                    let messages = self.send.batch as u64;
                    self.stats.record(latency, messages, messages * self.send.size as u64)
                }
                Ok(response) => self.stats.recorder().error(format!("code {}", response.code)),
                Err(error) => self.stats.recorder().error(error.to_string()),
            }
        }
    }

    /// The open connection to `addr`, kept between sends: the client's own lookup (a lock
    /// and a map per call) would cost the bench more than the send itself.
    async fn connection(&mut self, addr: &str) -> Result<Connection, RemotingError> {
        if let Some((cached_addr, connection)) = &self.connection {
            if cached_addr == addr && !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let connection = self.client.connection(addr).await?;
        self.connection = Some((addr.to_owned(), connection.clone()));
        Ok(connection)
    }

    fn body(&self, payload: &Bytes) -> Bytes {
        if !self.stamp {
            return payload.clone();
        }
        let mut body = payload.to_vec();
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros() as u64);
        let width = body.len().min(8);
        body[..width].copy_from_slice(&now_us.to_be_bytes()[..width]);
        Bytes::from(body)
    }

    /// The request without what changes per send (queue, timestamp, properties, body), built
    /// once so that the bench spends its CPU on sending rather than on building headers.
    fn template(&self) -> RemotingCommand {
        let batch = self.send.batch > 1;
        let header = SendMessageRequestHeaderV2 {
            a: "apogee-bench".to_owned(),
            b: self.topic.clone(),
            c: "TBW102".to_owned(),
            d: 4,
            f: 0,
            h: 0,
            j: Some(0),
            m: Some(batch),
            ..SendMessageRequestHeaderV2::default()
        };
        let code = if batch { request_code::SEND_BATCH_MESSAGE } else { request_code::SEND_MESSAGE_V2 };
        RemotingCommand::request(code).with_header(&header)
    }

    fn request(&self, template: &RemotingCommand, queue: &Queue, payload: &Bytes) -> RemotingCommand {
        let properties = |ids: &UniqIdGenerator| {
            let mut properties = Properties::with_capacity(2);
            properties.insert(property::UNIQ_KEY, ids.next_id());
            properties.insert(property::WAIT, "true");
            properties
        };
        let (body, header_properties) = if self.send.batch > 1 {
            let items: Vec<BatchItem> = (0..self.send.batch)
                .map(|_| BatchItem { flag: 0, body: self.body(payload), properties: properties(self.ids) })
                .collect();
            (
                Bytes::from(encode_batch(&items)),
                property::encode(&Properties::from_iter([(property::WAIT, "true")])),
            )
        } else {
            (self.body(payload), property::encode(&properties(self.ids)))
        };
        let mut request = template.clone().with_body(body);
        let fields = request.ext_fields_mut();
        fields.insert("e", itoa::Buffer::new().format(queue.queue_id));
        fields.insert("g", itoa::Buffer::new().format(apogee_common::time::now_ms()));
        fields.insert("i", header_properties);
        fields.insert("n", queue.broker_name.as_str());
        request
    }
}
