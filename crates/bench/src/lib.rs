//! apogee-bench, the `apogee bench` command: load generators for a running Apogee (or any
//! RocketMQ) cluster, speaking the remoting protocol directly so connections, requests in
//! flight and rates are exactly what the flags say. The binary parses [`BenchArgs`] among its
//! commands and calls [`BenchArgs::run`]; its global allocator stays in the binary.
//!
//! - `produce`: sends for a duration, closed loop (N connections × M in flight) or open loop
//!   at a fixed rate (latency measured from the intended send time, so a stalled server cannot
//!   hide its stall: no coordinated omission);
//! - `consume`: pulls every queue of a topic from the start, as fast as the broker answers;
//! - `pop`: POP-consumes a topic from the start and acknowledges every message (batch or
//!   single acks), as fast as the broker answers;
//! - `e2e`: produces at a fixed rate with the send time in the body and consumes with long
//!   polling, measuring produce-to-consume latency;
//! - `timer`: schedules many timer messages due at one moment, then reports the scheduling
//!   rate, the broker's memory with them pending and the delivery rate when they come due;
//! - `grpc-send`, `grpc-receive`: the 5.x gRPC endpoint (SendMessage; ReceiveMessage +
//!   AckMessage), with the protocol's client stubs (see [`grpc`]).
//!
//! Every run ends with a summary and one JSON line (`{"kind":"apogee-bench",...}`) for scripts.

mod consume;
mod e2e;
pub mod grpc;
mod pop;
mod precise_timer;
mod produce;
mod send_frame;
mod setup;
mod stats;
mod timer;

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

/// `apogee bench` and its workloads.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Threads of the bench's async runtime. One is enough for every standard workload and
    /// leaves the most CPU to a broker on the same machine: with two, the bench spent 0.65
    /// instead of 0.52 cores on workload 2, and 0.81 instead of 0.68 at a fixed 90 K/s, where
    /// the extra wake-ups also tripled the p99 it measured.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// Send messages and measure throughput and send latency.
    Produce(ProduceArgs),
    /// Pull every queue of a topic from its start and measure throughput.
    Consume(ConsumeArgs),
    /// POP every queue of a topic from its start, acknowledging each message, and measure
    /// throughput.
    Pop(PopArgs),
    /// Produce at a fixed rate and measure produce-to-consume latency.
    E2e(E2eArgs),
    /// Schedule timer messages due at one moment; measure scheduling, memory and delivery.
    Timer(TimerArgs),
    /// Send over the 5.x gRPC endpoint (SendMessage) and measure throughput and latency.
    GrpcSend(GrpcSendArgs),
    /// Receive (ReceiveMessage) and acknowledge (AckMessage) a topic from its start over the
    /// 5.x gRPC endpoint and measure throughput.
    GrpcReceive(GrpcReceiveArgs),
}

/// The gRPC endpoint the `grpc-*` workloads call.
#[derive(Debug, Args, Clone)]
struct GrpcEndpointArg {
    /// The gRPC endpoint, `host:port` (`grpcServerPort`, 8081 by default).
    #[arg(long, default_value = "127.0.0.1:8081")]
    grpc: String,
}

#[derive(Debug, Args)]
struct GrpcSendArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    endpoint: GrpcEndpointArg,
    #[command(flatten)]
    load: Load,
}

#[derive(Debug, Args)]
struct GrpcReceiveArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    endpoint: GrpcEndpointArg,
    /// Consumer group (a new group starts at each queue's first message).
    #[arg(short = 'g', long, default_value = "apogee-bench-grpc")]
    group: String,
    /// HTTP/2 connections the receive tasks share.
    #[arg(short = 'c', long, default_value_t = 1)]
    connections: usize,
    /// Receives in flight (each receives then acks, then receives again).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Messages per receive (at most 32).
    #[arg(long, default_value_t = 32)]
    receive_batch: i32,
    /// How received messages are acknowledged: one AckMessage per receive, or per message.
    #[arg(long, value_enum, default_value_t = pop::AckMode::Batch)]
    ack: pop::AckMode,
    /// Stop when a receive finds nothing instead of waiting out the duration.
    #[arg(long)]
    until_drained: bool,
}

#[derive(Debug, Args)]
struct TimerArgs {
    /// NameServer address.
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    /// Topic (created with `queues` queues when missing; must be empty).
    #[arg(short = 't', long, default_value = "BenchTimerTopic")]
    topic: String,
    /// Queues of the topic when the bench creates it.
    #[arg(long, default_value_t = 8)]
    queues: i32,
    /// Timers to schedule.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// When they are all due, from the start, e.g. `90s`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    due_in: Duration,
    /// Body size in bytes.
    #[arg(short = 's', long, default_value_t = 128)]
    size: usize,
    /// Concurrent senders.
    #[arg(short = 'c', long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight per sender.
    #[arg(short = 'i', long, default_value_t = 64)]
    in_flight: usize,
    /// The broker's process id: its RssAnon and VmRSS are read with the timers pending.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Longest wait for every timer after the due time, e.g. `120s`.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    delivery_limit: Duration,
}

/// Where and what: shared by every workload.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// NameServer address.
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    /// Topic (created with `queues` queues when missing).
    #[arg(short = 't', long, default_value = "BenchTopic")]
    topic: String,
    /// Queues of the topic when the bench creates it.
    #[arg(long, default_value_t = 8)]
    queues: i32,
    /// Run time, e.g. `30s`, `2m`.
    #[arg(short = 'd', long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Print no progress line.
    #[arg(long)]
    quiet: bool,
}

/// The load every sending workload (`produce`, `e2e`, `grpc-send`) puts on: how big, how
/// wide, how deep and how long warmed up.
#[derive(Debug, Args, Clone)]
pub struct Load {
    /// Body size in bytes.
    #[arg(short = 's', long, default_value_t = 128)]
    size: usize,
    /// Connections (remoting: each its own TCP connection to the broker; gRPC: HTTP/2
    /// connections to the endpoint).
    #[arg(short = 'c', long, default_value_t = 1)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'i', long, default_value_t = 1)]
    in_flight: usize,
    /// Messages per request (remoting: > 1 sends SEND_BATCH_MESSAGE; gRPC: per SendMessage
    /// call).
    #[arg(short = 'b', long, default_value_t = 1)]
    batch: usize,
    /// Time to send with the same settings before measuring, e.g. `2s` (like the warm-up
    /// phase of the OpenMessaging Benchmark): the broker makes the files of a new topic's
    /// queues and connections are open, so the figures are the steady state.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
}

/// Send settings shared by `produce` and `e2e`.
#[derive(Debug, Args, Clone)]
pub struct SendOptions {
    #[command(flatten)]
    load: Load,
    /// Producer group named in the send requests.
    #[arg(short = 'g', long, default_value = "apogee-bench")]
    group: String,
    /// Messages per second in total (open loop); 0 = as fast as the window allows.
    #[arg(short = 'r', long, default_value_t = 0)]
    rate: u64,
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    send: SendOptions,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    target: Target,
    /// Messages per pull request.
    #[arg(long, default_value_t = 32)]
    pull_batch: i32,
    /// Stop when every queue is drained instead of waiting out the duration.
    #[arg(long)]
    until_drained: bool,
}

#[derive(Debug, Args)]
struct PopArgs {
    #[command(flatten)]
    target: Target,
    /// Consumer group (a new group starts at each queue's first message).
    #[arg(short = 'g', long, default_value = "apogee-bench-pop")]
    group: String,
    /// Pop requests in flight (each pops then acks, then pops again).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Messages per pop request (at most 32).
    #[arg(long, default_value_t = 32)]
    pop_batch: i32,
    /// How popped messages are acknowledged.
    #[arg(long, value_enum, default_value_t = pop::AckMode::Batch)]
    ack: pop::AckMode,
    /// Stop when a pop finds nothing instead of waiting out the duration.
    #[arg(long)]
    until_drained: bool,
}

#[derive(Debug, Args)]
struct E2eArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    send: SendOptions,
}

/// Largest body the bench sends (the broker's default limit).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest number of connections.
pub const MAX_CONNECTIONS: usize = 1024;
/// Largest number of requests in flight per connection.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Largest batch.
pub const MAX_BATCH: usize = 1024;
/// Longest warm-up.
pub const MAX_WARMUP: Duration = Duration::from_secs(600);

impl BenchArgs {
    /// Runs the chosen workload.
    pub async fn run(self) -> Result<()> {
        match self.workload {
            Workload::Produce(args) => {
                args.send.load.validate()?;
                produce::run(args.target, args.send).await
            }
            Workload::Consume(args) => consume::run(args.target, args.pull_batch, args.until_drained).await,
            Workload::Pop(args) => {
                pop::run(
                    args.target,
                    args.group,
                    args.concurrency,
                    args.pop_batch,
                    args.ack,
                    args.until_drained,
                )
                .await
            }
            Workload::E2e(args) => {
                args.send.load.validate()?;
                e2e::run(args.target, args.send).await
            }
            Workload::Timer(args) => {
                anyhow::ensure!(
                    (1..=MAX_BODY_BYTES).contains(&args.size),
                    "--size must be 1..={MAX_BODY_BYTES}"
                );
                anyhow::ensure!(
                    args.connections * args.in_flight <= MAX_CONNECTIONS * 16,
                    "too many senders"
                );
                timer::run(timer::TimerBench {
                    namesrv: args.namesrv,
                    topic: args.topic,
                    queues: args.queues,
                    count: args.count,
                    due_in: args.due_in,
                    size_bytes: args.size,
                    connections: args.connections,
                    in_flight: args.in_flight,
                    broker_pid: args.broker_pid,
                    delivery_limit: args.delivery_limit,
                })
                .await
            }
            Workload::GrpcSend(args) => {
                args.load.validate()?;
                grpc::send::run(grpc::send::SendBench {
                    target: args.target,
                    grpc: args.endpoint.grpc,
                    load: args.load,
                })
                .await
            }
            Workload::GrpcReceive(args) => {
                grpc::receive::run(grpc::receive::ReceiveBench {
                    target: args.target,
                    grpc: args.endpoint.grpc,
                    group: args.group,
                    connections: args.connections,
                    concurrency: args.concurrency,
                    batch: args.receive_batch,
                    ack: args.ack,
                    until_drained: args.until_drained,
                })
                .await
            }
        }
    }
}

impl Load {
    fn validate(&self) -> Result<()> {
        anyhow::ensure!((1..=MAX_BODY_BYTES).contains(&self.size), "--size must be 1..={MAX_BODY_BYTES}");
        anyhow::ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.connections),
            "--connections must be 1..={MAX_CONNECTIONS}"
        );
        anyhow::ensure!(
            (1..=MAX_IN_FLIGHT).contains(&self.in_flight),
            "--in-flight must be 1..={MAX_IN_FLIGHT}"
        );
        anyhow::ensure!((1..=MAX_BATCH).contains(&self.batch), "--batch must be 1..={MAX_BATCH}");
        anyhow::ensure!(self.warmup <= MAX_WARMUP, "--warmup must be at most {MAX_WARMUP:?}");
        Ok(())
    }
}

/// Parses `500ms`, `30s`, `2m`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    }
}
