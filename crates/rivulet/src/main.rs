//! The `rivulet` binary: one executable for the server and the operator tools.
//!
//! Until the broker lands, it carries the storage tools: `dump-log` (Kafka's
//! `kafka-dump-log.sh --files`) and `storage-demo`, which exercises the partition log end to end.

mod dump_log;
mod storage_demo;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Rivulet: a Kafka-compatible, replicated event-streaming platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the batches of `.log` segments and the entries of `.index`/`.timeindex` files.
    DumpLog(dump_log::Args),
    /// Append records to a partition log, reopen it (recovering it), read everything back and
    /// report throughput.
    StorageDemo(storage_demo::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::DumpLog(args) => dump_log::run(&args),
        Command::StorageDemo(args) => storage_demo::run(&args),
    }
}
