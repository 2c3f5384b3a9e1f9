//! `rivulet perf produce`: kafka-producer-perf-test for Rivulet, on librdkafka.
//!
//! `--producers N` threads (default 1), each with its own librdkafka producer, send records of
//! `--record-size` bytes (random capital letters, one payload for all records, as the Kafka
//! tool does), together never faster than `--throughput` records/s when that is set; the
//! records, the warm-up and the rate are shared out evenly. Each record carries its send time; the delivery report (served on the
//! `ThreadedProducer`'s polling thread as soon as it arrives) records send-to-acknowledgement
//! latency in a histogram of microseconds with 3 significant digits. The time a send waits for
//! room in a full producer queue counts in the record's latency, as it does in the Kafka tool
//! (whose `send` blocks while `buffer.memory` is full).
//!
//! With `--warmup-records N` (as in Kafka 4.0's tool) the first N records are sent and counted
//! in the whole-run figures, and a second, steady-state report leaves them out: its throughput
//! runs from the first send after the warm-up to the last delivery report.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use hdrhistogram::Histogram;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::admin::CreateTopicArgs;
use super::{client_config, mb_per_sec, parse_duration, parse_key_value, per_sec};

/// Most distinct error messages kept for the report.
const KEPT_ERRORS: usize = 5;
/// Highest latency the histogram tracks (larger values count as this): one hour, in µs.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Set in a warm-up record's delivery opaque (the rest of which is its send time in ns).
const WARMUP_BIT: usize = 1 << (usize::BITS - 1);

/// Arguments of `rivulet perf produce`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to connect (`host:port[,host:port...]`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Topic to produce to.
    #[arg(long)]
    topic: String,
    /// Records to send (default 100000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// Records sent first and left out of the steady-state report (they count in the
    /// whole-run report). Part of --records, not in addition to it.
    #[arg(long, default_value_t = 0)]
    warmup_records: u64,
    /// Send for this long instead of a number of records (e.g. 30, 30s, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Bytes per record value (records have no key).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Acknowledgements the leader waits for: 0, 1 or all (-1).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// librdkafka `linger.ms` (its default, 5, when not given).
    #[arg(long)]
    linger_ms: Option<u64>,
    /// librdkafka `batch.size` in bytes (its default, 1000000, when not given).
    #[arg(long)]
    batch_size: Option<u64>,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Idempotent producer (`enable.idempotence=true`; needs --acks all).
    #[arg(long)]
    idempotence: bool,
    /// Producers, each its own librdkafka client on its own thread (one librdkafka producer
    /// tops out at about one core; several measure what a broker takes from many clients).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    producers: u64,
    /// Cap on records per second, over all producers; -1: no cap (as kafka-producer-perf-test).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
    /// Extra librdkafka producer properties (`key=value`, repeatable; applied last).
    /// `queue.buffering.max.kbytes` defaults to 32768 here, like the Java client's 32 MiB
    /// `buffer.memory`, so that an unthrottled run measures the cluster rather than a
    /// gigabyte-deep client queue.
    #[arg(long = "producer-props", value_parser = parse_key_value, num_args = 1..)]
    producer_props: Vec<(String, String)>,
    #[command(flatten)]
    create: CreateTopicArgs,
    /// Print a progress line to stderr this often (0: never).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    reporting_interval: Duration,
    /// Print the result as one JSON object on stdout (the human line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Delivery outcomes of a set of records.
#[derive(Clone)]
struct Phase {
    /// Send-to-delivery-report latency of acknowledged records, µs.
    latency_us: Histogram<u64>,
    /// Records acknowledged.
    acked: u64,
    /// Records whose delivery failed.
    failed: u64,
}

impl Phase {
    fn new() -> anyhow::Result<Phase> {
        Ok(Phase {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .context("latency histogram")?,
            acked: 0,
            failed: 0,
        })
    }

    fn record(&mut self, acked: bool, latency_us: u64) {
        if acked {
            self.acked += 1;
            self.latency_us.saturating_record(latency_us.max(1));
        } else {
            self.failed += 1;
        }
    }
}

/// What the delivery reports have told so far.
struct Stats {
    /// Every record.
    all: Phase,
    /// The records after the warm-up.
    steady: Phase,
    /// When the last report arrived.
    last_report: Option<Instant>,
    /// The first few distinct error messages, with counts.
    errors: Vec<(String, u64)>,
    /// The current progress window: start, records, latency sum and max (µs).
    window: (Instant, u64, u64, u64),
}

impl Stats {
    fn note_error(&mut self, message: String) {
        if let Some(entry) = self.errors.iter_mut().find(|(m, _)| *m == message) {
            entry.1 += 1;
        } else if self.errors.len() < KEPT_ERRORS {
            self.errors.push((message, 1));
        }
    }
}

/// What every producer's delivery reports go into.
struct Shared {
    /// Time zero: each record's delivery opaque is its send time in ns past this.
    start: Instant,
    /// Record value size, for the progress lines.
    record_size: usize,
    /// Progress line interval (zero: none).
    reporting_interval: Duration,
    stats: Mutex<Stats>,
}

/// A producer's context: timestamps delivery reports into the shared [`Stats`].
struct PerfContext(Arc<Shared>);

impl Shared {
    fn stats(&self) -> MutexGuard<'_, Stats> {
        // A panic while holding the lock leaves the numbers usable: keep going.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Nanoseconds since [`Self::start`].
    fn now_ns(&self) -> usize {
        self.start.elapsed().as_nanos() as usize
    }
}

impl ClientContext for PerfContext {}

impl ProducerContext for PerfContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let now = Instant::now();
        let warmup = opaque & WARMUP_BIT != 0;
        let sent_ns = opaque & !WARMUP_BIT;
        let latency_us = (self.0.now_ns().saturating_sub(sent_ns) / 1000) as u64;
        let mut stats = self.0.stats();
        stats.last_report = Some(now);
        let acked = result.is_ok();
        stats.all.record(acked, latency_us);
        if !warmup {
            stats.steady.record(acked, latency_us);
        }
        match result {
            Ok(_) => {
                let w = &mut stats.window;
                w.1 += 1;
                w.2 += latency_us;
                w.3 = w.3.max(latency_us);
            }
            Err((e, _)) => stats.note_error(e.to_string()),
        }
        if !self.0.reporting_interval.is_zero()
            && now.duration_since(stats.window.0) >= self.0.reporting_interval
        {
            let (since, records, sum_us, max_us) = stats.window;
            let secs = now.duration_since(since).as_secs_f64();
            eprintln!(
                "{records} records acked, {:.1} records/s ({:.2} MB/s), {:.2} ms avg latency, \
                 {:.2} ms max latency",
                per_sec(records, secs),
                mb_per_sec(records * self.0.record_size as u64, secs),
                if records > 0 {
                    sum_us as f64 / records as f64 / 1000.0
                } else {
                    0.0
                },
                max_us as f64 / 1000.0
            );
            stats.window = (now, 0, 0, 0);
        }
    }
}

/// The outcome of a run, or of its steady state.
struct Report {
    acked: u64,
    failed: u64,
    /// Sends librdkafka refused outright (not counting queue-full retries).
    send_errors: u64,
    bytes: u64,
    secs: f64,
    latency_us: Histogram<u64>,
}

impl Report {
    fn ms(us: u64) -> f64 {
        us as f64 / 1000.0
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        Self::ms(self.latency_us.value_at_quantile(q))
    }

    fn errors(&self) -> u64 {
        self.failed + self.send_errors
    }

    fn human(&self) -> String {
        let h = &self.latency_us;
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, \
             {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, \
             {:.2} ms 99.9th, {} errors.",
            self.acked,
            per_sec(self.acked, self.secs),
            mb_per_sec(self.bytes, self.secs),
            h.mean() / 1000.0,
            Self::ms(h.max()),
            self.quantile_ms(0.50),
            self.quantile_ms(0.95),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.errors()
        )
    }

    /// The figures as JSON fields.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "records": self.acked,
            "bytes": self.bytes,
            "elapsed_s": self.secs,
            "records_per_sec": per_sec(self.acked, self.secs),
            "mb_per_sec": mb_per_sec(self.bytes, self.secs),
            "latency_ms": {
                "avg": self.latency_us.mean() / 1000.0,
                "p50": self.quantile_ms(0.50),
                "p95": self.quantile_ms(0.95),
                "p99": self.quantile_ms(0.99),
                "p999": self.quantile_ms(0.999),
                "max": Self::ms(self.latency_us.max()),
            },
            "errors": self.errors(),
        })
    }
}

/// A payload of `size` random capital letters (Kafka's tool uses the same alphabet).
fn payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    (0..size)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            b'A' + (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u8 % 26
        })
        .collect()
}

/// What one producer thread is to send.
struct Quota {
    /// Records to send (`None`: for `duration`).
    records: Option<u64>,
    /// How long to send when no record count is given.
    duration: Option<Duration>,
    /// The first of them that are warm-up records.
    warmup_records: u64,
    /// Records per second at most (not positive: no cap).
    throughput: f64,
}

/// What one producer thread handed to librdkafka.
#[derive(Default)]
struct Sent {
    /// Records librdkafka took, in all and after the warm-up.
    sent: u64,
    steady_sent: u64,
    /// Sends librdkafka refused, in all and after the warm-up.
    send_errors: u64,
    steady_send_errors: u64,
    /// The first send after the warm-up.
    steady_start: Option<Instant>,
}

impl Sent {
    /// Both threads' counts; the earlier steady-state start.
    fn add(self, other: Sent) -> Sent {
        Sent {
            sent: self.sent + other.sent,
            steady_sent: self.steady_sent + other.steady_sent,
            send_errors: self.send_errors + other.send_errors,
            steady_send_errors: self.steady_send_errors + other.steady_send_errors,
            steady_start: match (self.steady_start, other.steady_start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// Producer `i`'s share of `total` over `n` producers (the shares add up to `total`).
fn share_of(total: u64, n: u64, i: u64) -> u64 {
    total / n + u64::from(i < total % n)
}

/// One producer thread: sends `quota` records of `value` to `topic`, each with its send time
/// (and the warm-up mark) in its delivery opaque.
fn send_loop(
    producer: &ThreadedProducer<PerfContext>,
    topic: &str,
    value: &[u8],
    quota: &Quota,
    send_start: Instant,
) -> anyhow::Result<Sent> {
    let context = &producer.context().0;
    let mut out = Sent::default();
    // A client that cannot enqueue for this long is stuck: stop rather than hang.
    let stuck_after = Duration::from_secs(120);
    loop {
        let attempted = out.sent + out.send_errors;
        match (quota.records, quota.duration) {
            (Some(n), _) if attempted >= n => break,
            (None, Some(d)) if send_start.elapsed() >= d => break,
            (None, None) => break,
            _ => {}
        }
        if quota.throughput > 0.0 {
            let due = Duration::from_secs_f64(attempted as f64 / quota.throughput);
            let elapsed = send_start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let warmup = attempted < quota.warmup_records;
        let now_ns = context.now_ns();
        if !warmup && out.steady_start.is_none() {
            out.steady_start = Some(Instant::now());
        }
        let opaque = if warmup { now_ns | WARMUP_BIT } else { now_ns };
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, opaque).payload(value);
        let blocked_since = Instant::now();
        loop {
            match producer.send(record) {
                Ok(()) => {
                    out.sent += 1;
                    out.steady_sent += u64::from(!warmup);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if blocked_since.elapsed() > stuck_after {
                        bail!(
                            "the producer queue stayed full for {stuck_after:?} after {} \
                             records: is the cluster answering?",
                            out.sent
                        );
                    }
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    out.send_errors += 1;
                    out.steady_send_errors += u64::from(!warmup);
                    context.stats().note_error(format!("send: {e}"));
                    break;
                }
            }
        }
        if out.sent == 0 && out.send_errors >= 1000 {
            bail!(
                "every send failed; first errors: {:?}",
                context.stats().errors
            );
        }
    }
    Ok(out)
}

/// Runs `rivulet perf produce`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.record_size > 0, "--record-size must be positive");
    ensure!(
        args.throughput != 0.0,
        "--throughput must be positive, or -1 for no cap"
    );
    let records = match (args.records, args.duration) {
        (Some(n), _) => {
            ensure!(n > 0, "--records must be positive");
            Some(n)
        }
        (None, Some(_)) => None,
        (None, None) => Some(100_000),
    };
    args.create.ensure(&args.bootstrap_servers, &args.topic)?;

    let mut config = client_config(&args.bootstrap_servers, "rivulet-perf-producer", &[]);
    let acks = if args.acks == "-1" { "all" } else { &args.acks };
    config
        .set("acks", acks)
        .set("compression.type", &args.compression)
        .set("queue.buffering.max.kbytes", "32768")
        .set("message.timeout.ms", "120000")
        .set("enable.idempotence", args.idempotence.to_string());
    if let Some(linger) = args.linger_ms {
        config.set("linger.ms", linger.to_string());
    }
    if let Some(batch) = args.batch_size {
        config.set("batch.size", batch.to_string());
    }
    for (k, v) in &args.producer_props {
        config.set(k, v);
    }
    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        record_size: args.record_size,
        reporting_interval: args.reporting_interval,
        stats: Mutex::new(Stats {
            all: Phase::new()?,
            steady: Phase::new()?,
            last_report: None,
            errors: Vec::new(),
            window: (start, 0, 0, 0),
        }),
    });
    let producers = (0..args.producers)
        .map(|_| {
            config
                .create_with_context::<_, ThreadedProducer<PerfContext>>(PerfContext(Arc::clone(
                    &shared,
                )))
                .context("creating the producer")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "producing {} of {} bytes to {} (producers={}, acks={acks}, compression={}, \
         linger.ms={}, batch.size={}, idempotence={}, throughput cap={}, warm-up records={})",
        match (records, args.duration) {
            (Some(n), _) => format!("{n} records"),
            (None, Some(d)) => format!("records for {d:?}"),
            (None, None) => String::new(),
        },
        args.record_size,
        args.topic,
        args.producers,
        args.compression,
        config.get("linger.ms").unwrap_or("default"),
        config.get("batch.size").unwrap_or("default"),
        args.idempotence,
        if args.throughput > 0.0 {
            format!("{} records/s", args.throughput)
        } else {
            "none".to_string()
        },
        args.warmup_records,
    );

    let value = payload(args.record_size);
    let send_start = Instant::now();
    let n = args.producers;
    let sent = std::thread::scope(|scope| {
        let threads: Vec<_> = producers
            .iter()
            .zip(0..n)
            .map(|(producer, i)| {
                let quota = Quota {
                    records: records.map(|r| share_of(r, n, i)),
                    duration: args.duration,
                    warmup_records: share_of(args.warmup_records, n, i),
                    throughput: args.throughput / n as f64,
                };
                let (topic, value) = (&args.topic, &value[..]);
                scope.spawn(move || send_loop(producer, topic, value, &quota, send_start))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a producer thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<Sent>>>()
    })?;
    let sent = sent.into_iter().fold(Sent::default(), Sent::add);
    for producer in &producers {
        producer
            .flush(Duration::from_secs(150))
            .context("flushing the producer")?;
    }
    // flush() returns when librdkafka's queue is empty; the polling thread may still be
    // running the last delivery callbacks.
    let settle = Instant::now();
    loop {
        let done = {
            let s = shared.stats();
            s.all.acked + s.all.failed >= sent.sent
        };
        if done || settle.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let Sent {
        sent,
        steady_sent,
        send_errors,
        steady_send_errors,
        steady_start,
    } = sent;
    let (whole, steady, errors) = {
        let s = shared.stats();
        let end = s.last_report.unwrap_or_else(Instant::now);
        let report = |phase: &Phase, sent: u64, send_errors: u64, since: Instant| Report {
            acked: phase.acked,
            // Records never reported count as failed.
            failed: phase.failed + sent.saturating_sub(phase.acked + phase.failed),
            send_errors,
            bytes: phase.acked * args.record_size as u64,
            secs: end.saturating_duration_since(since).as_secs_f64(),
            latency_us: phase.latency_us.clone(),
        };
        let whole = report(&s.all, sent, send_errors, send_start);
        let steady = match steady_start {
            Some(since) if args.warmup_records > 0 => {
                Some(report(&s.steady, steady_sent, steady_send_errors, since))
            }
            _ => None,
        };
        (whole, steady, s.errors.clone())
    };
    drop(producers);
    let steady_label = format!(
        "steady state (after {} warm-up records): ",
        args.warmup_records
    );
    let mut human = whole.human();
    if let Some(steady) = &steady {
        human = format!("{human}\n{steady_label}{}", steady.human());
    }
    if args.json {
        eprintln!("{human}");
        // The whole run's figures at the top level, the steady state's in their own object.
        let mut json = whole.json();
        let settings = serde_json::json!({
            "tool": "produce",
            "topic": args.topic,
            "producers": args.producers,
            "acks": acks,
            "record_size": args.record_size,
            "compression": args.compression,
            "throughput_cap": args.throughput,
            "warmup_records": args.warmup_records,
            "steady_state": steady.as_ref().map(Report::json),
            "error_messages": errors.iter()
                .map(|(m, n)| serde_json::json!({"message": m, "count": n}))
                .collect::<Vec<_>>(),
        });
        if let (Some(out), serde_json::Value::Object(settings)) = (json.as_object_mut(), settings) {
            out.extend(settings);
        }
        println!("{json}");
    } else {
        println!("{human}");
    }
    for (message, count) in &errors {
        eprintln!("error ({count}x): {message}");
    }
    ensure!(
        whole.errors() == 0,
        "{} of {} records were not acknowledged",
        whole.errors(),
        sent + send_errors
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, n) in [(10, 3), (0, 4), (1_000_001, 7), (5, 5), (2, 8)] {
            let shares: Vec<u64> = (0..n).map(|i| share_of(total, n, i)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {n}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn payload_is_capital_letters() {
        let p = payload(4096);
        assert_eq!(p.len(), 4096);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        // Not one repeated letter.
        assert!(p.iter().any(|&b| b != p[0]));
    }
}
