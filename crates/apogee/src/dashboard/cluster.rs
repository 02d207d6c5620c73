//! The cluster page: every broker the NameServers know, with its runtime figures
//! (GET_BROKER_CLUSTER_INFO, then GET_BROKER_RUNTIME_INFO of each member; behaviour spec of
//! the keys: observability-admin §2.6).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use axum::extract::State;
use serde::Serialize;

use super::api::{answer, Answer};
use super::Ctx;
use crate::admin::describe;
use crate::admin::inspect::{self, count, figure, first_number, hours_kept};

/// The cluster page's data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterView {
    /// The NameServer list the dashboard reads.
    namesrv: String,
    /// One entry per broker group member.
    brokers: Vec<BrokerView>,
}

/// One broker with the figures clusterList shows, and every runtime key for the details.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BrokerView {
    cluster: String,
    broker_name: String,
    broker_id: i64,
    addr: String,
    version: String,
    /// Messages stored per second (first figure of `putTps`); `None` when not reported (the
    /// same for each figure below).
    in_tps: Option<f64>,
    /// Messages delivered per second (first figure of `getTransferredTps`).
    out_tps: Option<f64>,
    /// Messages stored today (`msgPutTotalTodayNow`).
    put_today: Option<i64>,
    /// Messages delivered today (`msgGetTotalTodayNow`).
    get_today: Option<i64>,
    /// Bytes written to the commit log since it began (`commitLogMaxOffset`).
    commit_log_max_offset: Option<i64>,
    /// Hours since the oldest stored message.
    hours_kept: f64,
    /// Commit-log disk use, 0..1 (`commitLogDiskRatio`).
    disk_ratio: f64,
    /// `brokerActive`.
    active: String,
    /// Every GET_BROKER_RUNTIME_INFO key, sorted.
    runtime: BTreeMap<String, String>,
    /// Why the runtime figures are missing, when GET_BROKER_RUNTIME_INFO failed.
    error: Option<String>,
}

/// True when the broker reports `key` (Apogee leaves out the figures it does not keep).
fn reported(runtime: &BTreeMap<String, String>, key: &str) -> bool {
    runtime.contains_key(key)
}

/// `GET /api/cluster`.
pub(super) async fn brokers(State(ctx): State<Arc<Ctx>>) -> Answer {
    answer(&ctx, "cluster", read(&ctx)).await
}

async fn read(ctx: &Ctx) -> Result<ClusterView> {
    let info = inspect::cluster_info(&ctx.admin, &ctx.namesrv).await?;
    let now_ms = apogee_common::time::now_ms();
    let mut brokers = Vec::new();
    for member in inspect::members(&info, None) {
        let (runtime, error) = match ctx.admin.broker_runtime_info(&member.addr).await {
            Ok(kv) => (kv.table, None),
            Err(error) => (
                BTreeMap::new(),
                Some(format!("GET_BROKER_RUNTIME_INFO (28) to {} failed: {}", member.addr, describe(&error))),
            ),
        };
        brokers.push(BrokerView {
            version: figure(&runtime, "brokerVersionDesc", "").to_owned(),
            in_tps: reported(&runtime, "putTps").then(|| first_number(&runtime, "putTps")),
            out_tps: reported(&runtime, "getTransferredTps")
                .then(|| first_number(&runtime, "getTransferredTps")),
            put_today: reported(&runtime, "msgPutTotalTodayNow")
                .then(|| count(&runtime, "msgPutTotalTodayNow")),
            get_today: reported(&runtime, "msgGetTotalTodayNow")
                .then(|| count(&runtime, "msgGetTotalTodayNow")),
            commit_log_max_offset: reported(&runtime, "commitLogMaxOffset")
                .then(|| count(&runtime, "commitLogMaxOffset")),
            hours_kept: hours_kept(&runtime, now_ms),
            disk_ratio: runtime.get("commitLogDiskRatio").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            active: figure(&runtime, "brokerActive", "").to_owned(),
            cluster: member.cluster,
            broker_name: member.broker_name,
            broker_id: member.broker_id,
            addr: member.addr,
            runtime,
            error,
        });
    }
    Ok(ClusterView { namesrv: ctx.namesrv.clone(), brokers })
}
