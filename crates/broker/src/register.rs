//! Registration with the NameServers (behaviour spec §2.2, protocol §3.2): a full
//! REGISTER_BROKER to every NameServer at start, then periodically and after every topic
//! change, and an UNREGISTER_BROKER at shutdown. Failures are logged and retried on the next
//! round; they never stop the broker.

use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::record::body_crc;
use apogee_common::perm;
use apogee_remoting::body::namesrv::{KVTable, RegisterBrokerBody};
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::command::CURRENT_VERSION;
use apogee_remoting::fastjson;
use apogee_remoting::header::namesrv::{
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnRegisterBrokerRequestHeader,
};
use apogee_remoting::RemotingCommand;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::BrokerState;

/// Shortest registration period Java allows, whatever `registerNameServerPeriod` says.
pub const MIN_REGISTER_PERIOD_MS: u64 = 10_000;
/// Longest registration period Java allows (the NameServer expires brokers after 120 s).
pub const MAX_REGISTER_PERIOD_MS: u64 = 60_000;
/// Time allowed for each UNREGISTER_BROKER at shutdown, so a dead NameServer cannot hold the
/// shutdown up.
pub const UNREGISTER_TIMEOUT_MS: u64 = 3_000;

/// Registers every `registerNameServerPeriod` (and on topic changes) until the broker stops;
/// the first registration is made by `Broker::start` itself. A topic
/// change ([`crate::topic_config::TopicConfigManager::changed`]) triggers a registration at
/// once.
pub async fn run(state: Arc<BrokerState>) {
    let mut stopping = state.stopping.clone();
    if state.config.namesrv_addrs().is_empty() {
        tracing::warn!("no NameServer address configured (namesrvAddr); the broker will not register");
        stopped(&mut stopping).await;
        return;
    }
    let period = register_period(state.config.register_name_server_period_ms);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // `Broker::start` already registered once before it returned.
    ticks.reset();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = state.topics.changed() => {}
            () = stopped(&mut stopping) => return,
        }
        tokio::select! {
            () = register_all(&state) => {}
            () = stopped(&mut stopping) => return,
        }
    }
}

/// `registerNameServerPeriod` clamped to what Java accepts.
pub fn register_period(configured_ms: u64) -> Duration {
    Duration::from_millis(configured_ms.clamp(MIN_REGISTER_PERIOD_MS, MAX_REGISTER_PERIOD_MS))
}

/// Registers with every NameServer now, in parallel, waiting up to
/// `registerBrokerTimeoutMills` for each.
pub async fn register_all(state: &BrokerState) {
    let addrs = state.config.namesrv_addrs();
    // In controller mode a broker is routed to only once the controllers gave it a role.
    if addrs.is_empty() || !state.replication.has_role() {
        return;
    }
    let request = match register_request(state) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(%error, "cannot build the broker registration");
            return;
        }
    };
    let timeout = Duration::from_millis(state.config.register_broker_timeout_ms.max(1));
    for (addr, response) in call_every_namesrv(state, &addrs, request, timeout, "broker registration").await {
        tracing::debug!(namesrv = %addr, "registered with name server");
        apply_order_topics(state, addr, &response);
        if state.replication.is_slave() {
            match response.decode_header::<RegisterBrokerResponseHeader>() {
                Ok(header) => state
                    .replication
                    .registered(header.ha_server_addr.as_deref(), header.master_addr.as_deref()),
                Err(error) => tracing::warn!(namesrv = %addr, %error, "unreadable registration answer"),
            }
        }
    }
}

/// Sends `request` to every NameServer of `addrs` at once and returns the successful answers;
/// refusals and failures of the `what` are logged.
async fn call_every_namesrv<'a>(
    state: &BrokerState,
    addrs: &'a [String],
    request: RemotingCommand,
    timeout: Duration,
    what: &str,
) -> Vec<(&'a String, RemotingCommand)> {
    let calls = addrs.iter().map(|addr| {
        let request = request.clone();
        async move { (addr, state.namesrv_client.invoke(addr, request, timeout).await) }
    });
    let mut answered = Vec::with_capacity(addrs.len());
    for (addr, result) in futures::future::join_all(calls).await {
        match result {
            Ok(response) if response.code == response_code::SUCCESS => answered.push((addr, response)),
            Ok(response) => tracing::warn!(
                namesrv = %addr,
                code = response.code,
                remark = response.remark.as_deref().unwrap_or(""),
                "name server refused the {what}"
            ),
            Err(error) => tracing::warn!(namesrv = %addr, %error, "{what} failed"),
        }
    }
    answered
}

/// Tells every NameServer the broker leaves.
pub async fn unregister_all(state: &BrokerState) {
    let addrs = state.config.namesrv_addrs();
    let header = UnRegisterBrokerRequestHeader {
        broker_name: state.config.broker_name.clone(),
        broker_addr: state.store_host.to_string(),
        cluster_name: state.config.broker_cluster_name.clone(),
        broker_id: state.replication.registered_id(),
    };
    let request = RemotingCommand::request(request_code::UNREGISTER_BROKER).with_header(&header);
    let timeout = Duration::from_millis(UNREGISTER_TIMEOUT_MS);
    for (addr, _) in call_every_namesrv(state, &addrs, request, timeout, "unregistration").await {
        tracing::info!(namesrv = %addr, "unregistered from name server");
    }
}

/// The REGISTER_BROKER request: every topic (permissions narrowed to the broker's when it
/// is not read-write), uncompressed, with the body's CRC.
pub fn register_request(state: &BrokerState) -> Result<RemotingCommand, fastjson::BodyError> {
    let mut wrapper = state.topics.serialize_wrapper();
    let broker_perm = state.broker_permission();
    if !(perm::is_readable(broker_perm) && perm::is_writeable(broker_perm)) {
        for config in wrapper.topic_config_table.values_mut() {
            config.perm &= broker_perm;
        }
    }
    let body = RegisterBrokerBody { filter_server_list: Vec::new(), topic_config_serialize_wrapper: wrapper };
    let body = body.encode(false, CURRENT_VERSION)?;
    let ha_port = state.replication.ha_port();
    let header = RegisterBrokerRequestHeader {
        broker_name: state.config.broker_name.clone(),
        broker_addr: state.store_host.to_string(),
        cluster_name: state.config.broker_cluster_name.clone(),
        ha_server_addr: std::net::SocketAddr::new(state.config.broker_ip1, ha_port).to_string(),
        broker_id: state.replication.registered_id(),
        heartbeat_timeout_millis: None,
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: Some(body_crc(&body)),
    };
    let mut request = RemotingCommand::request(request_code::REGISTER_BROKER).with_header(&header);
    request.version = CURRENT_VERSION;
    Ok(request.with_body(body))
}

/// Sets `order` on the topics a NameServer lists in its `ORDER_TOPIC_CONFIG` answer.
fn apply_order_topics(state: &BrokerState, addr: &str, response: &RemotingCommand) {
    if response.body.is_empty() {
        return;
    }
    let table: KVTable = match fastjson::from_slice(&response.body) {
        Ok(table) => table,
        Err(error) => {
            tracing::warn!(namesrv = %addr, %error, "unreadable order topic table in the registration answer");
            return;
        }
    };
    match state.topics.mark_order_topics(table.table.keys().map(String::as_str)) {
        Ok(true) => tracing::info!(namesrv = %addr, "order flags updated from the name server"),
        Ok(false) => {}
        Err(error) => tracing::error!(%error, "order flags not persisted"),
    }
}

/// Resolves once the broker is stopping (or its stop signal is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_is_clamped() {
        assert_eq!(register_period(30_000), Duration::from_secs(30));
        assert_eq!(register_period(1_000), Duration::from_secs(10));
        assert_eq!(register_period(600_000), Duration::from_secs(60));
    }
}
