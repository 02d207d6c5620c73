//! apogee-store: the message store of a broker.
//!
//! No network and no async runtime: the store runs its own threads and hands results back
//! through callbacks, so the broker's async tasks never block on disk. The on-disk layout is
//! Apache RocketMQ's (storage spec §0–§5), so a pull is answered with slices of the mapped
//! commit log and a store directory written by Apache RocketMQ can be opened.
//!
//! - [`MessageStore`] ([`store`]): open, put, read, shutdown;
//! - [`append_queue`] and [`appender`]: the single writer, and who runs it; [`flush`]: group commit and periodic flush;
//! - [`commit_log`], [`consume_queue`], [`index`]: the three file kinds, over
//!   [`mapped_file`] and [`mapped_file_queue`];
//! - [`recovery`], [`retention`], [`checkpoint`]: staying correct across crashes and time;
//! - [`replica`]: what a master ships to its slaves and how a slave takes it in;
//! - [`epoch`]: the epoch file of controller mode (which master epoch wrote which range);
//! - [`truncate`]: cutting a slave's log back to the point it agrees on with a new master.

pub mod append_queue;
pub mod appender;
pub mod checkpoint;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod disk;
pub mod disk_guard;
pub mod dispatch;
pub mod epoch;
pub mod file_space;
pub mod flush;
pub mod index;
pub mod mapped_file;
pub mod mapped_file_queue;
pub mod put;
pub mod queue_table;
pub mod read;
pub mod recovery;
pub mod replica;
pub mod retention;
pub mod running;
pub mod service;
pub mod store;
pub mod truncate;

pub use config::{FlushDiskType, StoreConfig};
pub use epoch::{EpochEntry, EpochError, EpochFile};
pub use put::{AppendInfo, ArrivalListener, PutCallback, PutDone, PutRequest, PutResult, PutStatus};
pub use read::{
    AcceptAll, BoundaryType, GetMessageResult, GetMessageStatus, MessageFilter, QueryMessageResult,
};
pub use replica::{ReplicaAppendError, Replication};
pub use store::{MessageStore, StoreError, StoreStats};
pub use truncate::TruncateError;
