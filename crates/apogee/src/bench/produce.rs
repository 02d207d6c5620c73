//! `apogee bench produce`: N connections × M requests in flight, closed loop or at a fixed
//! rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apogee_common::message::batch::{encode_batch, BatchItem};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_remoting::client::RemotingClient;
use apogee_remoting::connection::RemotingError;
use apogee_remoting::header::send::SendMessageRequestHeaderV2;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::setup::{self, Queue};
use super::stats::{Recorder, WorkerStats};
use super::{SendOptions, Target};

/// Timeout of one send request.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The next due times of an open loop; never resolves for a closed loop.
async fn next_dues(dues: &mut Option<Dues>) -> Option<Vec<Instant>> {
    match dues {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the produce workload and prints the report.
pub async fn run(target: Target, send: SendOptions) -> Result<()> {
    warm_up(&target, &send).await?;
    let recorder = Recorder::new();
    let elapsed = drive(&target, &send, &recorder, None).await?;
    recorder.report("produce", parameters(&target, &send), elapsed);
    Ok(())
}

/// Sends for `send.warmup` with the same settings and forgets the figures.
pub async fn warm_up(target: &Target, send: &SendOptions) -> Result<()> {
    if send.warmup.is_zero() {
        return Ok(());
    }
    let warmup = Target { duration: send.warmup, quiet: true, ..target.clone() };
    drive(&warmup, send, &Recorder::new(), None).await?;
    Ok(())
}

/// Description of the run for the JSON line.
pub fn parameters(target: &Target, send: &SendOptions) -> serde_json::Value {
    serde_json::json!({
        "topic": target.topic, "size": send.size, "connections": send.connections,
        "in_flight": send.in_flight, "batch": send.batch, "rate": send.rate,
        "warmup_s": send.warmup.as_secs_f64(),
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
    let mut dues = Pacer::start(started, deadline, send.rate, send.batch, send.connections);
    let mut tasks = Vec::new();
    for connection in 0..send.connections {
        let worker = Worker {
            client: Arc::new(setup::admin_client()),
            queues: Arc::clone(&queues),
            topic: target.topic.clone(),
            send: send.clone(),
            stats: recorder.worker(),
            stamp: stamp.is_some(),
            ids: UniqIdGenerator::global(),
            next_queue: connection * send.in_flight,
        };
        tasks.push(tokio::spawn(worker.run(deadline, dues.pop())));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    progress.abort();
    setup_client.shutdown().await;
    Ok(elapsed)
}

/// Open loop: request k is due at `started + k × batch / rate`. An OS thread releases the due
/// times (it sleeps with microsecond precision; tokio timers tick in milliseconds and would add
/// their own lateness to every latency measured from the due time) once per [`PACER_TICK_US`]:
/// all that fell due since, to one connection, the next connection at the next tick. A release
/// costs the bench one wake, the connection writes the tick's requests together and the broker
/// reads them together, as a client batching its sends would; latency still counts from each
/// request's due time, so the release's own lateness (under one tick) is in the figures.
struct Pacer;

/// Time between two releases of the pacer. Waking once per due request instead (every 15 µs
/// at 67 K/s) cost the bench a fifth of a core in wake-ups, taken from the broker beside it.
const PACER_TICK_US: u64 = 200;

/// Due times for one connection, in order.
type Dues = tokio::sync::mpsc::UnboundedReceiver<Vec<Instant>>;

impl Pacer {
    /// One receiver of due times per connection; none at all for a closed loop (`rate` 0).
    fn start(started: Instant, deadline: Instant, rate: u64, batch: usize, connections: usize) -> Vec<Dues> {
        if rate == 0 || connections == 0 {
            return Vec::new();
        }
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..connections).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
        std::thread::spawn(move || {
            let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
            let tick = Duration::from_micros(PACER_TICK_US);
            let mut next = 0u64;
            let mut next_tick = started;
            let mut turn = 0usize;
            loop {
                let now = Instant::now();
                let mut released = Vec::new();
                let mut due = started + interval.mul_f64(next as f64);
                while due <= now && due < deadline {
                    released.push(due);
                    next += 1;
                    due = started + interval.mul_f64(next as f64);
                }
                if !released.is_empty() {
                    if senders[turn].send(released).is_err() {
                        return;
                    }
                    turn = (turn + 1) % senders.len();
                }
                if due >= deadline {
                    return;
                }
                // Sleep to the next tick, or to the next due time if that is later.
                while next_tick <= now {
                    next_tick += tick;
                }
                std::thread::sleep(due.max(next_tick).saturating_duration_since(Instant::now()));
            }
        });
        receivers
    }
}

/// One connection's sender: keeps up to `in_flight` requests outstanding on its connection,
/// sending whenever there is room (closed loop) or a request is due (open loop), all from one
/// task, so a response costs the bench one task wake at most.
struct Worker {
    client: Arc<RemotingClient>,
    queues: Arc<Vec<Queue>>,
    topic: String,
    send: SendOptions,
    stats: WorkerStats,
    stamp: bool,
    ids: &'static UniqIdGenerator,
    next_queue: usize,
}

/// A request's outcome, when it was due (where its latency starts counting) and when it
/// actually went out.
struct Sent {
    due: Instant,
    sent: Instant,
    result: Result<RemotingCommand, RemotingError>,
}

impl Worker {
    async fn run(mut self, deadline: Instant, mut dues: Option<Dues>) {
        let payload = Bytes::from(vec![b'x'; self.send.size]);
        let template = self.template();
        let mut in_flight = FuturesUnordered::new();
        let mut backlog: VecDeque<Instant> = VecDeque::new();
        let mut paced_out = dues.is_none();
        loop {
            // Start what may start: everything due, or (closed loop) until the window is full.
            while in_flight.len() < self.send.in_flight {
                let due = match dues {
                    Some(_) => match backlog.pop_front() {
                        Some(due) => due,
                        None => break,
                    },
                    None => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                let addr = self.queues[self.next_queue % self.queues.len()].addr.clone();
                let request = self.request(&template, &payload);
                let client = Arc::clone(&self.client);
                let open_loop = dues.is_some();
                in_flight.push(async move {
                    // A closed loop sends as soon as the request is made: no second clock read.
                    let sent = if open_loop { Instant::now() } else { due };
                    let result = client.invoke(&addr, request, SEND_TIMEOUT).await;
                    Sent { due, sent, result }
                });
            }
            if in_flight.is_empty() && backlog.is_empty() && (paced_out || Instant::now() >= deadline) {
                break;
            }
            tokio::select! {
                done = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some(sent) = done {
                        self.record(sent, dues.is_some());
                    }
                }
                released = next_dues(&mut dues), if !paced_out => match released {
                    Some(released) => backlog.extend(released),
                    None => paced_out = true,
                },
            }
        }
    }

    /// Latency counts from when the request was due (open loop) or sent (closed loop).
    fn record(&mut self, Sent { due, sent, result }: Sent, open_loop: bool) {
        let latency = due.elapsed();
        if open_loop {
            self.stats.record_phases(sent.saturating_duration_since(due), sent.elapsed());
        }
        match result {
            Ok(response) if response.code == response_code::SUCCESS => {
                let messages = self.send.batch as u64;
                self.stats.record(latency, messages, messages * self.send.size as u64)
            }
            Ok(response) => self.stats.recorder().error(format!("code {}", response.code)),
            Err(error) => self.stats.recorder().error(error.to_string()),
        }
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
            a: "apogee-bench".into(),
            b: self.topic.as_str().into(),
            c: "TBW102".into(),
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

    /// The next request, to the next queue in turn.
    fn request(&mut self, template: &RemotingCommand, payload: &Bytes) -> RemotingCommand {
        let queues = Arc::clone(&self.queues);
        let queue = &queues[self.next_queue % queues.len()];
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
        self.next_queue = self.next_queue.wrapping_add(1);
        request
    }
}
