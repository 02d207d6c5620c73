//! `RemotingClient`: calls remoting servers by address over reused connections.
//!
//! One connection per address, made on first use and made again on the next call after it
//! closed. Requests the server sends back over that connection (a broker asking a producer
//! to check a transaction, say) are served by the client's own [`Router`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::acl::SessionCredentials;
use crate::command::{RemotingCommand, SerializeType, CURRENT_VERSION};
use crate::connection::endpoint::{ConnectionLimits, Endpoint};
use crate::connection::{Connection, Stream};
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::language::LanguageCode;
use crate::router::Router;
use crate::tls::ClientTls;

pub use crate::error::RemotingError;

/// How a client connects, encodes and signs.
#[derive(Clone)]
pub struct ClientConfig {
    /// Time allowed to establish a TCP connection (Java: 3 s).
    pub connect_timeout_ms: u64,
    /// Largest frame accepted or sent, length field included (Java: 16 MiB).
    pub max_frame_bytes: usize,
    /// Header serialization of every request this client sends (spec §1.8; JSON is what
    /// every server understands).
    pub serialize_type: SerializeType,
    /// When set, every request is signed with ACL 1.0 (spec §5) just before it is written.
    pub credentials: Option<SessionCredentials>,
    /// Connections with no read and no write for this long are closed and remade on the
    /// next call (Java: 120 s); 0 disables the check.
    pub idle_timeout_ms: u64,
    /// Requests from the server whose handler runs at once on one connection; more are
    /// answered SYSTEM_BUSY.
    pub max_in_flight_per_connection: usize,
    /// When set, every connection runs over TLS (Java's `useTLS` / `tls.enable`).
    pub tls: Option<Arc<ClientTls>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            serialize_type: SerializeType::Json,
            credentials: None,
            idle_timeout_ms: 120_000,
            max_in_flight_per_connection: 1_024,
            tls: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("serialize_type", &self.serialize_type)
            .field("credentials", &self.credentials)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("max_in_flight_per_connection", &self.max_in_flight_per_connection)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The connection to one address, or none yet; locked while a connection is being made so
/// that concurrent first calls share it.
type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// A remoting client: a pool of one connection per server address.
///
/// Dropping the client closes its connections at once; [`RemotingClient::shutdown`] also
/// waits for their tasks to end.
pub struct RemotingClient {
    endpoint: Arc<Endpoint>,
    connect_timeout: Duration,
    serialize_type: SerializeType,
    tls: Option<Arc<ClientTls>>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl RemotingClient {
    /// A client that connects lazily; `router` serves the requests servers send to it.
    /// Needs no runtime until the first call.
    pub fn new(config: ClientConfig, router: Router) -> Self {
        let limits = ConnectionLimits::new(
            config.max_frame_bytes,
            config.idle_timeout_ms,
            config.max_in_flight_per_connection,
        );
        Self {
            endpoint: Endpoint::new("client", router, limits, config.credentials),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            serialize_type: config.serialize_type,
            tls: config.tls,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` to `addr` (`host:port`) and waits for the response. `timeout` covers
    /// connecting too. The client's serialization type is applied; language RUST and version
    /// CURRENT_VERSION are set when the request left its version at 0.
    pub async fn invoke(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        // The clock is read only when connecting took time out of the budget: an open
        // connection (every call but the first) costs no clock read here.
        let (connection, remaining) = match self.open_connection(addr) {
            Some(connection) => (connection, timeout),
            None => {
                let started = Instant::now();
                let connection =
                    tokio::time::timeout(timeout, self.connection(addr)).await.map_err(|_| {
                        RemotingError::Timeout { addr: addr.to_owned(), timeout_ms: duration_ms(timeout) }
                    })??;
                (connection, timeout.saturating_sub(started.elapsed()))
            }
        };
        self.stamp(&mut request);
        if remaining.is_zero() {
            return Err(RemotingError::Timeout { addr: addr.to_owned(), timeout_ms: duration_ms(timeout) });
        }
        connection.invoke(request, remaining).await.map_err(|error| match error {
            RemotingError::Timeout { .. } => {
                RemotingError::Timeout { addr: addr.to_owned(), timeout_ms: duration_ms(timeout) }
            }
            other => other,
        })
    }

    /// Sends `request` to `addr` with the oneway flag; returns once it is queued.
    pub async fn invoke_oneway(&self, addr: &str, mut request: RemotingCommand) -> Result<(), RemotingError> {
        let connection = self.connection(addr).await?;
        self.stamp(&mut request);
        connection.invoke_oneway(request).await
    }

    /// The open connection to `addr`, made now if there is none or the last one closed.
    pub async fn connection(&self, addr: &str) -> Result<Connection, RemotingError> {
        if let Some(connection) = self.open_connection(addr) {
            return Ok(connection);
        }
        if self.endpoint.hard_stop.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        let slot = self.slot(addr);
        let mut current = slot.lock().await;
        if let Some(connection) = current.as_ref().filter(|connection| !connection.is_closed()) {
            return Ok(connection.clone());
        }
        *current = None;
        let connection = self.connect(addr).await?;
        *current = Some(connection.clone());
        Ok(connection)
    }

    /// Closes every connection and waits until their tasks (and running handlers) ended.
    /// Later calls fail with [`RemotingError::Shutdown`].
    pub async fn shutdown(&self) {
        self.endpoint.stop_and_wait().await;
        self.slots.lock().clear();
    }

    /// The open connection to `addr` when there is one and nobody is connecting: the common
    /// case of every call, served without waiting or a timer.
    fn open_connection(&self, addr: &str) -> Option<Connection> {
        if self.endpoint.hard_stop.is_cancelled() {
            return None;
        }
        let slot = self.slots.lock().get(addr).cloned()?;
        let current = slot.try_lock().ok()?;
        current.as_ref().filter(|connection| !connection.is_closed()).cloned()
    }

    /// The slot of `addr`, created if needed; slots of closed connections are pruned then.
    fn slot(&self, addr: &str) -> Slot {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(addr) {
            return slot.clone();
        }
        // A slot that nobody is connecting through and that holds no open connection is dead.
        slots.retain(|_, slot| match slot.try_lock() {
            Ok(current) => current.as_ref().is_some_and(|connection| !connection.is_closed()),
            Err(_) => true,
        });
        slots.entry(addr.to_owned()).or_default().clone()
    }

    async fn connect(&self, addr: &str) -> Result<Connection, RemotingError> {
        let connecting = async {
            let stream = TcpStream::connect(addr).await?;
            match &self.tls {
                Some(tls) => tls.connect(addr, stream).await,
                None => Ok(Stream::Plain(stream)),
            }
        };
        // The timeout covers the TLS handshake too.
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout_ms: duration_ms(self.connect_timeout),
            })?
            .map_err(|source| RemotingError::Connect { addr: addr.to_owned(), source })?;
        if self.endpoint.hard_stop.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        let connection = Connection::spawn(stream, self.endpoint.clone(), ())
            .map_err(|source| RemotingError::Connect { addr: addr.to_owned(), source })?;
        tracing::debug!(connection = connection.id(), addr, "connected");
        Ok(connection)
    }

    /// Applies the client's serialization type and, for requests built without a version,
    /// Apogee's language and version.
    fn stamp(&self, request: &mut RemotingCommand) {
        request.serialize_type = self.serialize_type;
        if request.version == 0 {
            request.version = CURRENT_VERSION;
            request.language = LanguageCode::Rust;
        }
    }
}

impl fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingClient")
            .field("connect_timeout", &self.connect_timeout)
            .field("serialize_type", &self.serialize_type)
            .field("addresses", &self.slots.lock().len())
            .finish()
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.endpoint.hard_stop.cancel();
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
