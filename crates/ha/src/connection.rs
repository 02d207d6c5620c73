//! One slave's connection on the master (Java `DefaultHAConnection`, storage spec §6.3): a
//! reader thread takes the slave's reports, a writer thread streams the commit log from
//! where the slave stands. Either ending closes the socket, which ends the other.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apogee_store::MessageStore;

use crate::config::HaConfig;
use crate::transfer::{Replicas, SlaveLink};
use crate::wire::{self, FrameHeader};

/// How long the writer waits for new data before it looks at the clock again.
const IDLE_WAIT_MS: u64 = 100;
/// Pause between two looks for the slave's first report.
const FIRST_REPORT_POLL_MS: u64 = 10;
/// Bytes the reader takes per read (many reports at once when it fell behind).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What both threads of one connection share.
pub(crate) struct ConnectionContext {
    pub store: Arc<MessageStore>,
    pub config: HaConfig,
    pub replicas: Arc<Replicas>,
    pub stop: Arc<AtomicBool>,
}

/// Starts the reader and writer of a slave that just connected.
pub(crate) fn start(stream: TcpStream, context: Arc<ConnectionContext>) -> io::Result<Vec<JoinHandle<()>>> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(false)?;
    let housekeeping = Duration::from_millis(context.config.housekeeping_interval_ms);
    stream.set_read_timeout(Some(housekeeping))?;
    stream.set_write_timeout(Some(housekeeping))?;
    let link = Arc::new(SlaveLink::new(peer, Some(stream.try_clone()?)));
    context.replicas.add(Arc::clone(&link));
    tracing::info!(slave = %peer, "slave connected");

    let reader_stream = stream.try_clone()?;
    let reader = {
        let (context, link) = (Arc::clone(&context), Arc::clone(&link));
        spawn("ha-master-reader", move || {
            let ended = read_reports(&reader_stream, &context, &link);
            end_connection(&context, &link, "reader", ended);
        })?
    };
    let writer = spawn("ha-master-writer", move || {
        let ended = stream_commit_log(&stream, &context, &link);
        end_connection(&context, &link, "writer", ended);
    })?;
    Ok(vec![reader, writer])
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_owned()).spawn(body)
}

/// Closes the connection once (whichever thread ends first) and says why.
fn end_connection(context: &ConnectionContext, link: &Arc<SlaveLink>, side: &str, ended: io::Result<()>) {
    let first = !link.is_closed();
    context.replicas.remove(link);
    if first {
        match ended {
            Ok(()) => tracing::info!(slave = %link.peer, side, "slave connection closed"),
            Err(error) => tracing::warn!(slave = %link.peer, side, %error, "slave connection closed"),
        }
    }
}

/// Reads reports until the slave goes quiet for `haHousekeepingInterval` or disconnects.
fn read_reports(mut stream: &TcpStream, context: &ConnectionContext, link: &SlaveLink) -> io::Result<()> {
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut filled = 0;
    while !context.stop.load(Ordering::Acquire) && !link.is_closed() {
        let read = match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if is_timeout(&error) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no report from the slave in time"))
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        filled += read;
        if let Some((offset, used)) = wire::last_report(&buffer[..filled]) {
            if offset < 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("negative report {offset}")));
            }
            context.replicas.report(link, offset);
            buffer.copy_within(used..filled, 0);
            filled -= used;
        }
    }
    Ok(())
}

/// Streams the commit log to the slave from the offset it first reported.
fn stream_commit_log(
    mut stream: &TcpStream,
    context: &ConnectionContext,
    link: &SlaveLink,
) -> io::Result<()> {
    let housekeeping = Duration::from_millis(context.config.housekeeping_interval_ms);
    let heartbeat = Duration::from_millis(context.config.send_heartbeat_interval_ms);
    let waited = Instant::now();
    let reported = loop {
        if context.stop.load(Ordering::Acquire) || link.is_closed() {
            return Ok(());
        }
        if let Ok(offset) = u64::try_from(link.ack_offset()) {
            break offset;
        }
        if waited.elapsed() > housekeeping {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the slave never reported its offset"));
        }
        std::thread::sleep(Duration::from_millis(FIRST_REPORT_POLL_MS));
    };
    let store = &context.store;
    let mut next = start_offset(store, &context.config, reported);
    tracing::info!(slave = %link.peer, reported, from = next, "streaming the commit log to the slave");
    let mut last_write = Instant::now();
    while !context.stop.load(Ordering::Acquire) && !link.is_closed() {
        if let Some(data) = store.replica_data(next, context.config.transfer_batch_bytes) {
            let body = data.as_slice();
            let header = FrameHeader { start_offset: next, body_bytes: body.len() };
            write_frame(&mut stream, &header, body)?;
            next += body.len() as u64;
            last_write = Instant::now();
            continue;
        }
        if next < store.commit_log_min_offset() {
            return Err(io::Error::other(format!(
                "the slave needs offset {next}, but the master's log starts at {}",
                store.commit_log_min_offset()
            )));
        }
        if last_write.elapsed() >= heartbeat {
            write_frame(&mut stream, &FrameHeader { start_offset: next, body_bytes: 0 }, &[])?;
            last_write = Instant::now();
        }
        context.replicas.written.wait_past(next, Duration::from_millis(IDLE_WAIT_MS));
    }
    Ok(())
}

/// Where to start streaming for a slave that reported `reported`: there, unless it is
/// empty; then the master's oldest byte (a full copy), or with `haSyncFromLastFile` the start
/// of its newest file, as classic Java slaves do.
fn start_offset(store: &MessageStore, config: &HaConfig, reported: u64) -> u64 {
    if reported != 0 {
        return reported;
    }
    if config.sync_from_last_file {
        let end = store.commit_log_max_offset();
        let file_size = store.config().mapped_file_size_commit_log;
        return end - end % file_size.max(1);
    }
    store.commit_log_min_offset()
}

fn write_frame(stream: &mut &TcpStream, header: &FrameHeader, body: &[u8]) -> io::Result<()> {
    let header = header.encode();
    let mut slices = [io::IoSlice::new(&header), io::IoSlice::new(body)];
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the slave stopped reading")),
            Ok(written) => io::IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if is_timeout(&error) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the slave took no data in time"))
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A socket timeout, which std reports as WouldBlock or TimedOut depending on the platform.
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
