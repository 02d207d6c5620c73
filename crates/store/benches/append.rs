//! Append throughput: 128 B and 1 KiB records, ASYNC_FLUSH and SYNC_FLUSH, 1, 8 and 64
//! concurrent appenders. An appender keeps up to `WINDOW` appends in flight (the way a
//! broker connection does), so one appender thread is not limited to one round trip at a time.
//!
//! Run: `cargo bench -p apogee-store --bench append`

#[path = "support.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_store::{FlushDiskType, MessageStore, PutRequest, PutStatus};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parking_lot::{Condvar, Mutex};

/// Most appends one appender keeps in flight.
const WINDOW: u64 = 1024;

/// Counts completions and lets a submitter wait for room in its window.
struct Window {
    done: AtomicU64,
    lock: Mutex<()>,
    room: Condvar,
}

fn run_appenders(store: &Arc<MessageStore>, record: &[u8], appenders: usize, total: u64) -> Duration {
    let per_appender = total / appenders as u64;
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|index| {
            let store = Arc::clone(store);
            let mut template = record.to_vec();
            // Each appender writes its own queue, as producers spread over queues.
            template[12..16].copy_from_slice(&(index as i32 % 8).to_be_bytes());
            std::thread::spawn(move || {
                let window =
                    Arc::new(Window { done: AtomicU64::new(0), lock: Mutex::new(()), room: Condvar::new() });
                for sent in 0..per_appender {
                    if sent >= WINDOW {
                        let mut guard = window.lock.lock();
                        while sent - window.done.load(Ordering::Acquire) >= WINDOW {
                            window.room.wait(&mut guard);
                        }
                    }
                    let window = Arc::clone(&window);
                    store.put(
                        PutRequest::new(template.clone()),
                        Box::new(move |result| {
                            assert!(result.status == PutStatus::PutOk, "{:?}", result.status);
                            window.done.fetch_add(1, Ordering::AcqRel);
                            let _guard = window.lock.lock();
                            window.room.notify_one();
                        }),
                    );
                }
                let mut guard = window.lock.lock();
                while window.done.load(Ordering::Acquire) < per_appender {
                    window.room.wait(&mut guard);
                }
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
    for flush in [FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush] {
        for size_bytes in [128usize, 1024] {
            for appenders in [1usize, 8, 64] {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(MessageStore::open(support::config(dir.path(), flush)).unwrap());
                let record = support::record_of_size("BenchTopic", 0, size_bytes);
                let name = format!("{flush:?}/{size_bytes}B");
                group.throughput(Throughput::Elements(1));
                group.bench_with_input(BenchmarkId::new(name, appenders), &appenders, |bench, &appenders| {
                    bench.iter_custom(|iterations| {
                        let total =
                            iterations.max(appenders as u64).div_ceil(appenders as u64) * appenders as u64;
                        let elapsed = run_appenders(&store, &record, appenders, total);
                        elapsed.mul_f64(iterations as f64 / total as f64)
                    });
                });
                store.shutdown();
            }
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
