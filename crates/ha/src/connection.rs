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

use crate::auto_wire::{self, MasterHandshake, SlaveMessage, TransferHeader};
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
        let used = if context.config.auto_switch.is_some() {
            take_auto_switch_messages(&buffer[..filled], context, link)?
        } else {
            take_reports(&buffer[..filled], context, link)?
        };
        buffer.copy_within(used..filled, 0);
        filled -= used;
    }
    Ok(())
}

/// Takes the whole classic reports in `received` (only the newest counts); returns the bytes
/// used.
fn take_reports(received: &[u8], context: &ConnectionContext, link: &SlaveLink) -> io::Result<usize> {
    let Some((offset, used)) = wire::last_report(received) else { return Ok(0) };
    if offset < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("negative report {offset}")));
    }
    context.replicas.report(link, offset);
    Ok(used)
}

/// Takes the whole AutoSwitch messages in `received`: the handshake, and acks (only the
/// newest of a run counts); returns the bytes used.
fn take_auto_switch_messages(
    received: &[u8],
    context: &ConnectionContext,
    link: &SlaveLink,
) -> io::Result<usize> {
    let mut used = 0;
    let mut newest_ack = None;
    while let Some((message, bytes)) = auto_wire::next_slave_message(&received[used..])
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?
    {
        used += bytes;
        match message {
            SlaveMessage::Handshake(handshake) => {
                tracing::info!(slave = %link.peer, broker_id = handshake.broker_id, "slave handshake");
                context.replicas.handshake(link, handshake);
            }
            SlaveMessage::Ack(offset) => newest_ack = Some(offset),
        }
    }
    if let Some(offset) = newest_ack {
        if !link.handshake_seen() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an ack before the handshake"));
        }
        context.replicas.report(link, offset);
    }
    Ok(used)
}

/// Streams the commit log to the slave from the offset it first reported.
fn stream_commit_log(
    mut stream: &TcpStream,
    context: &ConnectionContext,
    link: &SlaveLink,
) -> io::Result<()> {
    let housekeeping = Duration::from_millis(context.config.housekeeping_interval_ms);
    let heartbeat = Duration::from_millis(context.config.send_heartbeat_interval_ms);
    let auto_switch = context.config.auto_switch.is_some();
    if auto_switch {
        let seen = wait_for(context, link, housekeeping, SlaveLink::handshake_seen)?;
        if !seen {
            return Ok(());
        }
        answer_handshake(&mut stream, context)?;
    }
    let reported = loop {
        let acked = wait_for(context, link, housekeeping, |link| link.ack_offset() >= 0)?;
        if !acked {
            return Ok(());
        }
        if let Ok(offset) = u64::try_from(link.ack_offset()) {
            break offset;
        }
    };
    let store = &context.store;
    let last_file_only =
        if auto_switch { link.wants_last_file_only() } else { context.config.sync_from_last_file };
    let mut next = start_offset(store, last_file_only, reported);
    tracing::info!(slave = %link.peer, reported, from = next, "streaming the commit log to the slave");
    let mut last_write = Instant::now();
    let batch_bytes = context.config.transfer_batch_bytes;
    while !context.stop.load(Ordering::Acquire) && !link.is_closed() {
        let epoch = if auto_switch { Some(epoch_at(store, next)?) } else { None };
        let limit =
            epoch.map_or(batch_bytes, |epoch| epoch.bytes_left(next).min(batch_bytes as u64) as usize);
        let master_end = context.replicas.written.offset();
        if let Some(data) = store.replica_data(next, limit).filter(|_| limit > 0) {
            let body = data.as_slice();
            write_frame(&mut stream, context, epoch, next, body)?;
            context.replicas.transferred(link, master_end);
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
        context.replicas.caught_up(link);
        if last_write.elapsed() >= heartbeat {
            write_frame(&mut stream, context, epoch, next, &[])?;
            last_write = Instant::now();
        }
        context.replicas.written.wait_past(next, Duration::from_millis(IDLE_WAIT_MS));
    }
    Ok(())
}

/// Polls `ready` on `link` until it holds (true), the connection or the master stops
/// (false), or `limit` passes (an error).
fn wait_for(
    context: &ConnectionContext,
    link: &SlaveLink,
    limit: Duration,
    ready: impl Fn(&SlaveLink) -> bool,
) -> io::Result<bool> {
    let waited = Instant::now();
    loop {
        if context.stop.load(Ordering::Acquire) || link.is_closed() {
            return Ok(false);
        }
        if ready(link) {
            return Ok(true);
        }
        if waited.elapsed() > limit {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the slave never said where it stands"));
        }
        std::thread::sleep(Duration::from_millis(FIRST_REPORT_POLL_MS));
    }
}

/// Sends the master's end and epochs, from which the slave finds where the two logs agree.
fn answer_handshake(stream: &mut &TcpStream, context: &ConnectionContext) -> io::Result<()> {
    let store = &context.store;
    let (epochs, last_epoch) = {
        let file = store.epochs().lock();
        let epochs: Vec<(i32, u64)> =
            file.entries().iter().map(|entry| (entry.epoch, entry.start_offset)).collect();
        (epochs, file.last_epoch().unwrap_or(0))
    };
    let handshake = MasterHandshake { max_offset: store.commit_log_max_offset(), last_epoch, epochs };
    stream.write_all(&handshake.encode())
}

/// The epoch that wrote a commit-log offset, as a frame header names it.
#[derive(Debug, Clone, Copy)]
struct FrameEpoch {
    epoch: i32,
    start_offset: u64,
    end_offset: u64,
}

impl FrameEpoch {
    /// Bytes from `offset` to the epoch's end: a frame never crosses into the next epoch.
    fn bytes_left(&self, offset: u64) -> u64 {
        self.end_offset.saturating_sub(offset)
    }
}

/// The epoch entry holding `offset`. Bytes below the first entry (written before the broker
/// ran in controller mode) travel under the first epoch, so the slave's entries match the
/// master's.
fn epoch_at(store: &MessageStore, offset: u64) -> io::Result<FrameEpoch> {
    let file = store.epochs().lock();
    let entries = file.entries();
    let entry = entries
        .iter()
        .rev()
        .find(|entry| entry.start_offset <= offset)
        .or_else(|| entries.first())
        .ok_or_else(|| io::Error::other("the master has no epoch yet"))?;
    Ok(FrameEpoch { epoch: entry.epoch, start_offset: entry.start_offset, end_offset: entry.end_offset })
}

/// Where to start streaming for a slave that reported `reported`: there, unless it is
/// empty; then the master's oldest byte (a full copy), or with `haSyncFromLastFile` the start
/// of its newest file, as classic Java slaves do.
fn start_offset(store: &MessageStore, last_file_only: bool, reported: u64) -> u64 {
    if reported != 0 {
        return reported;
    }
    if last_file_only {
        let end = store.commit_log_max_offset();
        let file_size = store.config().mapped_file_size_commit_log;
        return end - end % file_size.max(1);
    }
    store.commit_log_min_offset()
}

/// Sends one frame (a heartbeat when `body` is empty) in the connection's format.
fn write_frame(
    stream: &mut &TcpStream,
    context: &ConnectionContext,
    epoch: Option<FrameEpoch>,
    start_offset: u64,
    body: &[u8],
) -> io::Result<()> {
    match epoch {
        Some(epoch) => {
            let header = TransferHeader {
                start_offset,
                body_bytes: body.len(),
                epoch: epoch.epoch,
                epoch_start_offset: epoch.start_offset,
                confirm_offset: context.replicas.confirm_offset(),
            };
            write_all_vectored(stream, &header.encode(), body)
        }
        None => {
            let header = FrameHeader { start_offset, body_bytes: body.len() };
            write_all_vectored(stream, &header.encode(), body)
        }
    }
}

fn write_all_vectored(stream: &mut &TcpStream, header: &[u8], body: &[u8]) -> io::Result<()> {
    let mut slices = [io::IoSlice::new(header), io::IoSlice::new(body)];
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
