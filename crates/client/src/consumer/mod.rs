//! Consumers: push and lite pull, with their rebalance, allocation and offset stores.

pub mod lite_pull;
pub mod push;
