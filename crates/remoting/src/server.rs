//! `RemotingServer`: accepts remoting connections and serves them through a [`Router`].
//!
//! Every accepted connection gets a reader task and a writer task; every request runs in a
//! task of its own (see [`crate::router::Handler`]). Limits bound everything a peer can make
//! the server hold: connections, frame size, requests in flight per connection, queued
//! output per connection, idle time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use crate::connection::endpoint::{ConnectionLimits, Endpoint};
use crate::connection::{Connection, Stream};
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::router::Router;
use crate::tls::ServerTls;

/// Listen backlog of the server socket.
const LISTEN_BACKLOG: u32 = 1024;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_RETRY_DELAY_MS: u64 = 100;

/// How a server listens and what it allows each peer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Largest frame accepted or sent, length field included (Java: 16 MiB).
    pub max_frame_bytes: usize,
    /// Connections with no read and no write for this long are closed (Java: 120 s);
    /// 0 disables the check.
    pub idle_timeout_ms: u64,
    /// Connections served at once; further ones are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Requests whose handler runs at once on one connection; more are answered
    /// SYSTEM_BUSY `[OVERLOAD]...`. Held long polls count.
    pub max_in_flight_per_connection: usize,
    /// On shutdown, how long running handlers may take to finish before every connection is
    /// closed and the remaining handlers are dropped.
    pub shutdown_grace_ms: u64,
    /// TLS (`tls.server.mode` permissive or enforcing); `None` serves plaintext only.
    pub tls: Option<Arc<ServerTls>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9876)),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            idle_timeout_ms: 120_000,
            max_connections: 10_000,
            max_in_flight_per_connection: 4_096,
            shutdown_grace_ms: 5_000,
            tls: None,
        }
    }
}

/// The remoting server. It has no state of its own: [`RemotingServer::start`] returns the
/// [`ServerHandle`] that owns the running server.
#[derive(Debug)]
pub struct RemotingServer;

impl RemotingServer {
    /// Binds `config.listen` and serves connections with `router` until the returned handle
    /// is shut down (or dropped, which closes everything at once).
    pub async fn start(config: ServerConfig, router: Router) -> io::Result<ServerHandle> {
        let listener = Self::bind(config.listen)?;
        Self::serve(listener, config, router)
    }

    /// Binds `listen` (port 0 picks a free port) without serving yet, so a caller can learn
    /// the bound port before it builds the router that announces it; then [`Self::serve`].
    pub fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
        bind(listen)
    }

    /// Serves connections on an already bound `listener` with `router`; `config.listen` is
    /// ignored. Must run inside a Tokio runtime.
    pub fn serve(listener: TcpListener, config: ServerConfig, router: Router) -> io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let limits = ConnectionLimits::new(
            config.max_frame_bytes,
            config.idle_timeout_ms,
            config.max_in_flight_per_connection,
        );
        let endpoint = Endpoint::new("server", router, limits, None);
        let active = Arc::new(AtomicUsize::new(0));
        endpoint.io_tasks.spawn(accept_loop(
            listener,
            endpoint.clone(),
            active.clone(),
            config.max_connections,
            config.tls.clone(),
        ));
        let tls = config.tls.as_ref().map(|tls| tls.mode());
        tracing::info!(%local_addr, ?tls, "remoting server listening");
        Ok(ServerHandle {
            local_addr,
            endpoint,
            active,
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        })
    }
}

/// A listening socket that can be rebound at once after a restart (SO_REUSEADDR).
fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let socket = if listen.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Decrements the live-connection count when a connection ends.
struct ConnectionCount(Arc<AtomicUsize>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    active: Arc<AtomicUsize>,
    max_connections: usize,
    tls: Option<Arc<ServerTls>>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = endpoint.draining.cancelled() => break,
            _ = endpoint.hard_stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                continue;
            }
        };
        let admitted = active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < max_connections).then_some(count + 1)
            })
            .is_ok();
        if !admitted {
            tracing::warn!(%peer, max_connections, "connection limit reached; closing new connection");
            continue;
        }
        let count = ConnectionCount(active.clone());
        let Some(tls) = &tls else {
            start_connection(Stream::Plain(stream), peer, &endpoint, count);
            continue;
        };
        // The first byte and the handshake are awaited on a task of their own, so a slow or
        // silent peer delays nobody else; the connection counts from now on.
        let (tls, endpoint) = (Arc::clone(tls), endpoint.clone());
        endpoint.io_tasks.clone().spawn(async move {
            let stopped = endpoint.hard_stop.clone();
            let decided = tokio::select! {
                decided = tls.accept(stream) => decided,
                _ = stopped.cancelled() => return,
            };
            match decided {
                Ok(stream) => start_connection(stream, peer, &endpoint, count),
                Err(error) => tracing::debug!(%peer, %error, "connection closed before serving"),
            }
        });
    }
    tracing::info!("remoting server stopped accepting");
}

/// Serves an accepted (and, with TLS, classified) connection.
fn start_connection(stream: Stream, peer: SocketAddr, endpoint: &Arc<Endpoint>, count: ConnectionCount) {
    let tls = stream.is_tls();
    match Connection::spawn(stream, endpoint.clone(), count) {
        Ok(connection) => tracing::debug!(connection = connection.id(), %peer, tls, "connection accepted"),
        Err(error) => tracing::warn!(%peer, %error, "cannot set up accepted connection"),
    }
}

/// The running server: its address, and the way to stop it.
///
/// Dropping the handle without [`ServerHandle::shutdown`] closes every connection at once,
/// without a grace period, and does not wait for the tasks to end.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    endpoint: Arc<Endpoint>,
    active: Arc<AtomicUsize>,
    shutdown_grace: Duration,
}

impl ServerHandle {
    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Graceful shutdown: stops accepting, lets running handlers finish for up to the
    /// configured grace period (meanwhile new requests from peers newer than V5_3_1 are
    /// answered GO_AWAY), then closes every connection, drops the handlers still running and
    /// returns once every task of the server has ended.
    pub async fn shutdown(self) {
        tracing::info!(local_addr = %self.local_addr, "remoting server shutting down");
        self.endpoint.draining.cancel();
        self.endpoint.handler_tasks.close();
        if tokio::time::timeout(self.shutdown_grace, self.endpoint.handler_tasks.wait()).await.is_err() {
            tracing::warn!(
                grace_ms = u64::try_from(self.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
                "handlers still running after the shutdown grace period; dropping them"
            );
        }
        self.endpoint.stop_and_wait().await;
        tracing::info!(local_addr = %self.local_addr, "remoting server stopped");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.endpoint.hard_stop.cancel();
    }
}
