//! Counting and timing: per-worker HdrHistograms merged at the end, a shared interval view
//! for the live progress line, errors by response code, and the final report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;

/// Highest latency recorded, in microseconds (an hour); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Records a worker keeps before merging into the shared interval histogram.
const MERGE_EVERY: u32 = 512;
/// Pause of a worker after a failed call, so a peer that refuses every call is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

fn histogram() -> Histogram<u64> {
    // Three significant digits over 1 µs ..= 1 h: a fixed, bounded allocation.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// What every worker reports into.
#[derive(Debug)]
pub struct Recorder {
    messages: AtomicU64,
    bytes: AtomicU64,
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
    /// Open loop: how late after its due time each request went out (the bench's own delay).
    sent_late: Mutex<Histogram<u64>>,
    /// Open loop: from going out to its response (the broker's and the network's share).
    round_trip: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// A worker's private view; merged into the [`Recorder`] as it goes and when dropped.
pub struct WorkerStats {
    recorder: Arc<Recorder>,
    local: Histogram<u64>,
    pending: Histogram<u64>,
    pending_count: u32,
    sent_late: Histogram<u64>,
    round_trip: Histogram<u64>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            interval: Mutex::new(histogram()),
            total: Mutex::new(histogram()),
            sent_late: Mutex::new(histogram()),
            round_trip: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
        })
    }

    /// A view for one worker.
    pub fn worker(self: &Arc<Self>) -> WorkerStats {
        WorkerStats {
            recorder: Arc::clone(self),
            local: histogram(),
            pending: histogram(),
            pending_count: 0,
            sent_late: histogram(),
            round_trip: histogram(),
        }
    }

    /// Counts messages that went through without a latency sample (consume).
    pub fn count(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one failure, labelled (a response code, `timeout`, ...).
    pub fn error(&self, label: impl Into<String>) {
        *self.errors.lock().entry(label.into()).or_insert(0) += 1;
    }

    /// Messages so far.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Runs a workload's measured phase: starts the clock and the progress line `label`,
    /// spawns the tasks `spawn` makes from the start and the deadline `duration` later, waits
    /// for all of them and gives the time they took.
    pub async fn measure<T: Send + 'static>(
        self: &Arc<Self>,
        label: &'static str,
        duration: Duration,
        quiet: bool,
        spawn: impl FnOnce(Instant, Instant) -> Vec<tokio::task::JoinHandle<T>>,
    ) -> Result<Duration, tokio::task::JoinError> {
        let started = Instant::now();
        let deadline = started + duration;
        let progress = self.spawn_progress(label, deadline, quiet);
        for task in spawn(started, deadline) {
            task.await?;
        }
        let elapsed = started.elapsed();
        progress.abort();
        Ok(elapsed)
    }

    /// Prints a progress line every second until `until` passes.
    pub fn spawn_progress(
        self: &Arc<Self>,
        label: &'static str,
        until: Instant,
        quiet: bool,
    ) -> tokio::task::JoinHandle<()> {
        let recorder = Arc::clone(self);
        tokio::spawn(async move {
            if quiet {
                return;
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let mut last_messages = 0;
            let mut last = Instant::now();
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let messages = recorder.messages();
                let elapsed = last.elapsed().as_secs_f64().max(1e-9);
                let interval = std::mem::replace(&mut *recorder.interval.lock(), histogram());
                let errors: u64 = recorder.errors.lock().values().sum();
                bar.set_message(format!(
                    "{label}: {:.0} msg/s  p50 {}  p99 {}  p99.9 {}  errors {errors}",
                    (messages - last_messages) as f64 / elapsed,
                    micros(interval.value_at_quantile(0.5)),
                    micros(interval.value_at_quantile(0.99)),
                    micros(interval.value_at_quantile(0.999)),
                ));
                bar.tick();
                last_messages = messages;
                last = Instant::now();
            }
            bar.finish_and_clear();
        })
    }

    /// Prints the summary and the JSON line; `elapsed` is the measured period.
    pub fn report(&self, workload: &str, parameters: serde_json::Value, elapsed: Duration) {
        let total = self.total.lock().clone();
        let sent_late = self.sent_late.lock().clone();
        let round_trip = self.round_trip.lock().clone();
        let messages = self.messages();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let errors = self.errors.lock().clone();
        let mut out = String::new();
        let _ = writeln!(out, "{workload}: {messages} messages in {seconds:.1} s");
        let _ = writeln!(
            out,
            "  throughput  {:.0} msg/s, {:.1} MB/s",
            messages as f64 / seconds,
            bytes as f64 / seconds / 1e6
        );
        // The whole latency, then an open loop's two parts: text label and JSON key prefix.
        let mut latencies = vec![("latency   ", "", &total)];
        if !sent_late.is_empty() {
            latencies.push(("sent late ", "sent_late_", &sent_late));
            latencies.push(("round trip", "round_trip_", &round_trip));
        }
        latencies.retain(|(_, _, histogram)| !histogram.is_empty());
        for (label, _, histogram) in &latencies {
            let figures: Vec<String> =
                latency_figures_ms(histogram).iter().map(|(name, ms)| format!("{name} {ms:.3} ms")).collect();
            let _ = writeln!(out, "  {label}  {}", figures.join("  "));
        }
        if !errors.is_empty() {
            let _ = writeln!(out, "  errors      {errors:?}");
        }
        let mut json = serde_json::json!({
            "kind": "apogee-bench",
            "workload": workload,
            "parameters": parameters,
            "seconds": seconds,
            "messages": messages,
            "msgs_per_s": messages as f64 / seconds,
            "mb_per_s": bytes as f64 / seconds / 1e6,
            "errors": errors,
        });
        for (_, prefix, histogram) in &latencies {
            for (name, ms) in latency_figures_ms(histogram) {
                json[format!("{prefix}{name}_ms")] = serde_json::json!(ms);
            }
        }
        let _ = writeln!(out, "{json}");
        print_ignoring_closed_stdout(&out);
    }
}

impl WorkerStats {
    /// One message (or request) done after `latency`, carrying `messages` messages of
    /// `bytes` bytes.
    pub fn record(&mut self, latency: Duration, messages: u64, bytes: u64) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let _ = self.local.record(micros);
        let _ = self.pending.record(micros);
        self.recorder.count(messages, bytes);
        self.pending_count += 1;
        if self.pending_count >= MERGE_EVERY {
            self.flush();
        }
    }

    /// Open loop: the two parts of a request's latency, how late it went out after its due
    /// time and how long its response took, so that a tail can be told apart (the bench's own
    /// delays against the broker's).
    pub fn record_phases(&mut self, sent_late: Duration, round_trip: Duration) {
        let _ = self.sent_late.record((sent_late.as_micros() as u64).clamp(1, MAX_LATENCY_US));
        let _ = self.round_trip.record((round_trip.as_micros() as u64).clamp(1, MAX_LATENCY_US));
    }

    /// Counts a failed call, labelled, then waits [`ERROR_PAUSE`]: what every workload does
    /// before trying again after a call failed or was refused.
    pub async fn error_and_pause(&self, label: impl Into<String>) {
        self.recorder.error(label);
        tokio::time::sleep(ERROR_PAUSE).await;
    }

    /// The shared recorder.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    fn flush(&mut self) {
        let _ = self.recorder.interval.lock().add(&self.pending);
        self.pending.reset();
        self.pending_count = 0;
    }
}

impl Drop for WorkerStats {
    fn drop(&mut self) {
        self.flush();
        let _ = self.recorder.total.lock().add(&self.local);
        let _ = self.recorder.sent_late.lock().add(&self.sent_late);
        let _ = self.recorder.round_trip.lock().add(&self.round_trip);
    }
}

/// Writes `text` to stdout. A reader that went away (`apogee bench ... | head`) is no reason to
/// fail or panic, as `println!` would.
pub fn print_ignoring_closed_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// p50, p90, p99, p99.9 and max of `histogram`, in milliseconds: what the report gives of
/// every latency, in text and in JSON.
fn latency_figures_ms(histogram: &Histogram<u64>) -> Vec<(&'static str, f64)> {
    let ms = |micros: u64| micros as f64 / 1000.0;
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)]
        .into_iter()
        .map(|(name, quantile)| (name, ms(histogram.value_at_quantile(quantile))))
        .chain([("max", ms(histogram.max()))])
        .collect()
}

fn micros(value: u64) -> String {
    if value >= 1000 {
        format!("{:.2} ms", value as f64 / 1000.0)
    } else {
        format!("{value} µs")
    }
}
