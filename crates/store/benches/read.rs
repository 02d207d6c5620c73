//! Sequential read throughput of one queue: what a consumer catching up costs the store.
//!
//! Run: `cargo bench -p apogee-store --bench read`

#[path = "support.rs"]
mod support;

use std::time::Duration;

use apogee_store::{AcceptAll, FlushDiskType, GetMessageStatus, MessageStore, PutRequest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORDS: i64 = 1_000_000;
const BATCH: u32 = 32;

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(support::config(dir.path(), FlushDiskType::AsyncFlush)).unwrap();
    let record = support::record_of_size("ReadTopic", 0, 128);
    // Fill in batches of 64 records per append to keep the setup short.
    let batch: Vec<u8> = (0..64).flat_map(|_| record.iter().copied()).collect();
    for _ in 0..RECORDS / 64 {
        store.put_blocking(PutRequest::new(batch.clone()));
    }
    assert_eq!(store.max_offset("ReadTopic", 0), RECORDS);

    let mut group = c.benchmark_group("read");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential/128B/batch32", |bench| {
        let mut offset = 0i64;
        bench.iter_custom(|iterations| {
            let started = std::time::Instant::now();
            let mut read = 0u64;
            while read < iterations {
                if offset >= RECORDS {
                    offset = 0;
                }
                let result = store.get_messages("ReadTopic", 0, offset, BATCH, u64::MAX, &AcceptAll);
                match result.status {
                    GetMessageStatus::Found => read += result.messages.len() as u64,
                    status => assert!(matches!(status, GetMessageStatus::OffsetFoundNull), "{status:?}"),
                }
                offset = result.next_begin_offset;
            }
            started.elapsed().mul_f64(iterations as f64 / read as f64)
        });
    });
    group.finish();
    store.shutdown();
}

criterion_group!(benches, read);
criterion_main!(benches);
