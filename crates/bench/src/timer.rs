//! `apogee bench timer`: schedules `--count` timer messages all due at one moment
//! (`TIMER_DELIVER_MS` = start + `--due-in`), as fast as `--connections` × `--in-flight`
//! requests allow, and reports:
//!
//! - timers scheduled per second (every send answered SUCCESS);
//! - with `--broker-pid`, the broker's `RssAnon` and `VmRSS` once every timer is in the wheel
//!   (the broker's `timerOffsetBehind` is 0), i.e. with all of them pending;
//! - the delivery rate once they come due: the topic's queues are watched (their max offsets
//!   every 50 ms) from the due time until all `--count` arrived.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_common::time::now_ms;
use apogee_remoting::body::namesrv::KVTable;
use apogee_remoting::client::RemotingClient;
use apogee_remoting::fastjson;
use apogee_remoting::header::consumer::GetMaxOffsetRequestHeader;
use apogee_remoting::header::send::SendMessageRequestHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use bytes::Bytes;

use super::setup::{self, Queue};
use super::stats::print_ignoring_closed_stdout;

/// Timeout of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the queues are looked at while timers are delivered.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// What `apogee bench timer` is asked.
#[derive(Debug, Clone)]
pub struct TimerBench {
    /// NameServer.
    pub namesrv: String,
    /// Topic.
    pub topic: String,
    /// Queues of the topic when created.
    pub queues: i32,
    /// Timers to schedule.
    pub count: u64,
    /// How long after the start they are due.
    pub due_in: Duration,
    /// Body size.
    pub size_bytes: usize,
    /// Concurrent senders.
    pub connections: usize,
    /// Requests in flight per sender.
    pub in_flight: usize,
    /// The broker's process id, for its memory figures.
    pub broker_pid: Option<u32>,
    /// Longest wait for the deliveries after the due time.
    pub delivery_limit: Duration,
}

/// `RssAnon` and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
    };
    Some((field("RssAnon")?, field("VmRSS")?))
}

/// Sum of the queues' max offsets.
async fn delivered(client: &RemotingClient, topic: &str, queues: &[Queue]) -> Result<i64> {
    let mut total = 0;
    for queue in queues {
        let header = GetMaxOffsetRequestHeader {
            topic: topic.to_owned(),
            queue_id: queue.queue_id,
            ..GetMaxOffsetRequestHeader::default()
        };
        let request = RemotingCommand::request(request_code::GET_MAX_OFFSET).with_header(&header);
        let response = client.invoke(&queue.addr, request, REQUEST_TIMEOUT).await?;
        total += response.ext("offset").and_then(|offset| offset.parse::<i64>().ok()).unwrap_or(0);
    }
    Ok(total)
}

/// The broker's `timerOffsetBehind` (timer-topic entries not yet in the wheel).
async fn timer_offset_behind(client: &RemotingClient, addr: &str) -> Result<Option<i64>> {
    let request = RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO);
    let response = client.invoke(addr, request, REQUEST_TIMEOUT).await?;
    let table: KVTable = fastjson::from_slice(&response.body)?;
    Ok(table.table.get("timerOffsetBehind").and_then(|value| value.parse().ok()))
}

/// Runs the bench and prints the figures and a JSON line.
pub async fn run(bench: TimerBench) -> Result<()> {
    ensure!(
        bench.count > 0 && bench.connections > 0 && bench.in_flight > 0,
        "count, connections and in-flight must be positive"
    );
    let client = Arc::new(setup::admin_client());
    let queues = setup::queues_of(&client, &bench.namesrv, &bench.topic, bench.queues).await?;
    ensure!(!queues.is_empty(), "{} has no writable queue", bench.topic);
    let already = delivered(&client, &bench.topic, &queues).await?;
    ensure!(already == 0, "{} already holds {already} messages; use a new topic", bench.topic);
    let due_ms = now_ms() + i64::try_from(bench.due_in.as_millis())?;
    let mut properties = Properties::new();
    properties.insert(property::TIMER_DELIVER_MS, due_ms.to_string());
    let properties = property::encode(&properties);
    let body = Bytes::from(vec![b't'; bench.size_bytes]);
    let ids = Arc::new(UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let queues = Arc::new(queues);

    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..bench.connections * bench.in_flight {
        let (client, queues, ids, next, failures) = (
            Arc::clone(&client),
            Arc::clone(&queues),
            Arc::clone(&ids),
            Arc::clone(&next),
            Arc::clone(&failures),
        );
        let (topic, properties, body, count) =
            (bench.topic.clone(), properties.clone(), body.clone(), bench.count);
        senders.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return;
                }
                let queue = &queues[index as usize % queues.len()];
                let mut with_id = properties.clone();
                with_id.push_str(&format!("{}\u{1}{}\u{2}", property::UNIQ_KEY, ids.next_id()));
                let header = SendMessageRequestHeader::plain("apogee-bench-timer", &topic, queue.queue_id, &with_id, &queue.broker_name);
                match client.invoke(&queue.addr, header.into_v2_request(body.clone()), REQUEST_TIMEOUT).await {
                    Ok(response) if response.code == response_code::SUCCESS => {}
                    Ok(response) => {
                        if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::error!(code = response.code, remark = ?response.remark, "timer send refused");
                        }
                    }
                    Err(error) => {
                        if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::error!(%error, "timer send failed");
                        }
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    let schedule_secs = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    let scheduled = bench.count - failed;
    let schedule_rate = scheduled as f64 / schedule_secs;
    print_ignoring_closed_stdout(&format!(
        "scheduled {scheduled} timers ({failed} failed) in {schedule_secs:.2} s: {schedule_rate:.0} timers/s\n"
    ));
    if now_ms() >= due_ms {
        bail!("scheduling took past the due time; use a longer --due-in");
    }

    // Every timer in the wheel (none left in the timer topic), then the memory figures.
    let broker_addr = queues[0].addr.clone();
    let mut memory = None;
    loop {
        let behind = timer_offset_behind(&client, &broker_addr).await?;
        if behind == Some(0) || now_ms() >= due_ms - 500 {
            if let Some(pid) = bench.broker_pid {
                memory = memory_kib(pid);
            }
            let note =
                if behind == Some(0) { "all enqueued" } else { "NOT all enqueued before the due time" };
            if let Some((anon, rss)) = memory {
                print_ignoring_closed_stdout(&format!(
                    "broker memory with the timers pending ({note}): RssAnon {anon} kB, VmRSS {rss} kB\n"
                ));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delivery.
    let wait = u64::try_from(due_ms - now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deadline = Instant::now() + bench.delivery_limit;
    let mut first_ms = None;
    let mut count = 0;
    while Instant::now() < deadline {
        count = delivered(&client, &bench.topic, &queues).await?;
        if count > 0 && first_ms.is_none() {
            first_ms = Some(now_ms());
        }
        if count >= scheduled as i64 {
            break;
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let last_ms = now_ms();
    let first_ms = first_ms.unwrap_or(last_ms);
    let spread_secs = ((last_ms - first_ms) as f64 / 1000.0).max(0.001);
    let since_due_secs = ((last_ms - due_ms) as f64 / 1000.0).max(0.001);
    let delivery_rate = count as f64 / since_due_secs;
    print_ignoring_closed_stdout(&format!(
        "delivered {count} of {scheduled}: first {} ms after the due time, all {} ms after it; {delivery_rate:.0} \
         deliveries/s since the due time ({:.0}/s from first to last)\n",
        first_ms - due_ms,
        last_ms - due_ms,
        count as f64 / spread_secs,
    ));
    let json = serde_json::json!({
        "kind": "apogee-bench",
        "workload": "timer",
        "count": bench.count,
        "scheduled": scheduled,
        "failed": failed,
        "schedule_secs": schedule_secs,
        "schedule_per_sec": schedule_rate,
        "rss_anon_kb": memory.map(|(anon, _)| anon),
        "vm_rss_kb": memory.map(|(_, rss)| rss),
        "delivered": count,
        "first_delivery_after_due_ms": first_ms - due_ms,
        "last_delivery_after_due_ms": last_ms - due_ms,
        "deliveries_per_sec_since_due": delivery_rate,
    });
    print_ignoring_closed_stdout(&format!("{json}\n"));
    ensure!(count >= scheduled as i64, "only {count} of {scheduled} timers delivered within the limit");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory() {
        let (anon, rss) = memory_kib(std::process::id()).expect("/proc status");
        assert!(rss > 0 && anon <= rss, "{anon} {rss}");
    }
}
