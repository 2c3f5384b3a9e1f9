//! The `rivulet` binary: one executable for the server and the operator tools.
//!
//! `rivulet server` runs a node (broker and controller); `format` and `random-uuid` prepare the
//! log dirs of a multi-node cluster; `dump-log` (Kafka's `kafka-dump-log.sh --files`) and
//! `storage-demo` are storage tools; `perf` drives a cluster through librdkafka and measures it
//! (Kafka's `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh`); `cluster status`
//! and `cluster watch` show the cluster and its changes as any Kafka client sees them.

mod cluster;
mod dump_log;
mod format;
mod perf;
mod server;
mod storage_demo;

use std::io::IsTerminal;

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
    /// Write meta.properties (cluster and node id) into the log dirs, as
    /// `kafka-storage.sh format` does.
    Format(format::Args),
    /// Print a new random cluster id.
    RandomUuid,
    /// Print the batches of `.log` segments and the entries of `.index`/`.timeindex` files.
    DumpLog(dump_log::Args),
    /// Append records to a partition log, reopen it (recovering it), read everything back and
    /// report throughput.
    StorageDemo(storage_demo::Args),
    /// Load tools on a real Kafka client (librdkafka): produce and consume throughput and
    /// latency, and a metadata probe.
    #[command(subcommand)]
    Perf(perf::Command),
    /// The cluster as clients see it: `status` (brokers, controller, partitions) and `watch`
    /// (one line per change as it happens).
    #[command(subcommand)]
    Cluster(cluster::Command),
}

fn main() -> anyhow::Result<()> {
    // Colours only on a terminal: `docker logs` and log files get plain lines. openraft's
    // replication errors repeat on every retry to a down voter; the controller's network layer
    // logs losing and regaining a voter once each instead.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("info,openraft::replication=off,openraft=error,sled=warn")
        }))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Server(args) => server::run(&args),
        Command::Format(args) => format::run(&args),
        Command::RandomUuid => {
            println!("{}", rivulet_controller::ids::new_cluster_id());
            Ok(())
        }
        Command::DumpLog(args) => dump_log::run(&args),
        Command::StorageDemo(args) => storage_demo::run(&args),
        Command::Perf(command) => perf::run(&command),
        Command::Cluster(command) => cluster::run(&command),
    }
}
