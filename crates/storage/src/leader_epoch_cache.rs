//! The leader-epoch cache of one partition replica: Kafka's `LeaderEpochFileCache`.
//!
//! It maps each leader epoch to the first offset written in that epoch. Replicas use it to answer
//! `OffsetForLeaderEpoch` ([`LeaderEpochCache::end_offset_for`]), which is how a follower finds
//! where its log diverges from the leader's and how far it must truncate. The log keeps it in
//! step: every batch appended with a new epoch is [`assign`](LeaderEpochCache::assign)ed, and log
//! truncation at either end truncates the cache too.
//!
//! Entries are kept strictly increasing in both epoch and start offset; every mutation preserves
//! that (an assignment that would break it first removes the entries it conflicts with).
//!
//! # On-disk format
//!
//! The file `leader-epoch-checkpoint` ([`LEADER_EPOCH_CHECKPOINT_FILE`]) in the partition
//! directory, in Kafka's checkpoint layout (see [`crate::checkpoint`]):
//!
//! ```text
//! 0              <- version
//! 2              <- number of entries
//! 0 0            <- <epoch> <start_offset>, oldest first
//! 3 1500
//! ```
//!
//! Every change is written synchronously and atomically before the call returns (Kafka flushes
//! truncations asynchronously; Rivulet does not, so the file is never stale).
//!
//! # Thread safety
//!
//! Not synchronised: mutators take `&mut self` and the partition's owner serialises them with
//! its other writes, as for the log itself. (Kafka guards the cache with its own read-write lock.)

use std::path::{Path, PathBuf};

use crate::checkpoint::{parse_field, read_entries, split_fields, write_entries};
use crate::{Result, StorageError};

/// Name of the checkpoint file inside the partition directory.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The only format version of the leader-epoch checkpoint, as in Kafka.
const LEADER_EPOCH_CHECKPOINT_VERSION: i32 = 0;

/// "No epoch": Kafka's `OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH`, sent when the leader
/// cannot tell the end offset of the requested epoch.
pub const UNDEFINED_EPOCH: i32 = -1;

/// "No offset": Kafka's `OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH_OFFSET`, paired with
/// [`UNDEFINED_EPOCH`].
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the offset of the first record written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch, as assigned by the controller.
    pub epoch: i32,
    /// Offset of the first record written with this epoch.
    pub start_offset: i64,
}

impl EpochEntry {
    /// Shorthand constructor.
    pub fn new(epoch: i32, start_offset: i64) -> Self {
        EpochEntry {
            epoch,
            start_offset,
        }
    }
}

/// A partition's leader-epoch -> start-offset map, persisted in `leader-epoch-checkpoint`.
///
/// Entries are sorted and strictly increasing in both epoch and start offset. Each mutator writes
/// the checkpoint before returning, only when the entries actually changed; if that write fails,
/// the in-memory entries are left as they were and the error (to be treated as a failure of the
/// log dir) is returned.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the cache of the partition in `partition_dir` from its `leader-epoch-checkpoint`.
    ///
    /// A missing or zero-length file gives an empty cache (a new partition, or a log written
    /// before leader epochs existed). A malformed file, or one whose entries are negative or not
    /// strictly increasing in both epoch and start offset, is [`StorageError::CorruptFile`].
    /// (Kafka instead replays the file through `assign`, which silently drops non-monotonic
    /// entries; no correct writer produces them, so here they are reported as damage.)
    pub fn load(partition_dir: &Path) -> Result<Self> {
        let path = partition_dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let entries = read_entries(&path, LEADER_EPOCH_CHECKPOINT_VERSION, parse_epoch_line)?
            .unwrap_or_default();
        if let Some(entry) = entries.iter().find(|e| e.epoch < 0 || e.start_offset < 0) {
            return Err(StorageError::corrupt_file(
                &path,
                format!("negative epoch entry {entry:?}"),
            ));
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|p| p[1].epoch <= p[0].epoch || p[1].start_offset <= p[0].start_offset)
        {
            return Err(StorageError::corrupt_file(
                &path,
                format!(
                    "epoch entries not strictly increasing: {:?} then {:?}",
                    pair[0], pair[1]
                ),
            ));
        }
        Ok(LeaderEpochCache { path, entries })
    }

    /// The checkpoint file backing this cache.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that records of leader `epoch` start at `start_offset`, as the log does for the
    /// first batch it appends in a new epoch.
    ///
    /// Following Kafka's `assign`:
    /// - if `epoch` is the latest epoch and `start_offset` is not below its start offset, nothing
    ///   changes (the common case: every batch of the current epoch);
    /// - otherwise every entry with `epoch >=` the new epoch or `start_offset >=` the new start
    ///   offset is removed (they describe records that are being overwritten, so keeping them
    ///   would break monotonicity) and the new entry is appended. This includes the latest epoch
    ///   re-assigned at a *lower* offset, which moves its start down: Kafka does this, although
    ///   a simpler reading of "same epoch is a no-op" would not;
    /// - a negative `epoch` or `start_offset` (a batch without a leader epoch) is ignored. Kafka
    ///   throws `IllegalArgumentException` here and relies on its callers never passing one.
    ///
    /// The checkpoint is written only when the entries changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if epoch < 0 || start_offset < 0 {
            return Ok(());
        }
        if let Some(latest) = self.latest_entry() {
            if latest.epoch == epoch && start_offset >= latest.start_offset {
                return Ok(());
            }
        }
        // Entries are monotonic, so those to keep are a prefix.
        let keep = self
            .entries
            .partition_point(|e| e.epoch < epoch && e.start_offset < start_offset);
        let new_entry = EpochEntry::new(epoch, start_offset);
        let removed = &self.entries[keep..];
        // Removing one entry at the very offset the new epoch starts at just means that epoch
        // never got any records; anything else discards history and is worth a warning.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|e| e.start_offset != start_offset)
        {
            tracing::warn!(
                path = %self.path.display(),
                ?new_entry,
                ?removed,
                "new leader epoch entry truncated conflicting entries"
            );
        }
        let mut entries = self.entries[..keep].to_vec();
        entries.push(new_entry);
        self.replace(entries)
    }

    /// The latest (highest) epoch, if any: the epoch still being written to.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest_entry().map(|e| e.epoch)
    }

    /// The entry of the latest epoch, if any.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The entry of the oldest epoch still in the log, if any.
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// All entries, oldest first, strictly increasing in epoch and start offset.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch in which the record at `offset` was written: the epoch of the entry with the
    /// greatest start offset `<= offset`. `None` if `offset` precedes every entry (or the cache
    /// is empty). Like Kafka, it does not check `offset` against the log end.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|e| e.start_offset <= offset);
        after.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Answers `OffsetForLeaderEpoch`: the largest epoch `<= requested_epoch` this replica knows,
    /// and the end offset of that epoch (the start offset of the next known epoch, or
    /// `log_end_offset` for the latest epoch). Exactly Kafka's `endOffsetFor`:
    ///
    /// - `requested_epoch == UNDEFINED_EPOCH` -> `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`;
    /// - `requested_epoch` is the latest epoch -> `(requested_epoch, log_end_offset)`;
    /// - no known epoch is greater than `requested_epoch` (it is newer than anything known, or
    ///   the cache is empty) -> `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`;
    /// - `requested_epoch` is below the first known epoch -> `(requested_epoch, start offset of
    ///   the first entry)`. Note: this is what Kafka's code returns, not
    ///   `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` as its older javadoc (and a natural reading)
    ///   suggests. The data before the first known epoch is gone, so the follower is told to
    ///   truncate to where the leader's known history begins;
    /// - otherwise -> `(greatest known epoch <= requested_epoch, start offset of the first epoch
    ///   > requested_epoch)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if requested_epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested_epoch);
        let Some(higher_entry) = self.entries.get(higher) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match higher.checked_sub(1) {
            None => (requested_epoch, higher_entry.start_offset),
            Some(floor) => (self.entries[floor].epoch, higher_entry.start_offset),
        }
    }

    /// Drops the entries of epochs that start at or after `end_offset`, after the log has been
    /// truncated to end (exclusively) at `end_offset`. A negative `end_offset` is ignored, as in
    /// Kafka. Persists if anything was removed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        if end_offset < 0 {
            return Ok(());
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        tracing::debug!(
            path = %self.path.display(),
            end_offset,
            removed = ?&self.entries[keep..],
            "truncated leader epoch cache from the end"
        );
        self.replace(self.entries[..keep].to_vec())
    }

    /// Adjusts the cache after the log start offset moved up to `start_offset` (retention,
    /// DeleteRecords): the epoch containing `start_offset` now starts there, and older epochs
    /// are dropped. Persists if anything changed.
    ///
    /// As Kafka's `truncateFromStart`, this removes every entry with `start_offset <=` the new
    /// start offset and re-inserts the last of them with its start raised to `start_offset`. So
    /// an entry starting exactly at `start_offset` is kept unchanged and the older ones go,
    /// rather than keeping the last entry *below* `start_offset` too (which would leave two
    /// entries starting at the same offset). Entries after `start_offset` are untouched.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let covered = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_covered) = covered.checked_sub(1) else {
            return Ok(());
        };
        let first = EpochEntry::new(self.entries[last_covered].epoch, start_offset);
        let mut entries = Vec::with_capacity(self.entries.len() - last_covered);
        entries.push(first);
        entries.extend_from_slice(&self.entries[covered..]);
        if entries != self.entries {
            tracing::debug!(
                path = %self.path.display(),
                start_offset,
                ?first,
                "truncated leader epoch cache from the start"
            );
        }
        self.replace(entries)
    }

    /// Removes every entry and persists the empty cache (always writing the file): used when the
    /// log is truncated fully or replaced, and its epoch history no longer applies.
    pub fn clear(&mut self) -> Result<()> {
        write_checkpoint(&self.path, &[])?;
        self.entries.clear();
        Ok(())
    }

    /// Makes `entries` the cache's content, writing the checkpoint first if they differ from the
    /// current ones. The in-memory state changes only once the file is written.
    fn replace(&mut self, entries: Vec<EpochEntry>) -> Result<()> {
        if entries == self.entries {
            return Ok(());
        }
        write_checkpoint(&self.path, &entries)?;
        self.entries = entries;
        Ok(())
    }
}

/// Writes `entries` to the checkpoint file at `path`, atomically.
fn write_checkpoint(path: &Path, entries: &[EpochEntry]) -> Result<()> {
    let lines = entries
        .iter()
        .map(|e| format!("{} {}", e.epoch, e.start_offset));
    write_entries(path, LEADER_EPOCH_CHECKPOINT_VERSION, lines)
}

/// Parses `<epoch> <start_offset>`.
fn parse_epoch_line(line: &str) -> Result<EpochEntry, String> {
    let [epoch, start_offset] = split_fields::<2>(line)?;
    Ok(EpochEntry::new(
        parse_field(epoch, "epoch")?,
        parse_field(start_offset, "start offset")?,
    ))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use proptest::prelude::*;

    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry::new(epoch, start_offset)
    }

    fn file(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)
    }

    /// A cache in a fresh directory holding `entries` (written through `assign`).
    fn cache_with(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        for &(epoch, offset) in entries {
            cache.assign(epoch, offset).unwrap();
        }
        let expected: Vec<_> = entries.iter().map(|&(ep, off)| e(ep, off)).collect();
        assert_eq!(
            cache.entries(),
            expected,
            "fixture entries must be monotonic"
        );
        (dir, cache)
    }

    /// The file on disk reproduces the in-memory entries.
    fn assert_persisted(dir: &tempfile::TempDir, cache: &LeaderEpochCache) {
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), cache.entries());
    }

    /// Removes the checkpoint file so a test can tell whether the next call writes it.
    fn remove_file(dir: &tempfile::TempDir) {
        fs::remove_file(file(dir)).unwrap();
    }

    fn assert_load_corrupt(content: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(file(&dir), content).unwrap();
        match LeaderEpochCache::load(dir.path()) {
            Err(StorageError::CorruptFile { path, .. }) => assert_eq!(path, file(&dir)),
            other => panic!(
                "{:?}: expected CorruptFile, got {other:?}",
                String::from_utf8_lossy(content)
            ),
        }
    }

    #[test]
    fn load_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(cache.entries().is_empty());
        assert_eq!(cache.latest_epoch(), None);
        assert_eq!(cache.latest_entry(), None);
        assert_eq!(cache.earliest_entry(), None);
        assert_eq!(cache.path(), file(&dir));
        assert!(!file(&dir).exists(), "loading must not create the file");
    }

    #[test]
    fn load_zero_length_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(file(&dir), "").unwrap();
        assert!(LeaderEpochCache::load(dir.path())
            .unwrap()
            .entries()
            .is_empty());
    }

    #[test]
    fn round_trip_in_kafka_format() {
        let (dir, cache) = cache_with(&[(0, 0), (3, 1500), (7, 2000)]);
        assert_eq!(
            fs::read_to_string(file(&dir)).unwrap(),
            "0\n3\n0 0\n3 1500\n7 2000\n"
        );
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn load_reads_kafka_written_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(file(&dir), "0\n2\n1 0\n4 250\n").unwrap();
        let cache = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(4, 250)]);
    }

    #[test]
    fn load_rejects_malformed_files() {
        for content in [
            &b"1\n1\n0 0\n"[..],     // wrong version
            b"x\n1\n0 0\n",          // unparsable version
            b"0\n",                  // missing count
            b"0\nx\n",               // unparsable count
            b"0\n2\n0 0\n",          // count larger than lines
            b"0\n0\n0 0\n",          // count smaller than lines
            b"0\n1\n0\n",            // missing field
            b"0\n1\n0 0 0\n",        // extra field
            b"0\n1\nzero 0\n",       // unparsable epoch
            b"0\n1\n0 zero\n",       // unparsable offset
            b"0\n1\n3000000000 0\n", // epoch out of i32 range
            b"0\n1\n0 \xff\n",       // not UTF-8
            b"0\n1\n-1 0\n",         // negative epoch
            b"0\n1\n0 -5\n",         // negative offset
            b"0\n2\n3 10\n2 20\n",   // epochs decreasing
            b"0\n2\n3 10\n3 20\n",   // epoch repeated
            b"0\n2\n3 20\n4 10\n",   // offsets decreasing
            b"0\n2\n3 10\n4 10\n",   // offset repeated
        ] {
            assert_load_corrupt(content);
        }
    }

    #[test]
    fn assign_appends_and_persists() {
        let (dir, mut cache) = cache_with(&[]);
        cache.assign(2, 0).unwrap();
        cache.assign(5, 100).unwrap();
        assert_eq!(cache.entries(), [e(2, 0), e(5, 100)]);
        assert_eq!(cache.latest_epoch(), Some(5));
        assert_eq!(cache.latest_entry(), Some(e(5, 100)));
        assert_eq!(cache.earliest_entry(), Some(e(2, 0)));
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn assign_of_latest_epoch_at_same_or_higher_offset_changes_nothing() {
        let (dir, mut cache) = cache_with(&[(1, 0), (2, 10)]);
        remove_file(&dir);
        cache.assign(2, 10).unwrap();
        cache.assign(2, 50).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(2, 10)]);
        assert!(
            !file(&dir).exists(),
            "an unchanged cache must not be written"
        );
    }

    #[test]
    fn assign_of_latest_epoch_at_lower_offset_moves_its_start_down() {
        // Kafka's isUpdateNeeded: same epoch, smaller start offset -> replace.
        let (dir, mut cache) = cache_with(&[(1, 0), (2, 10)]);
        cache.assign(2, 5).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(2, 5)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn assign_ignores_negative_epoch_or_offset() {
        let (dir, mut cache) = cache_with(&[(1, 0)]);
        remove_file(&dir);
        cache.assign(-1, 10).unwrap();
        cache.assign(2, -1).unwrap();
        cache
            .assign(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
            .unwrap();
        assert_eq!(cache.entries(), [e(1, 0)]);
        assert!(!file(&dir).exists());
    }

    #[test]
    fn assign_removes_entries_with_greater_or_equal_epoch() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        cache.assign(3, 30).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(3, 30)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn assign_removes_entries_with_greater_or_equal_offset() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        cache.assign(6, 10).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(6, 10)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn assign_of_older_epoch_at_earlier_offset_replaces_everything_conflicting() {
        let (dir, mut cache) = cache_with(&[(2, 5), (4, 10)]);
        cache.assign(1, 0).unwrap();
        assert_eq!(cache.entries(), [e(1, 0)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn epoch_for_offset_finds_the_containing_epoch() {
        let (_dir, cache) = cache_with(&[(1, 5), (3, 10), (4, 20)]);
        assert_eq!(cache.epoch_for_offset(0), None);
        assert_eq!(cache.epoch_for_offset(4), None);
        assert_eq!(cache.epoch_for_offset(5), Some(1));
        assert_eq!(cache.epoch_for_offset(9), Some(1));
        assert_eq!(cache.epoch_for_offset(10), Some(3));
        assert_eq!(cache.epoch_for_offset(19), Some(3));
        assert_eq!(cache.epoch_for_offset(20), Some(4));
        assert_eq!(cache.epoch_for_offset(i64::MAX), Some(4));
        let (_dir, empty) = cache_with(&[]);
        assert_eq!(empty.epoch_for_offset(0), None);
    }

    #[test]
    fn end_offset_for_undefined_epoch_is_undefined() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10)]);
        assert_eq!(
            cache.end_offset_for(UNDEFINED_EPOCH, 100),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn end_offset_for_latest_epoch_is_log_end_offset() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10)]);
        assert_eq!(cache.end_offset_for(3, 100), (3, 100));
    }

    #[test]
    fn end_offset_for_epoch_newer_than_known_is_undefined() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10)]);
        assert_eq!(
            cache.end_offset_for(4, 100),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn end_offset_for_on_empty_cache_is_undefined() {
        let (_dir, cache) = cache_with(&[]);
        assert_eq!(
            cache.end_offset_for(0, 100),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn end_offset_for_epoch_older_than_first_is_first_start_offset() {
        // Kafka returns the requested epoch with the first known epoch's start offset here, not
        // UNDEFINED.
        let (_dir, cache) = cache_with(&[(2, 5), (3, 10)]);
        assert_eq!(cache.end_offset_for(1, 100), (1, 5));
        assert_eq!(cache.end_offset_for(0, 100), (0, 5));
    }

    #[test]
    fn end_offset_for_known_earlier_epoch_is_next_epoch_start() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10), (6, 25)]);
        assert_eq!(cache.end_offset_for(1, 100), (1, 10));
        assert_eq!(cache.end_offset_for(3, 100), (3, 25));
    }

    #[test]
    fn end_offset_for_unknown_epoch_between_known_ones_is_floor_epoch() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10), (6, 25)]);
        assert_eq!(cache.end_offset_for(2, 100), (1, 10));
        assert_eq!(cache.end_offset_for(4, 100), (3, 25));
        assert_eq!(cache.end_offset_for(5, 100), (3, 25));
    }

    #[test]
    fn truncate_from_end_removes_epochs_starting_at_or_after_end() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10), (6, 25)]);
        cache.truncate_from_end(25).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(3, 10)]);
        assert_persisted(&dir, &cache);
        cache.truncate_from_end(11).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(3, 10)]);
        cache.truncate_from_end(0).unwrap();
        assert!(cache.entries().is_empty());
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn truncate_from_end_without_change_does_not_write() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10)]);
        remove_file(&dir);
        cache.truncate_from_end(11).unwrap();
        cache.truncate_from_end(-1).unwrap();
        assert_eq!(cache.entries(), [e(1, 0), e(3, 10)]);
        assert!(!file(&dir).exists());
    }

    #[test]
    fn truncate_from_start_raises_the_containing_epoch() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10), (6, 25)]);
        cache.truncate_from_start(15).unwrap();
        assert_eq!(cache.entries(), [e(3, 15), e(6, 25)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn truncate_from_start_at_an_epoch_start_drops_older_epochs() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10), (6, 25)]);
        cache.truncate_from_start(10).unwrap();
        assert_eq!(cache.entries(), [e(3, 10), e(6, 25)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn truncate_from_start_past_every_epoch_keeps_the_latest() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10)]);
        cache.truncate_from_start(50).unwrap();
        assert_eq!(cache.entries(), [e(3, 50)]);
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn truncate_from_start_without_change_does_not_write() {
        let (dir, mut cache) = cache_with(&[(1, 5), (3, 10)]);
        remove_file(&dir);
        cache.truncate_from_start(2).unwrap(); // before the first entry
        cache.truncate_from_start(5).unwrap(); // exactly the first entry
        assert_eq!(cache.entries(), [e(1, 5), e(3, 10)]);
        assert!(!file(&dir).exists());
    }

    #[test]
    fn clear_empties_and_persists() {
        let (dir, mut cache) = cache_with(&[(1, 0), (3, 10)]);
        cache.clear().unwrap();
        assert!(cache.entries().is_empty());
        assert_eq!(fs::read_to_string(file(&dir)).unwrap(), "0\n0\n");
        assert_persisted(&dir, &cache);
    }

    #[test]
    fn failed_write_leaves_memory_unchanged() {
        let (dir, mut cache) = cache_with(&[(1, 0)]);
        // Make the write fail by putting a directory where the temporary file goes.
        fs::create_dir(
            dir.path()
                .join(format!("{LEADER_EPOCH_CHECKPOINT_FILE}.tmp")),
        )
        .unwrap();
        assert!(matches!(cache.assign(2, 10), Err(StorageError::Io { .. })));
        assert_eq!(cache.entries(), [e(1, 0)]);
        assert_persisted(&dir, &cache);
    }

    /// One mutation of the cache, for the properties below.
    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32, i64),
        TruncateFromEnd(i64),
        TruncateFromStart(i64),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (-1..12_i32, -1..120_i64).prop_map(|(ep, off)| Op::Assign(ep, off)),
            2 => (-1..130_i64).prop_map(Op::TruncateFromEnd),
            2 => (-1..130_i64).prop_map(Op::TruncateFromStart),
            1 => Just(Op::Clear),
        ]
    }

    /// Kafka's operations written out naively on a list, as an independent model.
    fn model_apply(model: &mut Vec<EpochEntry>, op: &Op) {
        match *op {
            Op::Assign(epoch, offset) => {
                if epoch < 0 || offset < 0 {
                    return;
                }
                if model
                    .last()
                    .is_some_and(|l| l.epoch == epoch && offset >= l.start_offset)
                {
                    return;
                }
                while model
                    .last()
                    .is_some_and(|l| l.epoch >= epoch || l.start_offset >= offset)
                {
                    model.pop();
                }
                model.push(e(epoch, offset));
            }
            Op::TruncateFromEnd(end) => {
                if end >= 0 {
                    model.retain(|x| x.start_offset < end);
                }
            }
            Op::TruncateFromStart(start) => {
                let last_removed = model
                    .iter()
                    .rev()
                    .find(|x| x.start_offset <= start)
                    .copied();
                if let Some(last) = last_removed {
                    model.retain(|x| x.start_offset > start);
                    model.insert(0, e(last.epoch, start));
                }
            }
            Op::Clear => model.clear(),
        }
    }

    /// Strictly increasing, non-negative entries as the cache would hold them.
    fn monotonic_entries() -> impl Strategy<Value = Vec<EpochEntry>> {
        prop::collection::vec((1..4_i32, 1..20_i64), 0..8).prop_map(|steps| {
            let (mut epoch, mut offset) = (0, 0);
            steps
                .into_iter()
                .map(|(de, doff)| {
                    epoch += de;
                    offset += doff;
                    e(epoch, offset)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn mutations_keep_entries_monotonic_and_persisted(ops in prop::collection::vec(op(), 0..25)) {
            let dir = tempfile::tempdir().unwrap();
            let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
            let mut model = Vec::new();
            for op in &ops {
                match *op {
                    Op::Assign(epoch, offset) => cache.assign(epoch, offset).unwrap(),
                    Op::TruncateFromEnd(end) => cache.truncate_from_end(end).unwrap(),
                    Op::TruncateFromStart(start) => cache.truncate_from_start(start).unwrap(),
                    Op::Clear => cache.clear().unwrap(),
                }
                model_apply(&mut model, op);
                prop_assert_eq!(cache.entries(), &model[..], "after {:?}", op);
                for pair in cache.entries().windows(2) {
                    prop_assert!(pair[0].epoch < pair[1].epoch, "{:?}", cache.entries());
                    prop_assert!(pair[0].start_offset < pair[1].start_offset, "{:?}", cache.entries());
                }
                let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
                prop_assert_eq!(reloaded.entries(), cache.entries());
            }
        }

        #[test]
        fn queries_match_their_definitions(
            entries in monotonic_entries(),
            requested_epoch in -2..30_i32,
            offset in -1..200_i64,
        ) {
            let cache = LeaderEpochCache { path: PathBuf::from("unused"), entries: entries.clone() };
            let log_end_offset = 1_000;

            let expected_epoch = entries.iter().rev().find(|x| x.start_offset <= offset).map(|x| x.epoch);
            prop_assert_eq!(cache.epoch_for_offset(offset), expected_epoch);

            let higher = entries.iter().find(|x| x.epoch > requested_epoch);
            let floor = entries.iter().rev().find(|x| x.epoch <= requested_epoch);
            let expected = if requested_epoch == UNDEFINED_EPOCH {
                (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
            } else if entries.last().map(|x| x.epoch) == Some(requested_epoch) {
                (requested_epoch, log_end_offset)
            } else {
                match (floor, higher) {
                    (_, None) => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
                    (None, Some(h)) => (requested_epoch, h.start_offset),
                    (Some(f), Some(h)) => (f.epoch, h.start_offset),
                }
            };
            prop_assert_eq!(cache.end_offset_for(requested_epoch, log_end_offset), expected);
        }
    }
}
