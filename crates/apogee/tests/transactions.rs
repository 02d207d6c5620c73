//! Transactional messages end to end on the real binary: the Rust SDK's
//! `TransactionProducer` commits and rolls back, an unknown outcome is settled by the broker's
//! check reaching a producer of the group in another process, and a broker restart between the
//! half message and its check changes nothing. Every case checks what a consumer gets: exactly
//! the committed messages, intact, each once.

mod standalone;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apogee_client::{
    LocalTransactionState, Message, MessageExt, Producer, TransactionListener, TransactionProducer,
};
use apogee_testkit::ApogeeProcess;

/// Broker settings that make checks come quickly: a round every 500 ms, halves older than 1 s.
const FAST_CHECKS: &str = "transactionCheckInterval=500\ntransactionTimeOut=1000\n";
/// How long a consumer polls for what it must get.
const RECEIVE_LIMIT: Duration = Duration::from_secs(30);
/// How long a consumer keeps polling after it got everything, for a duplicate or a message
/// that must not come (several check rounds).
const QUIET_PERIOD: Duration = Duration::from_secs(3);

/// `apogee standalone` with [`FAST_CHECKS`] in its broker config file.
fn start_apogee(config_dir: &tempfile::TempDir) -> ApogeeProcess {
    standalone::start_configured(config_dir.path(), FAST_CHECKS)
}

/// Decides by the body: `commit …`, `rollback …`, anything else unknown; checks answer the
/// same way.
struct ByBody;

fn decide(body: &[u8]) -> LocalTransactionState {
    if body.starts_with(b"commit") {
        LocalTransactionState::CommitMessage
    } else if body.starts_with(b"rollback") {
        LocalTransactionState::RollbackMessage
    } else {
        LocalTransactionState::Unknown
    }
}

impl TransactionListener for ByBody {
    fn execute_local_transaction(&self, message: &Message, _transaction_id: &str) -> LocalTransactionState {
        decide(&message.body)
    }

    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        decide(&message.message.body)
    }
}

async fn transaction_producer(apogee: &ApogeeProcess, group: &str) -> TransactionProducer {
    TransactionProducer::start(Producer::builder().group(group).namesrv(apogee.namesrv_addr()), ByBody)
        .await
        .expect("transaction producer started")
}

fn message(topic: &str, body: &str, index: usize) -> Message {
    Message::new(topic, body.as_bytes().to_vec()).with_tags("TagTx").with_keys([format!("KEY{index}")])
}

/// Polls `topic` from its start until `expected` bodies arrived (or [`RECEIVE_LIMIT`]), then for
/// [`QUIET_PERIOD`] more; returns every delivery by body.
async fn receive(
    apogee: &ApogeeProcess,
    group: &str,
    topic: &str,
    expected: usize,
) -> BTreeMap<String, Vec<MessageExt>> {
    let consumer = standalone::pull_consumer(apogee, group, topic).await;
    let mut got: BTreeMap<String, Vec<MessageExt>> = BTreeMap::new();
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while got.len() < expected && Instant::now() < deadline {
        for delivered in consumer.poll(Duration::from_millis(500)).await {
            got.entry(String::from_utf8_lossy(&delivered.message.body).into_owned())
                .or_default()
                .push(delivered);
        }
    }
    let quiet_until = Instant::now() + QUIET_PERIOD;
    while Instant::now() < quiet_until {
        for delivered in consumer.poll(Duration::from_millis(500)).await {
            got.entry(String::from_utf8_lossy(&delivered.message.body).into_owned())
                .or_default()
                .push(delivered);
        }
    }
    consumer.shutdown().await;
    got
}

/// Each of `bodies` delivered exactly once with its tags and keys, and nothing else.
fn assert_exactly(got: &BTreeMap<String, Vec<MessageExt>>, bodies: &[(String, usize)]) {
    for (body, index) in bodies {
        let deliveries =
            got.get(body).unwrap_or_else(|| panic!("{body:?} was not delivered; got {:?}", got.keys()));
        let places: Vec<(i32, i64, i64)> = deliveries
            .iter()
            .map(|delivered| {
                (delivered.queue_id, delivered.queue_offset, delivered.prepared_transaction_offset)
            })
            .collect();
        assert_eq!(
            deliveries.len(),
            1,
            "{body:?} delivered {} times (queue, offset, half): {places:?}",
            deliveries.len()
        );
        let message = &deliveries[0].message;
        assert_eq!(message.tags(), Some("TagTx"));
        assert_eq!(message.keys().collect::<Vec<_>>(), [format!("KEY{index}")]);
        assert_eq!(message.property("TRAN_MSG"), None, "the delivered message is no half message");
    }
    let unexpected: Vec<&String> =
        got.keys().filter(|body| !bodies.iter().any(|(want, _)| want == *body)).collect();
    assert!(unexpected.is_empty(), "delivered but never committed: {unexpected:?}");
}

/// The compiled `transaction_producer` example of apogee-client.
fn example(namesrv: &str) -> Command {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_apogee"))
        .parent()
        .unwrap()
        .join("examples")
        .join("transaction_producer");
    assert!(
        path.exists(),
        "{} is not built; run the workspace's tests (cargo test --workspace)",
        path.display()
    );
    let mut command = Command::new(path);
    command.env("NAMESRV_ADDR", namesrv);
    command
}

/// Runs the example as a checker of `group` answering `state` until it answered `count`
/// checks; returns the message ids it was asked about.
fn run_checker(namesrv: &str, group: &str, state: &str, count: usize) -> Vec<String> {
    let mut command = example(namesrv);
    command.args(["check", group, state, &count.to_string(), "30"]);
    let output = standalone::run(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "checker failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("checked "))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_delivers_and_rollback_drops() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = start_apogee(&config_dir);
    let topic = "TxCommitRollback";
    let producer = transaction_producer(&apogee, "tx-commit-rollback").await;
    let mut committed = Vec::new();
    for index in 0..10 {
        let (body, expected) = if index % 2 == 0 {
            (format!("commit {index}"), LocalTransactionState::CommitMessage)
        } else {
            (format!("rollback {index}"), LocalTransactionState::RollbackMessage)
        };
        let result = producer.send_in_transaction(message(topic, &body, index)).await.expect("sent");
        assert_eq!(result.local_state, expected);
        assert_eq!(result.send.transaction_id.as_deref(), Some(result.send.msg_id.as_str()));
        if expected == LocalTransactionState::CommitMessage {
            committed.push((body, index));
        }
    }
    // Rolled-back halves must stay undelivered through several check rounds too.
    let got = receive(&apogee, "tx-commit-rollback-consumer", topic, committed.len()).await;
    producer.shutdown().await;
    assert_exactly(&got, &committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_settled_by_a_check_reaching_another_process() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = start_apogee(&config_dir);
    for (topic, group, answer, delivered) in [
        ("TxCheckCommit", "tx-check-commit", "commit", true),
        ("TxCheckRollback", "tx-check-rollback", "rollback", false),
    ] {
        // The producer that sent the halves does not know their outcome, and leaves.
        let producer = transaction_producer(&apogee, group).await;
        let mut sent = Vec::new();
        for index in 0..5 {
            let body = format!("pending {index}");
            let result = producer.send_in_transaction(message(topic, &body, index)).await.expect("sent");
            assert_eq!(result.local_state, LocalTransactionState::Unknown);
            sent.push((result.send.msg_id, body, index));
        }
        producer.shutdown().await;

        // Another process of the group answers the broker's checks.
        let mut checked = run_checker(apogee.namesrv_addr(), group, answer, sent.len());
        checked.sort();
        checked.dedup();
        let mut ids: Vec<String> = sent.iter().map(|(id, _, _)| id.clone()).collect();
        ids.sort();
        assert_eq!(checked, ids, "every pending transaction was checked, and only those");

        let expected: Vec<(String, usize)> = if delivered {
            sent.iter().map(|(_, body, index)| (body.clone(), *index)).collect()
        } else {
            Vec::new()
        };
        let got = receive(&apogee, &format!("{group}-consumer"), topic, expected.len()).await;
        assert_exactly(&got, &expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_between_the_half_and_its_check_changes_nothing() {
    let config_dir = tempfile::tempdir().unwrap();
    let mut apogee = start_apogee(&config_dir);
    let (topic, group) = ("TxRestart", "tx-restart");
    let producer = transaction_producer(&apogee, group).await;
    let mut sent = Vec::new();
    let mut pending_ids = Vec::new();
    for index in 0..5 {
        let body = format!("pending {index}");
        let result = producer.send_in_transaction(message(topic, &body, index)).await.expect("sent");
        assert_eq!(result.local_state, LocalTransactionState::Unknown);
        sent.push((body, index));
        pending_ids.push(result.send.msg_id);
    }
    // One more that commits before the restart: it must not be delivered twice after it.
    let result = producer.send_in_transaction(message(topic, "commit early", 99)).await.expect("sent");
    assert_eq!(result.local_state, LocalTransactionState::CommitMessage);
    sent.push(("commit early".to_owned(), 99));
    producer.shutdown().await;
    // The commit is in (its end is oneway): before the restart exactly it is delivered.
    let before = receive(&apogee, "tx-restart-before", topic, 1).await;
    assert_exactly(&before, &[("commit early".to_owned(), 99)]);

    apogee.kill_9();
    apogee.restart();
    let mut checked = run_checker(apogee.namesrv_addr(), group, "commit", 5);
    checked.sort();
    checked.dedup();
    pending_ids.sort();
    assert_eq!(checked, pending_ids, "after the restart exactly the pending transactions were checked");
    let got = receive(&apogee, "tx-restart-consumer", topic, sent.len()).await;
    assert_exactly(&got, &sent);
}
