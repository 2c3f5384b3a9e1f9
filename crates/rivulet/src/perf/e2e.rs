//! `rivulet perf e2e`: end-to-end latency, from the moment a producer hands a record to
//! librdkafka to the moment a consumer in the same process is given it (the OpenMessaging
//! Benchmark's end-to-end latency, and Kafka's `EndToEndLatency` tool at a steady rate).
//!
//! One producer thread sends `--throughput` records/s (default 1,000) round-robin over the
//! topic's partitions; each value starts with its send time (nanoseconds since the run started,
//! little-endian u64) and is padded to `--record-size`. One consumer, with librdkafka's default
//! fetch settings unless `--consumer-props` says otherwise (`fetch.wait.max.ms` 500,
//! `fetch.min.bytes` 1: the broker must answer as soon as data arrives, not at the wait's end),
//! has every partition assigned at its end offset before the first send. The producer sends
//! each record at once (`linger.ms=0`, as Kafka's `EndToEndLatency` tool does; librdkafka's
//! default 5 ms would be most of the figure); `--producer-props` overrides it. Latency goes into a
//! histogram of microseconds with 3 significant digits; the first `--warmup` of the run is
//! left out of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::admin::{topic_partitions, CreateTopicArgs};
use super::{client_config, mb_per_sec, parse_duration, parse_key_value, per_sec};

/// Highest latency the histogram tracks (larger values count as this): one minute, in µs.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Bytes of the send-time stamp at the start of every value.
const STAMP: usize = 8;

/// Arguments of `rivulet perf e2e`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to connect (`host:port[,host:port...]`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Topic to produce to and consume from.
    #[arg(long)]
    topic: String,
    /// How long to send for (e.g. 30, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// The first part of the run left out of the latency figures (connections, metadata).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Records per second.
    #[arg(long, default_value_t = 1000.0)]
    throughput: f64,
    /// Bytes per record value (at least 8: the send time).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Acknowledgements the leader waits for: 0, 1 or all (-1).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Idempotent producer (`enable.idempotence=true`; needs --acks all).
    #[arg(long)]
    idempotence: bool,
    /// Extra librdkafka producer properties (`key=value`, repeatable; applied last).
    #[arg(long = "producer-props", value_parser = parse_key_value, num_args = 1..)]
    producer_props: Vec<(String, String)>,
    /// Extra librdkafka consumer properties (`key=value`, repeatable; applied last).
    #[arg(long = "consumer-props", value_parser = parse_key_value, num_args = 1..)]
    consumer_props: Vec<(String, String)>,
    #[command(flatten)]
    create: CreateTopicArgs,
    /// Print the result as one JSON object on stdout (the human line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The value of a record sent `sent_ns` after the run started, `size` bytes long.
fn stamped_value(buf: &mut Vec<u8>, sent_ns: u64, size: usize) {
    buf.clear();
    buf.extend_from_slice(&sent_ns.to_le_bytes());
    buf.resize(size.max(STAMP), b'R');
}

/// The send time in a value, if it carries one.
fn send_time_ns(value: &[u8]) -> Option<u64> {
    let stamp: [u8; STAMP] = value.get(..STAMP)?.try_into().ok()?;
    Some(u64::from_le_bytes(stamp))
}

/// Runs `rivulet perf e2e`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.throughput > 0.0, "--throughput must be positive");
    ensure!(
        args.record_size >= STAMP,
        "--record-size must be at least {STAMP} (the send time)"
    );
    args.create.ensure(&args.bootstrap_servers, &args.topic)?;

    let mut consumer_config = client_config(&args.bootstrap_servers, "rivulet-perf-e2e", &[]);
    consumer_config
        .set("group.id", "rivulet-perf-e2e-no-commits")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in &args.consumer_props {
        consumer_config.set(k, v);
    }
    let consumer: BaseConsumer = consumer_config.create().context("creating the consumer")?;
    let partitions = topic_partitions(&consumer, &args.topic)?;
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (_, high) = consumer
            .fetch_watermarks(&args.topic, p, Duration::from_secs(30))
            .with_context(|| format!("end offset of {}-{p}", args.topic))?;
        assignment
            .add_partition_offset(&args.topic, p, Offset::Offset(high))
            .context("building the assignment")?;
    }
    consumer.assign(&assignment).context("assign")?;
    // Let the consumer connect to every leader before the clock starts.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            eprintln!("consumer: {e}");
        }
    }

    let mut producer_config = client_config(&args.bootstrap_servers, "rivulet-perf-e2e", &[]);
    producer_config
        .set("linger.ms", "0")
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("enable.idempotence", args.idempotence.to_string());
    for (k, v) in &args.producer_props {
        producer_config.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_config.create().context("creating the producer")?;

    eprintln!(
        "end-to-end: {} records/s of {} bytes to {} ({} partitions) for {:?}, acks={}",
        args.throughput,
        args.record_size,
        args.topic,
        partitions.len(),
        args.duration,
        args.acks
    );
    let start = Instant::now();
    let sending_done = Arc::new(AtomicBool::new(false));
    let sent_total = {
        let done = Arc::clone(&sending_done);
        let topic = args.topic.clone();
        let (rate, size, duration) = (args.throughput, args.record_size, args.duration);
        let partitions = partitions.clone();
        std::thread::Builder::new()
            .name("e2e-producer".into())
            .spawn(move || {
                let mut value = Vec::with_capacity(size);
                let interval = Duration::from_secs_f64(1.0 / rate);
                let mut next = Instant::now();
                let mut sent: u64 = 0;
                while start.elapsed() < duration {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                    let partition = partitions[(sent % partitions.len() as u64) as usize];
                    let sent_ns = start.elapsed().as_nanos() as u64;
                    stamped_value(&mut value, sent_ns, size);
                    let mut record = BaseRecord::<(), [u8]>::to(&topic)
                        .payload(&value)
                        .partition(partition);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((_, r)) => {
                                record = r;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    sent += 1;
                }
                let _ = producer.flush(Duration::from_secs(30));
                done.store(true, Ordering::Release);
                sent
            })
            .context("starting the producer thread")?
    };

    let mut latency_us =
        Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).context("latency histogram")?;
    let mut received: u64 = 0;
    let mut bytes: u64 = 0;
    let mut errors: u64 = 0;
    let mut drained_at: Option<Instant> = None;
    let warmup_ns = args.warmup.as_nanos() as u64;
    loop {
        if sending_done.load(Ordering::Acquire) {
            // Everything sent; wait for the stragglers, at most 10 s.
            let since = *drained_at.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if drained_at.is_some() {
                    break;
                }
            }
            Some(Ok(m)) => {
                let now_ns = start.elapsed().as_nanos() as u64;
                let Some(sent_ns) = m.payload().and_then(send_time_ns) else {
                    continue; // not one of ours
                };
                received += 1;
                bytes += m.payload_len() as u64;
                if sent_ns >= warmup_ns {
                    latency_us.saturating_record(now_ns.saturating_sub(sent_ns) / 1000);
                }
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("consumer: {e}");
                }
            }
        }
    }
    let sent = sent_total
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
    let secs = args.duration.as_secs_f64();
    let q = |p: f64| latency_us.value_at_quantile(p) as f64 / 1000.0;
    let (p50, p99, p999, max) = (q(0.5), q(0.99), q(0.999), latency_us.max() as f64 / 1000.0);
    let human = format!(
        "{sent} sent, {received} received ({:.1} records/s, {:.2} MB/s); end-to-end latency \
         ms: p50 {p50:.2}, p99 {p99:.2}, p99.9 {p999:.2}, max {max:.2} over {} records \
         after the warm-up; {errors} consumer errors",
        per_sec(received, secs),
        mb_per_sec(bytes, secs),
        latency_us.len(),
    );
    if args.json {
        eprintln!("{human}");
        let json = serde_json::json!({
            "tool": "e2e",
            "topic": args.topic,
            "partitions": partitions.len(),
            "record_size": args.record_size,
            "target_records_per_sec": args.throughput,
            "acks": args.acks,
            "sent": sent,
            "received": received,
            "records_per_sec": per_sec(received, secs),
            "mb_per_sec": mb_per_sec(bytes, secs),
            "latency_ms": {"p50": p50, "p99": p99, "p999": p999, "max": max,
                           "count": latency_us.len()},
            "errors": errors,
        });
        println!("{json}");
    } else {
        println!("{human}");
    }
    ensure!(
        received >= sent,
        "received {received} of the {sent} records sent"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_send_time() {
        let mut buf = Vec::new();
        stamped_value(&mut buf, 123_456_789, 100);
        assert_eq!(buf.len(), 100);
        assert_eq!(send_time_ns(&buf), Some(123_456_789));
        stamped_value(&mut buf, 7, 8);
        assert_eq!(send_time_ns(&buf), Some(7));
        assert_eq!(send_time_ns(b"short"), None);
    }
}
