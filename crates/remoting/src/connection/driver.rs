//! The two tasks that drive one connection's socket: the reader (frames in, dispatch,
//! idle check, teardown) and the writer (queued frames out, bounded flush on close).

use std::io;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::outbound::{Outgoing, Queued};
use super::stream::{ReadHalf as OwnedReadHalf, WriteHalf as OwnedWriteHalf};
use super::Connection;
use crate::code::response_code;
use crate::command::RemotingCommand;
use crate::dispatch;
use crate::frame::{self, FrameError, RemotingCodec};

/// After a connection starts closing, queued frames get this long to reach the socket.
const CLOSE_FLUSH_TIMEOUT_MS: u64 = 2_000;

/// Bytes gathered before they are written without waiting for the queue to run dry.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Frames and bodies at least this large are written from their own memory, not copied into
/// the buffer.
const DIRECT_WRITE_BYTES: usize = 16 * 1024;

/// A buffer grown past this (by a burst) is given back once written out.
const MAX_RETAINED_BUFFER_BYTES: usize = 4 * WRITE_BUFFER_BYTES;

/// Starts the reader and writer tasks of `connection`.
pub(crate) fn start(
    connection: Connection,
    read_half: OwnedReadHalf,
    write_half: OwnedWriteHalf,
    outbound: mpsc::Receiver<Queued>,
    keep_alive: impl Send + 'static,
) {
    connection.touch();
    let tasks = connection.endpoint().io_tasks.clone();
    tasks.spawn(write_loop(connection.clone(), write_half, outbound));
    tasks.spawn(reap_timeouts(connection.clone()));
    tasks.spawn(async move {
        read_loop(&connection, read_half).await;
        end(&connection);
        drop(keep_alive);
    });
}

/// How often calls past their deadline are failed while calls are pending: a call times out
/// within this much of its timeout (Java's client scans once a second, and adds a second).
const REAP_INTERVAL: Duration = Duration::from_millis(10);

/// Fails our calls past their deadline, in place of a timer per call; sleeps while none is
/// pending, and ends with the connection.
async fn reap_timeouts(connection: Connection) {
    let closed = connection.closed_token().clone();
    loop {
        tokio::select! {
            biased;
            _ = closed.cancelled() => return,
            _ = connection.wait_for_pending() => {}
        }
        tokio::select! {
            biased;
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(REAP_INTERVAL) => connection.fail_expired(),
        }
    }
}

/// Reads frames until the peer closes, a frame is malformed, the connection idles out or
/// is closed locally. The idle watchdog races the whole reading side, so a connection whose
/// reader is stuck (waiting for room in the writer queue of a peer that does not read)
/// still idles out.
async fn read_loop(connection: &Connection, read_half: OwnedReadHalf) {
    let endpoint = connection.endpoint().clone();
    let mut frames = FramedRead::new(read_half, RemotingCodec::new(endpoint.limits.max_frame_bytes));
    let closed = connection.closed_token().clone();
    tokio::select! {
        biased;
        _ = closed.cancelled() => {}
        _ = idle_watchdog(connection) => {
            tracing::info!(
                connection = connection.id(),
                side = endpoint.side,
                remote = %connection.remote_addr(),
                idle_timeout_ms = endpoint.limits.idle_timeout_ms,
                "closing idle connection"
            );
        }
        _ = read_frames(connection, &mut frames) => {}
    }
}

/// Reads and dispatches frames until the stream ends or fails. Before it waits for bytes,
/// it ends the batch of any fast path that served requests since the last wait.
async fn read_frames(connection: &Connection, frames: &mut FramedRead<OwnedReadHalf, RemotingCodec>) {
    let side = connection.endpoint().side;
    let router = &connection.endpoint().router;
    let mut fast_path_served = false;
    loop {
        let next = match frames.next().now_or_never() {
            Some(next) => next,
            None => {
                if std::mem::take(&mut fast_path_served) {
                    router.end_of_batch();
                }
                frames.next().await
            }
        };
        match next {
            None => {
                tracing::debug!(connection = connection.id(), side, "peer closed the connection");
                break;
            }
            Some(Err(error)) => {
                log_read_error(connection, side, &error);
                break;
            }
            Some(Ok(command)) => {
                connection.touch();
                if command.is_response() {
                    connection.complete(command);
                } else {
                    fast_path_served |= dispatch::dispatch(connection, command).await;
                }
            }
        }
    }
    if fast_path_served {
        router.end_of_batch();
    }
}

/// Returns once nothing has been read or written for the idle timeout; never when the
/// check is disabled.
async fn idle_watchdog(connection: &Connection) {
    while let Some(deadline) = connection.idle_deadline() {
        if deadline <= Instant::now() {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
    std::future::pending::<()>().await;
}

/// Malformed input is worth a warning; a peer resetting the connection is not.
fn log_read_error(connection: &Connection, side: &'static str, error: &FrameError) {
    let ordinary = matches!(
        error,
        FrameError::Io(io_error) if matches!(
            io_error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
        )
    );
    if ordinary {
        tracing::debug!(connection = connection.id(), side, %error, "connection read failed");
    } else {
        tracing::warn!(
            connection = connection.id(),
            side,
            remote = %connection.remote_addr(),
            %error,
            "closing connection after a bad frame"
        );
    }
}

/// Teardown after the reader stops: close, fail pending calls, run disconnect hooks once.
fn end(connection: &Connection) {
    connection.close();
    for hook in connection.endpoint().router.disconnect_hooks() {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(connection)));
        if outcome.is_err() {
            tracing::error!(connection = connection.id(), "disconnect hook panicked");
        }
    }
}

/// Writes queued frames and responses until the connection closes, then flushes what is
/// queued for at most [`CLOSE_FLUSH_TIMEOUT_MS`] and shuts the socket's write side.
async fn write_loop(
    connection: Connection,
    mut socket: OwnedWriteHalf,
    mut outbound: mpsc::Receiver<Queued>,
) {
    let closed = connection.closed_token().clone();
    let flush_deadline = async {
        closed.cancelled().await;
        tokio::time::sleep(Duration::from_millis(CLOSE_FLUSH_TIMEOUT_MS)).await;
    };
    let mut writer = Writer { connection: &connection, socket: &mut socket, buffer: Vec::new() };
    let outcome = tokio::select! {
        outcome = writer.pump(&mut outbound, &closed) => outcome,
        _ = flush_deadline => Err(io::Error::new(io::ErrorKind::TimedOut, "flush on close timed out")),
    };
    if let Err(error) = outcome {
        tracing::debug!(connection = connection.id(), %error, "connection write ended");
        connection.close();
    }
}

/// The socket's write side and the buffer frames are gathered in, so that many small frames
/// leave in one `send`.
struct Writer<'a> {
    connection: &'a Connection,
    socket: &'a mut OwnedWriteHalf,
    buffer: Vec<u8>,
}

impl Writer<'_> {
    /// Moves items from the queue to the socket, flushing whenever the queue runs dry. Before
    /// a flush the task yields once: handlers finishing in the same instant (a store round
    /// answers many sends at once) then share one write system call instead of one each.
    async fn pump(
        &mut self,
        outbound: &mut mpsc::Receiver<Queued>,
        closed: &CancellationToken,
    ) -> io::Result<()> {
        loop {
            let queued = match outbound.try_recv() {
                Ok(queued) => queued,
                Err(_) => {
                    if !self.buffer.is_empty() {
                        tokio::task::yield_now().await;
                        if let Ok(queued) = outbound.try_recv() {
                            self.put(queued.item).await?;
                            continue;
                        }
                        self.flush().await?;
                        self.connection.touch();
                    }
                    tokio::select! {
                        biased;
                        queued = outbound.recv() => match queued {
                            Some(queued) => queued,
                            None => break,
                        },
                        _ = closed.cancelled() => break,
                    }
                }
            };
            self.put(queued.item).await?;
        }
        // Drain what was queued before the close, then close our side of the socket.
        while let Ok(queued) = outbound.try_recv() {
            self.put(queued.item).await?;
        }
        self.flush().await?;
        self.socket.shutdown().await
    }

    /// Adds one item to the buffer; writes the buffer out once it is full, and large bodies
    /// straight from their own memory.
    async fn put(&mut self, item: Outgoing) -> io::Result<()> {
        match item {
            Outgoing::Frame(frame) => self.put_bytes(&frame).await?,
            Outgoing::Response(response) => {
                let body = self.encode_response_head(&response);
                self.put_bytes(body).await?;
            }
            Outgoing::Deferred { key, build } => {
                let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build.build()))
                    .unwrap_or_else(|_| {
                        tracing::error!(
                            connection = self.connection.id(),
                            code = key.code,
                            "building a response panicked"
                        );
                        RemotingCommand::response(
                            response_code::SYSTEM_ERROR,
                            Some("building the response failed".into()),
                        )
                    });
                if let Some(response) = key.dress_observed(self.connection, answer) {
                    let body = self.encode_response_head(&response);
                    self.put_bytes(body).await?;
                }
            }
        }
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn put_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() < DIRECT_WRITE_BYTES {
            self.buffer.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush().await?;
        self.socket.write_all(bytes).await
    }

    /// Encodes the head of `response` into the buffer and returns the body to follow. A
    /// response too large for the frame limit is replaced by a SYSTEM_ERROR.
    fn encode_response_head<'r>(&mut self, response: &'r RemotingCommand) -> &'r [u8] {
        let max_frame_bytes = self.connection.max_frame_bytes();
        let Err(error) = frame::encode_head(response, max_frame_bytes, &mut self.buffer) else {
            return &response.body;
        };
        tracing::warn!(
            connection = self.connection.id(),
            opaque = response.opaque,
            %error,
            "response cannot be encoded; answering SYSTEM_ERROR instead"
        );
        let mut fallback = RemotingCommand::response(
            response_code::SYSTEM_ERROR,
            Some(format!("response cannot be encoded: {error}")),
        );
        fallback.opaque = response.opaque;
        fallback.serialize_type = response.serialize_type;
        if frame::encode_head(&fallback, max_frame_bytes, &mut self.buffer).is_err() {
            tracing::error!(
                connection = self.connection.id(),
                "not even the SYSTEM_ERROR answer fits a frame"
            );
        }
        &[]
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.socket.write_all(&self.buffer).await?;
            self.buffer.clear();
            if self.buffer.capacity() > MAX_RETAINED_BUFFER_BYTES {
                self.buffer = Vec::new();
            }
        }
        Ok(())
    }
}
