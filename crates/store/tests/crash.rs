//! SIGKILL safety: a child process appends under SYNC_FLUSH and reports every acknowledged
//! append; the parent kills it at a random moment, reopens the store (crash recovery) and
//! checks that every acknowledged append is there, intact and in order, and that the index
//! finds appends of that run by key. Twenty kills, each after at least ten acknowledgements.
//!
//! The child is this test binary itself, run with the ignored `crash_child` test selected.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_store::{FlushDiskType, PutRequest, PutStatus, StoreConfig};
use common::{read_all, record};

/// Kills per run; `APOGEE_CRASH_KILLS` raises it for a soak.
const KILLS: u64 = 20;
const TOPIC: &str = "CrashTopic";
const QUEUES: i32 = 4;
/// Acknowledged appends every run must report before it is killed.
const MIN_ACKS_BEFORE_KILL: usize = 10;
/// Longest to wait for them (the child's start and first group commits).
const FIRST_ACKS_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a child may run if nobody kills it.
const CHILD_MAX_RUN: Duration = Duration::from_secs(60);

fn config(root: &std::path::Path) -> StoreConfig {
    let mut config = common::small_config(root);
    config.flush_disk_type = FlushDiskType::SyncFlush;
    config.mapped_file_size_commit_log = 256 * 1024;
    config
}

/// The child: appends from four threads and prints `ack <sequence>` for each acknowledged
/// append, until killed.
#[test]
#[ignore = "run by sigkill_never_loses_an_acknowledged_append as its child process"]
fn crash_child() {
    let Ok(root) = std::env::var("APOGEE_CRASH_DIR") else { return };
    let base: u64 = std::env::var("APOGEE_CRASH_BASE").unwrap().parse().unwrap();
    let store = Arc::new(common::open_store(config(root.as_ref())).unwrap());
    let next = Arc::new(AtomicU64::new(base));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..QUEUES)
        .map(|queue_id| {
            let (store, next, stop) = (Arc::clone(&store), Arc::clone(&next), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && started.elapsed() < CHILD_MAX_RUN {
                    let sequence = next.fetch_add(1, Ordering::Relaxed);
                    let body = format!("seq-{sequence}-{}", "p".repeat((sequence % 300) as usize));
                    let result = store.put_blocking(PutRequest::new(record(
                        TOPIC,
                        queue_id,
                        body.as_bytes(),
                        None,
                        Some(&key_of(sequence)),
                    )));
                    if result.status == PutStatus::PutOk {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {sequence}").unwrap();
                        out.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// The `KEYS` of the append numbered `sequence`.
fn key_of(sequence: u64) -> String {
    format!("seq-{sequence}")
}

/// Every sequence number in the store, after checking that the index finds each of
/// `by_key` exactly once.
fn sequences_in_store(root: &std::path::Path, by_key: &[u64]) -> HashSet<u64> {
    let store = common::open_store(config(root)).unwrap();
    for &sequence in by_key {
        let found = store.query_by_key(TOPIC, &key_of(sequence), 32, 0, i64::MAX).messages.len();
        assert_eq!(found, 1, "the index finds {} once after recovery", key_of(sequence));
    }
    let mut found = HashSet::new();
    for queue_id in 0..QUEUES {
        for (n, message) in read_all(&store, TOPIC, queue_id).iter().enumerate() {
            assert_eq!(message.queue_offset, n as i64, "queue offsets are dense after recovery");
            let body = std::str::from_utf8(&message.message.body).unwrap();
            let sequence: u64 =
                body.strip_prefix("seq-").unwrap().split('-').next().unwrap().parse().unwrap();
            assert!(found.insert(sequence), "sequence {sequence} stored twice");
        }
    }
    store.shutdown();
    found
}

#[test]
fn sigkill_never_loses_an_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = HashSet::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let kills = std::env::var("APOGEE_CRASH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(KILLS);
    for kill in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("APOGEE_CRASH_DIR", dir.path())
            .env("APOGEE_CRASH_BASE", (kill * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ack_sender, ack_receiver) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(sequence) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                    if ack_sender.send(sequence).is_err() {
                        break;
                    }
                }
            }
        });
        // A kill before anything was acknowledged would check nothing: wait for the first
        // acknowledgements, then kill somewhere in the next 350 ms (xorshift, reproducible).
        let mut acks = Vec::new();
        let first_acks_deadline = Instant::now() + FIRST_ACKS_TIMEOUT;
        while acks.len() < MIN_ACKS_BEFORE_KILL && Instant::now() < first_acks_deadline {
            if let Ok(sequence) = ack_receiver.recv_timeout(Duration::from_millis(100)) {
                acks.push(sequence);
            }
        }
        assert!(
            acks.len() >= MIN_ACKS_BEFORE_KILL,
            "kill {kill}: the child acknowledged only {} appends in {FIRST_ACKS_TIMEOUT:?}",
            acks.len()
        );
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 350));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acks.extend(ack_receiver.try_iter());
        acknowledged.extend(acks.iter().copied());

        // The run's first and last acknowledged appends, and every 50th between.
        let mut by_key: Vec<u64> = acks.iter().copied().step_by(50).collect();
        by_key.extend(acks.last().copied());
        let stored = sequences_in_store(dir.path(), &by_key);
        let lost: Vec<_> =
            acknowledged.iter().filter(|sequence| !stored.contains(sequence)).take(5).collect();
        assert!(lost.is_empty(), "kill {kill}: acknowledged appends lost, e.g. {lost:?}");
        println!("kill {kill}: {} acknowledged this run, {} stored in all", acks.len(), stored.len());
    }
}
