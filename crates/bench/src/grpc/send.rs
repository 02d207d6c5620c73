//! `apogee bench grpc-send`: closed-loop SendMessage. Each of `--connections` HTTP/2
//! connections carries `--in-flight` calls at a time, each call `--batch` messages of
//! `--size` bytes; a call's latency runs from the request to the response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use apogee_grpc_proto::messaging_service_client::MessagingServiceClient;
use apogee_grpc_proto::{Code, Encoding, Message, MessageType, SendMessageRequest, SystemProperties};
use tonic::transport::Channel;

use super::{call_error_label, client_id, code_label, connect, request, resource};
use crate::setup;
use crate::stats::{Recorder, WorkerStats};
use crate::{Load, Target};

/// Deadline of one SendMessage call.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What `grpc-send` is asked to do.
#[derive(Debug, Clone)]
pub struct SendBench {
    /// Topic and NameServer, run time and progress.
    pub target: Target,
    /// The gRPC endpoint, `host:port`.
    pub grpc: String,
    /// Body size, HTTP/2 connections, calls in flight per connection, messages per call and
    /// the time to send before measuring (checked).
    pub load: Load,
}

/// Runs the workload and prints the report.
pub async fn run(bench: SendBench) -> Result<()> {
    // The topic is created when missing; its queues are the endpoint's business.
    setup::with_admin_client(async |client| {
        setup::queues_of(client, &bench.target.namesrv, &bench.target.topic, bench.target.queues).await
    })
    .await?;
    if !bench.load.warmup.is_zero() {
        drive(&bench, bench.load.warmup, true, &Recorder::new()).await?;
    }
    let recorder = Recorder::new();
    let elapsed = drive(&bench, bench.target.duration, bench.target.quiet, &recorder).await?;
    recorder.report(
        "grpc-send",
        serde_json::json!({
            "topic": bench.target.topic, "grpc": bench.grpc, "size": bench.load.size,
            "connections": bench.load.connections, "in_flight": bench.load.in_flight, "batch": bench.load.batch,
            "warmup_s": bench.load.warmup.as_secs_f64(), "duration_s": bench.target.duration.as_secs_f64(),
        }),
        elapsed,
    );
    Ok(())
}

/// Sends for `duration`; returns the measured time.
async fn drive(
    bench: &SendBench,
    duration: Duration,
    quiet: bool,
    recorder: &Arc<Recorder>,
) -> Result<Duration> {
    let mut clients = Vec::with_capacity(bench.load.connections);
    for _ in 0..bench.load.connections {
        clients.push(connect(&bench.grpc).await?);
    }
    let shape = Arc::new(Shape {
        topic: bench.target.topic.clone(),
        body: vec![b'x'; bench.load.size],
        batch: bench.load.batch,
    });
    // One send before the clock: a refused send (an unknown topic, a topic of another message
    // type, ACL) ends the run with the endpoint's own words instead of a count of errors.
    probe(&mut clients[0], &shape).await?;
    let elapsed = recorder
        .measure("grpc-send", duration, quiet, |_, deadline| {
            let mut tasks = Vec::with_capacity(bench.load.connections * bench.load.in_flight);
            for (connection, client) in clients.iter().enumerate() {
                for slot in 0..bench.load.in_flight {
                    let worker = connection * bench.load.in_flight + slot;
                    let sender =
                        Sender { client: client.clone(), shape: Arc::clone(&shape), worker, sequence: 0 };
                    tasks.push(tokio::spawn(sender.run(deadline, recorder.worker())));
                }
            }
            tasks
        })
        .await?;
    Ok(elapsed)
}

async fn probe(client: &mut MessagingServiceClient<Channel>, shape: &Shape) -> Result<()> {
    let message = Shape { batch: 1, ..shape.clone() }.request(usize::MAX, 0);
    let response = client.send_message(request(message, &client_id(usize::MAX), SEND_TIMEOUT)).await;
    let status = match response {
        Ok(response) => response.into_inner().status.unwrap_or_default(),
        Err(status) => bail!("the gRPC endpoint failed a first send: {status}"),
    };
    if status.code != Code::Ok as i32 {
        bail!(
            "the gRPC endpoint refused a first send to {}: {} {}",
            shape.topic,
            code_label(status.code),
            status.message
        );
    }
    Ok(())
}

/// What every request carries.
#[derive(Debug, Clone)]
struct Shape {
    topic: String,
    body: Vec<u8>,
    batch: usize,
}

impl Shape {
    /// A request of `batch` messages, with message ids unique to `worker` and `sequence`.
    fn request(&self, worker: usize, sequence: u64) -> SendMessageRequest {
        let messages = (0..self.batch as u64)
            .map(|index| Message {
                topic: Some(resource(&self.topic)),
                body: self.body.clone(),
                system_properties: Some(SystemProperties {
                    // The 5.x id layout: version 01, then 32 hex digits.
                    message_id: format!(
                        "01{:08X}{:08X}{:016X}",
                        std::process::id(),
                        worker as u32,
                        sequence.wrapping_mul(self.batch as u64).wrapping_add(index)
                    ),
                    body_encoding: Encoding::Identity as i32,
                    message_type: MessageType::Normal as i32,
                    ..SystemProperties::default()
                }),
                ..Message::default()
            })
            .collect();
        SendMessageRequest { messages }
    }
}

/// One call slot: sends, waits for the answer, sends again.
struct Sender {
    client: MessagingServiceClient<Channel>,
    shape: Arc<Shape>,
    worker: usize,
    sequence: u64,
}

impl Sender {
    async fn run(mut self, deadline: Instant, mut stats: WorkerStats) {
        let client_id = client_id(self.worker);
        let messages = self.shape.batch as u64;
        let bytes = messages * self.shape.body.len() as u64;
        while Instant::now() < deadline {
            let message = self.shape.request(self.worker, self.sequence);
            self.sequence += 1;
            let sent = Instant::now();
            match self.client.send_message(request(message, &client_id, SEND_TIMEOUT)).await {
                Ok(response) => {
                    let code = response.get_ref().status.as_ref().map_or(0, |status| status.code);
                    if code == Code::Ok as i32 {
                        stats.record(sent.elapsed(), messages, bytes);
                    } else {
                        stats.error_and_pause(code_label(code)).await;
                    }
                }
                Err(status) => {
                    stats.error_and_pause(call_error_label(&status)).await;
                }
            }
        }
    }
}
