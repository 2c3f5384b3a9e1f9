//! Recovery from damaged files: bytes flipped, cut off or appended in the tail of a segment,
//! damage in an earlier segment, damaged or missing indexes, and damaged checkpoint and snapshot
//! files. After each, the log must hold exactly the batches before the first damaged one, byte
//! for byte, serve nothing invalid, and take appends again.

mod recovery_support;

use std::fs;
use std::path::{Path, PathBuf};

use recovery_support::{append_batch, append_values, batch_for, verify_log};
use rivulet_storage::batch::testing::BatchSpec;
use rivulet_storage::batch::RecordBatch;
use rivulet_storage::leader_epoch_cache::LEADER_EPOCH_CHECKPOINT_FILE;
use rivulet_storage::producer_state::{parse_snapshot_file_name, snapshot_file_name};
use rivulet_storage::segment::{file_name, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use rivulet_storage::time_index::TimestampOffset;
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, StorageError, TopicPartition};
use tempfile::TempDir;

const NOW_MS: i64 = 1_700_000_000_000;
/// Batch `i` of a fixture is appended at `NOW_MS + i * TIME_STEP_MS`; its records are stamped
/// from there, one millisecond apart, so timestamps increase strictly across the log.
const TIME_STEP_MS: i64 = 10;
const SEGMENTS: usize = 5;
/// The last segment gets at least this many batches, so damage in it leaves some intact.
const MIN_BATCHES_IN_LAST_SEGMENT: usize = 8;
/// A new leader epoch every this many batches, so the epoch cache has entries in every segment.
const BATCHES_PER_EPOCH: usize = 40;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 512,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn partition() -> TopicPartition {
    TopicPartition::new("corruption", 0)
}

fn open(dir: &Path, params: LoadParams) -> rivulet_storage::Result<PartitionLog> {
    PartitionLog::open(dir, partition(), config(), params)
}

fn crash_params(recovery_point: i64) -> LoadParams {
    LoadParams {
        recovery_point,
        clean_shutdown: false,
        now_ms: NOW_MS,
        ..LoadParams::default()
    }
}

fn clean_params(recovery_point: i64) -> LoadParams {
    LoadParams {
        recovery_point,
        clean_shutdown: true,
        now_ms: NOW_MS,
        ..LoadParams::default()
    }
}

/// One batch of a fixture as it sits on disk.
#[derive(Debug, Clone)]
struct StoredBatch {
    bytes: Vec<u8>,
    base_offset: i64,
    next_offset: i64,
    epoch: i32,
    /// Timestamp of the first record.
    first_timestamp: i64,
    segment_base: i64,
    /// Byte position in the segment's `.log` file.
    position: u64,
}

/// A log of [`SEGMENTS`] segments of batches from [`recovery_support::batch_for`], and what it holds.
struct Fixture {
    _tmp: TempDir,
    dir: PathBuf,
    batches: Vec<StoredBatch>,
    segment_bases: Vec<i64>,
}

impl Fixture {
    /// Fills a fresh log (batches of 1..=8 records of 8..=300 bytes, sizes from `seed`) and
    /// returns it still open.
    fn build(seed: u64) -> (Fixture, PartitionLog) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(partition().dir_name());
        let mut log = open(&dir, LoadParams::default()).expect("open a new log");
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut appended: Vec<(Vec<u8>, i32, i64)> = Vec::new();
        let mut in_last_segment = 0;
        while log.segment_count() < SEGMENTS || in_last_segment < MIN_BATCHES_IN_LAST_SEGMENT {
            let segments_before = log.segment_count();
            let lens: Vec<usize> = (0..rng.usize(1..=8)).map(|_| rng.usize(8..=300)).collect();
            let epoch = (appended.len() / BATCHES_PER_EPOCH) as i32;
            let now = NOW_MS + appended.len() as i64 * TIME_STEP_MS;
            let (_, bytes) = append_values(&mut log, &lens, epoch, now);
            appended.push((bytes, epoch, now));
            in_last_segment = if log.segment_count() > segments_before {
                1
            } else {
                in_last_segment + 1
            };
        }
        let segment_bases = log.segment_base_offsets();
        assert_eq!(
            segment_bases.len(),
            SEGMENTS,
            "the fixture overshot its segment count"
        );
        let mut batches: Vec<StoredBatch> = Vec::with_capacity(appended.len());
        for (bytes, epoch, first_timestamp) in appended {
            let b = RecordBatch::new(&bytes).expect("a stored batch");
            let segment_base =
                segment_bases[segment_bases.partition_point(|&s| s <= b.base_offset()) - 1];
            let position = match batches.last() {
                Some(prev) if prev.segment_base == segment_base => {
                    prev.position + prev.bytes.len() as u64
                }
                _ => 0,
            };
            batches.push(StoredBatch {
                base_offset: b.base_offset(),
                next_offset: b.next_offset(),
                bytes,
                epoch,
                first_timestamp,
                segment_base,
                position,
            });
        }
        let fixture = Fixture {
            _tmp: tmp,
            dir,
            batches,
            segment_bases,
        };
        assert_eq!(log.log_end_offset(), fixture.leo());
        (fixture, log)
    }

    /// A fixture closed cleanly.
    fn closed(seed: u64) -> Fixture {
        let (fixture, log) = Self::build(seed);
        log.close(NOW_MS).expect("close");
        fixture
    }

    /// A fixture whose process died: the log is dropped without being closed, so the active
    /// segment's indexes stay preallocated. (The data is in the page cache, as after a kill.)
    fn crashed(seed: u64) -> Fixture {
        let (fixture, log) = Self::build(seed);
        drop(log);
        fixture
    }

    fn leo(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.next_offset)
    }

    fn last_segment_base(&self) -> i64 {
        *self.segment_bases.last().expect("segments")
    }

    fn path(&self, base: i64, suffix: &str) -> PathBuf {
        self.dir.join(file_name(base, suffix))
    }

    /// Indexes into `batches` of the batches of the segment at `base`.
    fn batches_in(&self, base: i64) -> Vec<usize> {
        (0..self.batches.len())
            .filter(|&i| self.batches[i].segment_base == base)
            .collect()
    }

    /// The index of the batch in the middle of the segment at `base`.
    fn middle_batch_of(&self, base: i64) -> usize {
        let in_segment = self.batches_in(base);
        in_segment[in_segment.len() / 2]
    }

    fn segment_log_of(&self, batch: usize) -> PathBuf {
        self.path(self.batches[batch].segment_base, LOG_SUFFIX)
    }

    /// Flips every bit of the byte `at` bytes into batch `batch`, in its segment file.
    fn flip_byte(&self, batch: usize, at: usize) {
        let path = self.segment_log_of(batch);
        let mut data = fs::read(&path).expect("read segment");
        data[self.batches[batch].position as usize + at] ^= 0xff;
        fs::write(&path, data).expect("write segment");
    }

    /// Cuts the segment file of `batch` `keep` bytes into that batch.
    fn cut_inside(&self, batch: usize, keep: usize) {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(self.segment_log_of(batch))
            .expect("open segment");
        file.set_len(self.batches[batch].position + keep as u64)
            .expect("truncate segment");
    }

    fn append_to_last_segment(&self, bytes: &[u8]) {
        let path = self.path(self.last_segment_base(), LOG_SUFFIX);
        let mut data = fs::read(&path).expect("read segment");
        data.extend_from_slice(bytes);
        fs::write(&path, data).expect("write segment");
    }

    fn open_after_crash(&self, recovery_point: i64) -> PartitionLog {
        let log = open(&self.dir, crash_params(recovery_point)).expect("open after a crash");
        assert_eq!(
            log.recovery_point(),
            log.log_end_offset(),
            "recovery must end with everything kept flushed"
        );
        log
    }

    fn open_clean(&self) -> PartitionLog {
        open(&self.dir, clean_params(self.leo())).expect("open after a clean shutdown")
    }

    /// Panics unless `log` holds exactly the first `kept` batches of the fixture, byte for byte,
    /// each valid, with the leader epochs they were written in.
    fn assert_holds_first(&self, log: &PartitionLog, kept: usize) {
        assert_holds(log, &self.batches[..kept]);
    }

    /// Appends to a log recovered to the first `kept` batches until it rolls, then checks the
    /// whole log, closes it, reopens it cleanly and checks it again.
    fn assert_appends_continue(&self, mut log: PartitionLog, kept: usize) {
        let mut expected = self.batches[..kept].to_vec();
        let epoch = expected.last().map_or(0, |b| b.epoch);
        let segments = log.segment_count();
        let mut rng = fastrand::Rng::with_seed(99);
        while log.segment_count() == segments || expected.len() < kept + 5 {
            let now = NOW_MS + (self.batches.len() + expected.len()) as i64 * TIME_STEP_MS;
            let lens: Vec<usize> = (0..rng.usize(1..=8)).map(|_| rng.usize(8..=300)).collect();
            let (info, bytes) = append_values(&mut log, &lens, epoch, now);
            assert_eq!(
                info.first_offset,
                expected.last().map_or(0, |b| b.next_offset),
                "appends must continue contiguously"
            );
            expected.push(StoredBatch {
                base_offset: info.first_offset,
                next_offset: info.last_offset + 1,
                bytes,
                epoch,
                first_timestamp: now,
                // Not located on disk: only the bytes and the epoch are checked from here on.
                segment_base: -1,
                position: 0,
            });
        }
        assert_holds(&log, &expected);
        let leo = log.log_end_offset();
        log.close(NOW_MS).expect("close");
        let log = open(&self.dir, clean_params(leo)).expect("reopen");
        assert_holds(&log, &expected);
    }
}

/// Panics unless `log` holds exactly `expected`, byte for byte, each batch valid and mapped to
/// the leader epoch it was written in.
fn assert_holds(log: &PartitionLog, expected: &[StoredBatch]) {
    let end = expected.last().map_or(0, |b| b.next_offset);
    assert_eq!(
        log.log_end_offset(),
        end,
        "LEO after recovery (kept {} batches)",
        expected.len()
    );
    let mut i = 0;
    verify_log(log, |b| {
        let want = &expected[i];
        assert!(
            b.as_bytes() == want.bytes.as_slice(),
            "the batch at {} is not the one appended",
            b.base_offset()
        );
        assert_eq!(
            log.epoch_for_offset(b.base_offset()),
            Some(want.epoch),
            "epoch of the batch at {}",
            b.base_offset()
        );
        i += 1;
    });
    assert_eq!(i, expected.len(), "batches read back");
    for entry in log.leader_epoch_cache().entries() {
        assert!(
            entry.start_offset < end.max(1),
            "epoch entry {entry:?} is past the LEO {end}"
        );
    }
}

/// Every snapshot file offset in `dir`.
fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| parse_snapshot_file_name(e.ok()?.file_name().to_str()?))
        .collect();
    offsets.sort_unstable();
    offsets
}

/// Runs `run` once per case, naming the case on stderr first so a failure shows which one.
fn for_each_case<T: Copy + std::fmt::Debug>(cases: &[T], mut run: impl FnMut(T)) {
    for &case in cases {
        eprintln!("case {case:?}");
        run(case);
    }
}

/// A byte position inside a batch.
#[derive(Debug, Clone, Copy)]
enum At {
    Byte(usize),
    Middle,
    LastByte,
}

impl At {
    fn in_batch_of(self, size: usize) -> usize {
        match self {
            At::Byte(at) => at,
            At::Middle => size / 2,
            At::LastByte => size - 1,
        }
    }
}

#[test]
fn flipped_byte_in_last_batch_truncates_the_log_to_it() {
    // batchLength, magic, crc, attributes, recordsCount, the records. (baseOffset and
    // partitionLeaderEpoch are outside the CRC in format v2, as in Kafka: damage there cannot be
    // detected.)
    let positions = [
        At::Byte(8),
        At::Byte(11),
        At::Byte(16),
        At::Byte(17),
        At::Byte(21),
        At::Byte(57),
        At::Middle,
        At::LastByte,
    ];
    for_each_case(&positions, |at| {
        let f = Fixture::crashed(1);
        let last = f.batches.len() - 1;
        f.flip_byte(last, at.in_batch_of(f.batches[last].bytes.len()));
        let log = f.open_after_crash(f.last_segment_base());
        f.assert_holds_first(&log, last);
        f.assert_appends_continue(log, last);
    });
}

#[test]
fn torn_write_in_last_segment_truncates_to_the_last_whole_batch() {
    // How much of the last batch reached the file: inside the length prefix, exactly the
    // prefix, inside the header, exactly the header, half, all but one byte.
    let cuts = [
        At::Byte(1),
        At::Byte(11),
        At::Byte(12),
        At::Byte(40),
        At::Byte(61),
        At::Middle,
        At::LastByte,
    ];
    for_each_case(&cuts, |keep| {
        let f = Fixture::crashed(2);
        let last = f.batches.len() - 1;
        f.cut_inside(last, keep.in_batch_of(f.batches[last].bytes.len()));
        let log = f.open_after_crash(f.last_segment_base());
        f.assert_holds_first(&log, last);
        f.assert_appends_continue(log, last);
    });
}

#[derive(Debug, Clone, Copy)]
enum Garbage {
    /// A preallocated or zero-filled tail.
    Zeros,
    /// Random bytes.
    Random,
    /// A well-formed batch written earlier (valid CRC, offsets going backwards).
    StaleBatch,
    /// A batch for the next offset whose records were damaged (plausible header, bad CRC).
    DamagedNextBatch,
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    for_each_case(
        &[
            Garbage::Zeros,
            Garbage::Random,
            Garbage::StaleBatch,
            Garbage::DamagedNextBatch,
        ],
        |garbage| {
            let f = Fixture::crashed(3);
            let last_log = f.path(f.last_segment_base(), LOG_SUFFIX);
            let valid_len = fs::metadata(&last_log).expect("stat").len();
            let bytes = match garbage {
                Garbage::Zeros => vec![0u8; 4096],
                Garbage::Random => {
                    let mut rng = fastrand::Rng::with_seed(3);
                    (0..3000).map(|_| rng.u8(..)).collect()
                }
                Garbage::StaleBatch => f.batches[f.batches.len() - 3].bytes.clone(),
                Garbage::DamagedNextBatch => {
                    let spec = BatchSpec {
                        base_offset: f.leo(),
                        ..BatchSpec::default()
                    };
                    let mut b = batch_for(&spec, f.leo(), &[100, 100]);
                    let mid = b.len() / 2;
                    b[mid] ^= 0x01;
                    b
                }
            };
            f.append_to_last_segment(&bytes);
            let log = f.open_after_crash(f.last_segment_base());
            f.assert_holds_first(&log, f.batches.len());
            assert_eq!(
                fs::metadata(&last_log).expect("stat").len(),
                valid_len,
                "the garbage must be cut off the file"
            );
            f.assert_appends_continue(log, f.batches.len());
        },
    );
}

#[test]
fn corruption_in_an_earlier_segment_ends_the_log_there_and_drops_later_segments() {
    let f = Fixture::crashed(4);
    let recovery_point = f.segment_bases[1];
    let damaged_segment = f.segment_bases[2];
    let damaged = f.middle_batch_of(damaged_segment);
    f.flip_byte(damaged, f.batches[damaged].bytes.len() - 5);
    let log = f.open_after_crash(recovery_point);

    f.assert_holds_first(&log, damaged);
    assert_eq!(
        log.segment_base_offsets(),
        f.segment_bases[..3],
        "segments after the damaged one must go"
    );
    for &base in &f.segment_bases[3..] {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            assert!(
                !f.path(base, suffix).exists(),
                "{} must be deleted",
                file_name(base, suffix)
            );
        }
    }
    assert_eq!(
        fs::metadata(f.path(damaged_segment, LOG_SUFFIX))
            .expect("stat")
            .len(),
        f.batches[damaged].position,
        "the damaged segment must end before the damaged batch"
    );
    let leo = log.log_end_offset();
    let stale: Vec<i64> = snapshot_offsets(&f.dir)
        .into_iter()
        .filter(|&o| o > leo)
        .collect();
    assert!(
        stale.is_empty(),
        "producer snapshots past the LEO {leo} must be deleted: {stale:?}"
    );
    f.assert_appends_continue(log, damaged);
}

/// Reads every offset of the fixture one batch at a time and checks that the batch holding it
/// comes back.
fn assert_every_offset_reads_its_batch(f: &Fixture, log: &PartitionLog) {
    for b in &f.batches {
        for offset in b.base_offset..b.next_offset {
            let slice = log
                .read(offset, 1, f.leo(), true)
                .unwrap_or_else(|e| panic!("read at {offset} failed: {e}"))
                .unwrap_or_else(|| panic!("read at {offset} returned nothing"));
            assert_eq!(
                slice.position, b.position,
                "read at {offset} started at the wrong position"
            );
            let bytes = slice.read_to_vec().expect("read the slice");
            assert!(
                bytes == b.bytes,
                "read at {offset} did not return the batch at {}",
                b.base_offset
            );
        }
    }
}

#[test]
fn damaged_or_missing_indexes_of_inactive_segments_are_rebuilt_on_use() {
    let f = Fixture::closed(5);
    let bases = &f.segment_bases;
    let original = |base: i64, suffix: &str| fs::read(f.path(base, suffix)).expect("read index");
    let originals: Vec<(Vec<u8>, Vec<u8>)> = bases
        .iter()
        .map(|&b| (original(b, INDEX_SUFFIX), original(b, TIME_INDEX_SUFFIX)))
        .collect();

    // Segment 0: an index whose length is not a whole number of entries.
    let mut rng = fastrand::Rng::with_seed(5);
    let junk: Vec<u8> = (0..originals[0].0.len() + 5).map(|_| rng.u8(..)).collect();
    fs::write(f.path(bases[0], INDEX_SUFFIX), junk).expect("write index");
    // Segment 1: the right length, entries out of order.
    let entries: Vec<&[u8]> = originals[1].0.chunks(8).collect();
    assert!(entries.len() >= 2, "segment 1 needs several index entries");
    fs::write(
        f.path(bases[1], INDEX_SUFFIX),
        entries.iter().rev().copied().collect::<Vec<_>>().concat(),
    )
    .expect("write index");
    // Segment 2: both indexes gone.
    fs::remove_file(f.path(bases[2], INDEX_SUFFIX)).expect("remove index");
    fs::remove_file(f.path(bases[2], TIME_INDEX_SUFFIX)).expect("remove time index");

    let log = f.open_clean();
    assert_every_offset_reads_its_batch(&f, &log);
    verify_log(&log, |_| {});
    for i in 0..3 {
        let index = fs::read(f.path(bases[i], INDEX_SUFFIX)).expect("a rebuilt index");
        let time_index =
            fs::read(f.path(bases[i], TIME_INDEX_SUFFIX)).expect("a rebuilt time index");
        assert!(
            !index.is_empty() && index.chunks_exact(8).remainder().is_empty(),
            "rebuilt index of segment {i} has length {}",
            index.len()
        );
        // The rebuild follows the same index.interval.bytes rule as the appends did.
        assert!(
            index == originals[i].0,
            "rebuilt index of segment {i} differs from the one written by appends"
        );
        assert!(
            time_index == originals[i].1,
            "rebuilt time index of segment {i} differs from the original"
        );
    }
    log.close(NOW_MS).expect("close");
    let log = f.open_clean();
    assert_every_offset_reads_its_batch(&f, &log);
}

/// The first record of batch `i` is the answer to a ListOffsets query for its timestamp.
fn assert_timestamp_lookups(f: &Fixture, log: &PartitionLog) {
    for b in &f.batches {
        let found = log
            .find_offset_by_timestamp(b.first_timestamp)
            .expect("timestamp lookup");
        assert_eq!(
            found,
            Some(TimestampOffset {
                timestamp: b.first_timestamp,
                offset: b.base_offset
            }),
            "lookup of timestamp {} (first record of the batch at {}, segment {})",
            b.first_timestamp,
            b.base_offset,
            b.segment_base
        );
    }
    let last = f.batches.last().expect("batches");
    let records = RecordBatch::new(&last.bytes)
        .expect("batch")
        .records_count();
    assert_eq!(
        log.max_timestamp_and_offset(),
        Some(TimestampOffset {
            timestamp: last.first_timestamp + i64::from(records) - 1,
            offset: last.next_offset - 1
        }),
        "largest timestamp of the log"
    );
}

/// Currently fails, library bug: `LogSegment::open` caches the segment's max timestamp from the
/// raw last `.timeindex` entry, and the lazy rebuild of a damaged index never refreshes it.
#[test]
fn damaged_time_indexes_do_not_distort_timestamp_lookups() {
    let f = Fixture::closed(6);
    for (segment, fill) in [(1usize, 0xffu8), (2, 0x7f)] {
        let path = f.path(f.segment_bases[segment], TIME_INDEX_SUFFIX);
        let len = fs::metadata(&path).expect("stat").len() as usize;
        // Every entry the same: timestamps not increasing, so the index fails its check.
        fs::write(&path, vec![fill; len]).expect("write time index");
    }
    let log = f.open_clean();
    verify_log(&log, |_| {});
    assert_timestamp_lookups(&f, &log);
}

/// Crashes a fixture, recovers it scanning every segment, closes it cleanly and opens it again.
fn recover_everything_then_restart(f: &Fixture) -> PartitionLog {
    let log = f.open_after_crash(0);
    f.assert_holds_first(&log, f.batches.len());
    log.close(NOW_MS).expect("close");
    let log = f.open_clean();
    f.assert_holds_first(&log, f.batches.len());
    log
}

/// Currently fails, library bug: `LogSegment::recover` leaves the indexes of a recovered segment
/// that is not the last one preallocated (Kafka trims them and adds the closing time-index
/// entry), so after the restart its max timestamp is read as 0 from the zero-filled tail.
#[test]
fn timestamp_lookups_survive_crash_recovery_and_a_restart() {
    let f = Fixture::crashed(7);
    let log = recover_everything_then_restart(&f);
    assert_timestamp_lookups(&f, &log);
}

/// Currently fails, same library bug as `timestamp_lookups_survive_crash_recovery_and_a_restart`:
/// the recovered segments look older than the retention and are deleted.
#[test]
fn time_retention_after_crash_recovery_and_a_restart_keeps_recent_segments() {
    let f = Fixture::crashed(8);
    let mut log = recover_everything_then_restart(&f);
    log.set_config(LogConfig {
        retention_ms: 24 * 60 * 60 * 1000,
        ..config()
    });
    log.set_high_watermark(f.leo());
    // Every record is a few seconds old at most.
    let deleted = log.delete_old_segments(NOW_MS + 60_000).expect("retention");
    assert_eq!(
        deleted, 0,
        "retention deleted {deleted} segments whose records are a minute old"
    );
    f.assert_holds_first(&log, f.batches.len());
}

const PRODUCER_ID: i64 = 7;

fn producer_spec(base_sequence: i32) -> BatchSpec {
    BatchSpec {
        base_timestamp: NOW_MS,
        producer_id: PRODUCER_ID,
        producer_epoch: 0,
        base_sequence,
        ..BatchSpec::default()
    }
}

#[derive(Debug, Clone, Copy)]
enum SnapshotDamage {
    /// A flipped byte in the newest snapshot (CRC mismatch).
    NewestFlipped,
    /// Every snapshot cut to a few bytes.
    AllTruncated,
}

#[test]
fn corrupt_producer_snapshots_are_skipped_and_the_state_is_rebuilt_from_the_log() {
    for_each_case(
        &[SnapshotDamage::NewestFlipped, SnapshotDamage::AllTruncated],
        |damage| {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join(partition().dir_name());
            let mut log = open(&dir, LoadParams::default()).expect("open");
            let lens = [200usize; 5];
            let mut sequence = 0;
            let mut last = None;
            while log.segment_count() < 3 {
                let (info, _) = append_batch(&mut log, &producer_spec(sequence), &lens, 0, NOW_MS);
                last = Some((sequence, info));
                sequence += lens.len() as i32;
            }
            let (last_sequence, last_info) = last.expect("appended");
            let leo = log.log_end_offset();
            log.close(NOW_MS).expect("close");

            let snapshots = snapshot_offsets(&dir);
            assert_eq!(
                snapshots.last(),
                Some(&leo),
                "close snapshots producer state at the LEO"
            );
            let damaged: &[i64] = match damage {
                SnapshotDamage::NewestFlipped => &snapshots[snapshots.len() - 1..],
                SnapshotDamage::AllTruncated => &snapshots,
            };
            for &offset in damaged {
                let path = dir.join(snapshot_file_name(offset));
                let mut bytes = fs::read(&path).expect("read snapshot");
                match damage {
                    SnapshotDamage::NewestFlipped => *bytes.last_mut().expect("non-empty") ^= 0xff,
                    SnapshotDamage::AllTruncated => bytes.truncate(3),
                }
                fs::write(&path, bytes).expect("write snapshot");
            }

            let mut log =
                open(&dir, clean_params(leo)).expect("a damaged snapshot must not fail the open");
            let state = log
                .producer_state()
                .producer(PRODUCER_ID)
                .expect("producer state rebuilt from the log");
            assert_eq!(state.last_seq(), sequence - 1);
            assert_eq!(state.last_offset(), last_info.last_offset);
            for &offset in damaged {
                let path = dir.join(snapshot_file_name(offset));
                if path.exists() {
                    let bytes = fs::read(&path).expect("read snapshot");
                    assert!(
                        bytes.len() > 3,
                        "damaged snapshot {offset} was neither deleted nor rewritten"
                    );
                }
            }
            // A retry of the last batch is still recognised, and the producer can go on.
            let retry = batch_for(&producer_spec(last_sequence), last_info.first_offset, &lens);
            let info = log.append_as_leader(&retry, 0, NOW_MS).expect("retry");
            assert!(
                info.duplicate,
                "a retry of the last batch must be detected after the rebuild"
            );
            assert_eq!(
                (info.first_offset, info.last_offset),
                (last_info.first_offset, last_info.last_offset)
            );
            let (info, _) = append_batch(&mut log, &producer_spec(sequence), &lens, 0, NOW_MS);
            assert_eq!(info.first_offset, leo);
            verify_log(&log, |_| {});
        },
    );
}

#[derive(Debug, Clone, Copy)]
enum EpochDamage {
    NotANumber,
    CountMismatch,
    EpochsGoingBackwards,
}

#[test]
fn corrupt_leader_epoch_checkpoint_fails_the_open() {
    for_each_case(
        &[
            EpochDamage::NotANumber,
            EpochDamage::CountMismatch,
            EpochDamage::EpochsGoingBackwards,
        ],
        |damage| {
            let f = Fixture::closed(9);
            let path = f.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
            let text = match damage {
                EpochDamage::NotANumber => "0\n2\n0 0\nx 40\n",
                EpochDamage::CountMismatch => "0\n3\n0 0\n1 40\n",
                EpochDamage::EpochsGoingBackwards => "0\n2\n1 0\n0 40\n",
            };
            fs::write(&path, text).expect("write checkpoint");
            // Kafka takes the whole log dir offline on an unreadable checkpoint
            // (CheckpointFileWithFailureChannel); here the open fails with a storage error.
            for params in [clean_params(f.leo()), crash_params(0)] {
                match open(&f.dir, params) {
                    Err(e @ StorageError::CorruptFile { .. }) => {
                        assert!(e.is_storage_failure());
                        let StorageError::CorruptFile { path: p, .. } = &e else {
                            unreachable!()
                        };
                        assert_eq!(p, &path, "the error must name the damaged file");
                    }
                    Err(e) => panic!("expected CorruptFile for {damage:?}, got {e}"),
                    Ok(_) => panic!("a damaged leader-epoch-checkpoint ({damage:?}) was accepted"),
                }
            }
            // Without the file, a recovery scan of every segment rebuilds the cache from the batches.
            fs::remove_file(&path).expect("remove checkpoint");
            let log = f.open_after_crash(0);
            f.assert_holds_first(&log, f.batches.len());
        },
    );
}
