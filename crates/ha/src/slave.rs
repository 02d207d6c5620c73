//! The slave's replication client (Java `DefaultHAClient`, storage spec §6.4): connects to
//! the master's HA port, reports its commit-log end, writes every frame it receives through
//! the store's single writer and reports the new end. It reconnects on any error, to the
//! master address it was last given.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apogee_store::MessageStore;
use parking_lot::Mutex;

use crate::auto_wire::{self, MasterHandshake, SlaveHandshake, TransferHeader};
use crate::config::{AutoSwitch, HaConfig};
use crate::connection::is_timeout;
use crate::wire::{self, FrameHeader, FRAME_HEADER_BYTES};

/// Longest a connection attempt waits.
const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Pause between two connection attempts (Java waits 5 s; a failover wants less).
const RECONNECT_PAUSE_MS: u64 = 1_000;
/// How often a blocked read wakes to send reports, check the clock and the stop flag.
const READ_TICK_MS: u64 = 100;

/// What the client thread and its owner share.
#[derive(Debug)]
struct Shared {
    store: Arc<MessageStore>,
    config: HaConfig,
    master: Mutex<Option<String>>,
    stop: AtomicBool,
    connected: AtomicBool,
    /// The connection in use, shut down to wake the thread when it must stop or move.
    socket: Mutex<Option<TcpStream>>,
}

/// A running replication client of a slave.
#[derive(Debug)]
pub struct HaSlave {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Why a session with the master ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("stopping")]
    Stopped,
    #[error("the master address changed")]
    MasterMoved,
    #[error("{0}")]
    Failed(String),
}

impl From<io::Error> for SessionEnd {
    fn from(error: io::Error) -> Self {
        Self::Failed(error.to_string())
    }
}

impl HaSlave {
    /// Puts `store` in replica-only mode and starts following `master` (the master's HA
    /// address), or whatever [`Self::set_master`] says later.
    pub fn start(store: Arc<MessageStore>, config: HaConfig, master: Option<String>) -> io::Result<Self> {
        store.set_replica_only(true);
        let shared = Arc::new(Shared {
            store,
            config,
            master: Mutex::new(master),
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            socket: Mutex::new(None),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("ha-slave".to_owned()).spawn(move || run(&shared))?
        };
        Ok(Self { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Follows the master at `address` from now on (the NameServer names it at each
    /// registration); a change drops the current connection.
    pub fn set_master(&self, address: Option<String>) {
        let mut master = self.shared.master.lock();
        if *master == address {
            return;
        }
        tracing::info!(from = ?*master, to = ?address, "master HA address changed");
        *master = address;
        drop(master);
        self.drop_connection();
    }

    /// True while connected to the master.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Stops following and joins the thread.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.drop_connection();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    fn drop_connection(&self) {
        if let Some(socket) = self.shared.socket.lock().as_ref() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for HaSlave {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stopping(shared: &Shared) -> bool {
    shared.stop.load(Ordering::Acquire)
}

/// Sleeps `duration` in short steps; false when told to stop meanwhile.
fn pause(shared: &Shared, duration: Duration) -> bool {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if stopping(shared) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(READ_TICK_MS).min(duration));
    }
    !stopping(shared)
}

fn run(shared: &Shared) {
    let mut last_failure: Option<String> = None;
    while !stopping(shared) {
        let Some(master) = shared.master.lock().clone() else {
            if !pause(shared, Duration::from_millis(READ_TICK_MS)) {
                break;
            }
            continue;
        };
        let ended = connect(&master).map_err(SessionEnd::from).and_then(|stream| {
            *shared.socket.lock() = stream.try_clone().ok();
            shared.connected.store(true, Ordering::Release);
            tracing::info!(%master, "connected to the master");
            last_failure = None;
            let ended = Session::new(shared, stream, &master).run();
            shared.connected.store(false, Ordering::Release);
            *shared.socket.lock() = None;
            ended
        });
        match ended {
            Err(SessionEnd::Stopped) | Ok(()) => break,
            Err(SessionEnd::MasterMoved) => continue,
            Err(SessionEnd::Failed(reason)) => {
                // Said once per kind of failure, not at every retry.
                if last_failure.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(%master, %reason, "replication from the master interrupted; retrying");
                    last_failure = Some(reason);
                }
                if !pause(shared, Duration::from_millis(RECONNECT_PAUSE_MS)) {
                    break;
                }
            }
        }
    }
}

fn connect(master: &str) -> io::Result<TcpStream> {
    let addr: SocketAddr = master
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {master}")))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(CONNECT_TIMEOUT_MS))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(READ_TICK_MS)))?;
    stream.set_write_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))?;
    Ok(stream)
}

/// One connection to the master.
struct Session<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    master: &'a str,
    last_report: Instant,
    last_read: Instant,
    body: Vec<u8>,
    /// False during an AutoSwitch handshake: no ack may go out before the log is truncated
    /// to the point both sides agree on, or the master would stream from a wrong offset.
    transferring: bool,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, stream: TcpStream, master: &'a str) -> Self {
        Self {
            shared,
            stream,
            master,
            last_report: Instant::now(),
            last_read: Instant::now(),
            body: Vec::new(),
            transferring: false,
        }
    }

    fn run(&mut self) -> Result<(), SessionEnd> {
        if let Some(auto_switch) = self.shared.config.auto_switch {
            return self.run_auto_switch(auto_switch);
        }
        self.transferring = true;
        self.report(self.shared.store.commit_log_max_offset())?;
        let mut header = [0u8; FRAME_HEADER_BYTES];
        loop {
            self.fill(&mut header)?;
            let frame =
                FrameHeader::decode(&header).map_err(|error| SessionEnd::Failed(error.to_string()))?;
            self.read_body(frame.body_bytes)?;
            self.apply(frame)?;
        }
    }

    /// Writes a frame's body to the store and reports the new end.
    fn apply(&mut self, frame: FrameHeader) -> Result<(), SessionEnd> {
        let store = &self.shared.store;
        let local_end = store.commit_log_max_offset();
        if local_end != 0 && frame.start_offset != local_end {
            return Err(SessionEnd::Failed(format!(
                "the master sent offset {}, but the local log ends at {local_end}",
                frame.start_offset
            )));
        }
        if frame.body_bytes == 0 {
            return Ok(());
        }
        let end = store
            .append_replica(frame.start_offset, &self.body)
            .map_err(|error| SessionEnd::Failed(format!("replicated data refused: {error}")))?;
        self.report(end)
    }

    /// The AutoSwitch session: handshake, truncation to the point both logs agree on, then
    /// frames that carry their epoch.
    fn run_auto_switch(&mut self, auto_switch: AutoSwitch) -> Result<(), SessionEnd> {
        let handshake = SlaveHandshake {
            sync_from_last_file: self.shared.config.sync_from_last_file,
            async_learner: false,
            broker_id: auto_switch.local_broker_id,
        };
        self.stream.write_all(&handshake.encode())?;
        let master = self.read_master_handshake()?;
        let end = self.truncate_to_master(&master)?;
        self.transferring = true;
        self.report(end)?;
        let mut header = [0u8; auto_wire::TRANSFER_HEADER_BYTES - 4];
        loop {
            self.expect_state(auto_wire::STATE_TRANSFER)?;
            self.fill(&mut header)?;
            let frame =
                TransferHeader::decode(&header).map_err(|error| SessionEnd::Failed(error.to_string()))?;
            self.read_body(frame.body_bytes)?;
            self.follow_epoch(&frame)?;
            self.apply(FrameHeader { start_offset: frame.start_offset, body_bytes: frame.body_bytes })?;
        }
    }

    fn expect_state(&mut self, expected: i32) -> Result<(), SessionEnd> {
        let mut state = [0u8; 4];
        self.fill(&mut state)?;
        let state = auto_wire::decode_state(state);
        if state != expected {
            return Err(SessionEnd::Failed(format!(
                "the master sent state {state} where {expected} was due"
            )));
        }
        Ok(())
    }

    fn read_body(&mut self, bytes: usize) -> Result<(), SessionEnd> {
        self.body.resize(bytes, 0);
        let mut body = std::mem::take(&mut self.body);
        let filled = self.fill(&mut body);
        self.body = body;
        filled
    }

    fn read_master_handshake(&mut self) -> Result<MasterHandshake, SessionEnd> {
        self.expect_state(auto_wire::STATE_HANDSHAKE)?;
        let mut header = [0u8; auto_wire::MASTER_HANDSHAKE_HEADER_BYTES - 4];
        self.fill(&mut header)?;
        let malformed = |error: wire::WireError| SessionEnd::Failed(error.to_string());
        let (mut handshake, body_bytes) = MasterHandshake::decode_header(&header).map_err(malformed)?;
        self.read_body(body_bytes)?;
        handshake.decode_epochs(&self.body).map_err(malformed)?;
        Ok(handshake)
    }

    /// Drops the local tail the master does not have (storage spec §7.7) and returns where
    /// the local log ends then. An empty log has nothing to agree on; a log with bytes but no
    /// epochs cannot prove it agrees, and is left untouched for an operator to look at.
    fn truncate_to_master(&mut self, master: &MasterHandshake) -> Result<u64, SessionEnd> {
        let store = &self.shared.store;
        let local_end = store.commit_log_max_offset();
        let master_entries = master_epoch_entries(master);
        let point = {
            let epochs = store.epochs().lock();
            if epochs.entries().is_empty() {
                if local_end == 0 {
                    return Ok(0);
                }
                return Err(SessionEnd::Failed(format!(
                    "the local commit log holds {local_end} bytes but no epoch history; it cannot be \
                     matched with the master's"
                )));
            }
            epochs.consistent_point(&master_entries)
        };
        let Some(point) = point else {
            return Err(SessionEnd::Failed(format!(
                "no epoch in common with the master (master epochs {:?})",
                master.epochs
            )));
        };
        let truncated = store
            .truncate_to(point.min(local_end))
            .map_err(|error| SessionEnd::Failed(format!("truncation to {point} failed: {error}")))?;
        if truncated < local_end {
            tracing::warn!(
                master = self.master,
                from = local_end,
                to = truncated,
                "dropped the local tail the new master does not have"
            );
        }
        Ok(store.commit_log_max_offset())
    }

    /// Records a new epoch when a frame carries one; an older epoch than the local newest
    /// means the master is stale.
    fn follow_epoch(&mut self, frame: &TransferHeader) -> Result<(), SessionEnd> {
        let mut epochs = self.shared.store.epochs().lock();
        match epochs.last_epoch() {
            Some(last) if frame.epoch < last => Err(SessionEnd::Failed(format!(
                "the master sent epoch {}, older than the local epoch {last}",
                frame.epoch
            ))),
            Some(last) if frame.epoch == last => Ok(()),
            _ => epochs
                .append(frame.epoch, frame.epoch_start_offset)
                .map_err(|error| SessionEnd::Failed(format!("epoch not recorded: {error}"))),
        }
    }

    fn report(&mut self, end: u64) -> Result<(), SessionEnd> {
        if self.shared.config.auto_switch.is_some() {
            self.stream.write_all(&auto_wire::encode_ack(end))?;
        } else {
            self.stream.write_all(&wire::encode_report(end))?;
        }
        self.last_report = Instant::now();
        Ok(())
    }

    /// Reads exactly `buffer.len()` bytes, doing the periodic duties while the master is
    /// quiet: a heartbeat report, the silence limit, the stop flag and a moved master.
    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), SessionEnd> {
        let heartbeat = Duration::from_millis(self.shared.config.send_heartbeat_interval_ms);
        let housekeeping = Duration::from_millis(self.shared.config.housekeeping_interval_ms);
        let mut filled = 0;
        while filled < buffer.len() {
            if stopping(self.shared) {
                return Err(SessionEnd::Stopped);
            }
            if self.shared.master.lock().as_deref() != Some(self.master) {
                return Err(SessionEnd::MasterMoved);
            }
            match self.stream.read(&mut buffer[filled..]) {
                Ok(0) => return Err(SessionEnd::Failed("the master closed the connection".to_owned())),
                Ok(read) => {
                    filled += read;
                    self.last_read = Instant::now();
                }
                Err(error) if is_timeout(&error) || error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
            if self.last_read.elapsed() > housekeeping {
                return Err(SessionEnd::Failed("nothing from the master in time".to_owned()));
            }
            if self.transferring && self.last_report.elapsed() >= heartbeat {
                self.report(self.shared.store.commit_log_max_offset())?;
            }
        }
        Ok(())
    }
}

/// The master's epochs as entries, the newest ending at the master's end.
fn master_epoch_entries(master: &MasterHandshake) -> Vec<apogee_store::epoch::EpochEntry> {
    let mut entries: Vec<apogee_store::epoch::EpochEntry> = master
        .epochs
        .iter()
        .map(|&(epoch, start_offset)| apogee_store::epoch::EpochEntry { epoch, start_offset, end_offset: 0 })
        .collect();
    for index in 0..entries.len() {
        let end = entries.get(index + 1).map_or(master.max_offset, |next| next.start_offset);
        entries[index].end_offset = end.max(entries[index].start_offset);
    }
    entries
}
