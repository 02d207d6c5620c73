//! `Endpoint`: what every connection of one server or one client shares — the router, the
//! limits, the credentials to sign with, the task trackers and the stop signals.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acl::SessionCredentials;
use crate::router::Router;

/// Per-connection limits, taken from a server's or client's configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimits {
    /// Largest frame read or written, length field included.
    pub max_frame_bytes: usize,
    /// A connection with no read and no write for this long is closed; 0 disables the check.
    pub idle_timeout_ms: u64,
    /// Inbound requests handled at once on one connection; more are answered SYSTEM_BUSY.
    pub max_in_flight: usize,
    /// Encoded frames waiting for the socket writer; senders wait when it is full.
    pub writer_queue_frames: usize,
    /// Bytes of encoded frames waiting for the socket writer; senders wait beyond it.
    pub writer_queue_bytes: u32,
}

impl ConnectionLimits {
    /// Limits from a configuration's values; out-of-range values are brought into range.
    pub fn new(max_frame_bytes: usize, idle_timeout_ms: u64, max_in_flight: usize) -> Self {
        let max_frame_bytes = clamp_frame_bytes(max_frame_bytes);
        Self {
            max_frame_bytes,
            idle_timeout_ms,
            max_in_flight: max_in_flight.max(1),
            writer_queue_frames: WRITER_QUEUE_FRAMES,
            writer_queue_bytes: u32::try_from(
                max_frame_bytes.saturating_mul(WRITER_QUEUE_MAX_FRAMES_OF_BYTES),
            )
            .unwrap_or(u32::MAX),
        }
    }
}

/// Frames queued for one connection's writer before senders have to wait.
const WRITER_QUEUE_FRAMES: usize = 4096;

/// Bytes queued for one connection's writer before senders have to wait, in frame limits:
/// 64 MiB with the default 16 MiB frame limit.
const WRITER_QUEUE_MAX_FRAMES_OF_BYTES: usize = 4;

/// The smallest frame limit the codec accepts: the length field and the header word.
const MIN_FRAME_BYTES: usize = 8;

/// Brings a configured frame limit into the range the codec accepts.
fn clamp_frame_bytes(max_frame_bytes: usize) -> usize {
    max_frame_bytes.clamp(MIN_FRAME_BYTES, i32::MAX as usize)
}

/// Shared state of one server or client.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// "server" or "client", for logs.
    pub side: &'static str,
    pub router: Router,
    pub limits: ConnectionLimits,
    /// When set, every request sent on this endpoint's connections is signed (ACL 1.0).
    pub credentials: Option<SessionCredentials>,
    /// Reader and writer tasks (and the server's accept loop).
    pub io_tasks: TaskTracker,
    /// Handler tasks, tracked apart so a graceful shutdown can wait for them alone.
    pub handler_tasks: TaskTracker,
    /// Cancelled to close every connection at once; handlers still running are dropped.
    pub hard_stop: CancellationToken,
    /// Cancelled when a graceful shutdown starts: new requests from recent clients are told
    /// to go away, in-flight ones may finish.
    pub draining: CancellationToken,
}

impl Endpoint {
    /// A fresh endpoint.
    pub fn new(
        side: &'static str,
        router: Router,
        limits: ConnectionLimits,
        credentials: Option<SessionCredentials>,
    ) -> Arc<Self> {
        Arc::new(Self {
            side,
            router,
            limits,
            credentials,
            io_tasks: TaskTracker::new(),
            handler_tasks: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
            draining: CancellationToken::new(),
        })
    }

    /// Closes every connection and waits until every task of this endpoint has ended.
    pub async fn stop_and_wait(&self) {
        self.draining.cancel();
        self.hard_stop.cancel();
        self.handler_tasks.close();
        self.io_tasks.close();
        self.handler_tasks.wait().await;
        self.io_tasks.wait().await;
    }
}
