//! `rivulet perf consume`: read a topic from the beginning and report throughput, in the
//! manner of kafka-consumer-perf-test.
//!
//! Every partition of the topic is `assign`ed at its earliest offset: the consumers never join
//! a group and never commit, so the figure is the fetch path's alone. librdkafka still needs a
//! `group.id` to `assign`; it is set and otherwise unused. With `--consumers N`, N librdkafka
//! consumers on their own threads share the partitions round-robin (partition i goes to
//! consumer i mod N); the throughput runs from the start to the last record any of them read.

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Consumers, each its own librdkafka client on its own thread, sharing the partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    consumers: u64,
    /// Stop after this many records, over all consumers (default: read until idle).
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

/// What one consumer thread read.
#[derive(Default)]
struct Tally {
    records: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    error_count: u64,
    /// The first few distinct error messages, with counts.
    errors: Vec<(String, u64)>,
    stop_reason: &'static str,
}

impl Tally {
    fn note_error(&mut self, message: String) {
        self.error_count += 1;
        self.keep_message(message, 1);
    }

    fn keep_message(&mut self, message: String, count: u64) {
        if let Some(entry) = self.errors.iter_mut().find(|(m, _)| *m == message) {
            entry.1 += count;
        } else if self.errors.len() < KEPT_ERRORS {
            self.errors.push((message, count));
        }
    }

    /// Both threads' figures; the first stop reason.
    fn add(mut self, other: Tally) -> Tally {
        self.records += other.records;
        self.bytes += other.bytes;
        self.first = self.first.into_iter().chain(other.first).min();
        self.last = self.last.into_iter().chain(other.last).max();
        self.error_count += other.error_count;
        for (message, count) in other.errors {
            self.keep_message(message, count);
        }
        if self.stop_reason.is_empty() {
            self.stop_reason = other.stop_reason;
        }
        self
    }
}

/// One consumer thread: polls until the records over all threads (`read`) reach `--records`,
/// it has been idle for `--idle-timeout`, or `--timeout` passes.
fn poll_loop(consumer: &BaseConsumer, args: &Args, read: &AtomicU64, start: Instant) -> Tally {
    let mut t = Tally::default();
    let mut last = start;
    t.stop_reason = loop {
        if args
            .records
            .is_some_and(|n| read.load(Ordering::Relaxed) >= n)
        {
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
                t.records += 1;
                read.fetch_add(1, Ordering::Relaxed);
                t.bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                last = Instant::now();
                t.first.get_or_insert(last);
                t.last = Some(last);
            }
            Some(Err(e)) => t.note_error(e.to_string()),
        }
    };
    t
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
    let n = args.consumers;
    let consumers = (0..n)
        .map(|_| {
            config
                .create::<BaseConsumer>()
                .context("creating the consumer")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ids = topic_partitions(&consumers[0], &args.topic)?;
    let partitions = ids.len();
    for (i, consumer) in (0..).zip(&consumers) {
        let mut assignment = TopicPartitionList::new();
        for &p in ids.iter().skip(i).step_by(n as usize) {
            assignment
                .add_partition_offset(&args.topic, p, Offset::Beginning)
                .context("building the assignment")?;
        }
        consumer.assign(&assignment).context("assign")?;
    }
    eprintln!(
        "consuming {} from {} ({partitions} partitions, {n} consumers) from the beginning",
        args.records
            .map_or("until idle".to_string(), |n| format!("{n} records")),
        args.topic
    );

    let start = Instant::now();
    let read = AtomicU64::new(0);
    let tallies = std::thread::scope(|scope| {
        let threads: Vec<_> = consumers
            .iter()
            .map(|c| scope.spawn(|| poll_loop(c, args, &read, start)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a consumer thread panicked"))
            })
            .collect::<anyhow::Result<Vec<Tally>>>()
    })?;
    let Tally {
        records,
        bytes,
        first,
        last,
        error_count,
        errors,
        stop_reason,
    } = tallies.into_iter().fold(Tally::default(), Tally::add);
    let last = last.unwrap_or(start);
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
            "consumers": n,
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
