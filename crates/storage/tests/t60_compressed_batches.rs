//! Compressed batches in a partition log: stored as they arrived, and the time lookup
//! (ListOffsets by timestamp) finds the exact record inside them, for every codec.

use rivulet_storage::batch::testing::{build_batch, build_compressed_batch, BatchSpec};
use rivulet_storage::batch::{BatchIter, Compression, RecordBatch, TimestampType};
use rivulet_storage::compression::{for_each_record, MAX_DECOMPRESSED_BATCH_BYTES};
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, TopicPartition};

const NOW: i64 = 1_700_000_000_000;
const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
/// Records per batch; record `i` of batch `k` has timestamp `NOW + 1000 * k + i`.
const RECORDS: usize = 40;

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(
        dir,
        TopicPartition::new("t", 0),
        config,
        LoadParams {
            clean_shutdown: true,
            now_ms: NOW,
            ..LoadParams::default()
        },
    )
    .unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// Batch `k` compressed with `codec`: `RECORDS` values of a few dozen bytes.
fn batch(k: i64, codec: Compression) -> Vec<u8> {
    let values: Vec<String> = (0..RECORDS)
        .map(|i| format!("batch {k} record {i}: {}", "payload ".repeat(i % 5)))
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
    let spec = BatchSpec {
        base_timestamp: NOW + 1000 * k,
        ..BatchSpec::default()
    };
    match codec {
        Compression::None => build_batch(&spec, &refs),
        codec => build_compressed_batch(&spec, &refs, codec),
    }
}

/// Everything in the log, as one buffer of batches.
fn read_everything(log: &PartitionLog) -> Vec<u8> {
    log.read(0, u64::MAX, log.log_end_offset(), true)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap()
}

/// The bytes of a stored batch that the leader does not rewrite: all but baseOffset and
/// partitionLeaderEpoch.
fn unassigned_bytes(batch: &[u8]) -> Vec<u8> {
    [&batch[8..12], &batch[16..]].concat()
}

#[test]
fn compressed_batches_are_stored_as_they_arrived() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        let mut sent = Vec::new();
        for k in 0..5 {
            let original = batch(k, codec);
            let appended = original.clone();
            let info = log.append_as_leader(&appended, 4, NOW).unwrap();
            assert_eq!(info.first_offset, k * RECORDS as i64);
            sent.push(original);
        }
        let stored = read_everything(&log);
        let mut n = 0;
        for (k, b) in BatchIter::new(&stored, usize::MAX).enumerate() {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.compression().unwrap(), codec);
            assert_eq!(b.base_offset(), k as i64 * RECORDS as i64);
            assert_eq!(b.partition_leader_epoch(), 4);
            assert_eq!(
                unassigned_bytes(b.as_bytes()),
                unassigned_bytes(&sent[k]),
                "{codec:?} batch {k} changed in the log"
            );
            let mut values = 0;
            for_each_record(&b, MAX_DECOMPRESSED_BATCH_BYTES, |r| {
                let expected = format!("batch {k} record {}:", r.offset_delta);
                assert!(r.value.unwrap().starts_with(expected.as_bytes()));
                values += 1;
                true
            })
            .unwrap();
            assert_eq!(values, RECORDS);
            n += 1;
        }
        assert_eq!(n, 5);
    }
}

#[test]
fn time_lookup_is_exact_inside_compressed_batches() {
    for codec in CODECS.into_iter().chain([Compression::None]) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        for k in 0..5 {
            log.append_as_leader(&batch(k, codec), 0, NOW).unwrap();
        }
        for k in 0..5i64 {
            for i in [0i64, 1, 17, RECORDS as i64 - 1] {
                let ts = NOW + 1000 * k + i;
                let found = log.find_offset_by_timestamp(ts).unwrap().unwrap();
                assert_eq!(
                    (found.offset, found.timestamp),
                    (k * RECORDS as i64 + i, ts),
                    "{codec:?}: lookup of batch {k} record {i}"
                );
            }
            // Between two batches: the first record of the next one.
            let found = log.find_offset_by_timestamp(NOW + 1000 * k + 500).unwrap();
            if k < 4 {
                let found = found.unwrap();
                assert_eq!(
                    (found.offset, found.timestamp),
                    ((k + 1) * RECORDS as i64, NOW + 1000 * (k + 1)),
                    "{codec:?}: lookup between batches {k} and {}",
                    k + 1
                );
            } else {
                assert!(found.is_none(), "{codec:?}: lookup past the last record");
            }
        }
        assert_eq!(log.find_offset_by_timestamp(0).unwrap().unwrap().offset, 0);
    }
}

#[test]
fn time_lookup_inside_a_compressed_batch_respects_the_log_start_offset() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        for k in 0..3 {
            log.append_as_leader(&batch(k, codec), 0, NOW).unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        // DeleteRecords into the middle of the second batch.
        let start = RECORDS as i64 + 10;
        log.increment_log_start_offset(start, NOW).unwrap();
        let found = log.find_offset_by_timestamp(NOW).unwrap().unwrap();
        assert_eq!(
            (found.offset, found.timestamp),
            (start, NOW + 1000 + 10),
            "{codec:?}"
        );
        let found = log
            .find_offset_by_timestamp(NOW + 1000 + 25)
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.offset, found.timestamp),
            (RECORDS as i64 + 25, NOW + 1000 + 25),
            "{codec:?}"
        );
    }
}

#[test]
fn log_append_time_batches_answer_with_their_first_record() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(
            dir.path(),
            LogConfig {
                message_timestamp_type: TimestampType::LogAppendTime,
                ..config()
            },
        );
        for k in 0..3 {
            log.append_as_leader(&batch(k, codec), 0, NOW + 1000 * k)
                .unwrap();
        }
        // Every record of batch k carries the append time NOW + 1000 k, as in Kafka.
        let found = log.find_offset_by_timestamp(NOW + 1).unwrap().unwrap();
        assert_eq!(
            (found.offset, found.timestamp),
            (RECORDS as i64, NOW + 1000),
            "{codec:?}"
        );
        let stored = read_everything(&log);
        let first = BatchIter::new(&stored, usize::MAX).next().unwrap().unwrap();
        assert_eq!(first.timestamp_type(), TimestampType::LogAppendTime);
        first.verify_crc().unwrap();
    }
}

#[test]
fn a_compressed_batch_that_does_not_decode_falls_back_to_its_first_offset() {
    // Damage the compressed records after the CRC check, as a disk might: the lookup still
    // answers, with the damaged batch's first offset.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000000.log");
    {
        let mut log = open(dir.path(), config());
        for k in 0..3 {
            log.append_as_leader(&batch(k, Compression::Zstd), 0, NOW)
                .unwrap();
        }
        log.close(NOW).unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let second = RecordBatch::new(&bytes[..first_batch_size(&bytes)])
        .unwrap()
        .size();
    assert_eq!(second, first_batch_size(&bytes));
    let garbage_at = second + 61 + 4; // inside the second batch's zstd frame, past its magic
    for b in &mut bytes[garbage_at..garbage_at + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Reopened as cleanly shut down, so the segment is not re-verified on load.
    let log = open(dir.path(), config());
    let found = log
        .find_offset_by_timestamp(NOW + 1000 + 5)
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.offset, found.timestamp),
        (RECORDS as i64, NOW + 1000 + RECORDS as i64 - 1)
    );
    // Batches around it are still exact.
    let found = log
        .find_offset_by_timestamp(NOW + 2000 + 5)
        .unwrap()
        .unwrap();
    assert_eq!(found.offset, 2 * RECORDS as i64 + 5);
}

fn first_batch_size(bytes: &[u8]) -> usize {
    12 + i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize
}
