//! Whole-log tests of the cleaner: a real [`LogManager`] in a temporary directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::batch::testing::{build_keyed_batch, BatchSpec, KeyValue};
use crate::batch::{BatchIter, Compression, RecordBatch};
use crate::checkpoint::{OffsetCheckpointFile, CLEANER_OFFSET_CHECKPOINT_FILE};
use crate::config::CleanupPolicy;
use crate::log_manager::write_log;
use crate::LogConfig;

const NOW: i64 = 1_700_000_000_000;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.01,
        delete_retention_ms: 1_000,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
    logs: LogManager,
    tp: TopicPartition,
}

impl Fixture {
    fn new(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().to_path_buf()];
        let logs = LogManager::open(&paths, |_| config.clone(), 1, NOW).unwrap();
        let tp = TopicPartition::new("compacted", 0);
        logs.get_or_create(&tp, config, NOW).unwrap();
        Fixture {
            _dir: dir,
            paths,
            logs,
            tp,
        }
    }

    fn log(&self) -> SharedLog {
        self.logs.get(&self.tp).unwrap()
    }

    /// Appends one batch as leader and moves the high watermark to the LEO; returns the
    /// offset of each record.
    fn append(&self, spec: &BatchSpec, records: &[KeyValue<'_>], codec: Compression) -> Vec<i64> {
        let shared = self.log();
        let mut log = write_log(&shared);
        let info = log
            .append_as_leader(&build_keyed_batch(spec, records, codec), 0, NOW)
            .unwrap();
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
        (info.first_offset..=info.last_offset).collect()
    }

    fn put(&self, key: &str, value: Option<&str>) -> i64 {
        self.append(
            &BatchSpec::default(),
            &[(Some(key.as_bytes()), value.map(str::as_bytes))],
            Compression::None,
        )[0]
    }

    fn roll(&self) {
        let shared = self.log();
        let mut log = write_log(&shared);
        let leo = log.log_end_offset();
        log.roll(leo, NOW).unwrap();
    }

    /// Lets cleaned groups reach `bytes` (the segments were written smaller).
    fn set_segment_bytes(&self, bytes: u64) {
        let shared = self.log();
        let mut log = write_log(&shared);
        let mut config = log.config().clone();
        config.segment_bytes = bytes;
        log.set_config(config);
    }

    fn clean(&self, cleaner: &LogCleaner, now: i64) -> Option<CleanedLog> {
        cleaner.clean_once(&self.logs, now, &|| false).unwrap()
    }

    /// (offset, key, value) of every record readable from the log start.
    fn records(&self) -> Vec<(i64, String, Option<String>)> {
        records_of(&self.log())
    }
}

fn records_of(shared: &SharedLog) -> Vec<(i64, String, Option<String>)> {
    let log = read_log(shared);
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let Some(slice) = log
            .read(offset, 1 << 20, log.log_end_offset(), true)
            .unwrap()
        else {
            break;
        };
        let bytes = slice.read_to_vec().unwrap();
        for b in BatchIter::new(&bytes, usize::MAX) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            crate::compression::for_each_record(&b, 1 << 30, |r| {
                let o = b.base_offset() + i64::from(r.offset_delta);
                if o >= offset {
                    out.push((
                        o,
                        String::from_utf8_lossy(r.key.unwrap_or_default()).into_owned(),
                        r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    ));
                }
                true
            })
            .unwrap();
            offset = offset.max(b.next_offset());
        }
    }
    out
}

fn value(i: usize, round: usize) -> String {
    format!("value-{i}-round-{round}-{}", "x".repeat(40))
}

/// Writes `rounds` values for each of `keys` keys, one record per batch; returns the offset of
/// each key's last value.
fn fill(f: &Fixture, keys: usize, rounds: usize) -> BTreeMap<String, (i64, String)> {
    let mut latest = BTreeMap::new();
    for round in 0..rounds {
        for i in 0..keys {
            let v = value(i, round);
            let offset = f.put(&format!("key-{i}"), Some(&v));
            latest.insert(format!("key-{i}"), (offset, v));
        }
    }
    latest
}

#[test]
fn keeps_the_latest_value_of_each_key_at_its_offset() {
    let f = Fixture::new(compact_config());
    let latest = fill(&f, 10, 8);
    f.roll();
    let active_tail = f.put("tail", Some("in the active segment"));
    let before = read_log(&f.log()).segment_count();
    f.set_segment_bytes(1 << 20);
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let cleaned = f.clean(&cleaner, NOW).expect("the log is due");
    assert!(!cleaned.stats.abandoned);
    assert_eq!(cleaned.stats.records_removed, 70);
    let records = f.records();
    let expected: Vec<(i64, String, Option<String>)> = latest
        .iter()
        .map(|(k, (o, v))| (*o, k.clone(), Some(v.clone())))
        .chain([(
            active_tail,
            "tail".into(),
            Some("in the active segment".into()),
        )])
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(records, sorted);
    let after = read_log(&f.log()).segment_count();
    assert!(after < before, "segments were grouped: {before} -> {after}");
    // The active segment holds the tail record, untouched.
    assert_eq!(read_log(&f.log()).log_end_offset(), active_tail + 1);
}

#[test]
fn active_segment_and_records_above_the_high_watermark_are_not_cleaned() {
    let f = Fixture::new(compact_config());
    for _ in 0..5 {
        f.put("k", Some("v"));
    }
    let cleaner = LogCleaner::new(CleanerConfig::default());
    assert!(f.clean(&cleaner, NOW).is_none(), "only the active segment");
    f.roll();
    f.put("k", Some("new"));
    write_log(&f.log()).set_high_watermark(2);
    assert!(
        f.clean(&cleaner, NOW).is_none(),
        "the segment reaches past the HW"
    );
}

#[test]
fn second_clean_without_new_data_does_nothing_and_checkpoint_survives_restart() {
    let config = compact_config();
    let f = Fixture::new(config.clone());
    fill(&f, 5, 4);
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let first = f.clean(&cleaner, NOW).unwrap();
    let end = read_log(&f.log()).log_end_offset();
    assert_eq!(first.stats.end_offset, end);
    assert!(f.clean(&cleaner, NOW).is_none(), "nothing dirty");
    let file = OffsetCheckpointFile::new(f.paths[0].join(CLEANER_OFFSET_CHECKPOINT_FILE));
    assert_eq!(file.read().unwrap().get(&f.tp), Some(&end));
    let Fixture {
        _dir,
        paths,
        logs,
        tp,
    } = f;
    logs.shutdown(NOW).unwrap();
    let logs = LogManager::open(&paths, |_| config.clone(), 1, NOW).unwrap();
    assert_eq!(
        read_log(&logs.get(&tp).unwrap()).cleaner_checkpoint,
        Some(end)
    );
    assert!(cleaner.clean_once(&logs, NOW, &|| false).unwrap().is_none());
}

#[test]
fn tombstones_are_kept_for_delete_retention_then_removed() {
    let f = Fixture::new(compact_config());
    f.put("a", Some("1"));
    f.put("b", Some("1"));
    let tomb = f.put("a", None);
    let b2 = f.put("b", Some("2"));
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    f.clean(&cleaner, NOW).unwrap();
    assert_eq!(
        f.records(),
        vec![(tomb, "a".into(), None), (b2, "b".into(), Some("2".into()))]
    );
    assert_eq!(read_log(&f.log()).latest_delete_horizon, Some(NOW + 1_000));
    // Not yet: the horizon has not passed, and nothing is dirty.
    assert!(f.clean(&cleaner, NOW + 999).is_none());
    // Past the horizon, the cleaner comes back for the tombstone without any new data.
    let again = f
        .clean(&cleaner, NOW + 1_000)
        .expect("expired tombstones make the log due");
    assert_eq!(again.stats.records_removed, 1);
    assert_eq!(f.records(), vec![(b2, "b".into(), Some("2".into()))]);
    assert_eq!(read_log(&f.log()).latest_delete_horizon, None);
}

#[test]
fn idempotent_producer_keeps_an_empty_last_batch() {
    let f = Fixture::new(compact_config());
    let spec = |seq: i32| BatchSpec {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchSpec::default()
    };
    f.append(
        &spec(0),
        &[(Some(b"k"), Some(b"1")), (Some(b"j"), Some(b"1"))],
        Compression::Zstd,
    );
    f.append(&spec(2), &[(Some(b"k"), Some(b"2"))], Compression::Zstd);
    // The producer's last batch: every record superseded by another producer's.
    f.append(&spec(3), &[(Some(b"j"), Some(b"2"))], Compression::Zstd);
    let last = f.put("j", Some("3"));
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    f.clean(&cleaner, NOW).unwrap();
    assert_eq!(
        f.records(),
        vec![
            (2, "k".into(), Some("2".into())),
            (last, "j".into(), Some("3".into()))
        ]
    );
    let shared = f.log();
    let log = read_log(&shared);
    let slice = log
        .read(0, 1 << 20, log.log_end_offset(), true)
        .unwrap()
        .unwrap();
    let bytes = slice.read_to_vec().unwrap();
    let batches: Vec<(i64, i64, i32, i32)> = BatchIter::new(&bytes, usize::MAX)
        .map(|b| {
            let b: RecordBatch<'_> = b.unwrap();
            (
                b.base_offset(),
                b.last_offset(),
                b.records_count(),
                b.base_sequence(),
            )
        })
        .collect();
    assert_eq!(batches, vec![(2, 2, 1, 2), (3, 3, 0, 3), (4, 4, 1, -1)]);
    // The producer's sequence state is what it was: its next batch follows sequence 3.
    assert_eq!(log.producer_state().producer(9).unwrap().last_seq(), 3);
}

#[test]
fn retention_does_not_delete_compacted_only_logs() {
    let mut config = compact_config();
    config.retention_ms = 0;
    config.retention_bytes = 0;
    let f = Fixture::new(config.clone());
    fill(&f, 3, 3);
    f.roll();
    f.put("z", Some("z"));
    let count = read_log(&f.log()).segment_count();
    assert_eq!(f.logs.cleanup(NOW + 10_000).unwrap(), 0);
    assert_eq!(read_log(&f.log()).segment_count(), count);
    config.cleanup_policy.delete = true;
    write_log(&f.log()).set_config(config);
    assert!(
        f.logs.cleanup(NOW + 10_000).unwrap() > 0,
        "compact,delete applies retention"
    );
}

#[test]
fn keyless_records_are_refused_by_compacted_logs() {
    let f = Fixture::new(compact_config());
    let shared = f.log();
    let mut log = write_log(&shared);
    let batch = build_keyed_batch(
        &BatchSpec::default(),
        &[(Some(b"k"), Some(b"v")), (None, Some(b"v"))],
        Compression::Snappy,
    );
    let err = log.append_as_leader(&batch, 0, NOW).unwrap_err();
    assert!(
        matches!(err, crate::StorageError::InvalidRecord(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(
            "Compacted topic cannot accept message without key in topic partition compacted-0."
        ),
        "{err}"
    );
}

#[test]
fn truncation_during_a_clean_abandons_it() {
    let f = Fixture::new(compact_config());
    fill(&f, 5, 5);
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let shared = f.log();
    let truncated = AtomicBool::new(false);
    let stop = || {
        if !truncated.swap(true, Ordering::SeqCst) {
            write_log(&shared).truncate_to(3, NOW).unwrap();
        }
        false
    };
    let cleaned = cleaner.clean_once(&f.logs, NOW, &stop).unwrap().unwrap();
    assert!(cleaned.stats.abandoned);
    assert_eq!(read_log(&shared).log_end_offset(), 3);
    assert_eq!(f.records().len(), 3);
    let leftovers: Vec<_> = std::fs::read_dir(read_log(&shared).dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn appends_go_on_while_a_clean_runs() {
    let mut config = compact_config();
    config.segment_bytes = 64 << 10;
    let f = Arc::new(Fixture::new(config));
    fill(&f, 200, 30);
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let cleaning = AtomicBool::new(true);
    let appends_during_clean = std::sync::atomic::AtomicUsize::new(0);
    let mut worst = Duration::ZERO;
    let mut clean_took = Duration::ZERO;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while cleaning.load(Ordering::SeqCst) || n < 10 {
                let started = Instant::now();
                f.put(&format!("new-{n}"), Some("v"));
                worst = worst.max(started.elapsed());
                if cleaning.load(Ordering::SeqCst) {
                    appends_during_clean.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
            worst
        });
        let started = Instant::now();
        // Slow each batch down a little so the clean takes a while.
        let stats = cleaner
            .clean_once(&f.logs, NOW, &|| {
                std::thread::sleep(Duration::from_micros(50));
                false
            })
            .unwrap()
            .unwrap();
        clean_took = started.elapsed();
        cleaning.store(false, Ordering::SeqCst);
        assert!(!stats.stats.abandoned);
        worst = writer.join().unwrap();
    });
    assert!(
        appends_during_clean.load(Ordering::SeqCst) > 10,
        "appends ran during the clean ({clean_took:?})"
    );
    assert!(
        worst < clean_took / 2,
        "no append waited for the whole clean: worst {worst:?}, clean {clean_took:?}"
    );
    let records = f.records();
    assert_eq!(
        records.iter().filter(|r| r.1.starts_with("key-")).count(),
        200
    );
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_crash_between_cleaned_and_swap_recovers_old_or_new() {
    let config = compact_config();
    let f = Fixture::new(config.clone());
    let latest = fill(&f, 6, 6);
    f.roll();
    f.set_segment_bytes(1 << 20);
    let before = f.records();
    let dir = read_log(&f.log()).dir().to_path_buf();
    let bases = read_log(&f.log()).segment_base_offsets();
    assert!(bases.len() > 2, "{bases:?}");
    // Clean a copy of the directory, then fake each crash point on copies of the files.
    let cleaner = LogCleaner::new(CleanerConfig::default());
    let old_files: Vec<(String, Vec<u8>)> = files_in(&dir);
    f.clean(&cleaner, NOW).unwrap();
    let after = f.records();
    let new_files: Vec<(String, Vec<u8>)> = files_in(&dir);
    let expected_after: Vec<_> = latest.values().map(|(o, _)| *o).collect();
    assert_eq!(
        after.iter().map(|r| r.0).collect::<Vec<_>>(),
        expected_after
    );
    let first_base = bases[0];
    let cleaned_log = new_files
        .iter()
        .find(|(n, _)| *n == crate::segment::file_name(first_base, ".log"))
        .unwrap()
        .1
        .clone();
    let Fixture { logs, .. } = f;
    drop(logs);
    for (case, extra, expect_new) in [
        ("cleaned file left", ".log.cleaned", false),
        ("swap file left, old segments present", ".log.swap", true),
    ] {
        let crash = tempfile::tempdir().unwrap();
        let part = crash.path().join("compacted-0");
        std::fs::create_dir(&part).unwrap();
        for (name, bytes) in &old_files {
            std::fs::write(part.join(name), bytes).unwrap();
        }
        std::fs::write(
            part.join(crate::segment::file_name(first_base, extra)),
            &cleaned_log,
        )
        .unwrap();
        let paths = vec![crash.path().to_path_buf()];
        let logs = LogManager::open(&paths, |_| config.clone(), 1, NOW).unwrap();
        let shared = logs.get(&TopicPartition::new("compacted", 0)).unwrap();
        write_log(&shared).set_high_watermark(i64::MAX);
        let got = records_of(&shared);
        if expect_new {
            assert_eq!(got, after, "{case}");
        } else {
            assert_eq!(got, before, "{case}");
        }
        let names: Vec<String> = files_in(&part).into_iter().map(|(n, _)| n).collect();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
            "{case}: {names:?}"
        );
    }
    // A crash after the old segments were deleted but before the rename.
    let crash = tempfile::tempdir().unwrap();
    let part = crash.path().join("compacted-0");
    std::fs::create_dir(&part).unwrap();
    for (name, bytes) in &old_files {
        let keep = crate::segment::parse_file_name(name, ".log")
            .or_else(|| crate::segment::parse_file_name(name, ".index"))
            .or_else(|| crate::segment::parse_file_name(name, ".timeindex"))
            .is_none_or(|b| !bases[..bases.len() - 1].contains(&b));
        if keep {
            std::fs::write(part.join(name), bytes).unwrap();
        }
    }
    std::fs::write(
        part.join(crate::segment::file_name(first_base, ".log.swap")),
        &cleaned_log,
    )
    .unwrap();
    let paths = vec![crash.path().to_path_buf()];
    let logs = LogManager::open(&paths, |_| config.clone(), 1, NOW).unwrap();
    let shared = logs.get(&TopicPartition::new("compacted", 0)).unwrap();
    write_log(&shared).set_high_watermark(i64::MAX);
    assert_eq!(
        records_of(&shared),
        after,
        "old segments deleted before the rename"
    );
}

fn files_in(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_full_offset_map_cleans_up_to_where_it_filled() {
    let f = Fixture::new(compact_config());
    let latest = fill(&f, 10, 3);
    f.roll();
    let cleaner = LogCleaner::new(CleanerConfig {
        threads: 1,
        dedupe_buffer_size: 8 * offset_map::BUCKET_BYTES,
    });
    let first = f.clean(&cleaner, NOW).unwrap();
    let leo = read_log(&f.log()).log_end_offset();
    assert!(first.stats.end_offset < leo, "{first:?}");
    assert_eq!(
        read_log(&f.log()).cleaner_checkpoint,
        Some(first.stats.end_offset)
    );
    // Later rounds take the rest.
    while f.clean(&cleaner, NOW).is_some() {}
    assert_eq!(read_log(&f.log()).cleaner_checkpoint, Some(leo));
    let offsets: Vec<i64> = f.records().iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        latest.values().map(|(o, _)| *o).collect::<Vec<_>>()
    );
}
