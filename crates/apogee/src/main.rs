//! The `apogee` command: every Apogee process in one binary.

mod bench;
mod cli;

/// mimalloc instead of glibc's allocator: requests are allocated on connection tasks and freed
/// on the store's threads (and back). Under that pattern glibc spent 22 % of the broker's CPU
/// in `malloc`/`free`/`malloc_consolidate` on workload 2; alternating runs of the same bench
/// client gave 69–77 K msg/s with glibc and 86–92 K with mimalloc (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APOGEE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli.run())
}
