//! `rivulet perf`: load tools that drive a cluster through a real Kafka client (librdkafka, via
//! the `rdkafka` crate), in the manner of Kafka's `kafka-producer-perf-test.sh` and
//! `kafka-consumer-perf-test.sh`.
//!
//! - `perf produce` sends records of a fixed size as fast as allowed (or at a capped rate), from
//!   one or `--producers` clients, and reports throughput and per-record latency (send to
//!   delivery report) percentiles.
//! - `perf consume` reads a topic from the beginning with `assign` (no consumer group), with one
//!   or `--consumers` clients sharing the partitions, and reports throughput.
//! - `perf e2e` produces at a steady rate and consumes in the same process, and reports
//!   end-to-end latency percentiles (send to consumer delivery).
//! - `perf sink` is a Kafka-protocol server that acknowledges produce requests and drops the
//!   records: `perf produce` against it measures the client alone (the client's ceiling).
//! - `perf metadata` prints what a node's Metadata response says and can wait until the
//!   cluster has a given number of brokers (and a topic's partitions their full ISR): the
//!   readiness probe of `scripts/bench-cluster`.
//!
//! Throughput is reported in records/s and MB/s, where 1 MB = 10^6 bytes of record values (the
//! convention of `docs/benchmarks.md`; Kafka's tools divide by 2^20 instead).

mod admin;
mod consume;
mod e2e;
mod produce;
mod sink;

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use rdkafka::config::ClientConfig;

/// The `perf` subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Produce records and report throughput and latency percentiles (like
    /// kafka-producer-perf-test.sh).
    Produce(produce::Args),
    /// Read a topic from the beginning (assign, no group) and report throughput.
    Consume(consume::Args),
    /// Produce at a steady rate and consume in the same process: end-to-end latency
    /// percentiles (send to consumer delivery).
    E2e(e2e::Args),
    /// Print the cluster's metadata; optionally wait until it has enough brokers and a topic's
    /// replicas are all in sync.
    Metadata(admin::MetadataArgs),
    /// Serve the Kafka protocol and acknowledge every produce request without storing it: a
    /// broker that discards, to measure the client's own ceiling.
    Sink(sink::Args),
}

/// Runs one `perf` subcommand.
pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Metadata(args) => admin::run_metadata(args),
        Command::Sink(args) => sink::run(args),
    }
}

/// Parses `key=value` into its two halves (the value may contain `=`).
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// Parses a duration: a number of seconds (`30`, `2.5`) or a number with a unit (`500ms`, `30s`,
/// `2m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration like 30, 30s, 500ms or 2m, got {s:?}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "a duration must be a non-negative number, got {s:?}"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// The settings every client of these tools starts from: bootstrap servers, a client id, and
/// bounded socket timeouts, then the user's `extra` properties (which win).
fn client_config(
    bootstrap_servers: &str,
    client_id: &str,
    extra: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", client_id)
        .set("socket.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(k, v);
    }
    config
}

/// Runs a future (rdkafka's admin calls) on a small single-threaded runtime, bounded by
/// `timeout`.
fn block_on<F: std::future::Future>(
    what: &str,
    timeout: Duration,
    fut: F,
) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the admin client")?;
    match runtime.block_on(async { tokio::time::timeout(timeout, fut).await }) {
        Ok(out) => Ok(out),
        Err(_) => bail!("{what} did not finish within {timeout:?}"),
    }
}

/// Megabytes (10^6 bytes) per second.
fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// Per second.
fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("a.b=c=d"),
            Ok(("a.b".to_string(), "c=d".to_string()))
        );
        assert_eq!(parse_key_value("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
