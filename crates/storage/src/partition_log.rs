//! [`PartitionLog`]: the log of one partition replica (Kafka's `UnifiedLog` and `LocalLog`).
//!
//! It owns the partition directory: the segments (ordered by base offset, the last one active),
//! the leader-epoch cache, the idempotent-producer state, and the offsets Kafka names:
//!
//! ```text
//!   log start offset        high watermark         log end offset (LEO)
//!        |  ...readable to consumers... |  ...replicating... |
//!   [seg 0      ][seg 1000      ][seg 2000 (active)         ]
//!                    recovery point: everything before it is fsynced
//! ```
//!
//! The high watermark is set from outside (the replication layer); reads take an upper bound so
//! consumers never see past it. Writers take `&mut self`, readers `&self`; the owner wraps the log
//! in a lock per partition (reads can share it), so appends to different partitions never
//! contend. All calls do blocking file I/O and belong on a blocking thread. The log cleaner
//! ([`crate::cleaner`]) reads inactive segments without the lock and replaces them under the
//! write lock; `generation` tells it whether segments were deleted or cut meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::{BatchIter, RecordBatch, TimestampType};
use crate::config::LogConfig;
use crate::leader_epoch_cache::LeaderEpochCache;
use crate::log_validator::{apply_timestamp_rewrite, assign_offsets, validate_client_batch};
use crate::producer_state::{AppendCheck, ProducerStateManager};
use crate::segment::{FileSlice, LogSegment};
use crate::time_index::TimestampOffset;
use crate::{Result, StorageError, TopicPartition};

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset of the first record appended (for a duplicate: of the original batch).
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Max timestamp of what was appended.
    pub max_timestamp: i64,
    /// The broker's append time under `LogAppendTime`, else -1 (Produce response field).
    pub log_append_time: i64,
    /// Log start offset after the append (Produce response field).
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log: nothing was written.
    pub duplicate: bool,
}

/// Where the loaded log should start from: values the log manager read from its checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadParams {
    /// Offset below which everything was fsynced (`recovery-point-offset-checkpoint`).
    pub recovery_point: i64,
    /// Log start offset (`log-start-offset-checkpoint`).
    pub log_start_offset: i64,
    /// High watermark (`replication-offset-checkpoint`).
    pub high_watermark: i64,
    /// True if the log dir was shut down cleanly: no segment needs a recovery scan.
    pub clean_shutdown: bool,
    /// Current time in milliseconds.
    pub now_ms: i64,
}

/// The log of one partition replica.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) topic_partition: TopicPartition,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<i64, LogSegment>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) recovery_point: i64,
    pub(crate) unflushed_messages: i64,
    pub(crate) last_flush_ms: i64,
    pub(crate) leader_epoch_cache: LeaderEpochCache,
    pub(crate) producer_state: ProducerStateManager,
    /// Bumped whenever segments are deleted or truncated (retention, truncation): the log
    /// cleaner, which works without the lock, abandons a clean if it changed meanwhile.
    pub(crate) generation: u64,
    /// The log cleaner's first dirty offset (`cleaner-offset-checkpoint`), if it cleaned
    /// this log before.
    pub(crate) cleaner_checkpoint: Option<i64>,
    /// The latest delete horizon of a batch holding tombstones, as of the last clean: once it
    /// passes, a clean would drop tombstones, so the cleaner revisits the log (KIP-534).
    pub(crate) latest_delete_horizon: Option<i64>,
}

impl PartitionLog {
    /// Opens the partition directory `dir` (creating it if absent) and recovers it as
    /// [`crate::log_loader`] describes.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        params: LoadParams,
    ) -> Result<Self> {
        crate::log_loader::load(dir, topic_partition, config, params)
    }

    /// The partition this log belongs to.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Replaces the settings (a topic config change); they apply from the next operation.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    /// Offset below which every replica in the ISR has the data; consumers read below it.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// Offset below which the log is known to be on disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    /// Total bytes in all segments.
    pub fn size_in_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }
    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    /// The leader-epoch cache (epoch -> start offset).
    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.leader_epoch_cache
    }
    /// The idempotent producers' state.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// Sets the high watermark, clamped to `[log start, LEO]`. It may move backwards only
    /// through truncation; the replication layer guarantees that.
    pub fn set_high_watermark(&mut self, offset: i64) {
        self.high_watermark = offset.clamp(self.log_start_offset, self.log_end_offset);
    }

    /// [`LogSegment::should_roll`] of the active segment under this log's config (borrowing
    /// the two fields apart, so the config need not be copied on every append).
    fn active_should_roll(
        &mut self,
        batch_size: u64,
        last_offset: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let active = self
            .segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::corrupt_file(&self.dir, "log has no segment"))?;
        active.should_roll(&self.config, batch_size, last_offset, max_timestamp, now_ms)
    }

    fn active_segment(&mut self) -> Result<&mut LogSegment> {
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::corrupt_file(&self.dir, "log has no segment"))
    }

    /// Whether appending `batches` now might fsync: roll the active segment (which fsyncs it)
    /// or flush by `flush.messages`/`flush.ms`. When it is false the append only writes to the
    /// page cache (microseconds), so a caller on an async runtime may run it in place instead
    /// of handing it to a blocking thread; it is never false when the append would fsync.
    /// Reads the batch headers only.
    pub fn append_may_sync(&self, batches: &[u8], now_ms: i64) -> bool {
        if self.config.flush_messages != i64::MAX || self.config.flush_ms != i64::MAX {
            return true;
        }
        let Some(active) = self.segments.values().next_back() else {
            return true;
        };
        let max_timestamp = match self.config.message_timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => {
                let mut newest = now_ms;
                for b in BatchIter::new(batches, usize::MAX) {
                    match b {
                        Ok(b) => newest = newest.max(b.max_timestamp()),
                        // The append itself will refuse it; no need to be in place.
                        Err(_) => return true,
                    }
                }
                newest
            }
        };
        // Every record takes at least one byte, so the batches end below this offset.
        let last_offset_bound = self.log_end_offset.saturating_add(batches.len() as i64);
        active.may_roll(
            &self.config,
            batches.len() as u64,
            last_offset_bound,
            max_timestamp,
            now_ms,
        )
    }

    /// Validates a producer's batch (exactly one, magic 2), checks its producer's sequence, and
    /// appends it with offsets from the LEO and `leader_epoch` written on the way to disk (the
    /// caller's bytes are not modified; see [`LogSegment::append_with_offsets`]). A retried batch
    /// already in the log returns its original offsets with `duplicate` set. On any error the log
    /// is unchanged.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        let validated = validate_client_batch(records, &self.config, now_ms)?;
        if self.config.cleanup_policy.compact {
            crate::log_validator::require_keys(records, &self.topic_partition)?;
        }
        let (producer_id, producer_epoch, first_seq, last_seq) = {
            let b = RecordBatch::new(records)?;
            (
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                b.last_sequence(),
            )
        };
        if producer_id >= 0 {
            if let AppendCheck::Duplicate(meta) = self.producer_state.check_append(
                producer_id,
                producer_epoch,
                first_seq,
                last_seq,
            )? {
                return Ok(LogAppendInfo {
                    first_offset: meta.first_offset,
                    last_offset: meta.last_offset,
                    max_timestamp: meta.max_timestamp,
                    log_append_time: -1,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
        }
        let first_offset = self.log_end_offset;
        let last_offset = first_offset + i64::from(validated.last_offset_delta);
        self.maybe_roll(
            records.len() as u64,
            last_offset,
            validated.max_timestamp,
            now_ms,
        )?;
        if validated.rewrite_timestamp.is_some() {
            // The CRC changes: the batch is copied once, rewritten, and written whole.
            let mut owned = records.to_vec();
            apply_timestamp_rewrite(&mut owned, &validated);
            assign_offsets(&mut owned, first_offset, leader_epoch);
            self.active_segment()?.append(&owned)?;
        } else {
            self.active_segment()?
                .append_with_offsets(records, first_offset, leader_epoch)?;
        }
        if leader_epoch >= 0 && self.leader_epoch_cache.latest_epoch() != Some(leader_epoch) {
            self.leader_epoch_cache.assign(leader_epoch, first_offset)?;
        }
        if producer_id >= 0 {
            self.producer_state.update(
                producer_id,
                producer_epoch,
                first_seq,
                last_seq,
                first_offset,
                last_offset,
                validated.max_timestamp,
            );
        }
        self.log_end_offset = last_offset + 1;
        self.producer_state.set_map_end_offset(self.log_end_offset);
        self.unflushed_messages += i64::from(validated.records);
        self.maybe_flush(now_ms)?;
        let log_append_time = match self.config.message_timestamp_type {
            crate::batch::TimestampType::LogAppendTime => validated.max_timestamp,
            crate::batch::TimestampType::CreateTime => -1,
        };
        Ok(LogAppendInfo {
            first_offset,
            last_offset,
            max_timestamp: validated.max_timestamp,
            log_append_time,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends batches fetched from the leader, offsets already assigned. Each batch's CRC is
    /// checked and offsets must increase from the LEO (gaps are allowed: compaction leaves
    /// them). The leader-epoch cache and producer state follow the batches. Contiguous batches
    /// are written with one call.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Option<LogAppendInfo>> {
        let mut run_start = 0usize;
        let mut info: Option<LogAppendInfo> = None;
        let mut expected_min = self.log_end_offset;
        let mut pos = 0usize;
        for b in BatchIter::new(records, usize::MAX) {
            let b = b?;
            b.verify_crc()?;
            if b.base_offset() < expected_min || b.last_offset_delta() < 0 {
                return Err(StorageError::InvalidRecord(format!(
                    "replicated batch at offset {} is below the expected offset {expected_min}",
                    b.base_offset()
                )));
            }
            let size = b.size();
            let run_len = (pos - run_start) as u64;
            if self.active_should_roll(
                run_len + size as u64,
                b.last_offset(),
                b.max_timestamp(),
                now_ms,
            )? {
                if pos > run_start {
                    self.active_segment()?.append(&records[run_start..pos])?;
                }
                self.roll(b.base_offset(), now_ms)?;
                run_start = pos;
            }
            let epoch = b.partition_leader_epoch();
            if epoch >= 0 && self.leader_epoch_cache.latest_epoch() != Some(epoch) {
                self.leader_epoch_cache.assign(epoch, b.base_offset())?;
            }
            if b.has_producer_id() {
                self.producer_state.update_from_batch(&b);
            }
            let i = info.get_or_insert(LogAppendInfo {
                first_offset: b.base_offset(),
                last_offset: b.last_offset(),
                max_timestamp: b.max_timestamp(),
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
            });
            i.last_offset = b.last_offset();
            i.max_timestamp = i.max_timestamp.max(b.max_timestamp());
            self.unflushed_messages += i64::from(b.records_count().max(0));
            expected_min = b.next_offset();
            pos += size;
        }
        if pos != records.len() {
            return Err(StorageError::CorruptMessage(
                "replicated data ends in a partial batch".into(),
            ));
        }
        if pos > run_start {
            self.active_segment()?.append(&records[run_start..pos])?;
        }
        if info.is_some() {
            self.log_end_offset = expected_min;
            self.producer_state.set_map_end_offset(self.log_end_offset);
            self.maybe_flush(now_ms)?;
        }
        Ok(info)
    }

    /// Reads whole batches from the one holding `offset`, at most `max_bytes` (at least one
    /// batch when `min_one_batch`), never at or past `upper_bound` (exclusive: the high watermark
    /// for consumers, the LEO for followers). `Ok(None)` when there is nothing to return yet.
    /// Offsets outside `[log start, LEO]` are `OffsetOutOfRange`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let upper = upper_bound.min(self.log_end_offset);
        if offset >= upper {
            return Ok(None);
        }
        let start_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(offset, |(b, _)| *b);
        let mut iter = self.segments.range(start_base..).peekable();
        let mut from = offset;
        while let Some((_, segment)) = iter.next() {
            let next_base = iter.peek().map_or(self.log_end_offset, |(b, _)| **b);
            if segment.base_offset() >= upper {
                break;
            }
            let max_position = if upper >= next_base {
                segment.size()
            } else {
                segment.position_of(upper)?
            };
            if let Some(slice) = segment.read(from, max_bytes, max_position, min_one_batch)? {
                if slice.len > 0 || !min_one_batch {
                    return Ok(Some(slice));
                }
            }
            from = next_base;
        }
        Ok(None)
    }

    /// The first record with a timestamp `>= timestamp` (ListOffsets by time): its timestamp and
    /// offset, or `None` if every record is older.
    pub fn find_offset_by_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        for segment in self.segments.values() {
            if segment.max_timestamp().is_some_and(|max| max >= timestamp) {
                if let Some(found) =
                    segment.find_offset_by_timestamp(timestamp, self.log_start_offset)?
                {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the last offset of the batch carrying it
    /// (ListOffsets `MAX_TIMESTAMP`); `None` for an empty log.
    pub fn max_timestamp_and_offset(&self) -> Option<TimestampOffset> {
        self.segments
            .values()
            .map(LogSegment::max_timestamp_and_offset)
            .filter(|t| t.timestamp >= 0)
            .fold(None, |best: Option<TimestampOffset>, t| match best {
                Some(b) if b.timestamp >= t.timestamp => Some(b),
                _ => Some(t),
            })
    }

    /// The leader epoch and end offset for `epoch` (OffsetForLeaderEpoch): where the log's
    /// history of that epoch ends.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.leader_epoch_cache
            .end_offset_for(epoch, self.log_end_offset)
    }

    /// Records that leader epoch `epoch` starts at `offset` (a replica becoming leader marks
    /// its epoch at its log end, before it appends anything, so followers can find where the
    /// previous epochs end). Persisted when it changes the cache.
    pub fn assign_epoch_start_offset(&mut self, epoch: i32, offset: i64) -> Result<()> {
        self.leader_epoch_cache.assign(epoch, offset)
    }

    /// The leader epoch that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.leader_epoch_cache.epoch_for_offset(offset)
    }

    fn maybe_roll(
        &mut self,
        batch_size: u64,
        last_offset: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> Result<()> {
        if self.active_should_roll(batch_size, last_offset, max_timestamp, now_ms)? {
            let next = self.log_end_offset;
            self.roll(next, now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment (fsynced, indexes trimmed), snapshots producer state, and starts
    /// a new segment at `base_offset` (normally the LEO).
    pub fn roll(&mut self, base_offset: i64, now_ms: i64) -> Result<()> {
        let active_base = self.active_segment()?.base_offset();
        if active_base == base_offset && self.active_segment()?.size() == 0 {
            return Ok(()); // Already an empty segment at that offset.
        }
        {
            let active = self.active_segment()?;
            active.on_become_inactive()?;
            active.flush()?;
        }
        let segment = LogSegment::create(&self.dir, base_offset, &self.config, now_ms)?;
        self.segments.insert(base_offset, segment);
        self.producer_state
            .set_map_end_offset(base_offset.max(self.producer_state.map_end_offset()));
        self.producer_state.take_snapshot()?;
        self.recovery_point = self
            .recovery_point
            .max(base_offset.min(self.log_end_offset));
        tracing::info!(partition = %self.topic_partition, base_offset, "rolled new log segment");
        Ok(())
    }

    /// fsyncs every segment that may hold unflushed data and moves the recovery point to the LEO.
    pub fn flush(&mut self, now_ms: i64) -> Result<()> {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for segment in self.segments.range(from..).map(|(_, s)| s) {
            segment.flush()?;
        }
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Flushes when `flush.messages` or `flush.ms` says so.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<()> {
        if self.unflushed_messages >= self.config.flush_messages
            || (self.unflushed_messages > 0
                && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms)
        {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Removes every record at or after `offset` (a follower diverged from its leader). Returns
    /// true if anything was removed.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<bool> {
        if offset >= self.log_end_offset {
            return Ok(false);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset.max(0), now_ms)?;
            return Ok(true);
        }
        self.generation += 1;
        if let Some(dirty) = self.cleaner_checkpoint.as_mut() {
            *dirty = (*dirty).min(offset);
        }
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        // Keep at least one segment: the first is never above log start <= offset.
        for base in doomed {
            if self.segments.len() > 1 {
                if let Some(s) = self.segments.remove(&base) {
                    s.delete()?;
                }
            }
        }
        let active = self.active_segment()?;
        active.truncate_to(offset)?;
        active.on_become_active()?;
        let base = active.base_offset();
        let next = active.read_next_offset()?.unwrap_or(base);
        self.log_end_offset = next;
        self.leader_epoch_cache
            .truncate_from_end(self.log_end_offset)?;
        self.reload_producer_state()?;
        self.high_watermark = self.high_watermark.min(self.log_end_offset);
        self.recovery_point = self.recovery_point.min(self.log_end_offset);
        tracing::info!(partition = %self.topic_partition, offset, log_end_offset = self.log_end_offset, "truncated log");
        Ok(true)
    }

    /// Deletes every segment and starts empty at `offset` (a follower far behind a leader whose
    /// log starts later).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        self.generation += 1;
        self.cleaner_checkpoint = None;
        for (_, s) in std::mem::take(&mut self.segments) {
            s.delete()?;
        }
        let segment = LogSegment::create(&self.dir, offset, &self.config, now_ms)?;
        self.segments.insert(offset, segment);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.leader_epoch_cache.clear()?;
        self.producer_state.truncate_and_reload(offset, offset)?;
        self.producer_state.set_map_end_offset(offset);
        Ok(())
    }

    /// Rebuilds producer state after truncation: the newest snapshot at or below the LEO, then
    /// the batches after it.
    fn reload_producer_state(&mut self) -> Result<()> {
        self.producer_state
            .truncate_and_reload(self.log_start_offset, self.log_end_offset)?;
        crate::log_loader::replay_producer_state(self).map(|_| ())
    }

    /// Moves the log start offset forward (DeleteRecords, or retention) and deletes the segments
    /// wholly below it. It may not pass the high watermark.
    pub fn increment_log_start_offset(&mut self, new_start: i64, now_ms: i64) -> Result<()> {
        if new_start > self.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset: new_start,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.high_watermark,
            });
        }
        if new_start <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = new_start;
        self.leader_epoch_cache.truncate_from_start(new_start)?;
        self.producer_state
            .delete_snapshots_before(self.segment_base_at_or_below(new_start))?;
        self.delete_segments_below_log_start(now_ms)?;
        Ok(())
    }

    fn segment_base_at_or_below(&self, offset: i64) -> i64 {
        self.segments
            .range(..=offset)
            .next_back()
            .map_or(offset, |(b, _)| *b)
    }

    fn delete_segments_below_log_start(&mut self, now_ms: i64) -> Result<usize> {
        let start = self.log_start_offset;
        self.delete_oldest_segments(now_ms, |_, next_base| next_base <= start)
    }

    /// Deletes the oldest segments while `doomed(segment, next_base)` holds and the segment is
    /// wholly below the high watermark; rolls first if that would take the active segment.
    fn delete_oldest_segments(
        &mut self,
        now_ms: i64,
        mut doomed: impl FnMut(&LogSegment, i64) -> bool,
    ) -> Result<usize> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut count = 0;
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(self.log_end_offset);
            let Some(segment) = self.segments.get(base) else {
                break;
            };
            let is_last = i + 1 == bases.len();
            if next_base > self.high_watermark
                || (is_last && segment.size() == 0)
                || !doomed(segment, next_base)
            {
                break;
            }
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        if count == bases.len() {
            self.roll(self.log_end_offset, now_ms)?;
        }
        self.generation += 1;
        for base in &bases[..count] {
            if let Some(s) = self.segments.remove(base) {
                s.delete()?;
            }
        }
        let first = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.log_end_offset);
        if first > self.log_start_offset {
            self.log_start_offset = first;
            self.leader_epoch_cache.truncate_from_start(first)?;
        }
        self.producer_state.delete_snapshots_before(first)?;
        tracing::info!(partition = %self.topic_partition, deleted = count, log_start_offset = self.log_start_offset, "deleted old log segments");
        Ok(count)
    }

    /// Applies the log start offset and, when `cleanup.policy` includes `delete`,
    /// `retention.ms` and `retention.bytes`: deletes whole segments from the front, never one
    /// holding data at or above the high watermark. A `compact`-only log keeps its segments
    /// (only the cleaner removes data from it), as in Kafka. Returns how many were deleted.
    pub fn delete_old_segments(&mut self, now_ms: i64) -> Result<usize> {
        let mut deleted = self.delete_segments_below_log_start(now_ms)?;
        if !self.config.cleanup_policy.delete {
            return Ok(deleted);
        }
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            let mut failure = None;
            deleted += self.delete_oldest_segments(now_ms, |s, _| match s.largest_timestamp() {
                Ok(ts) => now_ms.saturating_sub(ts) > retention_ms,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        let retention_bytes = self.config.retention_bytes;
        if retention_bytes >= 0 {
            let mut excess = self.size_in_bytes() as i64 - retention_bytes;
            deleted += self.delete_oldest_segments(now_ms, |s, _| {
                if excess - s.size() as i64 >= 0 {
                    excess -= s.size() as i64;
                    true
                } else {
                    false
                }
            })?;
        }
        Ok(deleted)
    }

    /// Forgets idempotent producers idle for longer than `producer.id.expiration.ms`.
    pub fn remove_expired_producers(&mut self, now_ms: i64) {
        let expiration = self.config.producer_id_expiration_ms;
        self.producer_state
            .remove_expired_producers(now_ms, expiration);
    }

    /// Releases the index maps of inactive segments (they reload on demand): bounds memory maps
    /// on a node with many partitions.
    pub fn release_inactive_indexes(&mut self) -> Result<()> {
        let last = self.segments.keys().next_back().copied();
        for (base, s) in self.segments.iter_mut() {
            if Some(*base) != last {
                s.release_indexes()?;
            }
        }
        Ok(())
    }

    /// Flushes everything, snapshots producer state at the LEO and trims the active segment's
    /// indexes: after this a restart needs no recovery scan.
    pub fn close(mut self, now_ms: i64) -> Result<()> {
        self.active_segment()?.on_become_inactive()?;
        self.flush(now_ms)?;
        self.producer_state.set_map_end_offset(self.log_end_offset);
        self.producer_state.take_snapshot()?;
        Ok(())
    }

    /// Deletes the partition directory and everything in it (topic deletion).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))
    }
}
