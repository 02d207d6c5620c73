//! apogee-testkit: the one way Apogee's tests start servers.
//!
//! - [`Cluster`]: NameServers and broker groups in this process, every listener on a port the
//!   system chose (never a port guessed free and bound later), data in a temporary directory
//!   removed on drop.
//! - [`ApogeeProcess`]: the real `apogee` binary as a child process on port 0, for
//!   whole-system tests; it can be killed with SIGKILL and restarted on the same data.
//! - [`ControllerGroup`]: N controllers (controller mode) in this process, each stoppable and
//!   restartable on its address and data directory.
//! - [`eventually`] and [`wait_for`]: bounded polling, since every wait in a test must end;
//! - [`netns`]: network namespaces joined by a link a test can cut (partitions);
//! - [`volume`]: a small file system to fill (a full disk for real).
//!
//! A dev-dependency only: nothing here is part of a product.

mod cluster;
mod config;
mod controllers;
mod data_dir;
pub mod netns;
mod process;
pub mod volume;
mod wait;

pub use cluster::{Cluster, ClusterBuilder};
pub use config::{broker_config, namesrv_config, start_broker, LOOPBACK};
pub use controllers::{controller_test_config, ControllerGroup, LEADER_WAIT};
pub use data_dir::{data_dir, DATA_DIR_PREFIX};
pub use process::{apogee_binary, run_bounded, standalone_args, ApogeeProcess, BoundAddrs};
pub use wait::{eventually, wait_for, WAIT_LIMIT};
