//! The `rivulet` binary: one executable for the server and the operator tools.
//!
//! `rivulet server` runs a broker; `dump-log` (Kafka's `kafka-dump-log.sh --files`) and
//! `storage-demo` are storage tools.

mod dump_log;
mod server;
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
    /// Run a broker (single node on 127.0.0.1:9092 with no configuration).
    Server(server::Args),
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
        Command::Server(args) => server::run(&args),
        Command::DumpLog(args) => dump_log::run(&args),
        Command::StorageDemo(args) => storage_demo::run(&args),
    }
}
