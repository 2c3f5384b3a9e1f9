//! What of a log may be cleaned, and how dirty it is (Kafka's `LogCleanerManager.cleanableOffsets`
//! and `LogToClean`).
//!
//! ```text
//!  log start      first dirty offset            first uncleanable offset   active segment
//!    |  clean: compacted before  |  dirty: appended since  |  too new / above HW  |  ...
//!    [seg][seg][seg]             [seg][seg]                [seg]                 [active]
//! ```
//!
//! The first uncleanable offset is the base of the first segment that is the active one, that
//! reaches past the high watermark, or whose newest record is younger than
//! `min.compaction.lag.ms`: only whole inactive segments are ever cleaned. The dirty ratio is
//! dirty bytes / (clean + dirty bytes). A log is due when the ratio reaches
//! `min.cleanable.dirty.ratio`, or when its oldest dirty batch is older than
//! `max.compaction.lag.ms`.
//!
//! [`LogSnapshot`] is taken under the log's read lock in a few microseconds (sizes, bounds and a
//! shared handle on each segment file); everything else here works on the snapshot without any
//! lock.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::BATCH_HEADER_SIZE;
use crate::config::LogConfig;
use crate::partition_log::PartitionLog;
use crate::{Result, TopicPartition};

/// One inactive segment as the cleaner saw it.
#[derive(Debug, Clone)]
pub struct SegmentSnapshot {
    /// Base offset.
    pub base_offset: i64,
    /// Base offset of the next segment: every offset in this one is below it.
    pub next_base: i64,
    /// Bytes in the `.log` file when the snapshot was taken (inactive: it does not grow).
    pub size: u64,
    /// The open `.log` file, readable even if the segment is deleted meanwhile.
    pub file: Arc<File>,
    /// Its path, for messages.
    pub path: PathBuf,
    /// Largest record timestamp (or the file's modification time), for the compaction lags.
    pub largest_timestamp: i64,
}

/// What the cleaner needs of a log, copied under its read lock.
#[derive(Debug, Clone)]
pub struct LogSnapshot {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The partition directory.
    pub dir: PathBuf,
    /// Its settings.
    pub config: LogConfig,
    /// The log's [`PartitionLog`] generation: a change means segments were deleted or cut.
    pub generation: u64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Every segment but the active one, oldest first.
    pub segments: Vec<SegmentSnapshot>,
    /// Base offset of the active segment.
    pub active_base: i64,
    /// High watermark.
    pub high_watermark: i64,
    /// The cleaner checkpoint, if any.
    pub checkpoint: Option<i64>,
    /// Producer id -> last offset of its last batch.
    pub last_batches: HashMap<i64, i64>,
    /// Latest delete horizon of a batch with tombstones, as of the last clean.
    pub latest_delete_horizon: Option<i64>,
}

impl LogSnapshot {
    /// Copies what the cleaner needs from `log` (call under its read lock; no data is read).
    pub fn take(log: &PartitionLog) -> Result<Self> {
        let bases: Vec<i64> = log.segments.keys().copied().collect();
        let active_base = bases.last().copied().unwrap_or(log.log_end_offset);
        let mut segments = Vec::with_capacity(bases.len().saturating_sub(1));
        for (i, (base, seg)) in log.segments.iter().enumerate() {
            let Some(&next_base) = bases.get(i + 1) else {
                break;
            };
            segments.push(SegmentSnapshot {
                base_offset: *base,
                next_base,
                size: seg.size(),
                file: seg.file_handle(),
                path: seg.log_path().to_path_buf(),
                largest_timestamp: seg.largest_timestamp()?,
            });
        }
        Ok(LogSnapshot {
            topic_partition: log.topic_partition.clone(),
            dir: log.dir.clone(),
            config: log.config.clone(),
            generation: log.generation,
            log_start_offset: log.log_start_offset,
            segments,
            active_base,
            high_watermark: log.high_watermark,
            checkpoint: log.cleaner_checkpoint,
            last_batches: log
                .producer_state
                .producers()
                .map(|p| (p.producer_id, p.last_offset()))
                .collect(),
            latest_delete_horizon: log.latest_delete_horizon,
        })
    }
}

/// A log's cleanable range and its dirtiness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogToClean {
    /// Where the dirty section starts.
    pub first_dirty_offset: i64,
    /// Where cleaning must stop (a segment base).
    pub first_uncleanable_offset: i64,
    /// Bytes of segments before the dirty section.
    pub clean_bytes: u64,
    /// Bytes of segments in the dirty section.
    pub dirty_bytes: u64,
    /// The oldest dirty batch is older than `max.compaction.lag.ms`.
    pub needs_compaction_now: bool,
}

impl LogToClean {
    /// Dirty bytes over all cleanable bytes (0 when there are none).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// True when the log is due: dirty enough, or dirty data waited too long.
    pub fn is_due(&self, min_cleanable_dirty_ratio: f64) -> bool {
        self.dirty_bytes > 0
            && (self.needs_compaction_now || self.dirty_ratio() >= min_cleanable_dirty_ratio)
    }
}

/// The cleanable range of `snap` at `now_ms` (see the module doc).
pub fn cleanable(snap: &LogSnapshot, now_ms: i64) -> LogToClean {
    let min_lag = snap.config.min_compaction_lag_ms;
    let first_uncleanable = snap
        .segments
        .iter()
        .find(|s| {
            s.next_base > snap.high_watermark
                || (min_lag > 0 && s.largest_timestamp > now_ms.saturating_sub(min_lag))
        })
        .map_or(snap.active_base, |s| s.base_offset);
    let mut first_dirty = snap.checkpoint.unwrap_or(snap.log_start_offset);
    if first_dirty < snap.log_start_offset
        || first_dirty > snap.active_base.max(snap.high_watermark)
    {
        // Stale or from a log that has since been truncated: start over, as Kafka does.
        first_dirty = snap.log_start_offset;
    }
    let first_dirty = first_dirty.min(first_uncleanable);
    let clean_bytes = snap
        .segments
        .iter()
        .filter(|s| s.base_offset < first_dirty && s.next_base <= first_dirty)
        .map(|s| s.size)
        .sum();
    let dirty: Vec<&SegmentSnapshot> = snap
        .segments
        .iter()
        .filter(|s| s.next_base > first_dirty && s.base_offset < first_uncleanable)
        .collect();
    let dirty_bytes = dirty.iter().map(|s| s.size).sum();
    let max_lag = snap.config.max_compaction_lag_ms;
    let needs_compaction_now = max_lag < i64::MAX
        && dirty.first().is_some_and(|s| {
            first_batch_timestamp(s).is_some_and(|ts| now_ms.saturating_sub(ts) > max_lag)
        });
    LogToClean {
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: first_uncleanable,
        clean_bytes,
        dirty_bytes,
        needs_compaction_now,
    }
}

/// The max timestamp of a segment's first batch (Kafka's `getFirstBatchTimestamp`), read from
/// its header; `None` when it has none or cannot be read.
fn first_batch_timestamp(s: &SegmentSnapshot) -> Option<i64> {
    let mut header = [0u8; BATCH_HEADER_SIZE];
    s.file.read_exact_at(&mut header, 0).ok()?;
    let ts = i64::from_be_bytes(header[35..43].try_into().ok()?);
    (ts >= 0).then_some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(
        sizes: &[(i64, u64, i64)],
        active: i64,
        hw: i64,
        checkpoint: Option<i64>,
    ) -> LogSnapshot {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut segments = Vec::new();
        for (i, (base, size, ts)) in sizes.iter().enumerate() {
            segments.push(SegmentSnapshot {
                base_offset: *base,
                next_base: sizes.get(i + 1).map_or(active, |s| s.0),
                size: *size,
                file: Arc::clone(&file),
                path: PathBuf::new(),
                largest_timestamp: *ts,
            });
        }
        LogSnapshot {
            topic_partition: TopicPartition::new("t", 0),
            dir: PathBuf::new(),
            config: LogConfig::default(),
            generation: 0,
            log_start_offset: 0,
            segments,
            active_base: active,
            high_watermark: hw,
            checkpoint,
            last_batches: HashMap::new(),
            latest_delete_horizon: None,
        }
    }

    #[test]
    fn ratio_counts_dirty_segments_after_the_checkpoint() {
        let s = snap(&[(0, 100, 1), (10, 100, 1), (20, 200, 1)], 30, 35, Some(10));
        let c = cleanable(&s, 1_000);
        assert_eq!((c.first_dirty_offset, c.first_uncleanable_offset), (10, 30));
        assert_eq!((c.clean_bytes, c.dirty_bytes), (100, 300));
        assert!((c.dirty_ratio() - 0.75).abs() < 1e-9);
        assert!(c.is_due(0.5) && !c.is_due(0.8));
    }

    #[test]
    fn high_watermark_and_min_lag_bound_the_cleanable_range() {
        let s = snap(&[(0, 100, 1), (10, 100, 1), (20, 200, 1)], 30, 15, None);
        assert_eq!(cleanable(&s, 1_000).first_uncleanable_offset, 10);
        let mut s = snap(&[(0, 100, 1), (10, 100, 990), (20, 200, 995)], 30, 35, None);
        s.config.min_compaction_lag_ms = 50;
        let c = cleanable(&s, 1_000);
        assert_eq!(c.first_uncleanable_offset, 10);
        assert_eq!(c.dirty_bytes, 100);
    }

    #[test]
    fn nothing_dirty_after_a_full_clean_and_stale_checkpoints_reset() {
        let s = snap(&[(0, 100, 1), (10, 100, 1)], 20, 25, Some(20));
        let c = cleanable(&s, 1_000);
        assert_eq!(c.dirty_bytes, 0);
        assert!(!c.is_due(0.0));
        let s = snap(&[(0, 100, 1), (10, 100, 1)], 20, 25, Some(9_999));
        assert_eq!(cleanable(&s, 1_000).first_dirty_offset, 0);
    }
}
