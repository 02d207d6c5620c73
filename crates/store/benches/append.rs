//! Append throughput: 128 B and 1 KiB records, ASYNC_FLUSH and SYNC_FLUSH, 1, 8 and 64
//! concurrent appenders.
//!
//! Under ASYNC_FLUSH an appender thread keeps up to `ASYNC_WINDOW` appends in flight, the way
//! a broker serving pipelined sends does; under SYNC_FLUSH each appender waits for its
//! append's flush before the next (window 1), so N appenders are N synchronous producers and
//! the group commit can batch at most N appends per flush. `SyncFlush-pipelined` keeps
//! `ASYNC_WINDOW` appends in flight per appender under SYNC_FLUSH (producers sending
//! asynchronously), which lets one flush carry up to N × window appends.
//!
//! Run: `cargo bench -p apogee-store --bench append`

#[path = "support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_store::{FlushDiskType, MessageStore, PutRequest, PutStatus};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parking_lot::{Condvar, Mutex};

/// Most appends one appender keeps in flight under ASYNC_FLUSH.
const ASYNC_WINDOW: u64 = 1024;

/// Counts completions and lets a submitter wait for room in its window; completions only
/// take the lock when the submitter is actually waiting.
struct Window {
    done: AtomicU64,
    waiting: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Window {
    fn wait_until(&self, done_at_least: u64) {
        let mut guard = self.lock.lock();
        self.waiting.store(true, Ordering::SeqCst);
        while self.done.load(Ordering::SeqCst) < done_at_least {
            self.room.wait(&mut guard);
        }
        self.waiting.store(false, Ordering::SeqCst);
    }

    fn complete(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _guard = self.lock.lock();
            self.room.notify_one();
        }
    }
}

fn run_appenders(
    store: &Arc<MessageStore>,
    record: &[u8],
    appenders: usize,
    total: u64,
    window_size: u64,
) -> Duration {
    let per_appender = total / appenders as u64;
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|index| {
            let store = Arc::clone(store);
            let mut template = record.to_vec();
            // Each appender writes its own queue, as producers spread over queues.
            template[12..16].copy_from_slice(&(index as i32 % 8).to_be_bytes());
            std::thread::spawn(move || {
                let window = Arc::new(Window {
                    done: AtomicU64::new(0),
                    waiting: AtomicBool::new(false),
                    lock: Mutex::new(()),
                    room: Condvar::new(),
                });
                for sent in 0..per_appender {
                    if sent >= window_size {
                        window.wait_until(sent + 1 - window_size);
                    }
                    let window = Arc::clone(&window);
                    store.put(
                        PutRequest::new(template.clone()),
                        Box::new(move |result: apogee_store::PutResult| {
                            assert!(result.status == PutStatus::PutOk, "{:?}", result.status);
                            window.complete();
                        }),
                    );
                }
                window.wait_until(per_appender);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    started.elapsed()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    // (flush type, appends in flight per appender, label).
    let modes = [
        (FlushDiskType::AsyncFlush, ASYNC_WINDOW, "AsyncFlush"),
        (FlushDiskType::SyncFlush, 1, "SyncFlush"),
        (FlushDiskType::SyncFlush, ASYNC_WINDOW, "SyncFlush-pipelined"),
    ];
    for (flush, window, label) in modes {
        for size_bytes in [128usize, 1024] {
            for appenders in [1usize, 8, 64] {
                if window > 1 && flush == FlushDiskType::SyncFlush && (size_bytes, appenders) != (1024, 64) {
                    continue;
                }
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(MessageStore::open(support::config(dir.path(), flush)).unwrap());
                let record = support::record_of_size("BenchTopic", 0, size_bytes);
                let name = format!("{label}/{size_bytes}B");
                group.throughput(Throughput::Elements(1));
                group.bench_with_input(BenchmarkId::new(name, appenders), &appenders, |bench, &appenders| {
                    bench.iter_custom(|iterations| {
                        let total =
                            iterations.max(appenders as u64).div_ceil(appenders as u64) * appenders as u64;
                        let elapsed = run_appenders(&store, &record, appenders, total, window);
                        elapsed.mul_f64(iterations as f64 / total as f64)
                    });
                });
                let stats = store.stats();
                if stats.group_commit_flushes > 0 {
                    eprintln!(
                        "group commit: {} flushes, {:.1} appends per flush",
                        stats.group_commit_flushes,
                        stats.group_commit_appends as f64 / stats.group_commit_flushes as f64
                    );
                }
                store.shutdown();
            }
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
