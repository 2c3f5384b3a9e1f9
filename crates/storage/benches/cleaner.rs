//! Log compaction throughput: one full clean (`LogCleaner::clean_once`) of a dirty 64 MiB log of
//! 1 KiB records under 10,000 keys, about 6.5 values per key, in 8 MiB segments plus an active
//! one. The clean builds the offset map from the whole log, rewrites every inactive segment
//! (about 85% of the records go) and swaps the cleaned segments in.
//!
//! Each measured clean starts from a fresh copy of the prepared log, made untimed; the data is
//! in the page cache, as a log written shortly before would be. Throughput is the bytes of the
//! log cleaned.

mod common;

use std::path::{Path, PathBuf};

use common::{data_dir, is_bench_run, now_ms, LEADER_EPOCH};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rivulet_storage::batch::testing::{build_keyed_batch, BatchSpec, KeyValue};
use rivulet_storage::batch::Compression;
use rivulet_storage::cleaner::{CleanerConfig, LogCleaner};
use rivulet_storage::config::CleanupPolicy;
use rivulet_storage::log_manager::write_log;
use rivulet_storage::{LogConfig, LogManager, TopicPartition};
use tempfile::TempDir;

/// Distinct keys in the log.
const KEYS: usize = 10_000;
/// Records per batch.
const BATCH_RECORDS: usize = 16;
/// Size of each value.
const VALUE_SIZE: usize = 1024;

fn log_bytes() -> u64 {
    if is_bench_run() {
        64 << 20
    } else {
        1 << 20
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: if is_bench_run() { 8 << 20 } else { 256 << 10 },
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// Writes the dirty log once into `dir`; returns the bytes written.
fn prepare(dir: &Path) -> u64 {
    let logs = LogManager::open(&[dir.to_path_buf()], |_| config(), 1, now_ms()).expect("open");
    let tp = TopicPartition::new("bench", 0);
    let shared = logs.get_or_create(&tp, config(), now_ms()).expect("log");
    let value = vec![b'v'; VALUE_SIZE];
    let mut rng = fastrand::Rng::with_seed(7);
    {
        let mut log = write_log(&shared);
        while log.size_in_bytes() < log_bytes() {
            let keys: Vec<String> = (0..BATCH_RECORDS)
                .map(|_| format!("key-{:06}", rng.usize(..KEYS)))
                .collect();
            let records: Vec<KeyValue<'_>> = keys
                .iter()
                .map(|k| (Some(k.as_bytes()), Some(value.as_slice())))
                .collect();
            let batch = build_keyed_batch(&BatchSpec::default(), &records, Compression::None);
            log.append_as_leader(&batch, LEADER_EPOCH, now_ms())
                .expect("append");
        }
        let leo = log.log_end_offset();
        log.roll(leo, now_ms()).expect("roll");
        log.set_high_watermark(leo);
    }
    let size = write_log(&shared).size_in_bytes();
    drop(shared);
    logs.shutdown(now_ms()).expect("shutdown");
    size
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn cleaner(c: &mut Criterion) {
    let template = data_dir();
    let bytes = prepare(template.path());
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let mut group = c.benchmark_group("cleaner");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("clean_64MiB_10k_keys", |b| {
        b.iter_batched(
            || {
                let copy: TempDir = data_dir();
                copy_dir(template.path(), copy.path());
                let paths: Vec<PathBuf> = vec![copy.path().to_path_buf()];
                let logs = LogManager::open(&paths, |_| config(), 1, now_ms()).expect("open");
                (copy, logs)
            },
            |(copy, logs)| {
                let cleaned = cleaner
                    .clean_once(&logs, now_ms(), &|| false)
                    .expect("clean")
                    .expect("the log is due");
                assert!(cleaned.stats.records_removed > 0);
                (copy, logs)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, cleaner);
criterion_main!(benches);
