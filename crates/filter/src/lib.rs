//! apogee-filter: what a subscription lets through, shared by the broker and the client.
//!
//! Two expression types exist (behaviour spec §7): tag expressions (`TagA || TagB`, `*`),
//! parsed by the client into the heartbeat's tag sets and by the broker into tag codes, and
//! SQL92 selectors, compiled by the broker and evaluated against message properties.
//!
//! Everything here is pure computation on text a peer sent, so every entry point is bounded:
//! no expression panics, and compiling or evaluating one costs time linear in its size (see
//! [`sql::limits`]).

pub mod sql;
pub mod tags;
