//! Consumers: push and lite pull, with their rebalance, allocation and offset stores.
//!
//! The pieces both consumers share are public here: [`allocate`] (queue allocation
//! strategies), [`offset_store`] (broker and local-file offsets), [`process_queue`] (the
//! per-queue cache with flow control and the commit-offset rule) and [`subscription`]
//! (expressions and the client-side tag check).

pub mod allocate;
pub mod lite_pull;
pub mod offset_store;
pub mod process_queue;
pub mod push;
pub mod subscription;
