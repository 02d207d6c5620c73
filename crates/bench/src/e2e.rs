//! `apogee bench e2e`: produce with the send time in the body, consume with long polling,
//! and measure produce-to-consume latency (both ends on this machine's clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::consume::Puller;
use super::send_frame::STAMP_BYTES;
use super::setup;
use super::stats::Recorder;
use super::{produce, SendOptions, Target};

/// How long consumers keep pulling after the producers stop, for messages in flight.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// Runs the e2e workload and prints the report (latency = produce-to-consume).
pub async fn run(target: Target, send: SendOptions) -> Result<()> {
    anyhow::ensure!(
        send.load.size >= STAMP_BYTES,
        "--size must be at least {STAMP_BYTES} bytes for the send time"
    );
    // Before the consumers read where the queues end, so warm-up messages are not counted.
    produce::warm_up(&target, &send).await?;
    let client = Arc::new(setup::admin_client());
    let queues = setup::queues_of(&client, &target.namesrv, &target.topic, target.queues).await?;
    let consumed = Recorder::new();
    let deadline = Instant::now() + target.duration + DRAIN_GRACE;
    let mut pullers = Vec::new();
    for queue in queues {
        let puller = Puller {
            client: Arc::clone(&client),
            topic: target.topic.clone(),
            queue,
            batch: 32,
            hold_ms: 15_000,
        };
        let start = puller.max_offset().await?;
        pullers.push(tokio::spawn(puller.run(start, deadline, false, consumed.worker(), true)));
    }
    let produced = Recorder::new();
    let quiet_target = Target { quiet: true, ..target.clone() };
    let elapsed = produce::drive(&quiet_target, &send, &produced, true).await?;
    for puller in pullers {
        puller.await?;
    }
    super::stats::print_ignoring_closed_stdout(&format!("sent {} messages\n", produced.messages()));
    consumed.report("e2e", produce::parameters(&target, &send), elapsed);
    Ok(())
}
