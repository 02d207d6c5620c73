//! apogee-metrics: Apogee's metrics in Prometheus text, under the names RocketMQ 5.x gives them
//! (spec observability-admin.md §1), so an operator's scrape configs, alerts and Grafana boards
//! keep working.
//!
//! The servers keep their own counters where the work happens (atomics, no lock on a hot path)
//! and expose them through `prometheus_client` collectors that run only when scraped. This crate
//! holds what every server shares:
//! - [`settings`]: the `metrics*` keys of broker.conf and namesrv.conf;
//! - [`histogram`]: a lock-free histogram with fixed bucket bounds;
//! - [`process`]: the process's CPU, memory, threads and file descriptors;
//! - [`exporter`]: the HTTP listener serving `/metrics`;
//! - [`http`]: a running axum server with a graceful stop (also the web dashboard's).

pub mod exporter;
pub mod histogram;
pub mod http;
pub mod process;
pub mod settings;

pub use exporter::PromExporter;
pub use histogram::FixedHistogram;
pub use http::HttpServer;
pub use prometheus_client;
pub use settings::{ExporterType, MetricsSettings};
