//! Behaviour of one partition log through its public API: appends, reads, rolling, time lookups,
//! idempotent producers, follower appends, truncation, retention and restarts.

use proptest::prelude::*;
use rivulet_storage::batch::testing::{batch_of, build_batch, BatchSpec};
use rivulet_storage::batch::{BatchIter, RecordBatch};
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, StorageError, TopicPartition};

const NOW: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open(
        dir,
        TopicPartition::new("t", 0),
        config,
        LoadParams {
            clean_shutdown: clean,
            now_ms: NOW,
            ..LoadParams::default()
        },
    )
    .unwrap()
}

/// A batch of `n` records whose values are `tag:i`.
fn tagged(tag: &str, n: usize, spec: &BatchSpec) -> Vec<u8> {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}:{i}")).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    build_batch(spec, &refs)
}

/// Base offsets of the batches in everything readable from `from` to the LEO.
fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let Some(slice) = log
            .read(offset, 1 << 20, log.log_end_offset(), true)
            .unwrap()
        else {
            break;
        };
        let bytes = slice.read_to_vec().unwrap();
        let mut last = offset - 1;
        for b in BatchIter::new(&bytes, usize::MAX) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            out.push((b.base_offset(), b.last_offset()));
            last = b.last_offset();
        }
        assert!(last >= offset, "read at {offset} made no progress");
        offset = last + 1;
    }
    out
}

#[test]
fn appends_assign_contiguous_offsets_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    for i in 0..300 {
        let leo = log.log_end_offset();
        let b = tagged("v", 1 + i % 4, &BatchSpec::default());
        let info = log.append_as_leader(&b, 3, NOW).unwrap();
        assert_eq!(
            (info.first_offset, info.last_offset),
            (leo, leo + (i % 4) as i64)
        );
        assert_eq!(log.log_end_offset(), info.last_offset + 1);
    }
    let batches = read_all(&log, 0);
    let mut expect = 0;
    for (base, last) in &batches {
        assert_eq!(*base, expect);
        expect = last + 1;
    }
    assert_eq!(expect, log.log_end_offset());
    assert!(log.segment_count() > 1, "small segments should have rolled");
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(3));
}

#[test]
fn reads_stop_at_the_upper_bound_and_honour_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), true);
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let b = batch_of(&BatchSpec::default(), 5, 100);
        sizes.push(b.len() as u64);
        log.append_as_leader(&b, 0, NOW).unwrap();
    }
    // Upper bound 25 = the start of the 6th batch: five batches visible.
    let slice = log.read(0, 1 << 20, 25, false).unwrap().unwrap();
    assert_eq!(slice.len, sizes[..5].iter().sum::<u64>());
    // max_bytes between two batch boundaries: whole batches only.
    let slice = log
        .read(0, sizes[0] + sizes[1] + 10, 50, false)
        .unwrap()
        .unwrap();
    assert_eq!(slice.len, sizes[0] + sizes[1]);
    // max_bytes below one batch: one whole batch anyway with min_one_batch.
    let slice = log.read(7, 10, 50, true).unwrap().unwrap();
    assert_eq!(slice.len, sizes[1]);
    let first = RecordBatch::new(&slice.read_to_vec().unwrap())
        .unwrap()
        .base_offset();
    assert_eq!(first, 5);
    // Nothing at or above the bound.
    assert!(log.read(25, 1 << 20, 25, true).unwrap().is_none());
    assert!(matches!(
        log.read(51, 100, 50, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn finds_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    for i in 0..40i64 {
        let spec = BatchSpec {
            base_timestamp: NOW + i * 1000,
            ..BatchSpec::default()
        };
        // Records i*3 .. i*3+2 have timestamps NOW + i*1000 + 0..2.
        log.append_as_leader(&tagged("t", 3, &spec), 0, NOW)
            .unwrap();
    }
    let found = log.find_offset_by_timestamp(NOW + 10_001).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (31, NOW + 10_001));
    let found = log.find_offset_by_timestamp(NOW + 10_500).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (33, NOW + 11_000));
    assert_eq!(log.find_offset_by_timestamp(0).unwrap().unwrap().offset, 0);
    assert!(log
        .find_offset_by_timestamp(NOW + 1_000_000)
        .unwrap()
        .is_none());
    let max = log.max_timestamp_and_offset().unwrap();
    assert_eq!((max.timestamp, max.offset), (NOW + 39_002, 119));
}

#[test]
fn idempotent_retries_are_deduplicated_and_gaps_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), true);
    let spec = |seq| BatchSpec {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchSpec::default()
    };
    let first = log
        .append_as_leader(&tagged("a", 3, &spec(0)), 0, NOW)
        .unwrap();
    log.append_as_leader(&tagged("b", 2, &spec(3)), 0, NOW)
        .unwrap();
    let retry = log
        .append_as_leader(&tagged("a", 3, &spec(0)), 0, NOW)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_offset, retry.last_offset),
        (first.first_offset, first.last_offset)
    );
    assert_eq!(log.log_end_offset(), 5);
    assert!(matches!(
        log.append_as_leader(&tagged("c", 1, &spec(9)), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        log.log_end_offset(),
        5,
        "a refused batch leaves the log unchanged"
    );
}

#[test]
fn producer_state_survives_restart_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |seq| BatchSpec {
        producer_id: 11,
        producer_epoch: 2,
        base_sequence: seq,
        ..BatchSpec::default()
    };
    {
        let mut log = open(dir.path(), small_config(), true);
        for i in 0..30 {
            log.append_as_leader(&tagged("p", 2, &spec(i * 2)), 0, NOW)
                .unwrap();
        }
        log.close(NOW).unwrap();
    }
    {
        let mut log = open(dir.path(), small_config(), true);
        let dup = log
            .append_as_leader(&tagged("p", 2, &spec(58)), 0, NOW)
            .unwrap();
        assert!(
            dup.duplicate,
            "the last batch before the restart is recognised"
        );
        log.append_as_leader(&tagged("p", 2, &spec(60)), 0, NOW)
            .unwrap();
        // Dropped without close: as after kill -9.
    }
    let mut log = open(dir.path(), small_config(), false);
    let dup = log
        .append_as_leader(&tagged("p", 2, &spec(60)), 0, NOW)
        .unwrap();
    assert!(
        dup.duplicate,
        "state rebuilt from snapshot plus replay after a crash"
    );
}

#[test]
fn follower_append_keeps_leader_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_config(), true);
    for epoch in [1, 1, 2, 2, 2, 5] {
        leader
            .append_as_leader(&tagged("x", 4, &BatchSpec::default()), epoch, NOW)
            .unwrap();
    }
    let mut follower = open(dir.path(), small_config(), true);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let slice = leader
            .read(offset, 300, leader.log_end_offset(), true)
            .unwrap()
            .unwrap();
        let info = follower
            .append_as_follower(&slice.read_to_vec().unwrap(), NOW)
            .unwrap()
            .unwrap();
        offset = info.last_offset + 1;
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert_eq!(
        follower.leader_epoch_cache().entries(),
        leader.leader_epoch_cache().entries()
    );
    assert_eq!(follower.end_offset_for_epoch(2), (2, 20));
    // Re-sending what the follower has is refused: offsets must increase.
    let again = leader
        .read(0, 300, leader.log_end_offset(), true)
        .unwrap()
        .unwrap();
    assert!(follower
        .append_as_follower(&again.read_to_vec().unwrap(), NOW)
        .is_err());
}

#[test]
fn truncation_removes_the_tail_and_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    for i in 0..60 {
        log.append_as_leader(&tagged("x", 3, &BatchSpec::default()), i / 20, NOW)
            .unwrap();
    }
    log.set_high_watermark(150);
    assert!(log.truncate_to(90, NOW).unwrap());
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.high_watermark(), 90);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(1));
    assert_eq!(read_all(&log, 0).last().unwrap().1, 89);
    let info = log
        .append_as_leader(&tagged("y", 2, &BatchSpec::default()), 4, NOW)
        .unwrap();
    assert_eq!(info.first_offset, 90);
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert_eq!(log.log_end_offset(), 92);
    assert_eq!(log.end_offset_for_epoch(1), (1, 90));
}

#[test]
fn truncation_below_log_start_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    for _ in 0..10 {
        log.append_as_leader(&tagged("x", 2, &BatchSpec::default()), 0, NOW)
            .unwrap();
    }
    log.truncate_fully_and_start_at(500, NOW).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    let info = log
        .append_as_leader(&tagged("x", 1, &BatchSpec::default()), 1, NOW)
        .unwrap();
    assert_eq!(info.first_offset, 500);
}

#[test]
fn retention_by_bytes_and_time_deletes_whole_segments_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config();
    config.retention_bytes = 40 * 1024;
    let mut log = open(dir.path(), config.clone(), true);
    for _ in 0..200 {
        log.append_as_leader(&batch_of(&BatchSpec::default(), 4, 100), 0, NOW)
            .unwrap();
    }
    let before = log.segment_count();
    assert_eq!(
        log.delete_old_segments(NOW).unwrap(),
        0,
        "nothing below the HW yet"
    );
    log.set_high_watermark(log.log_end_offset());
    let deleted = log.delete_old_segments(NOW).unwrap();
    assert!(deleted > 0 && log.segment_count() == before - deleted);
    // Kafka's rule: delete a segment only while the log stays at or above retention.bytes.
    let size = log.size_in_bytes();
    assert!((40 * 1024..(40 + 16) * 1024).contains(&size), "size {size}");
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert!(matches!(
        log.read(0, 100, 800, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    config.retention_bytes = -1;
    config.retention_ms = 1000;
    log.set_config(config);
    let deleted = log.delete_old_segments(NOW + 1_000_000).unwrap();
    assert!(deleted > 0);
    assert_eq!(
        log.size_in_bytes(),
        0,
        "everything expired; an empty active segment remains"
    );
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    let info = log
        .append_as_leader(&tagged("x", 1, &BatchSpec::default()), 0, NOW)
        .unwrap();
    assert_eq!(info.first_offset, 800);
}

#[test]
fn log_start_offset_moves_forward_but_not_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    for _ in 0..100 {
        log.append_as_leader(&batch_of(&BatchSpec::default(), 4, 100), 0, NOW)
            .unwrap();
    }
    log.set_high_watermark(300);
    assert!(log.increment_log_start_offset(301, NOW).is_err());
    log.increment_log_start_offset(250, NOW).unwrap();
    assert_eq!(log.log_start_offset(), 250);
    assert!(log.segment_base_offsets()[0] <= 250);
    assert!(matches!(
        log.read(249, 100, 300, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let first = log.read(250, 100, 300, true).unwrap().unwrap();
    let b = first.read_to_vec().unwrap();
    assert_eq!(
        RecordBatch::new(&b).unwrap().base_offset(),
        248,
        "the batch holding 250"
    );
}

#[test]
fn clean_restart_keeps_everything_and_resumes_appends() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let mut log = open(dir.path(), small_config(), true);
        for i in 0..80 {
            log.append_as_leader(&tagged("r", 1 + i % 3, &BatchSpec::default()), 0, NOW)
                .unwrap();
        }
        before = read_all(&log, 0);
        log.close(NOW).unwrap();
    }
    let mut log = open(dir.path(), small_config(), true);
    assert_eq!(read_all(&log, 0), before);
    let info = log
        .append_as_leader(&tagged("r", 1, &BatchSpec::default()), 0, NOW)
        .unwrap();
    assert_eq!(info.first_offset, before.last().unwrap().1 + 1);
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Roll,
    Truncate(u8),
    Reopen(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..20).prop_map(Op::Append),
        1 => Just(Op::Roll),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => any::<bool>().prop_map(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the sequence of appends, rolls, truncations and restarts (clean or not), the
    /// log holds exactly the batches a simple model says, contiguous and intact.
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 2048, index_interval_bytes: 128, ..small_config() };
        let mut log = Some(open(dir.path(), config.clone(), true));
        let mut model: Vec<(i64, i64)> = Vec::new();
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append(n) => {
                    let info = l.append_as_leader(&tagged("m", n, &BatchSpec::default()), 0, NOW).unwrap();
                    model.push((info.first_offset, info.last_offset));
                }
                Op::Roll => {
                    let leo = l.log_end_offset();
                    l.roll(leo, NOW).unwrap();
                }
                Op::Truncate(k) => {
                    if let Some(&(base, _)) = model.get(k as usize % (model.len() + 1)) {
                        l.truncate_to(base, NOW).unwrap();
                        model.retain(|&(b, _)| b < base);
                    }
                }
                Op::Reopen(clean) => {
                    let l = log.take().unwrap();
                    if clean { l.close(NOW).unwrap() } else { drop(l) }
                    log = Some(open(dir.path(), config.clone(), clean));
                }
            }
            let l = log.as_ref().unwrap();
            prop_assert_eq!(l.log_end_offset(), model.last().map_or(0, |m| m.1 + 1));
            prop_assert_eq!(&read_all(l, 0), &model);
        }
    }
}

#[test]
fn segment_ms_counts_record_time_not_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 60_000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, true);
    let at = |ts: i64| BatchSpec {
        base_timestamp: ts,
        ..BatchSpec::default()
    };
    // Timestamps a year before "now": no roll while they stay within segment.ms of each other.
    let old = NOW - 365 * 24 * 3600 * 1000;
    for i in 0..10 {
        log.append_as_leader(&tagged("o", 1, &at(old + i * 1000)), 0, NOW)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    // A batch more than segment.ms after the segment's first timestamp rolls.
    log.append_as_leader(&tagged("o", 1, &at(old + 61_000)), 0, NOW)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 10]);
}

/// `append_may_sync` is true before every append that rolls (and so fsyncs) a segment, by size
/// or by record time, and false for the ordinary append into a segment with room; with
/// `flush.messages` set every append may flush.
#[test]
fn append_may_sync_foresees_every_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), true);
    let (mut rolls, mut in_place) = (0, 0);
    for i in 0..200i64 {
        // Every 50 appends the record time jumps by more than segment.ms (7 days).
        let spec = BatchSpec {
            base_timestamp: NOW + (i / 50) * 8 * 24 * 3600 * 1000 + i,
            ..BatchSpec::default()
        };
        let batch = batch_of(&spec, 1 + (i as usize % 7), 100);
        let may_sync = log.append_may_sync(&batch, NOW);
        let segments = log.segment_count();
        log.append_as_leader(&batch, 0, NOW).unwrap();
        if log.segment_count() != segments {
            rolls += 1;
            assert!(may_sync, "append {i} rolled a segment unforeseen");
        } else if !may_sync {
            in_place += 1;
        }
    }
    assert!(rolls >= 5, "{rolls} rolls: the test must exercise rolling");
    assert!(
        in_place >= 150,
        "only {in_place} of 200 appends may run in place"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 1000,
        ..small_config()
    };
    let log = open(dir.path(), config, true);
    assert!(log.append_may_sync(&tagged("f", 1, &BatchSpec::default()), NOW));
}
