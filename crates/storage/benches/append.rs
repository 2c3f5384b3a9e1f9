//! Append throughput of the partition log (`PartitionLog::append_as_leader`) next to the raw
//! sequential-write speed of the same disk (`File::write_all`), for batches of 1 KiB records.
//!
//! Both sides write one prebuilt batch again and again into a file on the repository's disk and
//! throw their data away at the same interval, untimed, so the ratio of the two is the cost the
//! log adds to the write itself: validation (CRC-32C of the batch, a walk over its records),
//! offset assignment, index entries. Neither side fsyncs: these are page-cache write
//! speeds, the regime Kafka runs in (flushing is left to the OS). Discarding the data every
//! [`discard_interval`] keeps disk usage bounded and keeps the dirty data well below the
//! kernel's writeback thresholds, so background writeback never competes with the measurement.
//!
//! `append_cpu` times the validation that `append_as_leader` runs before writing, and its CRC
//! and record-walk parts, on the same batches: with `append`, it shows where the log's time goes.
//!
//! The log never rolls inside the `append` group (its segments are larger than the discard
//! interval). The `roll` group measures that cost separately: closing the active segment fsyncs
//! it on the appending thread.

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{batch_at, batch_shapes, data_dir, is_bench_run, now_ms, open_log, LEADER_EPOCH};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use rivulet_storage::batch::RecordBatch;
use rivulet_storage::log_validator::validate_client_batch;
use rivulet_storage::{LogConfig, PartitionLog};
use tempfile::TempDir;

/// Bytes written between two discards: just under one segment of Kafka's default size (1 GiB),
/// so the log never rolls mid-measurement, yet what it pays once per segment (the first touch of
/// the memory-mapped index pages) weighs on the figures as it does in a real log. It is also well
/// below the kernel's background writeback threshold (`vm.dirty_background_ratio`, 10% of
/// available memory by default) on a machine with 16 GiB or more, so nothing is written back to
/// the device while it is measured.
fn discard_interval() -> u64 {
    if is_bench_run() {
        LogConfig::default().segment_bytes - (4 << 20)
    } else {
        4 << 20
    }
}

/// Somewhere to write the same batch over and over.
trait Sink {
    /// Writes `batch` once: the operation measured.
    fn write(&mut self, batch: &[u8]);
    /// Throws away everything written so far (not measured).
    fn discard(&mut self);
}

/// The partition log under test, with Kafka's default settings.
struct LogSink {
    _dir: TempDir,
    log: PartitionLog,
    /// A one-record batch appended after each discard; see [`LogSink::discard`].
    primer: Vec<u8>,
}

impl LogSink {
    fn new() -> Self {
        let dir = data_dir();
        let log = open_log(dir.path(), LogConfig::default());
        LogSink {
            _dir: dir,
            log,
            primer: batch_at(1, now_ms()),
        }
    }
}

impl Sink for LogSink {
    fn write(&mut self, batch: &[u8]) {
        // The same producer batch again and again: the log gives it new offsets each time.
        let info = self
            .log
            .append_as_leader(batch, LEADER_EPOCH, now_ms())
            .expect("append");
        black_box(info);
    }

    fn discard(&mut self) {
        // Deletes every segment without fsyncing it first (`increment_log_start_offset` would
        // roll, and rolling fsyncs): the counterpart of deleting the raw file.
        let leo = self.log.log_end_offset();
        self.log
            .truncate_fully_and_start_at(leo, now_ms())
            .expect("discard the log");
        // That also cleared the leader-epoch cache, so the next append would rewrite and fsync
        // its checkpoint, which in production happens once per leader change, not per segment.
        self.log
            .append_as_leader(&self.primer, LEADER_EPOCH, now_ms())
            .expect("prime the leader-epoch cache");
    }
}

/// A plain file in the same kind of directory, written with `write_all`: the baseline.
struct RawFileSink {
    _dir: TempDir,
    path: PathBuf,
    file: File,
}

impl RawFileSink {
    fn new() -> Self {
        let dir = data_dir();
        let path = dir.path().join("raw.log");
        let file = File::create(&path).expect("create the raw file");
        RawFileSink {
            _dir: dir,
            path,
            file,
        }
    }
}

impl Sink for RawFileSink {
    fn write(&mut self, batch: &[u8]) {
        self.file.write_all(batch).expect("raw write");
    }

    fn discard(&mut self) {
        // Unlink and recreate, as the log deletes its segment files and creates a new one.
        std::fs::remove_file(&self.path).expect("remove the raw file");
        self.file = File::create(&self.path).expect("recreate the raw file");
    }
}

/// A sink whose data is discarded every [`discard_interval`] bytes, outside the timed spans.
struct Bounded<S> {
    sink: S,
    written: u64,
}

impl<S: Sink> Bounded<S> {
    fn new(sink: S) -> Self {
        Bounded { sink, written: 0 }
    }

    /// Writes `batch` `iters` times and returns the time spent writing, discards excluded.
    fn timed_writes(&mut self, batch: &[u8], iters: u64) -> Duration {
        let len = batch.len() as u64;
        let limit = discard_interval();
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            if self.written + len > limit {
                self.sink.discard();
                self.written = 0;
            }
            let run = left.min(((limit - self.written) / len).max(1));
            let start = Instant::now();
            for _ in 0..run {
                self.sink.write(batch);
            }
            total += start.elapsed();
            self.written += run * len;
            left -= run;
        }
        total
    }
}

/// Benchmarks `sink` under `id`. The sink is dropped (its directory deleted) on return, so its
/// dirty pages do not linger into the next benchmark.
fn bench_sink(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    batch: &[u8],
    sink: impl Sink,
) {
    let mut sink = Bounded::new(sink);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| sink.timed_writes(batch, iters))
    });
}

/// `append_as_leader` and the raw write side by side, for each batch shape of the criteria.
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for (shape, records) in batch_shapes() {
        let batch = batch_at(records, now_ms());
        group.throughput(Throughput::Bytes(batch.len() as u64));
        bench_sink(
            &mut group,
            BenchmarkId::new("partition_log", shape),
            &batch,
            LogSink::new(),
        );
        bench_sink(
            &mut group,
            BenchmarkId::new("raw_write", shape),
            &batch,
            RawFileSink::new(),
        );
    }
    group.finish();
}

/// The CPU work `append_as_leader` does before its write, on the same batches: validation as a
/// whole, and its two parts that read every byte or every record (the CRC-32C of the batch and
/// the walk over its records). With `append`, it shows where the log's time goes beyond the
/// write itself.
fn append_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_cpu");
    let config = LogConfig::default();
    for (shape, records) in batch_shapes() {
        let batch = batch_at(records, now_ms());
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::new("validate_client_batch", shape), |b| {
            b.iter(|| validate_client_batch(black_box(&batch), &config, now_ms()).expect("valid"))
        });
        let view = RecordBatch::new(&batch).expect("a batch");
        group.bench_function(BenchmarkId::new("crc32c", shape), |b| {
            b.iter(|| black_box(view).compute_crc())
        });
        group.bench_function(BenchmarkId::new("walk_records", shape), |b| {
            b.iter(|| {
                black_box(view)
                    .walk_uncompressed_records()
                    .expect("valid records")
            })
        });
    }
    group.finish();
}

/// Closing a segment of `segment_bytes` written just before: what a log pays once per segment,
/// on the appending thread, on top of the `append` figures.
fn roll(c: &mut Criterion) {
    let segment_bytes: u64 = if is_bench_run() { 64 << 20 } else { 1 << 20 };
    let mut group = c.benchmark_group("roll");
    // Each iteration fsyncs tens of MiB: few, equally sized samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Bytes(segment_bytes));

    let dir = data_dir();
    let mut log = open_log(dir.path(), LogConfig::default());
    let (_, records) = batch_shapes()[1];
    let batch = batch_at(records, now_ms());
    let fill_segment = |log: &mut PartitionLog| {
        let leo = log.log_end_offset();
        log.truncate_fully_and_start_at(leo, now_ms())
            .expect("empty the log");
        while log.size_in_bytes() < segment_bytes {
            log.append_as_leader(&batch, LEADER_EPOCH, now_ms())
                .expect("append");
        }
    };
    let id = BenchmarkId::new("partition_log", format!("{}MiB", segment_bytes >> 20));
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fill_segment(&mut log);
                let start = Instant::now();
                log.roll(log.log_end_offset(), now_ms()).expect("roll");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, append, append_cpu, roll);
criterion_main!(benches);
