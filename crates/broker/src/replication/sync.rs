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

/// Copies the master's metadata every [`SYNC_PERIOD_MS`], and adopts topics known only from
/// replicated messages every [`ADOPT_PERIOD_MS`], until the broker stops (slaves only).
pub async fn run(state: Arc<BrokerState>) {
    let mut stopping = state.stopping.clone();
    let rounds_per_sync = (SYNC_PERIOD_MS / ADOPT_PERIOD_MS).max(1);
    for round in 0u64.. {
        if round % rounds_per_sync == 0 {
            if let Some(master) = state.replication.master_addr() {
                sync_all(&state, &master).await;
            }
        }
        adopt_replicated_topics(&state);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ADOPT_PERIOD_MS)) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Gives every topic the slave holds messages of, but that the master's table did not name
/// yet (created less than a sync period before the master died), a config with as many
/// queues as its messages use, so consumers can read them from this slave. Java's slave
/// refuses such pulls with TOPIC_NOT_EXIST until its master comes back.
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

/// One round: every table, each on its own (one failing does not stop the others).
pub async fn sync_all(state: &BrokerState, master: &str) {
    if let Some(body) = ask(state, master, request_code::GET_ALL_TOPIC_CONFIG, "topics").await {
        match fastjson::from_slice::<TopicConfigAndMappingSerializeWrapper>(&body) {
            Ok(wrapper) => {
                apply("topics", state.topics.replace_from_master(wrapper).map_err(|e| e.to_string()))
            }
            Err(error) => tracing::warn!(%master, %error, "unreadable topics from the master"),
        }
    }
    if let Some(body) = ask(state, master, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, "groups").await {
        match fastjson::from_slice::<SubscriptionGroupWrapper>(&body) {
            Ok(wrapper) => {
                apply("groups", state.groups.replace_from_master(wrapper).map_err(|e| e.to_string()))
            }
            Err(error) => tracing::warn!(%master, %error, "unreadable groups from the master"),
        }
    }
    if let Some(body) = ask(state, master, request_code::GET_ALL_CONSUMER_OFFSET, "consumer offsets").await {
        if let Err(error) = state.offsets.merge_from_master(&body) {
            tracing::warn!(%master, %error, "unreadable consumer offsets from the master");
        }
    }
    if let Some(body) = ask(state, master, request_code::GET_ALL_DELAY_OFFSET, "delay offsets").await {
        if let Err(error) = state.schedule.replace_from_master(&body) {
            tracing::warn!(%master, %error, "unreadable delay offsets from the master");
        }
    }
}

fn apply(what: &str, result: Result<bool, String>) {
    match result {
        Ok(true) => tracing::info!(what, "copied from the master"),
        Ok(false) => {}
        Err(error) => tracing::error!(what, %error, "copy from the master not persisted"),
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
