//! Master/slave replication with the real binaries: a NameServer, a master and a slave of one
//! broker group, producers sending while the master is killed with SIGKILL, and a read-back
//! from the slave alone.
//!
//! - SYNC_MASTER: every acknowledged (SEND_OK) message must be on the slave, at the queue
//!   and offset its acknowledgement named, once.
//! - ASYNC_MASTER: what the slave lacks of the acknowledged messages is the loss window; it is
//!   measured and printed, and what the slave has must still be whole and in order.
//!
//! The defaults keep each test to seconds for CI. `APOGEE_HA_CYCLES` runs that many kill and
//! restart cycles (the soak outside CI, `scripts/ha-soak.sh`); every cycle checks its own
//! acknowledgements. Each cycle prints one `ha-cycle` JSON line of figures.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_client::consumer::lite_pull::ConsumeFromWhere;
use apogee_client::producer::SendStatus;
use apogee_client::{LitePullConsumer, Message, Producer};
use apogee_testkit::netns::{self, Link, Netns};
use apogee_testkit::volume::SmallVolume;
use apogee_testkit::ApogeeProcess;
use parking_lot::Mutex;

const TOPIC: &str = "HaTopic";
/// Concurrent senders.
const SENDERS: usize = 16;
/// How long producers run before the kill.
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1_500);
/// How long producers go on after the kill (their sends fail; none may count).
const LOAD_AFTER_KILL: Duration = Duration::from_millis(500);
/// Longest the read-back may run.
const READ_LIMIT: Duration = Duration::from_secs(60);
/// Longest the producers may take to fill the slave's small disk.
const SLAVE_DISK_FILL_LIMIT: Duration = Duration::from_secs(90);
/// Disk use at which the slave's guard is about to refuse (the reserve for its next files
/// makes it refuse somewhat below `diskSpaceWarningLevelRatio`).
const SLAVE_DISK_FULL_PERCENT: u32 = 80;
/// Longest the slave may take to connect and confirm a first send.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_apogee")
}

/// A broker group: its NameServer, master and slave, over config files in `dir`.
struct Group {
    namesrv: ApogeeProcess,
    master: ApogeeProcess,
    slave: ApogeeProcess,
    /// Bytes every message body has at least.
    body_floor: u64,
    _dir: tempfile::TempDir,
}

/// Where a group's processes listen: loopback for most tests, the two ends of a link
/// between network namespaces for a partition.
struct Sites<'a> {
    /// Address of the NameServer and the master.
    master_ip: &'a str,
    /// Address of the slave.
    slave_ip: &'a str,
    /// The namespace the slave runs in, when not the caller's.
    slave_netns: Option<&'a Netns>,
    /// Where the slave keeps its data, when not in a temporary directory of its own.
    slave_data_dir: Option<&'a std::path::Path>,
    /// More broker.conf lines, for both brokers.
    extra_conf: &'a str,
    /// Bytes every message body has at least.
    body_floor: u64,
}

const LOOPBACK: Sites<'static> = Sites {
    master_ip: "127.0.0.1",
    slave_ip: "127.0.0.1",
    slave_netns: None,
    slave_data_dir: None,
    extra_conf: "",
    body_floor: 0,
};

impl Group {
    fn start(role: &str) -> Self {
        Self::start_on(role, &LOOPBACK)
    }

    fn start_on(role: &str, sites: &Sites<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let namesrv_listen = format!("{}:0", sites.master_ip);
        let namesrv = ApogeeProcess::start(binary(), &["namesrv", "--listen", &namesrv_listen]);
        let common = "brokerClusterName=HaCluster\nbrokerName=ha-a\nhaListenPort=0\n\
                      haSendHeartbeatInterval=1000\nhaHousekeepingInterval=5000\nslaveTimeout=1000\n\
                      flushDiskType=ASYNC_FLUSH\n"
            .to_owned()
            + sites.extra_conf;
        let master_conf = dir.path().join("master.conf");
        std::fs::write(
            &master_conf,
            format!("{common}brokerId=0\nbrokerRole={role}\nbrokerIP1={}\n", sites.master_ip),
        )
        .unwrap();
        let slave_conf = dir.path().join("slave.conf");
        std::fs::write(
            &slave_conf,
            format!("{common}brokerId=1\nbrokerRole=SLAVE\nbrokerIP1={}\n", sites.slave_ip),
        )
        .unwrap();
        let namesrv_addr = namesrv.namesrv_addr().to_owned();
        let broker = |conf: &std::path::Path, data_dir: Option<&std::path::Path>| {
            let conf = conf.to_str().unwrap();
            let args = ["broker", "-n", &namesrv_addr, "-c", conf, "--listen-port", "0", "--grpc-port", "0"];
            match data_dir {
                Some(data_dir) => ApogeeProcess::start_on(binary(), &args, data_dir),
                None => ApogeeProcess::start(binary(), &args),
            }
        };
        // The master first: the slave learns its HA address when it registers.
        let master = broker(&master_conf, None);
        let slave = match sites.slave_netns {
            Some(netns) => netns.run(|| broker(&slave_conf, sites.slave_data_dir)),
            None => broker(&slave_conf, sites.slave_data_dir),
        };
        Self { namesrv, master, slave, body_floor: sites.body_floor, _dir: dir }
    }

    fn logs(&self) -> String {
        format!("--- master ---\n{}\n--- slave ---\n{}", self.master.log(), self.slave.log())
    }
}

/// Where an acknowledgement said a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    queue_id: i32,
    queue_offset: i64,
}

/// What the producers saw.
#[derive(Debug, Default)]
struct Load {
    /// SEND_OK acknowledgements, by sequence.
    acked: BTreeMap<u64, Placement>,
    /// Other statuses and errors, by text.
    other: BTreeMap<String, u64>,
}

fn key_of(sequence: u64) -> String {
    format!("ha-{sequence}")
}

/// The body of message `sequence`: its number, then at least `floor_bytes` of padding.
fn body_of(sequence: u64, floor_bytes: u64) -> Vec<u8> {
    let padding = (sequence % 200).max(floor_bytes) as usize;
    format!("{sequence:016}:{}", "m".repeat(padding)).into_bytes()
}

async fn producer(namesrv: &str) -> Producer {
    Producer::builder()
        .group("ha_producer")
        .namesrv(namesrv)
        .retry_times(0)
        .send_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("producer starts")
}

/// Sends until a send is acknowledged SEND_OK: under SYNC_MASTER that proves the slave is
/// connected and confirming.
async fn wait_for_confirmed_send(producer: &Producer, sequence: &AtomicU64, group: &Group) {
    let body_floor = group.body_floor;
    let deadline = Instant::now() + CONNECT_LIMIT;
    loop {
        let next = sequence.fetch_add(1, Ordering::Relaxed);
        let message = Message::new(TOPIC, body_of(next, body_floor)).with_keys([key_of(next)]);
        if let Ok(result) = producer.send(message).await {
            if result.status == SendStatus::SendOk {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no send confirmed by the slave in time\n{}", group.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs [`SENDERS`] producers until `stop`; records every acknowledgement.
async fn run_load(
    producer: Arc<Producer>,
    sequence: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    body_floor: u64,
) -> Load {
    let load = Arc::new(Mutex::new(Load::default()));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (producer, sequence, stop, load) =
            (Arc::clone(&producer), Arc::clone(&sequence), Arc::clone(&stop), Arc::clone(&load));
        senders.push(tokio::spawn(async move {
            // Bounded: a send takes at most its timeout, and the stop comes within seconds.
            while !stop.load(Ordering::Acquire) {
                let next = sequence.fetch_add(1, Ordering::Relaxed);
                let message = Message::new(TOPIC, body_of(next, body_floor)).with_keys([key_of(next)]);
                match producer.send(message).await {
                    Ok(result) if result.status == SendStatus::SendOk => {
                        let placement =
                            Placement { queue_id: result.queue.queue_id, queue_offset: result.queue_offset };
                        load.lock().acked.insert(next, placement);
                    }
                    Ok(result) => *load.lock().other.entry(format!("{:?}", result.status)).or_default() += 1,
                    Err(error) => {
                        *load.lock().other.entry(error.to_string()).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender task");
    }
    Arc::try_unwrap(load).map(Mutex::into_inner).unwrap_or_else(|shared| std::mem::take(&mut *shared.lock()))
}

/// What the slave served.
#[derive(Debug, Default)]
struct ReadBack {
    /// Placement of each sequence read.
    placements: HashMap<u64, Placement>,
    /// Messages read twice.
    duplicates: u64,
    /// Messages whose body is not what was sent.
    corrupt: u64,
}

/// Reads the topic through the NameServer (which, with the master dead, lists only the
/// slave) until every sequence in `wanted` arrived or the time limit passed. The group keeps
/// its offsets (on the slave) from cycle to cycle, so each cycle reads what is new.
async fn read_from_slave(namesrv: &str, wanted: &BTreeMap<u64, Placement>, body_floor: u64) -> ReadBack {
    let consumer = LitePullConsumer::builder()
        .group("ha_reader")
        .namesrv(namesrv)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .pull_batch_size(256)
        .pull_threshold_messages_per_queue(4096)
        .start()
        .await
        .expect("consumer starts");
    consumer.subscribe(TOPIC, "*").await.expect("subscribe");
    let mut read = ReadBack::default();
    let deadline = Instant::now() + READ_LIMIT;
    let mut quiet_polls = 0;
    while Instant::now() < deadline {
        let messages = consumer.poll(Duration::from_millis(500)).await;
        quiet_polls = if messages.is_empty() { quiet_polls + 1 } else { 0 };
        for message in messages {
            let body = message.message.body.to_vec();
            let Some(sequence) =
                std::str::from_utf8(&body[..16.min(body.len())]).ok().and_then(|s| s.parse().ok())
            else {
                read.corrupt += 1;
                continue;
            };
            if body != body_of(sequence, body_floor) {
                read.corrupt += 1;
            }
            let placement = Placement { queue_id: message.queue_id, queue_offset: message.queue_offset };
            if read.placements.insert(sequence, placement).is_some() {
                read.duplicates += 1;
            }
        }
        let all_there = wanted.keys().all(|sequence| read.placements.contains_key(sequence));
        // Done when everything wanted arrived and the queues stay quiet (nothing more comes).
        if all_there && quiet_polls >= 2 {
            break;
        }
    }
    consumer.shutdown().await;
    read
}

/// Waits (bounded) until the NameServer routes the topic to the slave alone: the master is
/// gone and the slave serves the topic.
async fn wait_for_slave_route(namesrv: &str, group: &Group) {
    let admin = apogee_client::Admin::builder().namesrv(namesrv).start().await.expect("admin starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(route) = admin.topic_route(TOPIC).await {
            let members: Vec<i64> =
                route.broker_datas.iter().flat_map(|broker| broker.broker_addrs.keys().copied()).collect();
            if members == [1] && !route.queue_datas.is_empty() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the slave never took over the topic's route\n{}", group.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The acknowledged sequences the read-back lacks, and those it found at another place than
/// their acknowledgement named.
fn compare(acked: &BTreeMap<u64, Placement>, read: &ReadBack) -> (Vec<u64>, Vec<u64>) {
    let missing = acked.keys().copied().filter(|sequence| !read.placements.contains_key(sequence)).collect();
    let misplaced = acked
        .iter()
        .filter(|(sequence, placement)| read.placements.get(sequence).is_some_and(|read| read != *placement))
        .map(|(sequence, _)| *sequence)
        .collect();
    (missing, misplaced)
}

/// What every cycle asserts of its read-back, whatever the loss: bodies intact, nothing served
/// twice, every message at the offset its acknowledgement named, no two at one offset.
fn assert_whole(cycle: u32, read: &ReadBack, misplaced: &[u64]) {
    assert_eq!(read.corrupt, 0, "cycle {cycle}: bodies read back differ from what was sent");
    assert_eq!(read.duplicates, 0, "cycle {cycle}: a message was served twice");
    assert!(
        misplaced.is_empty(),
        "cycle {cycle}: messages at other offsets than acknowledged: {misplaced:?}"
    );
    assert_unique_offsets(read);
}

/// Every placement read is unique: no two messages at one (queue, offset).
fn assert_unique_offsets(read: &ReadBack) {
    let mut seen: HashMap<(i32, i64), u64> = HashMap::new();
    for (sequence, placement) in &read.placements {
        if let Some(other) = seen.insert((placement.queue_id, placement.queue_offset), *sequence) {
            panic!(
                "messages {other} and {sequence} share queue {} offset {}",
                placement.queue_id, placement.queue_offset
            );
        }
    }
}

/// What a cycle does to the group while the producers run, before it kills the master
/// with SIGKILL (every cycle ends so).
#[derive(Debug, Clone, Copy)]
enum Fault<'a> {
    /// Nothing before.
    None,
    /// SIGKILL to the slave, then a restart of it on its data.
    SlaveRestart,
    /// This link between master and slave cut for a while, then healed.
    Partition(&'a Link),
    /// The load goes on until this volume, the slave's, is nearly full.
    SlaveDiskFull(&'a SmallVolume),
}

impl Fault<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::SlaveRestart => "SlaveRestart",
            Self::Partition(_) => "Partition",
            Self::SlaveDiskFull(_) => "SlaveDiskFull",
        }
    }
}

/// One cycle: load, the fault, read-back from the slave. Returns the acknowledged sequences
/// the slave lacks.
async fn kill_cycle(group: &mut Group, cycle: u32, role: &str, fault: Fault<'_>) -> Vec<u64> {
    let namesrv = group.namesrv.namesrv_addr().to_owned();
    let producer = Arc::new(producer(&namesrv).await);
    let sequence = Arc::new(AtomicU64::new(u64::from(cycle) * 10_000_000));
    if role == "SYNC_MASTER" {
        wait_for_confirmed_send(&producer, &sequence, group).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(
        Arc::clone(&producer),
        Arc::clone(&sequence),
        Arc::clone(&stop),
        group.body_floor,
    ));
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    if let Fault::SlaveRestart = fault {
        group.slave.kill_9();
        // Longer than slaveTimeout: sends in flight time out, later ones find no slave.
        tokio::time::sleep(LOAD_BEFORE_KILL).await;
        // Blocking (the ports file), but brief; the producers run on the other workers.
        tokio::task::block_in_place(|| group.slave.restart());
        // Long enough for the slave to catch up and confirm sends again.
        tokio::time::sleep(LOAD_BEFORE_KILL * 2).await;
    }
    if let Fault::Partition(link) = fault {
        link.cut().expect("link cut");
        // Longer than slaveTimeout: sends time out while the slave is unreachable.
        tokio::time::sleep(LOAD_BEFORE_KILL * 2).await;
        link.heal().expect("link healed");
        // The slave reconnects (or its connection resumes) and catches up.
        tokio::time::sleep(LOAD_BEFORE_KILL * 4).await;
    }
    if let Fault::SlaveDiskFull(volume) = fault {
        // However fast this machine is: until the slave's guard refuses (bounded).
        let deadline = Instant::now() + SLAVE_DISK_FILL_LIMIT;
        while volume.usage().0 < SLAVE_DISK_FULL_PERCENT && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Longer than slaveTimeout: the master sees sends go unconfirmed.
        tokio::time::sleep(LOAD_BEFORE_KILL * 2).await;
    }
    let killed_at = Instant::now();
    group.master.kill_9();
    tokio::time::sleep(LOAD_AFTER_KILL).await;
    stop.store(true, Ordering::Release);
    let load = load.await.expect("load task");
    producer.shutdown().await;
    assert!(!load.acked.is_empty(), "cycle {cycle}: nothing acknowledged before the kill\n{}", group.logs());

    wait_for_slave_route(&namesrv, group).await;
    let route_ms = killed_at.elapsed().as_millis() as u64;
    let read = read_from_slave(&namesrv, &load.acked, group.body_floor).await;
    let (missing, misplaced) = compare(&load.acked, &read);
    println!(
        "ha-cycle {}",
        serde_json::json!({
            "role": role, "fault": fault.name(), "cycle": cycle, "acked": load.acked.len(), "other": load.other,
            "read_from_slave": read.placements.len(), "missing": missing.len(), "misplaced": misplaced.len(),
            "duplicates": read.duplicates, "corrupt": read.corrupt,
            "slave_route_ms": route_ms, "read_back_ms": killed_at.elapsed().as_millis() as u64,
        })
    );
    if std::env::var_os("APOGEE_HA_DUMP_LOGS").is_some() {
        println!("{}", group.logs());
    }
    if !matches!(fault, Fault::None) {
        let unconfirmed = ["SlaveNotAvailable", "FlushSlaveTimeout"]
            .iter()
            .filter_map(|status| load.other.get(*status))
            .sum::<u64>();
        assert!(
            unconfirmed > 0,
            "cycle {cycle}: no send was left unconfirmed while the slave was away: {:?}",
            load.other
        );
    }
    assert_whole(cycle, &read, &misplaced);
    missing
}

/// Fails naming the first acknowledged messages the slave lacks, with both brokers' logs.
fn assert_all_on_the_slave(missing: &[u64], group: &Group) {
    assert_none_missing(missing, "", "the slave", || group.logs());
}

/// Fails naming the first acknowledged messages that are not on `holder` ("the slave", "the
/// new master"), after `context`, with the brokers' logs (read only on failure).
fn assert_none_missing(missing: &[u64], context: &str, holder: &str, logs: impl FnOnce() -> String) {
    assert!(
        missing.is_empty(),
        "{context}{} acknowledged messages are not on {holder}, first {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        logs()
    );
}

fn cycles() -> u32 {
    std::env::var("APOGEE_HA_CYCLES").ok().and_then(|value| value.parse().ok()).unwrap_or(1)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Network namespaces `first` and `second` joined by a link the test can cut, or `None`
/// after printing why the machine cannot make them (the partition tests then skip).
fn linked_namespaces(first: &str, second: &str) -> Option<(Netns, Netns, Link)> {
    if let Err(why) = netns::available() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let (first, second) = (Netns::create(first).unwrap(), Netns::create(second).unwrap());
    let link = Link::connect(&first, &second).unwrap();
    Some((first, second, link))
}

#[test]
fn a_sync_master_killed_under_load_loses_no_acknowledged_message() {
    let runtime = runtime();
    let mut group = Group::start("SYNC_MASTER");
    for cycle in 0..cycles() {
        let missing = runtime.block_on(kill_cycle(&mut group, cycle, "SYNC_MASTER", Fault::None));
        assert_all_on_the_slave(&missing, &group);
        // The master comes back on its data; the slave follows it again.
        group.master.restart();
    }
}

#[test]
fn an_async_master_killed_under_load_leaves_a_whole_slave_and_measures_its_loss() {
    let runtime = runtime();
    let mut group = Group::start("ASYNC_MASTER");
    for cycle in 0..cycles() {
        // The loss window is what the cycle prints; what the slave has is checked whole.
        let _missing = runtime.block_on(kill_cycle(&mut group, cycle, "ASYNC_MASTER", Fault::None));
        group.master.restart();
    }
}

#[test]
fn a_slave_killed_and_restarted_mid_stream_keeps_every_acknowledged_message() {
    let runtime = runtime();
    let mut group = Group::start("SYNC_MASTER");
    let missing = runtime.block_on(kill_cycle(&mut group, 0, "SYNC_MASTER", Fault::SlaveRestart));
    assert_all_on_the_slave(&missing, &group);
}

#[test]
fn a_partition_between_master_and_slave_loses_no_acknowledged_message() {
    let Some((master_side, slave_side, link)) = linked_namespaces("ha-m", "ha-s") else {
        return;
    };
    let (master_ip, slave_ip) = (link.first_ip(), link.second_ip());
    // The test itself (its producers and readers) and the master run on the master's side.
    master_side.run(|| {
        let runtime = runtime();
        let sites =
            Sites { master_ip: &master_ip, slave_ip: &slave_ip, slave_netns: Some(&slave_side), ..LOOPBACK };
        let mut group = Group::start_on("SYNC_MASTER", &sites);
        let missing = runtime.block_on(kill_cycle(&mut group, 0, "SYNC_MASTER", Fault::Partition(&link)));
        assert_all_on_the_slave(&missing, &group);
    });
}

#[test]
fn a_slave_whose_disk_fills_keeps_every_acknowledged_message() {
    let volume = match SmallVolume::mount(32) {
        Ok(volume) => volume,
        Err(why) => {
            eprintln!("SKIPPED: no small volume could be mounted (needs root): {why}");
            return;
        }
    };
    let data_dir = volume.path().join("slave");
    // Small files, so 32 MB holds a store; ~2 KB bodies fill it within seconds.
    let extra = "mapedFileSizeCommitLog=2097152\nmappedFileSizeConsumeQueue=300000\n\
                 maxHashSlotNum=10000\nmaxIndexNum=50000\ncleanFileForciblyEnable=false\n\
                 timerWheelEnable=false\n";
    let sites = Sites { slave_data_dir: Some(&data_dir), extra_conf: extra, body_floor: 2_000, ..LOOPBACK };
    let runtime = runtime();
    let mut group = Group::start_on("SYNC_MASTER", &sites);
    let missing = runtime.block_on(kill_cycle(&mut group, 0, "SYNC_MASTER", Fault::SlaveDiskFull(&volume)));
    let (used_percent, _) = volume.usage();
    println!("slave volume ({}) {used_percent}% used", volume.kind());
    assert_all_on_the_slave(&missing, &group);
    assert!(
        used_percent >= SLAVE_DISK_FULL_PERCENT,
        "the slave's disk never filled ({used_percent}%): the test tested nothing"
    );
    drop(group);
}

#[test]
fn a_slave_copies_the_masters_topics_and_registers_them() {
    let runtime = runtime();
    let group = Group::start("ASYNC_MASTER");
    runtime.block_on(async {
        let admin =
            apogee_client::Admin::builder().namesrv(group.namesrv.namesrv_addr()).start().await.unwrap();
        let config = apogee_common::TopicConfig {
            read_queue_nums: 3,
            write_queue_nums: 3,
            ..apogee_common::TopicConfig::new("HaCopiedTopic")
        };
        admin.create_topic(group.master.broker_addr(), &config).await.expect("topic created on the master");
        // The slave copies it within a sync period and registers it: the route lists both.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(route) = admin.topic_route("HaCopiedTopic").await {
                let members: Vec<i64> = route
                    .broker_datas
                    .iter()
                    .flat_map(|broker| broker.broker_addrs.keys().copied())
                    .collect();
                if members.contains(&0) && members.contains(&1) {
                    assert!(route.queue_datas.iter().all(|queue| queue.read_queue_nums == 3));
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the slave never served the master's topic\n{}", group.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

// ---------------------------------------------------------------------------------------
// Controller mode: a controller embedded in the NameServer (`enableControllerInNamesrv`; the
// standalone `apogee controller` is tested in controller.rs) elects the master of two brokers; the test
// kills the master with SIGKILL under load, measures how long until the other broker takes
// writes as master, checks every acknowledged message on it, and brings the killed broker
// back, which must rejoin as a slave (truncating what it alone held) and catch up. Each cycle
// kills whichever broker is master then.

/// Name of the broker set in controller mode.
const CONTROLLER_SET: &str = "ha-c";
/// Longest a failover may take before the test fails (the issue's bound is 10 s; the
/// controller's liveness warm-up after its own start can add to the first cycle).
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);
/// The sequence of the messages that probe for the new master (plus the cycle).
const PROBE_SEQUENCE: u64 = 9_000_000_000_000_000;
/// Longest a restarted broker may take to rejoin the SyncStateSet.
const REJOIN_LIMIT: Duration = Duration::from_secs(60);

/// A NameServer with an embedded controller, and two brokers in controller mode.
struct ControllerModeGroup {
    namesrv: ApogeeProcess,
    brokers: [ApogeeProcess; 2],
    /// The brokers' addresses as registered (`brokerIP1` and the bound port).
    addrs: [String; 2],
    /// Each broker's `brokerIP1`.
    ips: [String; 2],
    _dir: tempfile::TempDir,
}

/// Where a controller-mode group runs: loopback for most tests; for a partition, the
/// NameServer (with the controller) and broker 1 on one side of a link and broker 0 on the other.
struct ControllerSites<'a> {
    /// Address of the NameServer and its controller.
    namesrv_ip: &'a str,
    /// Each broker's address.
    broker_ips: [&'a str; 2],
    /// The namespace broker 0 runs in, when not the caller's.
    first_broker_netns: Option<&'a Netns>,
}

const CONTROLLER_LOOPBACK: ControllerSites<'static> =
    ControllerSites { namesrv_ip: "127.0.0.1", broker_ips: ["127.0.0.1"; 2], first_broker_netns: None };

impl ControllerModeGroup {
    fn start() -> Self {
        Self::start_on(&CONTROLLER_LOOPBACK)
    }

    /// Starts the NameServer and broker 0, waits until the controller makes broker 0 master,
    /// then starts broker 1 (so which broker leads first is known).
    fn start_on(sites: &ControllerSites<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let namesrv_conf = dir.path().join("namesrv.conf");
        std::fs::write(
            &namesrv_conf,
            format!(
                "enableControllerInNamesrv=true\ncontrollerDLegerPeers=n1-{}:0\n\
                 controllerDLegerSelfId=n1\ncontrollerStorePath={}\n\
                 scanNotActiveBrokerInterval=500\nscanInactiveMasterInterval=500\n",
                sites.namesrv_ip,
                dir.path().join("controller").display()
            ),
        )
        .unwrap();
        let listen = format!("{}:0", sites.namesrv_ip);
        let namesrv = ApogeeProcess::start(
            binary(),
            &["namesrv", "--listen", &listen, "-c", namesrv_conf.to_str().unwrap()],
        );
        let namesrv_addr = namesrv.namesrv_addr().to_owned();
        let broker = |index: usize| {
            let conf = dir.path().join(format!("broker-{index}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "brokerClusterName=HaCluster\nbrokerName={CONTROLLER_SET}\nbrokerIP1={}\n\
                     enableControllerMode=true\ncontrollerAddr={}\nallAckInSyncStateSet=true\nhaListenPort=0\n\
                     haSendHeartbeatInterval=1000\nhaHousekeepingInterval=5000\nslaveTimeout=3000\n\
                     syncBrokerMetadataPeriod=1000\nbrokerHeartbeatInterval=500\n\
                     controllerHeartBeatTimeoutMills=3000\ncheckSyncStateSetPeriod=1000\n\
                     haMaxTimeSlaveNotCatchup=5000\nflushDiskType=ASYNC_FLUSH\n",
                    sites.broker_ips[index],
                    namesrv.controller_addr()
                ),
            )
            .unwrap();
            let conf = conf.to_str().unwrap().to_owned();
            let args = ["broker", "-n", &namesrv_addr, "-c", &conf, "--listen-port", "0", "--grpc-port", "0"];
            ApogeeProcess::start(binary(), &args)
        };
        let first = match sites.first_broker_netns {
            Some(netns) => netns.run(|| broker(0)),
            None => broker(0),
        };
        let first_addr = advertised(sites.broker_ips[0], &first);
        wait_for_master(&namesrv, &first_addr);
        let second = broker(1);
        let addrs = [first_addr, advertised(sites.broker_ips[1], &second)];
        let ips = sites.broker_ips.map(str::to_owned);
        Self { namesrv, brokers: [first, second], addrs, ips, _dir: dir }
    }

    /// Restarts broker `index` on its data (SIGKILL first if it runs); it gets a new port.
    fn restart(&mut self, index: usize) {
        self.brokers[index].restart();
        self.addrs[index] = advertised(&self.ips[index], &self.brokers[index]);
    }

    fn logs(&self) -> String {
        format!(
            "--- namesrv and controller ---\n{}\n--- broker 0 ---\n{}\n--- broker 1 ---\n{}",
            self.namesrv.log(),
            self.brokers[0].log(),
            self.brokers[1].log()
        )
    }

    /// Which broker the controller names master, once both are in its SyncStateSet.
    async fn wait_for_full_sync_state_set(&self, limit: Duration) -> usize {
        let client = controller_client(&self.namesrv);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(info) = client.get_replica_info(CONTROLLER_SET).await {
                let members = info.body.map_or(0, |body| body.sync_state_set.len());
                let master = info.header.master_address.unwrap_or_default();
                let index = self.addrs.iter().position(|addr| *addr == master);
                if let (2, Some(index)) = (members, index) {
                    client.shutdown().await;
                    return index;
                }
            }
            assert!(Instant::now() < deadline, "the SyncStateSet never held both brokers\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The address a broker registers: `ip` (its brokerIP1) and the port it bound (a broker bound
/// to every interface reports 0.0.0.0, by which nobody knows it).
fn advertised(ip: &str, broker: &ApogeeProcess) -> String {
    let port = broker.broker_addr().rsplit_once(':').map_or("", |(_, port)| port);
    format!("{ip}:{port}")
}

/// A client of the controller embedded in `namesrv`.
fn controller_client(namesrv: &ApogeeProcess) -> apogee_controller::client::ControllerClient {
    let config = apogee_controller::client::ControllerClientConfig {
        leader_wait: Duration::from_secs(5),
        ..Default::default()
    };
    apogee_controller::client::ControllerClient::new(vec![namesrv.controller_addr().to_owned()], config)
}

/// Waits (bounded) until the controller at `namesrv` names `broker` master.
fn wait_for_master(namesrv: &ApogeeProcess, broker: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = controller_client(namesrv);
        let deadline = Instant::now() + CONNECT_LIMIT;
        loop {
            let info = client.get_replica_info(CONTROLLER_SET).await;
            if info.is_ok_and(|info| info.header.master_address.as_deref() == Some(broker)) {
                break;
            }
            assert!(Instant::now() < deadline, "{broker} never became master\n{}", namesrv.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.shutdown().await;
    });
}

/// What an administrator sees (GET_BROKER_CONFIG): the master registered as 0, the slave under
/// the id the controller gave it.
async fn assert_registered_ids(group: &ControllerModeGroup, master: usize) {
    let admin = apogee_client::Admin::builder()
        .namesrv(group.namesrv.namesrv_addr())
        .start()
        .await
        .expect("admin starts");
    for (index, addr) in group.addrs.iter().enumerate() {
        let config = admin.broker_config(addr).await.expect("broker config");
        let id: i64 = config.get("brokerId").and_then(|id| id.parse().ok()).expect("a brokerId");
        if index == master {
            assert_eq!(id, 0, "the master's brokerId\n{}", group.logs());
        } else {
            assert!(id > 0, "a slave's brokerId is its controller id, not {id}");
        }
    }
}

/// Sends until broker `survivor` acknowledges as master; returns when.
async fn wait_for_new_master(
    group: &ControllerModeGroup,
    survivor: usize,
    killed_at: Instant,
    cycle: u32,
) -> Duration {
    let namesrv = group.namesrv.namesrv_addr().to_owned();
    let admin = apogee_client::Admin::builder().namesrv(&namesrv).start().await.expect("admin starts");
    let survivor_addr = group.addrs[survivor].clone();
    loop {
        assert!(killed_at.elapsed() < FAILOVER_LIMIT, "no new master in time\n{}", group.logs());
        let routed = admin.topic_route(TOPIC).await.is_ok_and(|route| {
            route.broker_datas.iter().any(|broker| broker.broker_addrs.get(&0) == Some(&survivor_addr))
        });
        if routed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let producer = producer(&namesrv).await;
    loop {
        assert!(
            killed_at.elapsed() < FAILOVER_LIMIT,
            "the new master took no write in time\n{}",
            group.logs()
        );
        // A sequence no producer uses, of the 16 digits a body starts with.
        let probe = PROBE_SEQUENCE + u64::from(cycle);
        let message = Message::new(TOPIC, body_of(probe, 0)).with_keys(["failover-probe"]);
        if producer.send(message).await.is_ok_and(|result| result.status == SendStatus::SendOk) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    producer.shutdown().await;
    killed_at.elapsed()
}

/// One controller-mode cycle: load, SIGKILL of the master, failover, read-back from the new
/// master, restart of the killed broker. Returns the acknowledged sequences the new master
/// lacks.
async fn controller_kill_cycle(group: &mut ControllerModeGroup, cycle: u32) -> Vec<u64> {
    let master = group.wait_for_full_sync_state_set(REJOIN_LIMIT).await;
    let survivor = 1 - master;
    let namesrv = group.namesrv.namesrv_addr().to_owned();
    let producer = Arc::new(producer(&namesrv).await);
    let sequence = Arc::new(AtomicU64::new(u64::from(cycle) * 10_000_000));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(Arc::clone(&producer), Arc::clone(&sequence), Arc::clone(&stop), 0));
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    let killed_at = Instant::now();
    group.brokers[master].kill_9();
    tokio::time::sleep(LOAD_AFTER_KILL).await;
    stop.store(true, Ordering::Release);
    let load = load.await.expect("load task");
    producer.shutdown().await;
    assert!(!load.acked.is_empty(), "cycle {cycle}: nothing acknowledged before the kill\n{}", group.logs());
    let failover = wait_for_new_master(group, survivor, killed_at, cycle).await;
    let read = read_from_slave(&namesrv, &load.acked, 0).await;
    let (missing, misplaced) = compare(&load.acked, &read);
    // The killed broker comes back on its data and must rejoin as a slave.
    tokio::task::block_in_place(|| group.restart(master));
    let rejoin_started = Instant::now();
    let new_master = group.wait_for_full_sync_state_set(REJOIN_LIMIT).await;
    println!(
        "ha-cycle {}",
        serde_json::json!({
            "role": "CONTROLLER", "fault": "MasterKilled", "cycle": cycle, "acked": load.acked.len(),
            "other": load.other, "read_from_new_master": read.placements.len(), "missing": missing.len(),
            "misplaced": misplaced.len(), "duplicates": read.duplicates, "corrupt": read.corrupt,
            "failover_ms": failover.as_millis() as u64,
            "rejoin_ms": rejoin_started.elapsed().as_millis() as u64,
        })
    );
    if std::env::var_os("APOGEE_HA_DUMP_LOGS").is_some() {
        println!("{}", group.logs());
    }
    assert_eq!(
        new_master,
        survivor,
        "cycle {cycle}: the rejoined broker took mastership back\n{}",
        group.logs()
    );
    assert_registered_ids(group, survivor).await;
    assert_whole(cycle, &read, &misplaced);
    missing
}

#[test]
fn with_controllers_a_killed_master_is_replaced_and_rejoins_as_a_slave_losing_nothing() {
    let runtime = runtime();
    let mut group = ControllerModeGroup::start();
    // At least two cycles: the second kills the broker that rejoined as a slave in the first,
    // so its truncation and catch-up are what the read-back checks.
    for cycle in 0..cycles().max(2) {
        let missing = runtime.block_on(controller_kill_cycle(&mut group, cycle));
        assert_none_missing(&missing, &format!("cycle {cycle}: "), "the new master", || group.logs());
    }
}

#[test]
fn with_controllers_a_partitioned_master_is_replaced_and_acknowledges_nothing_on_its_own() {
    let Some((rest, isolated, link)) = linked_namespaces("hc-r", "hc-m") else {
        return;
    };
    let (rest_ip, isolated_ip) = (link.first_ip(), link.second_ip());
    // The test, the NameServer with the controller and broker 1 on one side; broker 0, the
    // first master, alone on the other.
    rest.run(|| {
        let runtime = runtime();
        let sites = ControllerSites {
            namesrv_ip: &rest_ip,
            broker_ips: [&isolated_ip, &rest_ip],
            first_broker_netns: Some(&isolated),
        };
        let group = ControllerModeGroup::start_on(&sites);
        runtime.block_on(async {
            assert_eq!(group.wait_for_full_sync_state_set(REJOIN_LIMIT).await, 0);
            let namesrv = group.namesrv.namesrv_addr().to_owned();
            let producer = Arc::new(producer(&namesrv).await);
            let (sequence, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
            let load = tokio::spawn(run_load(Arc::clone(&producer), sequence, Arc::clone(&stop), 0));
            tokio::time::sleep(LOAD_BEFORE_KILL).await;
            let cut_at = Instant::now();
            link.cut().expect("link cut");
            let failover = wait_for_new_master(&group, 1, cut_at, 0).await;
            // The producers go on through the heal: the old master, back in reach and still
            // believing it leads until it asks the controller, must acknowledge nothing.
            link.heal().expect("link healed");
            tokio::time::sleep(LOAD_BEFORE_KILL * 2).await;
            stop.store(true, Ordering::Release);
            let load = load.await.expect("load task");
            producer.shutdown().await;
            let rejoin_started = Instant::now();
            let master = group.wait_for_full_sync_state_set(REJOIN_LIMIT).await;
            let read = read_from_slave(&namesrv, &load.acked, 0).await;
            let (missing, misplaced) = compare(&load.acked, &read);
            println!(
                "ha-cycle {}",
                serde_json::json!({
                    "role": "CONTROLLER", "fault": "MasterPartitioned", "cycle": 0, "acked": load.acked.len(),
                    "other": load.other, "read_from_new_master": read.placements.len(), "missing": missing.len(),
                    "misplaced": misplaced.len(), "duplicates": read.duplicates, "corrupt": read.corrupt,
                    "failover_ms": failover.as_millis() as u64,
                    "rejoin_ms": rejoin_started.elapsed().as_millis() as u64,
                })
            );
            assert_eq!(master, 1, "the partitioned broker took mastership back\n{}", group.logs());
            assert_none_missing(&missing, "", "the new master", || group.logs());
            assert_whole(0, &read, &misplaced);
        });
    });
}
