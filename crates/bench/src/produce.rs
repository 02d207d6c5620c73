//! `apogee bench produce`: N connections × M requests in flight, closed loop or at a fixed
//! rate.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_remoting::frame::RemotingCodec;
use apogee_remoting::response_code;
use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::precise_timer::PreciseTimer;
use super::send_frame::{SendFrame, SendShape, FIRST_OPAQUE, OPAQUE_SPAN};
use super::setup::{self, Queue};
use super::stats::{Recorder, WorkerStats};
use super::{SendOptions, Target};

/// Timeout of one send request.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The queues grouped by broker address, in order of first appearance. Connection `k` sends to
/// the queues of broker `k mod brokers`, so every broker gets connections when there are at
/// least as many connections as brokers.
fn by_broker(queues: &[Queue]) -> Vec<Vec<Queue>> {
    let mut brokers: Vec<Vec<Queue>> = Vec::new();
    for queue in queues {
        match brokers.iter_mut().find(|broker| broker[0].addr == queue.addr) {
            Some(broker) => broker.push(queue.clone()),
            None => brokers.push(vec![queue.clone()]),
        }
    }
    brokers
}

/// The next due times of an open loop; never resolves for a closed loop.
async fn next_dues(dues: &mut Option<Dues>) -> Option<Vec<Instant>> {
    match dues {
        Some(dues) => dues.receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the produce workload and prints the report.
pub async fn run(target: Target, send: SendOptions) -> Result<()> {
    warm_up(&target, &send).await?;
    let recorder = Recorder::new();
    let elapsed = drive(&target, &send, &recorder, false).await?;
    recorder.report("produce", parameters(&target, &send), elapsed);
    Ok(())
}

/// Sends for `send.load.warmup` with the same settings and forgets the figures.
pub async fn warm_up(target: &Target, send: &SendOptions) -> Result<()> {
    if send.load.warmup.is_zero() {
        return Ok(());
    }
    let warmup = Target { duration: send.load.warmup, quiet: true, ..target.clone() };
    drive(&warmup, send, &Recorder::new(), false).await?;
    Ok(())
}

/// Description of the run for the JSON line.
pub fn parameters(target: &Target, send: &SendOptions) -> serde_json::Value {
    serde_json::json!({
        "topic": target.topic, "group": send.group, "size": send.load.size, "connections": send.load.connections,
        "in_flight": send.load.in_flight, "batch": send.load.batch, "rate": send.rate,
        "warmup_s": send.load.warmup.as_secs_f64(),
        "duration_s": target.duration.as_secs_f64(),
    })
}

/// Sends for `target.duration`; returns the measured time. `stamp` puts the send time (µs
/// since the epoch) in the first 8 body bytes (the e2e workload).
pub async fn drive(
    target: &Target,
    send: &SendOptions,
    recorder: &Arc<Recorder>,
    stamp: bool,
) -> Result<Duration> {
    let setup_client = setup::admin_client();
    let queues = setup::queues_of(&setup_client, &target.namesrv, &target.topic, target.queues).await?;
    let mut workers = Vec::with_capacity(send.load.connections);
    let brokers = by_broker(&queues);
    for connection in 0..send.load.connections {
        let queues = &brokers[connection % brokers.len()];
        let ids = UniqIdGenerator::global();
        let frames = queues
            .iter()
            .map(|queue| {
                let shape = SendShape {
                    group: &send.group,
                    topic: &target.topic,
                    broker_name: &queue.broker_name,
                    queue_id: queue.queue_id,
                    size: send.load.size,
                    batch: send.load.batch,
                    stamp,
                };
                SendFrame::new(&shape, ids)
            })
            .collect::<Result<Vec<_>>>()?;
        // Connected before the clock starts: setting up is not part of what is measured.
        let addr = &queues[0].addr;
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        // Requests go out as soon as they are made, as a client's do.
        stream.set_nodelay(true)?;
        let worker = Worker {
            frames,
            send: send.clone(),
            stats: recorder.worker(),
            ids,
            next_frame: connection / brokers.len() * send.load.in_flight,
        };
        workers.push((worker, stream));
    }
    let elapsed = recorder
        .measure("produce", target.duration, target.quiet, |started, deadline| {
            let mut dues = Pacer::start(
                started,
                deadline,
                send.rate,
                send.load.batch,
                send.load.connections,
                send.load.in_flight,
            );
            workers
                .into_iter()
                .map(|(worker, stream)| tokio::spawn(worker.run(stream, deadline, dues.pop())))
                .collect()
        })
        .await?;
    setup_client.shutdown().await;
    Ok(elapsed)
}

/// Open loop: request k is due at `started + k × batch / rate`. A task releases the due times
/// once per [`PACER_TICK_US`] (on a [`PreciseTimer`]: tokio timers tick in milliseconds and
/// would add their own lateness to every latency measured from the due time): all that fell
/// due since, to the connection with the fewest requests waiting (sent or not), as a client
/// with a pool of connections would pick a free one. The connection writes the tick's requests
/// together and the broker reads them together, as a client batching its sends would; latency
/// still counts from each request's due time, so the release's own lateness (under one tick)
/// is in the figures. (Giving the ticks to the connections in turn instead left requests
/// waiting behind a connection whose window was full while the others had room: at 144 K/s,
/// a tick every 0.8 ms of 29 requests against a window of 32.)
struct Pacer;

/// Time between two releases of the pacer. Waking once per due request instead (every 15 µs
/// at 67 K/s) cost the bench a fifth of a core in wake-ups, taken from the broker beside it.
const PACER_TICK_US: u64 = 200;

/// Due times for one connection, in order, and how many requests it has waiting, for the
/// pacer to choose the connection of the next release.
struct Dues {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Vec<Instant>>,
    /// Requests released to the connection and not yet answered or timed out, wherever they
    /// are (in the channel, the connection's backlog or on the wire): the pacer adds what it
    /// releases, the connection takes off what completes.
    waiting: Arc<AtomicUsize>,
}

impl Dues {
    /// `count` requests of an open loop completed; nothing to do for a closed loop.
    fn completed(dues: &Option<Dues>, count: usize) {
        if let Some(dues) = dues.as_ref().filter(|_| count > 0) {
            dues.waiting.fetch_sub(count, Ordering::Relaxed);
        }
    }
}

impl Pacer {
    /// One receiver of due times per connection; none at all for a closed loop (`rate` 0).
    fn start(
        started: Instant,
        deadline: Instant,
        rate: u64,
        batch: usize,
        connections: usize,
        window: usize,
    ) -> Vec<Dues> {
        if rate == 0 || connections == 0 {
            return Vec::new();
        }
        let mut senders = Vec::with_capacity(connections);
        let mut receivers = Vec::with_capacity(connections);
        for _ in 0..connections {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let waiting = Arc::new(AtomicUsize::new(0));
            senders.push((sender, Arc::clone(&waiting)));
            receivers.push(Dues { receiver, waiting });
        }
        tokio::spawn(async move {
            let timer = match PreciseTimer::new() {
                Ok(timer) => timer,
                Err(error) => {
                    // Dropping the senders ends every connection's open loop at once.
                    tracing::error!(%error, "no timer for the pacer");
                    return;
                }
            };
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
                let waiting: Vec<usize> =
                    senders.iter().map(|(_, waiting)| waiting.load(Ordering::Relaxed)).collect();
                let mut released = released.as_slice();
                for (connection, count) in shares(&waiting, window, released.len(), turn) {
                    let (share, rest) = released.split_at(count);
                    released = rest;
                    let (sender, waiting) = &senders[connection];
                    waiting.fetch_add(count, Ordering::Relaxed);
                    if sender.send(share.to_vec()).is_err() {
                        return;
                    }
                    turn = connection;
                }
                if due >= deadline {
                    return;
                }
                // Sleep to the next tick, or to the next due time if that is later.
                while next_tick <= now {
                    next_tick += tick;
                }
                if let Err(error) = timer.sleep_until(due.max(next_tick)).await {
                    tracing::error!(%error, "the pacer's timer failed");
                    return;
                }
            }
        });
        receivers
    }
}

/// How to deal `count` due requests to connections with `waiting` requests each (sent or
/// not) and windows of `window`: `(connection, how many)` in dealing order. The least waiting
/// connection takes what fits its window, then the next least waiting, and so on (ties go to
/// the first after `turn`); what fits no window is spread evenly. A tick's few requests go to one
/// connection, so they cost the bench one wake and one write; a release the bench was late with
/// (a stall of its thread) is not piled onto one connection, which would then take its whole
/// window's round trips to drain it while the others idle.
fn shares(waiting: &[usize], window: usize, count: usize, turn: usize) -> Vec<(usize, usize)> {
    let connections = waiting.len();
    let mut order: Vec<usize> = (1..=connections).map(|step| (turn + step) % connections).collect();
    // Stable: among equals, the order after `turn` stays.
    order.sort_by_key(|&connection| waiting[connection]);
    let mut dealt = Vec::new();
    let mut left = count;
    for &connection in &order {
        let fits = window.saturating_sub(waiting[connection]).min(left);
        if fits > 0 {
            dealt.push((connection, fits));
            left -= fits;
        }
    }
    for (position, &connection) in order.iter().enumerate() {
        // An even share of what is left, the first ones taking one more when it does not divide.
        let even = left / connections + usize::from(position < left % connections);
        if even > 0 {
            dealt.push((connection, even));
        }
    }
    dealt
}

/// One connection's sender: keeps up to `in_flight` requests outstanding on its own TCP
/// connection, sending whenever there is room (closed loop) or a request is due (open loop).
/// It speaks the protocol itself, in one task: requests are [`SendFrame`]s written straight
/// into the socket buffer, and responses are matched to requests by opaque. (Through
/// [`RemotingClient`], each request cost the bench a future, a oneshot, a table entry and
/// wakes of the connection's reader and writer tasks: 3.3 µs of CPU a message, which the
/// broker beside it lost.)
struct Worker {
    frames: Vec<SendFrame>,
    send: SendOptions,
    stats: WorkerStats,
    ids: &'static UniqIdGenerator,
    next_frame: usize,
}

/// Largest request bytes written to the socket in one go; more wait for the next turn.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;
/// Room kept free in the read buffer before each read.
const READ_RESERVE_BYTES: usize = 64 * 1024;
/// How often a connection with nothing to read checks its requests for timeouts.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(1);

impl Worker {
    async fn run(mut self, stream: TcpStream, deadline: Instant, mut dues: Option<Dues>) {
        if let Err(error) = self.drive(&stream, deadline, &mut dues).await {
            self.stats.recorder().error(error);
        }
    }

    /// The connection's loop. An error (the socket failed, the broker closed it or sent a bad
    /// frame) ends the connection; the caller records it, and what was outstanding is not
    /// counted as sent.
    async fn drive(
        &mut self,
        stream: &TcpStream,
        deadline: Instant,
        dues: &mut Option<Dues>,
    ) -> Result<(), String> {
        let open_loop = dues.is_some();
        let mut outstanding = Outstanding::default();
        let mut backlog: VecDeque<Instant> = VecDeque::new();
        let mut paced_out = !open_loop;
        let mut unsent: Vec<u8> = Vec::new();
        let mut unsent_from = 0usize;
        let mut received = BytesMut::with_capacity(READ_RESERVE_BYTES);
        let mut codec = RemotingCodec::default();
        let watchdog = tokio::time::sleep(WATCHDOG_PERIOD);
        tokio::pin!(watchdog);
        loop {
            let now = Instant::now();
            // Start what may start: everything due, or (closed loop) until the window is full.
            while outstanding.len() < self.send.load.in_flight && unsent.len() < WRITE_CHUNK_BYTES {
                let due = if open_loop {
                    match backlog.pop_front() {
                        Some(due) => due,
                        None => break,
                    }
                } else if now < deadline {
                    now
                } else {
                    break;
                };
                let opaque = outstanding.push(Pending { due, sent: now });
                self.write_request(&mut unsent, opaque);
            }
            if unsent_from < unsent.len() {
                match stream.try_write(&unsent[unsent_from..]) {
                    Ok(written) => unsent_from += written,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(format!("writing: {error}")),
                }
                if unsent_from == unsent.len() {
                    unsent.clear();
                    unsent_from = 0;
                }
            }
            let expired = outstanding.expire(now, SEND_TIMEOUT);
            for _ in 0..expired {
                self.stats.recorder().error("timeout");
            }
            Dues::completed(dues, expired);
            if outstanding.is_empty() && backlog.is_empty() && (paced_out || now >= deadline) {
                return Ok(());
            }
            tokio::select! {
                ready = stream.readable() => {
                    ready.map_err(|error| format!("reading: {error}"))?;
                    let answered =
                        self.read_responses(stream, &mut received, &mut codec, &mut outstanding, open_loop)?;
                    Dues::completed(dues, answered);
                }
                ready = stream.writable(), if unsent_from < unsent.len() => {
                    ready.map_err(|error| format!("writing: {error}"))?;
                }
                released = next_dues(dues), if !paced_out => match released {
                    Some(released) => backlog.extend(released),
                    None => paced_out = true,
                },
                () = &mut watchdog => watchdog.as_mut().reset(tokio::time::Instant::now() + WATCHDOG_PERIOD),
            }
        }
    }

    /// Appends the next request, to the next queue in turn.
    fn write_request(&mut self, out: &mut Vec<u8>, opaque: i32) {
        let frame = &self.frames[self.next_frame % self.frames.len()];
        self.next_frame = self.next_frame.wrapping_add(1);
        let stamp_us = if frame.is_stamped() { apogee_common::time::now_us() } else { 0 };
        frame.write(out, opaque, apogee_common::time::now_ms(), self.ids, stamp_us);
    }

    /// Reads what the socket has and records every whole response in it; returns how many
    /// requests those answered.
    fn read_responses(
        &mut self,
        stream: &TcpStream,
        received: &mut BytesMut,
        codec: &mut RemotingCodec,
        outstanding: &mut Outstanding,
        open_loop: bool,
    ) -> Result<usize, String> {
        loop {
            received.reserve(READ_RESERVE_BYTES);
            match stream.try_read_buf(received) {
                Ok(0) => {
                    return Err(format!(
                        "the broker closed the connection with {} requests outstanding",
                        outstanding.len()
                    ))
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(format!("reading: {error}")),
            }
        }
        let mut answered = 0;
        while let Some(command) =
            codec.decode(received).map_err(|error| format!("bad frame from the broker: {error}"))?
        {
            if !command.is_response() {
                continue; // a request from the broker (none is expected of a producer that only sends)
            }
            if let Some(pending) = outstanding.complete(command.opaque) {
                self.record(pending, command.code, open_loop);
                answered += 1;
            }
        }
        Ok(answered)
    }

    /// Latency counts from when the request was due (open loop) or sent (closed loop).
    fn record(&mut self, Pending { due, sent }: Pending, code: i32, open_loop: bool) {
        let latency = due.elapsed();
        if open_loop {
            self.stats.record_phases(sent.saturating_duration_since(due), sent.elapsed());
        }
        if code == response_code::SUCCESS {
            let messages = self.send.load.batch as u64;
            self.stats.record(latency, messages, messages * self.send.load.size as u64)
        } else {
            self.stats.recorder().error(format!("code {code}"))
        }
    }
}

/// A request awaiting its response: when it was due (where its latency starts counting) and
/// when it actually went out.
#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Instant,
    sent: Instant,
}

/// A connection's requests awaiting their responses, by opaque. Opaques are given out in
/// order, so the requests are a queue from the oldest unanswered one, and an answer finds its
/// request by its distance from the front.
#[derive(Debug, Default)]
struct Outstanding {
    /// Sequence number of `slots[0]`; a request's opaque is derived from its sequence number.
    front_sequence: u64,
    slots: VecDeque<Option<Pending>>,
    live: usize,
}

impl Outstanding {
    fn len(&self) -> usize {
        self.live
    }

    fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds a request; returns its opaque.
    fn push(&mut self, pending: Pending) -> i32 {
        let sequence = self.front_sequence + self.slots.len() as u64;
        self.slots.push_back(Some(pending));
        self.live += 1;
        // Bounded by OPAQUE_SPAN (10^9), so the sum stays below 2^31.
        FIRST_OPAQUE + (sequence % OPAQUE_SPAN) as i32
    }

    /// The request answered by `opaque`, unless it is unknown or already answered.
    fn complete(&mut self, opaque: i32) -> Option<Pending> {
        let answered =
            u64::try_from(opaque.checked_sub(FIRST_OPAQUE)?).ok().filter(|at| *at < OPAQUE_SPAN)?;
        let distance = (answered + OPAQUE_SPAN - self.front_sequence % OPAQUE_SPAN) % OPAQUE_SPAN;
        let pending = self.slots.get_mut(usize::try_from(distance).ok()?)?.take()?;
        self.live -= 1;
        self.drop_answered_front();
        Some(pending)
    }

    /// Takes out every request sent more than `timeout` before `now`; returns how many.
    fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let mut expired = 0;
        while let Some(Some(pending)) = self.slots.front() {
            if now.saturating_duration_since(pending.sent) < timeout {
                break;
            }
            expired += 1;
            self.slots[0] = None;
            self.live -= 1;
            self.drop_answered_front();
        }
        expired
    }

    fn drop_answered_front(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.front_sequence += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        let now = Instant::now();
        Pending { due: now, sent: now }
    }

    #[test]
    fn answers_in_any_order_find_their_requests_once() {
        let mut outstanding = Outstanding::default();
        let opaques: Vec<i32> = (0..5).map(|_| outstanding.push(pending())).collect();
        assert_eq!(opaques, (0..5).map(|n| FIRST_OPAQUE + n).collect::<Vec<_>>());
        assert!(outstanding.complete(opaques[3]).is_some());
        assert!(outstanding.complete(opaques[3]).is_none(), "answered twice");
        assert!(outstanding.complete(opaques[0]).is_some());
        assert!(outstanding.complete(FIRST_OPAQUE - 1).is_none(), "never given out");
        assert!(outstanding.complete(opaques[4] + 1).is_none(), "not yet given out");
        assert_eq!(outstanding.len(), 3);
        for opaque in [opaques[1], opaques[2], opaques[4]] {
            assert!(outstanding.complete(opaque).is_some());
        }
        assert!(outstanding.is_empty());
        assert!(outstanding.slots.is_empty(), "answered slots are dropped");
    }

    #[test]
    fn a_tick_goes_to_the_least_waiting_connection_and_a_late_release_is_spread() {
        // A tick's few requests: all to the least waiting connection.
        assert_eq!(shares(&[10, 3, 7], 32, 20, 0), vec![(1, 20)]);
        // Ties go to the first after the last chosen.
        assert_eq!(shares(&[0, 0, 0], 32, 5, 1), vec![(2, 5)]);
        // More than fits one window: filled least waiting first.
        assert_eq!(shares(&[30, 0, 20], 32, 46, 0), vec![(1, 32), (2, 12), (0, 2)]);
        // Then what fits no window is spread evenly, least waiting first.
        assert_eq!(shares(&[30, 0, 20], 32, 50, 0), vec![(1, 32), (2, 12), (0, 2), (1, 2), (2, 1), (0, 1)]);
        // More than fits every window: the rest is spread evenly.
        let dealt = shares(&[32, 32, 32, 32], 32, 10, 3);
        assert_eq!(dealt, vec![(0, 3), (1, 3), (2, 2), (3, 2)]);
        for (waiting, count) in [(vec![5, 40, 0], 100), (vec![0], 7), (vec![31, 31], 3)] {
            let dealt = shares(&waiting, 32, count, 0);
            assert_eq!(dealt.iter().map(|(_, n)| n).sum::<usize>(), count, "{waiting:?} {count}");
        }
    }

    #[test]
    fn opaques_wrap_within_ten_digits() {
        let mut outstanding = Outstanding { front_sequence: OPAQUE_SPAN - 1, ..Outstanding::default() };
        let last = outstanding.push(pending());
        let wrapped = outstanding.push(pending());
        assert_eq!(last, FIRST_OPAQUE + (OPAQUE_SPAN - 1) as i32);
        assert_eq!(wrapped, FIRST_OPAQUE);
        assert!(outstanding.complete(wrapped).is_some());
        assert!(outstanding.complete(last).is_some());
        assert!(outstanding.is_empty());
    }

    #[test]
    fn requests_past_the_timeout_expire_oldest_first() {
        let mut outstanding = Outstanding::default();
        let old = Instant::now();
        let first = outstanding.push(Pending { due: old, sent: old });
        let _second = outstanding.push(Pending { due: old, sent: old });
        let recent = old + Duration::from_secs(5);
        let third = outstanding.push(Pending { due: recent, sent: recent });
        assert!(outstanding.complete(first).is_some());
        let expired = outstanding.expire(old + Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(expired, 1, "only the second is 10 s old");
        assert!(outstanding.complete(third).is_some());
        assert!(outstanding.is_empty());
    }
}
