//! Cleaning one log (Kafka's `Cleaner.doClean`): build the offset map of the dirty section,
//! rewrite every segment from the log start to the end of that section into `.cleaned` files,
//! and swap each rewritten group of segments in.
//!
//! 1. Map: the dirty segments are read in order and each keyed record's offset is put in the
//!    [`OffsetMap`] under its key. If the map fills, the map's range ends before the batch that
//!    did not fit; the rest of the dirty section waits for the next round.
//! 2. Rewrite: the segments below the map's end are grouped (consecutive segments whose sizes
//!    add up to at most `segment.bytes`, spanning fewer than 2^31 offsets, Kafka's
//!    `groupSegmentsBySize`), and each group is filtered batch by batch
//!    ([`super::batch_filter`]) into one new segment `<first base>.log.cleaned` with fresh
//!    indexes, fsynced.
//! 3. Swap: [`super::swap`] replaces the group under the log's write lock, if the log still has
//!    exactly those segments.
//!
//! Only steps 3 and the final checkpoint update take the log's lock, briefly; steps 1 and 2
//! read the old segments through file handles taken in the snapshot, so appends, reads and
//! replication go on meanwhile. `should_stop` is polled between batches; a stopped or abandoned
//! clean leaves the log as it was, less the groups already swapped (each a valid clean).

use std::sync::Arc;

use crate::cleaner::batch_filter::{filter_batch, FilterContext, Outcome};
use crate::cleaner::cleanable::{LogSnapshot, LogToClean, SegmentSnapshot};
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::swap::{replace_segments, SwapOutcome};
use crate::log_manager::{write_log, SharedLog};
use crate::segment::{LogSegment, Scan, SegmentReader, CLEANED_SUFFIX};
use crate::{Result, StorageError};

/// Output is handed to the segment in chunks of about this size.
const WRITE_CHUNK: usize = 1 << 20;

/// What one clean did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes of the segments read and rewritten.
    pub bytes_read: u64,
    /// Bytes of the segments written in their place.
    pub bytes_written: u64,
    /// Records read.
    pub records_read: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Segments replaced.
    pub segments_replaced: u64,
    /// Where the dirty section now starts (the new cleaner checkpoint).
    pub end_offset: i64,
    /// True when the clean was stopped or abandoned (the log changed under it).
    pub abandoned: bool,
}

/// Cleans the log `shared` of which `snap` is a snapshot; `to_clean` is its cleanable range.
pub fn clean_log(
    shared: &SharedLog,
    snap: &LogSnapshot,
    to_clean: &LogToClean,
    map: &mut OffsetMap,
    now_ms: i64,
    should_stop: &dyn Fn() -> bool,
) -> Result<CleanStats> {
    let mut stats = CleanStats::default();
    map.clear();
    let Some(map_end) = build_offset_map(snap, to_clean, map, should_stop)? else {
        stats.abandoned = true;
        return Ok(stats);
    };
    stats.end_offset = map_end;
    let mut latest_horizon: Option<i64> = None;
    let groups = group_segments(snap, map_end);
    for group in groups {
        let ctx = FilterContext {
            map,
            map_end,
            now_ms,
            delete_retention_ms: snap.config.delete_retention_ms,
            last_batches: &snap.last_batches,
        };
        let Some(cleaned) = clean_group(
            snap,
            group,
            &ctx,
            &mut stats,
            &mut latest_horizon,
            should_stop,
        )?
        else {
            stats.abandoned = true;
            return Ok(stats);
        };
        let Some(cleaned) = cleaned else {
            continue; // Nothing changed in this group: no swap needed.
        };
        let written = cleaned.size();
        match replace_segments(shared, snap, group, cleaned, now_ms)? {
            SwapOutcome::Swapped => {
                stats.bytes_written += written;
                stats.segments_replaced += group.len() as u64;
            }
            SwapOutcome::Abandoned => {
                stats.abandoned = true;
                return Ok(stats);
            }
        }
    }
    let mut log = write_log(shared);
    if log.generation != snap.generation {
        stats.abandoned = true;
        return Ok(stats);
    }
    log.cleaner_checkpoint = Some(map_end);
    log.latest_delete_horizon = latest_horizon;
    Ok(stats)
}

/// Fills `map` from the dirty section; returns the end (exclusive) of the range it covers, or
/// `None` if stopped.
fn build_offset_map(
    snap: &LogSnapshot,
    to_clean: &LogToClean,
    map: &mut OffsetMap,
    should_stop: &dyn Fn() -> bool,
) -> Result<Option<i64>> {
    let first_dirty = to_clean.first_dirty_offset;
    let end = to_clean.first_uncleanable_offset;
    for seg in snap
        .segments
        .iter()
        .filter(|s| s.next_base > first_dirty && s.base_offset < end)
    {
        let mut reader = reader_of(seg);
        loop {
            if should_stop() {
                return Ok(None);
            }
            let b = match reader.next_batch()? {
                Scan::Batch(_, b) => b,
                Scan::End => break,
                Scan::Invalid(pos, reason) => return Err(invalid(seg, pos, &reason)),
            };
            if b.last_offset() < first_dirty || b.is_control() {
                continue;
            }
            b.verify_crc()?;
            if !map.has_room_for(b.records_count().max(0) as usize) {
                if map.is_empty() {
                    // Not even one batch fits: no round could ever make progress.
                    return Err(StorageError::InvalidRecord(format!(
                        "the cleaner's offset map holds {} keys, fewer than the {} records of \
                         the batch at offset {} (raise log.cleaner.dedupe.buffer.size)",
                        map.capacity(),
                        b.records_count(),
                        b.base_offset()
                    )));
                }
                tracing::info!(partition = %snap.topic_partition, keys = map.len(), offset = b.base_offset(), "offset map full; cleaning up to here this round");
                return Ok(Some(b.base_offset().max(first_dirty)));
            }
            let base = b.base_offset();
            crate::compression::for_each_record(
                &b,
                super::batch_filter::MAX_CLEANER_BATCH_BYTES,
                |r| {
                    if let Some(key) = r.key {
                        map.put(key, base + i64::from(r.offset_delta));
                    }
                    true
                },
            )?;
        }
    }
    Ok(Some(end))
}

fn reader_of(seg: &SegmentSnapshot) -> SegmentReader {
    SegmentReader::new(
        Arc::clone(&seg.file),
        seg.path.clone(),
        0,
        seg.size,
        u32::MAX as usize,
    )
}

fn invalid(seg: &SegmentSnapshot, pos: u64, reason: &str) -> StorageError {
    StorageError::corrupt_file(&seg.path, format!("at position {pos}: {reason}"))
}

/// The segments below `map_end`, in groups that each become one cleaned segment.
fn group_segments(snap: &LogSnapshot, map_end: i64) -> Vec<&[SegmentSnapshot]> {
    let to_clean: &[SegmentSnapshot] = {
        let n = snap
            .segments
            .iter()
            .take_while(|s| s.base_offset < map_end)
            .count();
        &snap.segments[..n]
    };
    let max_bytes = snap.config.segment_bytes.min(u64::from(u32::MAX));
    // Each index entry covers at least index.interval.bytes of log: the group's indexes must
    // fit segment.index.bytes (12 bytes per time-index entry, the larger).
    let max_index_entries = (snap.config.segment_index_bytes / 12) as u64;
    let interval = snap.config.index_interval_bytes.max(1);
    let mut groups = Vec::new();
    let mut start = 0;
    while start < to_clean.len() {
        let mut end = start + 1;
        let mut bytes = to_clean[start].size;
        while let Some(next) = to_clean.get(end) {
            let span = next.next_base - 1 - to_clean[start].base_offset;
            let fits = bytes + next.size <= max_bytes
                && span <= i64::from(i32::MAX)
                && (bytes + next.size) / interval + 2 <= max_index_entries;
            if !fits {
                break;
            }
            bytes += next.size;
            end += 1;
        }
        groups.push(&to_clean[start..end]);
        start = end;
    }
    groups
}

/// Filters one group into a `.cleaned` segment. `Ok(None)`: stopped. `Ok(Some(None))`: every
/// batch was copied as it was (a single segment): no new segment is needed.
fn clean_group(
    snap: &LogSnapshot,
    group: &[SegmentSnapshot],
    ctx: &FilterContext<'_>,
    stats: &mut CleanStats,
    latest_horizon: &mut Option<i64>,
    should_stop: &dyn Fn() -> bool,
) -> Result<Option<Option<LogSegment>>> {
    let Some(first) = group.first() else {
        return Ok(Some(None));
    };
    let mut cleaned = LogSegment::create_with_suffix(
        &snap.dir,
        first.base_offset,
        CLEANED_SUFFIX,
        &snap.config,
        ctx.now_ms,
    )?;
    let result = fill(group, ctx, &mut cleaned, stats, latest_horizon, should_stop);
    let changed = match result {
        Ok(Some(changed)) => changed || group.len() > 1,
        Ok(None) => {
            cleaned.delete()?;
            return Ok(None);
        }
        Err(e) => {
            // Best effort: the error that matters is the one returned; recovery removes
            // leftovers too.
            let _ = cleaned.delete();
            return Err(e);
        }
    };
    if !changed {
        cleaned.delete()?;
        return Ok(Some(None));
    }
    cleaned.on_become_inactive()?;
    cleaned.flush()?;
    Ok(Some(Some(cleaned)))
}

/// Writes the filtered batches of `group` into `cleaned`; `Some(true)` if any batch changed.
fn fill(
    group: &[SegmentSnapshot],
    ctx: &FilterContext<'_>,
    cleaned: &mut LogSegment,
    stats: &mut CleanStats,
    latest_horizon: &mut Option<i64>,
    should_stop: &dyn Fn() -> bool,
) -> Result<Option<bool>> {
    let mut changed = false;
    let mut out = Vec::with_capacity(WRITE_CHUNK + (64 << 10));
    for seg in group {
        stats.bytes_read += seg.size;
        let mut reader = reader_of(seg);
        loop {
            if should_stop() {
                return Ok(None);
            }
            let b = match reader.next_batch()? {
                Scan::Batch(_, b) => b,
                Scan::End => break,
                Scan::Invalid(pos, reason) => return Err(invalid(seg, pos, &reason)),
            };
            b.verify_crc()?;
            let f = filter_batch(&b, ctx, &mut out)?;
            stats.records_read += u64::from(f.kept + f.removed);
            stats.records_removed += u64::from(f.removed);
            changed |= f.outcome != Outcome::Copied;
            if let Some(h) = f.tombstone_horizon {
                *latest_horizon = Some(latest_horizon.map_or(h, |l| l.max(h)));
            }
            if out.len() >= WRITE_CHUNK {
                cleaned.append(&out)?;
                out.clear();
            }
        }
    }
    if !out.is_empty() {
        cleaned.append(&out)?;
    }
    Ok(Some(changed))
}
