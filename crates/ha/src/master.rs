//! The master's replication service (Java `DefaultHAService` with its
//! `AcceptSocketService`): a listener on `haListenPort` and a connection per slave.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use apogee_store::MessageStore;
use parking_lot::Mutex;

use crate::config::{HaConfig, MAX_SLAVE_CONNECTIONS};
use crate::connection::{self, ConnectionContext};
use crate::sync_state::SyncStateListener;
use crate::transfer::Replicas;

/// Pause of the accept loop between two looks for a connection (it also checks for stop):
/// a slave waits at most this long to be taken, once per connection.
const ACCEPT_POLL_MS: u64 = 100;

/// A running replication service of a master.
#[derive(Debug)]
pub struct HaMaster {
    local_addr: SocketAddr,
    replicas: Arc<Replicas>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HaMaster {
    /// Listens on `bind`, registers with `store` (so appends wake the senders and, under
    /// SYNC_MASTER, wait for slaves) and starts accepting slaves.
    pub fn start(store: Arc<MessageStore>, config: HaConfig, bind: SocketAddr) -> io::Result<Self> {
        assert!(config.role.is_master(), "a slave runs HaSlave, not HaMaster");
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let epoch_start = store.epochs().lock().entries().last().map_or(0, |entry| entry.start_offset);
        let replicas = Arc::new(Replicas::new(config.clone(), store.commit_log_max_offset(), epoch_start));
        store.set_replication(Arc::clone(&replicas) as _);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let context = Arc::new(ConnectionContext {
            store,
            config,
            replicas: Arc::clone(&replicas),
            stop: Arc::clone(&stop),
        });
        let ticker = {
            let (replicas, stop) = (Arc::clone(&replicas), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("ha-transfer-deadlines".to_owned())
                .spawn(move || replicas.run_deadline_ticker(&stop))?
        };
        let acceptor = {
            let threads = Arc::clone(&threads);
            std::thread::Builder::new()
                .name("ha-accept".to_owned())
                .spawn(move || accept_slaves(&listener, &context, &threads))?
        };
        threads.lock().extend([ticker, acceptor]);
        tracing::info!(addr = %local_addr, "HA service listening for slaves");
        Ok(Self { local_addr, replicas, stop, threads })
    }

    /// The address slaves connect to (the port the system chose for `haListenPort` 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connected slaves and the commit-log end each last reported (-1: none yet).
    pub fn slaves(&self) -> Vec<(SocketAddr, i64)> {
        self.replicas.slaves()
    }

    /// The highest end any slave reported.
    pub fn pushed_max_offset(&self) -> u64 {
        self.replicas.pushed_max_offset()
    }

    /// Controller mode: who carries SyncStateSet proposals to the controllers.
    pub fn set_sync_state_listener(&self, listener: Arc<dyn SyncStateListener>) {
        self.replicas.set_sync_state_listener(listener);
    }

    /// Controller mode: adopts the SyncStateSet the controllers decided (ignored unless its
    /// epoch is not older than the one held). Also the answer to a proposal.
    pub fn apply_sync_state_set(&self, members: BTreeSet<i64>, epoch: i32) {
        self.replicas.apply_sync_state_set(members, epoch);
    }

    /// Controller mode: the controllers refused the last proposal (or never answered).
    pub fn sync_state_set_refused(&self) {
        self.replicas.sync_state_set_refused();
    }

    /// What every SyncStateSet member holds (the master's end on classic HA).
    pub fn confirm_offset(&self) -> u64 {
        self.replicas.confirm_offset()
    }

    /// Closes every slave connection, answers sends still waiting with FLUSH_SLAVE_TIMEOUT
    /// and joins the threads.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.replicas.close_all();
        self.replicas.written.wake_all();
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for HaMaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_slaves(
    listener: &TcpListener,
    context: &Arc<ConnectionContext>,
    threads: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !context.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if context.replicas.slaves().len() >= MAX_SLAVE_CONNECTIONS {
                    tracing::warn!(slave = %peer, limit = MAX_SLAVE_CONNECTIONS, "too many slaves; connection refused");
                    continue;
                }
                match connection::start(stream, Arc::clone(context)) {
                    Ok(handles) => {
                        let mut threads = threads.lock();
                        threads.retain(|thread| !thread.is_finished());
                        threads.extend(handles);
                    }
                    Err(error) => tracing::warn!(slave = %peer, %error, "slave connection not started"),
                }
            }
            Err(error) if connection::is_timeout(&error) => {
                std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a slave failed");
                std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
            }
        }
    }
}
