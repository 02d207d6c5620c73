//! Transactional messages with [`TransactionProducer`].
//!
//! ```text
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example transaction_producer -- send <topic> <group> <count> <commit|rollback|unknown>
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run -p apogee-client --example transaction_producer -- check <group> <commit|rollback|unknown> <count> <seconds>
//! ```
//!
//! `send` sends `<count>` messages in transactions (body `tx <i>`, tags `TagTx`, keys `TXKEY<i>`)
//! whose local transaction decides as told, prints `sent <msgId> <queueOffset> <state>` for
//! each, and exits: a producer that answers no check. `check` starts a producer of `<group>`
//! that sends nothing and answers every broker check as told, printing `checked <msgId>
//! <body>` for each, until it answered `<count>` distinct messages or `<seconds>` passed; it
//! exits 0 only when it answered `<count>`.

mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_client::{
    LocalTransactionState, Message, MessageExt, Producer, TransactionListener, TransactionProducer,
};

/// How often `check` looks whether it answered enough.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Decides every transaction the same way, and remembers what it was asked about.
struct Fixed {
    state: LocalTransactionState,
    checked: Arc<Mutex<HashSet<String>>>,
}

impl TransactionListener for Fixed {
    fn execute_local_transaction(&self, _message: &Message, _transaction_id: &str) -> LocalTransactionState {
        self.state
    }

    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        let id = message.message.uniq_key().unwrap_or_default().to_owned();
        println!("checked {id} {}", String::from_utf8_lossy(&message.message.body));
        if let Ok(mut checked) = self.checked.lock() {
            checked.insert(id);
        }
        self.state
    }
}

fn parse_state(text: &str) -> Option<LocalTransactionState> {
    match text {
        "commit" => Some(LocalTransactionState::CommitMessage),
        "rollback" => Some(LocalTransactionState::RollbackMessage),
        "unknown" => Some(LocalTransactionState::Unknown),
        _ => None,
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: transaction_producer send <topic> <group> <count> <commit|rollback|unknown>");
    eprintln!("       transaction_producer check <group> <commit|rollback|unknown> <count> <seconds>");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let namesrv = common::namesrv_from_env();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["send", topic, group, count, state] => {
            let (Ok(count), Some(state)) = (count.parse::<usize>(), parse_state(state)) else {
                return usage();
            };
            send(&namesrv, topic, group, count, state).await
        }
        ["check", group, state, count, seconds] => {
            let (Some(state), Ok(count), Ok(seconds)) = (parse_state(state), count.parse(), seconds.parse())
            else {
                return usage();
            };
            check(&namesrv, group, state, count, Duration::from_secs(seconds)).await
        }
        _ => usage(),
    }
}

async fn start(
    namesrv: &str,
    group: &str,
    state: LocalTransactionState,
) -> Option<(TransactionProducer, Arc<Mutex<HashSet<String>>>)> {
    let checked = Arc::new(Mutex::new(HashSet::new()));
    let listener = Fixed { state, checked: Arc::clone(&checked) };
    match TransactionProducer::start(Producer::builder().group(group).namesrv(namesrv), listener).await {
        Ok(producer) => Some((producer, checked)),
        Err(error) => {
            eprintln!("producer did not start: {error}");
            None
        }
    }
}

async fn send(
    namesrv: &str,
    topic: &str,
    group: &str,
    count: usize,
    state: LocalTransactionState,
) -> ExitCode {
    let Some((producer, _)) = start(namesrv, group, state).await else { return ExitCode::FAILURE };
    let mut failures = 0;
    for index in 0..count {
        let message = Message::new(topic, format!("tx {index}").into_bytes())
            .with_tags("TagTx")
            .with_keys([format!("TXKEY{index}")]);
        match producer.send_in_transaction(message).await {
            Ok(result) => {
                println!("sent {} {} {:?}", result.send.msg_id, result.send.queue_offset, result.local_state)
            }
            Err(error) => {
                eprintln!("send {index} failed: {error}");
                failures += 1;
            }
        }
    }
    producer.shutdown().await;
    common::exit_code(failures, || format!("{failures} of {count} transactional sends failed"))
}

async fn check(
    namesrv: &str,
    group: &str,
    state: LocalTransactionState,
    count: usize,
    limit: Duration,
) -> ExitCode {
    let Some((producer, checked)) = start(namesrv, group, state).await else { return ExitCode::FAILURE };
    let answered = || checked.lock().map(|checked| checked.len()).unwrap_or(0);
    let deadline = Instant::now() + limit;
    while answered() < count && Instant::now() < deadline {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // Let the last answers leave before the connections close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer.shutdown().await;
    let missing = count.saturating_sub(answered());
    common::exit_code(missing, || {
        format!("answered {} of {count} checks in {} s", answered(), limit.as_secs())
    })
}
