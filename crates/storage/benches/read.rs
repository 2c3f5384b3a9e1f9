//! Reads from a prefilled partition log at random offsets and timestamps: the fetch and
//! ListOffsets paths.
//!
//! - `lookup`: `PartitionLog::read` of at most 1 MiB from a random offset. It finds the bytes
//!   (segment map, sparse offset index, a few batch-header `pread`s) and returns a `FileSlice`
//!   without copying, which is what a broker hands to `sendfile`.
//! - `lookup_read_to_vec`: the same, then `FileSlice::read_to_vec`, the copy a broker makes when
//!   it cannot send from the file (TLS).
//! - `lookup_pread_reused_buffer`: the same copy into one buffer reused across reads, to show how
//!   much of `read_to_vec` is the copy and how much its fresh, zeroed buffer.
//! - `find_offset_by_timestamp`: ListOffsets by time at a random timestamp.
//!
//! The log holds batches of 16 records of 1 KiB, each record timestamped with its offset past a
//! fixed origin, in four segments; the data was just written, so it is in the page cache, as for
//! consumers that keep up with producers.

mod common;

use std::hint::black_box;
use std::os::unix::fs::FileExt;

use common::{batch_at, data_dir, is_bench_run, now_ms, open_log, LEADER_EPOCH};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rivulet_storage::batch::BatchIter;
use rivulet_storage::{FileSlice, LogConfig, PartitionLog};
use tempfile::TempDir;

/// `max_bytes` of every read: a consumer's default `max.partition.fetch.bytes`.
const FETCH_MAX_BYTES: u64 = 1 << 20;
/// Records per prefilled batch (of 1 KiB records: 16 KiB batches).
const BATCH_RECORDS: usize = 16;
/// How many random offsets and timestamps the benchmarks cycle through.
const TARGETS: usize = 4096;

/// A log filled with batches of [`BATCH_RECORDS`] records, and the random targets to read.
struct Prefilled {
    _dir: TempDir,
    log: PartitionLog,
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
}

impl Prefilled {
    fn new() -> Self {
        let total: u64 = if is_bench_run() { 256 << 20 } else { 2 << 20 };
        // Four segments: a lookup first picks the segment, then searches that segment's index.
        let config = LogConfig {
            segment_bytes: total / 4,
            ..LogConfig::default()
        };
        let dir = data_dir();
        let mut log = open_log(dir.path(), config);
        while log.size_in_bytes() < total {
            // Record timestamps are the origin plus the record's offset: increasing and distinct,
            // so every timestamp lookup has a single right answer.
            let batch = batch_at(BATCH_RECORDS, now_ms() + log.log_end_offset());
            log.append_as_leader(&batch, LEADER_EPOCH, now_ms())
                .expect("prefill");
        }
        log.set_high_watermark(log.log_end_offset());

        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let range = log.log_start_offset()..log.log_end_offset();
        let offsets = (0..TARGETS).map(|_| rng.i64(range.clone())).collect();
        let timestamps = (0..TARGETS)
            .map(|_| now_ms() + rng.i64(range.clone()))
            .collect();
        Prefilled {
            _dir: dir,
            log,
            offsets,
            timestamps,
        }
    }

    /// `PartitionLog::read` as a consumer fetch does it: up to the high watermark, at least one
    /// batch.
    fn fetch(&self, offset: i64) -> FileSlice {
        self.log
            .read(offset, FETCH_MAX_BYTES, self.log.high_watermark(), true)
            .expect("read")
            .expect("an offset below the high watermark has data")
    }

    /// Mean length of the slices read at the benchmark's offsets. Reads stop at segment ends,
    /// so slices vary a little; the throughput figures use this mean.
    fn mean_fetch_len(&self) -> u64 {
        let total: u64 = self.offsets.iter().map(|&o| self.fetch(o).len).sum();
        total / self.offsets.len() as u64
    }

    /// Checks that reads return whole batches starting with the one holding the offset, and that
    /// timestamp lookups land on the record with that timestamp, so the benchmarks measure a
    /// working path.
    fn check(&self) {
        for &offset in self.offsets.iter().take(16) {
            let bytes = self.fetch(offset).read_to_vec().expect("copy the slice");
            let mut batches = BatchIter::new(&bytes, usize::MAX);
            let first = batches
                .next()
                .expect("at least one batch")
                .expect("a valid batch");
            assert!(first.base_offset() <= offset && offset <= first.last_offset());
            for batch in batches.by_ref() {
                batch.expect("a valid batch");
            }
            assert_eq!(batches.position(), bytes.len(), "whole batches only");
        }
        for &timestamp in self.timestamps.iter().take(16) {
            let found = self
                .log
                .find_offset_by_timestamp(timestamp)
                .expect("lookup")
                .expect("found");
            assert_eq!(
                (found.timestamp, found.offset),
                (timestamp, timestamp - now_ms())
            );
        }
    }
}

fn read(c: &mut Criterion) {
    let data = Prefilled::new();
    data.check();
    let mean_len = data.mean_fetch_len();
    let mut offsets = data.offsets.iter().copied().cycle();
    let mut timestamps = data.timestamps.iter().copied().cycle();
    let mut next_offset = move || offsets.next().unwrap_or_default();

    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lookup", |b| {
        b.iter(|| black_box(data.fetch(next_offset())))
    });

    group.throughput(Throughput::Bytes(mean_len));
    group.bench_function("lookup_read_to_vec", |b| {
        b.iter(|| black_box(data.fetch(next_offset()).read_to_vec().expect("copy")))
    });
    let mut buf = vec![0u8; FETCH_MAX_BYTES as usize];
    group.bench_function("lookup_pread_reused_buffer", |b| {
        b.iter(|| {
            let slice = data.fetch(next_offset());
            let dst = &mut buf[..slice.len as usize];
            slice
                .file()
                .read_exact_at(dst, slice.position)
                .expect("copy");
            black_box(dst);
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("find_offset_by_timestamp", |b| {
        b.iter(|| {
            let timestamp = timestamps.next().unwrap_or_default();
            black_box(
                data.log
                    .find_offset_by_timestamp(timestamp)
                    .expect("lookup"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
