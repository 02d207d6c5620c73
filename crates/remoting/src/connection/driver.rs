//! The two tasks that drive one connection's socket: the reader (frames in, dispatch,
//! idle check, teardown) and the writer (queued frames out, bounded flush on close).

use std::io;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::outbound::QueuedFrame;
use super::Connection;
use crate::dispatch;
use crate::frame::{FrameError, RemotingCodec};

/// After a connection starts closing, queued frames get this long to reach the socket.
const CLOSE_FLUSH_TIMEOUT_MS: u64 = 2_000;

/// Write buffer of one connection; larger frames bypass it.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Starts the reader and writer tasks of `connection`.
pub(crate) fn start(
    connection: Connection,
    read_half: OwnedReadHalf,
    write_half: OwnedWriteHalf,
    outbound: mpsc::Receiver<QueuedFrame>,
    keep_alive: impl Send + 'static,
) {
    connection.touch();
    let tasks = connection.endpoint().io_tasks.clone();
    tasks.spawn(write_loop(connection.clone(), write_half, outbound));
    tasks.spawn(async move {
        read_loop(&connection, read_half).await;
        end(&connection);
        drop(keep_alive);
    });
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

/// Reads and dispatches frames until the stream ends or fails.
async fn read_frames(connection: &Connection, frames: &mut FramedRead<OwnedReadHalf, RemotingCodec>) {
    let side = connection.endpoint().side;
    loop {
        match frames.next().await {
            None => {
                tracing::debug!(connection = connection.id(), side, "peer closed the connection");
                return;
            }
            Some(Err(error)) => {
                log_read_error(connection, side, &error);
                return;
            }
            Some(Ok(command)) => {
                connection.touch();
                if command.is_response() {
                    connection.complete(command);
                } else {
                    dispatch::dispatch(connection, command).await;
                }
            }
        }
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

/// Writes queued frames until the connection closes, then flushes what is queued for at most
/// [`CLOSE_FLUSH_TIMEOUT_MS`] and shuts the socket's write side.
async fn write_loop(
    connection: Connection,
    write_half: OwnedWriteHalf,
    mut outbound: mpsc::Receiver<QueuedFrame>,
) {
    let closed = connection.closed_token().clone();
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
    let flush_deadline = async {
        closed.cancelled().await;
        tokio::time::sleep(Duration::from_millis(CLOSE_FLUSH_TIMEOUT_MS)).await;
    };
    let outcome = tokio::select! {
        outcome = pump(&connection, &mut out, &mut outbound, &closed) => outcome,
        _ = flush_deadline => Err(io::Error::new(io::ErrorKind::TimedOut, "flush on close timed out")),
    };
    if let Err(error) = outcome {
        tracing::debug!(connection = connection.id(), %error, "connection write ended");
        connection.close();
    }
}

/// Moves frames from the queue to the socket, flushing whenever the queue runs dry. Before a
/// flush the task yields once: handlers finishing in the same instant (a store round answers
/// many sends at once) then share one write system call instead of one each.
async fn pump(
    connection: &Connection,
    out: &mut BufWriter<OwnedWriteHalf>,
    outbound: &mut mpsc::Receiver<QueuedFrame>,
    closed: &CancellationToken,
) -> io::Result<()> {
    let mut unflushed = false;
    loop {
        let frame = match outbound.try_recv() {
            Ok(frame) => frame,
            Err(_) => {
                if unflushed {
                    tokio::task::yield_now().await;
                    if let Ok(frame) = outbound.try_recv() {
                        out.write_all(&frame.bytes).await?;
                        continue;
                    }
                    out.flush().await?;
                    connection.touch();
                }
                tokio::select! {
                    biased;
                    frame = outbound.recv() => match frame {
                        Some(frame) => frame,
                        None => break,
                    },
                    _ = closed.cancelled() => break,
                }
            }
        };
        out.write_all(&frame.bytes).await?;
        unflushed = true;
    }
    // Drain what was queued before the close, then close our side of the socket.
    while let Ok(frame) = outbound.try_recv() {
        out.write_all(&frame.bytes).await?;
    }
    out.flush().await?;
    out.shutdown().await
}
