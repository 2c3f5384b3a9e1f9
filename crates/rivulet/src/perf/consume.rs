//! `rivulet perf consume`: read a topic from the beginning and report throughput, in the
//! manner of kafka-consumer-perf-test.
//!
//! Every partition of the topic is `assign`ed at its earliest offset: the consumer never joins
//! a group and never commits (the broker has no consumer groups yet). librdkafka still needs a
//! `group.id` to `assign`; it is set and otherwise unused.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::admin::topic_partitions;
use super::{client_config, mb_per_sec, parse_duration, parse_key_value, per_sec};

/// Most distinct error messages kept for the report.
const KEPT_ERRORS: usize = 5;

/// Arguments of `rivulet perf consume`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to connect (`host:port[,host:port...]`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Topic to read (every partition, from the beginning).
    #[arg(long)]
    topic: String,
    /// Stop after this many records (default: read until idle).
    #[arg(long)]
    records: Option<u64>,
    /// Stop when nothing arrived for this long (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Give up after this long in all.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Extra librdkafka consumer properties (`key=value`, repeatable; applied last).
    #[arg(long = "consumer-props", value_parser = parse_key_value, num_args = 1..)]
    consumer_props: Vec<(String, String)>,
    /// Print the result as one JSON object on stdout (the human line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Runs `rivulet perf consume`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut config = client_config(&args.bootstrap_servers, "rivulet-perf-consumer", &[]);
    config
        .set("group.id", "rivulet-perf-no-commits")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in &args.consumer_props {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let ids = topic_partitions(&consumer, &args.topic)?;
    let mut assignment = TopicPartitionList::new();
    for &p in &ids {
        assignment
            .add_partition_offset(&args.topic, p, Offset::Beginning)
            .context("building the assignment")?;
    }
    let partitions = ids.len();
    consumer.assign(&assignment).context("assign")?;
    eprintln!(
        "consuming {} from {} ({partitions} partitions) from the beginning",
        args.records
            .map_or("until idle".to_string(), |n| format!("{n} records")),
        args.topic
    );

    let start = Instant::now();
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut error_count: u64 = 0;
    let stop_reason = loop {
        if args.records.is_some_and(|n| records >= n) {
            break "records read";
        }
        let now = Instant::now();
        if now.duration_since(start) >= args.timeout {
            break "timeout";
        }
        if now.duration_since(last) >= args.idle_timeout {
            break "idle";
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Some(Err(e)) => {
                error_count += 1;
                let message = e.to_string();
                if let Some(entry) = errors.iter_mut().find(|(m, _)| *m == message) {
                    entry.1 += 1;
                } else if errors.len() < KEPT_ERRORS {
                    errors.push((message, 1));
                }
            }
        }
    };
    let secs = last.duration_since(start).as_secs_f64();
    let first_ms = first.map(|f| f.duration_since(start).as_secs_f64() * 1000.0);
    let human = format!(
        "{records} records read, {:.2} MB, {:.1} records/sec ({:.2} MB/sec) over {:.2} s, \
         first record after {}, {error_count} errors, stopped: {stop_reason}.",
        bytes as f64 / 1e6,
        per_sec(records, secs),
        mb_per_sec(bytes, secs),
        secs,
        first_ms.map_or("-".to_string(), |ms| format!("{ms:.1} ms")),
    );
    if args.json {
        eprintln!("{human}");
        let json = serde_json::json!({
            "tool": "consume",
            "topic": args.topic,
            "partitions": partitions,
            "records": records,
            "bytes": bytes,
            "elapsed_s": secs,
            "records_per_sec": per_sec(records, secs),
            "mb_per_sec": mb_per_sec(bytes, secs),
            "first_record_ms": first_ms,
            "errors": error_count,
            "error_messages": errors.iter()
                .map(|(m, n)| serde_json::json!({"message": m, "count": n}))
                .collect::<Vec<_>>(),
            "stopped": stop_reason,
        });
        println!("{json}");
    } else {
        println!("{human}");
    }
    for (message, count) in &errors {
        eprintln!("error ({count}x): {message}");
    }
    if let Some(n) = args.records {
        ensure!(
            records >= n,
            "read {records} of {n} records ({stop_reason})"
        );
    }
    Ok(())
}
