//! Throughput of the index at the default geometry (5 M slots, 20 M entries per file): how fast
//! the dispatcher can index messages and how fast broker threads can look keys up.

use std::hint::black_box;
use std::time::Duration;

use apogee_store::index::{IndexConfig, IndexService};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Distinct unique keys cycled through by the benchmarks.
const KEY_POOL: usize = 1 << 20;
/// Messages indexed before the query benchmarks run.
const PRELOADED_MESSAGES: usize = 1_000_000;
/// Store-time spacing between consecutive messages, in ms.
const MESSAGE_SPACING_MS: i64 = 1;
const T0: i64 = 1_700_000_000_000;
const TOPIC: &str = "BenchTopic";

fn uniq_keys() -> Vec<String> {
    (0..KEY_POOL).map(|i| format!("7F0000010001{i:020X}")).collect()
}

fn business_keys() -> Vec<String> {
    (0..KEY_POOL).map(|i| format!("order-{i}")).collect()
}

fn build_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = IndexService::open(dir.path(), IndexConfig::default()).expect("open");
    let (uniq, keys) = (uniq_keys(), business_keys());
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(1));
    let mut next = 0i64;
    // Two keys per message (UNIQ_KEY + one business key), as a typical producer sends.
    group.bench_function("build_index (uniq + 1 key per message)", |b| {
        b.iter(|| {
            let slot = next as usize % KEY_POOL;
            service
                .build_index(TOPIC, Some(&keys[slot]), Some(&uniq[slot]), next * 300, T0 + next, 0)
                .expect("build_index");
            next += 1;
        })
    });
    group.finish();
    service.shutdown().expect("shutdown");
}

fn query(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = IndexService::open(dir.path(), IndexConfig::default()).expect("open");
    let (uniq, keys) = (uniq_keys(), business_keys());
    for i in 0..PRELOADED_MESSAGES {
        // Every 1000th message also carries a hot key, so one lookup finds many candidates.
        let key =
            if i % 1000 == 0 { format!("{} hot", keys[i % KEY_POOL]) } else { keys[i % KEY_POOL].clone() };
        let at = i as i64;
        service
            .build_index(
                TOPIC,
                Some(&key),
                Some(&uniq[i % KEY_POOL]),
                at * 300,
                T0 + at * MESSAGE_SPACING_MS,
                0,
            )
            .expect("build_index");
    }
    let end = T0 + PRELOADED_MESSAGES as i64 * MESSAGE_SPACING_MS;
    assert_eq!(service.query(TOPIC, "hot", 64, T0, end).phy_offsets.len(), 64);
    assert_eq!(service.query(TOPIC, &uniq[12_345], 64, T0, end).phy_offsets, vec![12_345 * 300]);
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("query unique key (1 hit)", |b| {
        b.iter(|| {
            next = (next + 7919) % PRELOADED_MESSAGES;
            let found = service.query(TOPIC, &uniq[next % KEY_POOL], 64, T0, end);
            black_box(found.phy_offsets.len())
        })
    });
    group.bench_function("query hot key (64 hits)", |b| {
        b.iter(|| black_box(service.query(TOPIC, "hot", 64, T0, end).phy_offsets.len()))
    });
    group.bench_function("query missing key", |b| {
        b.iter(|| black_box(service.query(TOPIC, "no-such-key", 64, T0, end).phy_offsets.len()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = build_index, query
}
criterion_main!(benches);
