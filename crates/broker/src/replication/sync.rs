//! A slave's copy of its master's metadata (Java `SlaveSynchronize`, storage spec §6.7):
//! topics, subscription groups, committed consumer offsets and delay-level progress, asked
//! of the master every [`SYNC_PERIOD_MS`] with the same admin requests Java's slave sends, so
//! a slave of either implementation follows a master of either. Without it a slave would
//! hold the messages but not know the topics they belong to.

use std::sync::Arc;
use std::time::Duration;

use apogee_remoting::body::admin::SubscriptionGroupWrapper;
use apogee_remoting::body::namesrv::TopicConfigAndMappingSerializeWrapper;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson;
use apogee_remoting::RemotingCommand;

use crate::BrokerState;

/// How often a slave copies its master's metadata (Java: every 3 s).
pub const SYNC_PERIOD_MS: u64 = 3_000;
/// Longest one request to the master may take.
const REQUEST_TIMEOUT_MS: u64 = 3_000;

/// How often a slave looks for topics it holds messages of but has no config for.
pub const ADOPT_PERIOD_MS: u64 = 1_000;

/// Copies the master's metadata every [`SYNC_PERIOD_MS`] and, while the slave has lost its
/// master, adopts topics known only from replicated messages every [`ADOPT_PERIOD_MS`], until
/// the broker stops (slaves only). Tables are written on the blocking pool, never on an async
/// worker.
pub async fn run(state: Arc<BrokerState>) {
    let mut stopping = state.stopping.clone();
    let rounds_per_sync = (SYNC_PERIOD_MS / ADOPT_PERIOD_MS).max(1);
    for round in 0u64.. {
        if round % rounds_per_sync == 0 {
            if let Some(master) = state.replication.master_addr() {
                sync_all(&state, &master).await;
            }
        }
        // While the slave follows its master, the sync above names every topic within a
        // period; only a lost master leaves topics nobody will name.
        if !state.replication.is_following() {
            let owner = Arc::clone(&state);
            if let Err(error) = tokio::task::spawn_blocking(move || adopt_replicated_topics(&owner)).await {
                tracing::error!(%error, "topic adoption failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ADOPT_PERIOD_MS)) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Gives every topic the slave holds messages of, but that the master's table did not name
/// yet (created less than a sync period before the master died), a config with as many
/// queues as its messages use, so consumers can read them from this slave. Java's slave
/// refuses such pulls with TOPIC_NOT_EXIST until its master comes back. Blocking: it persists.
pub fn adopt_replicated_topics(state: &BrokerState) {
    for (topic, queues) in state.store.queue_topics() {
        if state.topics.contains(&topic) {
            continue;
        }
        let config = apogee_common::TopicConfig {
            read_queue_nums: queues,
            write_queue_nums: queues,
            ..apogee_common::TopicConfig::new(topic.clone())
        };
        match state.topics.create_or_update(config) {
            Ok(()) => tracing::info!(%topic, queues, "topic adopted from replicated messages"),
            Err(error) => tracing::error!(%topic, %error, "adopted topic not persisted"),
        }
    }
}

/// What one round fetched from the master (`None`: that request failed, logged).
struct MasterTables {
    topics: Option<Vec<u8>>,
    groups: Option<Vec<u8>>,
    offsets: Option<Vec<u8>>,
    delay_offsets: Option<Vec<u8>>,
}

/// One round: every table fetched, then applied on the blocking pool (the topic and group
/// tables are written to disk), each on its own: one failing does not stop the others.
pub async fn sync_all(state: &Arc<BrokerState>, master: &str) {
    let tables = MasterTables {
        topics: ask(state, master, request_code::GET_ALL_TOPIC_CONFIG, "topics").await,
        groups: ask(state, master, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, "groups").await,
        offsets: ask(state, master, request_code::GET_ALL_CONSUMER_OFFSET, "consumer offsets").await,
        delay_offsets: ask(state, master, request_code::GET_ALL_DELAY_OFFSET, "delay offsets").await,
    };
    let owner = Arc::clone(state);
    if let Err(error) = tokio::task::spawn_blocking(move || apply_tables(&owner, tables)).await {
        tracing::error!(%error, "applying the master's tables failed");
    }
}

fn apply_tables(state: &BrokerState, tables: MasterTables) {
    if let Some(body) = tables.topics {
        let applied = fastjson::from_slice::<TopicConfigAndMappingSerializeWrapper>(&body)
            .map_err(|error| format!("unreadable: {error}"))
            .and_then(|wrapper| state.topics.replace_from_master(wrapper).map_err(|error| error.to_string()));
        report("topics", applied);
    }
    if let Some(body) = tables.groups {
        let applied = fastjson::from_slice::<SubscriptionGroupWrapper>(&body)
            .map_err(|error| format!("unreadable: {error}"))
            .and_then(|wrapper| state.groups.replace_from_master(wrapper).map_err(|error| error.to_string()));
        report("groups", applied);
    }
    if let Some(body) = tables.offsets {
        report("consumer offsets", state.offsets.merge_from_master(&body).map(|_| false));
    }
    if let Some(body) = tables.delay_offsets {
        report("delay offsets", state.schedule.replace_from_master(&body).map(|()| false));
    }
}

fn report(what: &str, result: Result<bool, String>) {
    match result {
        Ok(true) => tracing::info!(what, "copied from the master"),
        Ok(false) => {}
        Err(error) => tracing::warn!(what, %error, "copy from the master failed"),
    }
}

/// The body of `code`'s answer from the master; `None` (logged) when it fails.
async fn ask(state: &BrokerState, master: &str, code: i32, what: &str) -> Option<Vec<u8>> {
    let request = RemotingCommand::request(code);
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    match state.namesrv_client.invoke(master, request, timeout).await {
        Ok(response) if response.code == response_code::SUCCESS => Some(response.body.to_vec()),
        Ok(response) => {
            tracing::warn!(%master, what, code = response.code, remark = response.remark.as_deref().unwrap_or(""), "the master refused the metadata sync");
            None
        }
        Err(error) => {
            tracing::debug!(%master, what, %error, "metadata sync with the master failed");
            None
        }
    }
}
