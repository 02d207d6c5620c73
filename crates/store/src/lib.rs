//! apogee-store: the message store of a broker.
//!
//! No network and no async runtime: the store runs its own threads and hands results back
//! through callbacks, so the broker's async tasks never block on disk. The on-disk layout is
//! Apache RocketMQ's (storage spec §0–§5), so a pull is answered with slices of the mapped
//! commit log and a store directory written by Apache RocketMQ can be opened.

pub mod index;
