//! Shared by the storage benchmarks: where the data lives, how the log under test is opened, and
//! the batches written to it.

// Each bench binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;

use rivulet_storage::batch::testing::{batch_of, BatchSpec};
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, TopicPartition};
use tempfile::TempDir;

/// Size of each record's value, as in the acceptance criteria (1 KiB records).
pub const RECORD_SIZE: usize = 1024;

/// Leader epoch stamped on every append.
pub const LEADER_EPOCH: i32 = 0;

/// The broker's clock during the benchmarks. It equals the records' first timestamp so that no
/// time-based rule (`segment.ms`, `retention.ms`, timestamp bounds) ever fires.
pub fn now_ms() -> i64 {
    BatchSpec::default().base_timestamp
}

/// True under `cargo bench`; false under `cargo test --benches`, where criterion runs every
/// benchmark once as a smoke test and prefills and reset intervals must stay tiny.
pub fn is_bench_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A fresh directory on the disk that holds the repository (under the target directory), not on
/// a tmpfs: the benchmarks must see the same filesystem as a broker's log dirs would.
pub fn data_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("rivulet-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a benchmark directory under CARGO_TARGET_TMPDIR")
}

/// Opens (creating it) the partition log `bench-0` in `dir`.
pub fn open_log(dir: &Path, config: LogConfig) -> PartitionLog {
    let params = LoadParams {
        now_ms: now_ms(),
        ..LoadParams::default()
    };
    PartitionLog::open(dir, TopicPartition::new("bench", 0), config, params)
        .expect("open the benchmark log")
}

/// An uncompressed v2 batch of `count` records of [`RECORD_SIZE`] bytes whose first record has
/// timestamp `base_timestamp` (record `i` gets `base_timestamp + i`).
pub fn batch_at(count: usize, base_timestamp: i64) -> Vec<u8> {
    let spec = BatchSpec {
        base_timestamp,
        ..BatchSpec::default()
    };
    batch_of(&spec, count, RECORD_SIZE)
}

/// The largest number of [`RECORD_SIZE`] records whose batch is at most `max_bytes` long.
pub fn records_fitting(max_bytes: usize) -> usize {
    // A record takes a little more than its value (length varints, attributes, deltas), so
    // `max_bytes / RECORD_SIZE` records never fit; step down from there.
    let mut count = max_bytes / RECORD_SIZE;
    while count > 1 && batch_at(count, now_ms()).len() > max_bytes {
        count -= 1;
    }
    count
}

/// The two batch shapes of the acceptance criteria: 16 records of 1 KiB ("16 KiB"), and as many
/// 1 KiB records as the default `max.message.bytes` (1 MiB + 12) admits ("1 MiB", 1013
/// records), so the log runs with its default configuration.
pub fn batch_shapes() -> [(&'static str, usize); 2] {
    [
        ("16KiB", 16),
        (
            "1MiB",
            records_fitting(LogConfig::default().max_message_bytes),
        ),
    ]
}
