//! The web dashboard: rocketmq-dashboard's pages (cluster, topics, consumer groups, producers,
//! messages, dead letters) for a browser, served by `apogee standalone` and by
//! `apogee dashboard -n NAMESRV`.
//!
//! The dashboard is a client like any other: it reads the cluster through the admin API
//! ([`apogee_client::Admin`]) and the NameServers, never through a broker's internals, so it
//! shows Apache RocketMQ clusters as well. What it computes comes from the same functions the
//! `apogee admin` commands use ([`crate::admin::inspect`]).
//!
//! Shape: a JSON API under `/api/` (one module per page: [`cluster`], [`topics`], [`groups`],
//! [`producers`], [`messages`], [`dlq`]) and one static page ([`assets`], embedded in the
//! binary) whose script calls it. Every answer is HTTP 200 with rocketmq-dashboard's envelope
//! (`{"status":0,"data":…}`, or `{"status":-1,"errMsg":…}` naming what failed and where), so a
//! refused request is shown on the page rather than logged by the browser as a failed load.
//!
//! Limits: at most [`MAX_CONCURRENT_CALLS`] API calls at once, each bounded by
//! [`CALL_TIMEOUT`] overall and [`REQUEST_TIMEOUT`] per admin request; message listings
//! return at most [`messages::MAX_MESSAGES`] messages over at most
//! [`messages::MAX_RANGE_MS`] of store time.

mod api;
mod assets;
mod cluster;
mod dlq;
mod groups;
mod messages;
mod producers;
mod topics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use apogee_client::{Admin, Producer};
use apogee_metrics::HttpServer;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{OnceCell, Semaphore};

/// Port of the dashboard when none is given (rocketmq-dashboard's `server.port`).
pub const DEFAULT_PORT: u16 = 8080;

/// Timeout of each admin request to a NameServer or broker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest one API call may take, all its admin requests together.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// API calls served at once; more wait (within their [`CALL_TIMEOUT`]).
pub const MAX_CONCURRENT_CALLS: usize = 8;

/// What every API handler works with.
#[derive(Debug)]
struct Ctx {
    /// The admin client of the NameServers.
    admin: Admin,
    /// The NameServer list, for the cluster page and for starting the resend producer.
    namesrv: String,
    /// Bounds the API calls served at once.
    calls: Semaphore,
    /// The producer of DLQ resends, started by the first resend.
    resend_producer: OnceCell<Producer>,
}

/// A running dashboard; stops with [`Dashboard::shutdown`] (or, aborted, when dropped).
#[derive(Debug)]
pub struct Dashboard {
    server: HttpServer,
    ctx: Arc<Ctx>,
}

impl Dashboard {
    /// Binds `listen` (port 0: one the system chooses) and serves the dashboard of the cluster
    /// behind `namesrv` (`host:port`, `;`-separated).
    pub async fn start(namesrv: &str, listen: SocketAddr) -> Result<Self> {
        let admin = crate::admin::start_admin(namesrv, REQUEST_TIMEOUT).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the dashboard on {listen}"))?;
        let ctx = Arc::new(Ctx {
            admin,
            namesrv: namesrv.to_owned(),
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
            resend_producer: OnceCell::new(),
        });
        let server = HttpServer::serve(listener, router(Arc::clone(&ctx)), "dashboard")
            .context("serving the dashboard")?;
        Ok(Self { server, ctx })
    }

    /// The address the dashboard listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops accepting, lets the calls in flight end, and stops the resend producer.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        if let Some(producer) = self.ctx.resend_producer.get() {
            producer.shutdown().await;
        }
    }
}

/// Every route: the page and its assets, and the API.
fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/cluster", get(cluster::brokers))
        .route("/api/topics", get(topics::list))
        .route("/api/topic", get(topics::status))
        .route("/api/groups", get(groups::list))
        .route("/api/group", get(groups::progress))
        .route("/api/producers", get(producers::connections))
        .route("/api/messages/by-id", get(messages::by_id))
        .route("/api/messages/by-key", get(messages::by_key))
        .route("/api/messages/by-time", get(messages::by_time))
        .route("/api/dlq/groups", get(dlq::groups))
        .route("/api/dlq", get(dlq::list))
        .route("/api/dlq/resend", post(dlq::resend))
        .with_state(ctx)
}
