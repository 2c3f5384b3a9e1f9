//! Opening a partition directory after a clean shutdown or a crash (Kafka's `LogLoader`).
//!
//! 1. Leftovers of interrupted operations are removed: `*.tmp` files of atomic writes, the
//!    log cleaner's `*.cleaned` files (a swap that had not begun), and index files whose `.log`
//!    is gone. A cleaner swap that had begun (`<base>.log.swap` present) is completed: the
//!    segments it replaces (bases in `[base, its next offset)`) are deleted and the `.swap`
//!    file takes the name `<base>.log`; index `.swap` files are dropped and rebuilt (Kafka's
//!    recovery of `.swap` files).
//! 2. Segments are opened by base offset. After an unclean shutdown every segment that may hold
//!    data past the recovery point (the last fsync) is scanned batch by batch: framing, magic,
//!    CRC, increasing offsets. The first invalid byte ends the log there: the segment is truncated
//!    and every later segment deleted. Scanned segments get fresh indexes. Other segments keep
//!    theirs, checked and rebuilt lazily if damaged.
//! 3. The LEO is the offset after the last batch; the log start offset is the checkpointed one
//!    or the first segment's base, whichever is later; the leader-epoch cache is cut to both.
//! 4. Producer state is loaded from the newest snapshot at or below the LEO and brought up to
//!    date by replaying the batches after it.
//!
//! Nothing before the recovery point is lost, and nothing invalid is ever served.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use crate::config::LogConfig;
use crate::error::IoContext;
use crate::leader_epoch_cache::LeaderEpochCache;
use crate::partition_log::{LoadParams, PartitionLog};
use crate::producer_state::ProducerStateManager;
use crate::segment::{
    self, LogSegment, CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::{Result, TopicPartition};

/// Opens and recovers the log in `dir`; see the module doc.
pub(crate) fn load(
    dir: &Path,
    topic_partition: TopicPartition,
    config: LogConfig,
    params: LoadParams,
) -> Result<PartitionLog> {
    std::fs::create_dir_all(dir).at(dir)?;
    let base_offsets = clean_directory(dir)?;
    let mut segments = BTreeMap::new();
    for &base in &base_offsets {
        segments.insert(base, LogSegment::open(dir, base, &config, params.now_ms)?);
    }
    let mut leader_epoch_cache = LeaderEpochCache::load(dir)?;
    if !params.clean_shutdown {
        recover_segments(
            &mut segments,
            params.recovery_point,
            &mut leader_epoch_cache,
        )?;
    }
    if segments.is_empty() {
        let start = params.log_start_offset.max(0);
        segments.insert(
            start,
            LogSegment::create(dir, start, &config, params.now_ms)?,
        );
    }
    let (log_end_offset, first_base) = {
        let (&first_base, _) = segments
            .iter()
            .next()
            .ok_or_else(|| crate::StorageError::corrupt_file(dir, "no segment"))?;
        let (&last_base, last) = segments
            .iter_mut()
            .next_back()
            .ok_or_else(|| crate::StorageError::corrupt_file(dir, "no segment"))?;
        last.on_become_active()?;
        (last.read_next_offset()?.unwrap_or(last_base), first_base)
    };
    let bounds: Vec<i64> = segments
        .keys()
        .skip(1)
        .copied()
        .chain([log_end_offset])
        .collect();
    for (segment, next_offset) in segments.values().zip(bounds) {
        segment.verify_max_timestamp(next_offset)?;
    }
    let log_start_offset = params.log_start_offset.max(first_base).min(log_end_offset);
    leader_epoch_cache.truncate_from_end(log_end_offset)?;
    leader_epoch_cache.truncate_from_start(log_start_offset)?;

    let recovery_point = if params.clean_shutdown {
        params
            .recovery_point
            .clamp(log_start_offset, log_end_offset)
    } else {
        // Everything kept was validated by the scan above; make it durable so the next crash
        // need not scan it again.
        for s in segments.values() {
            s.flush()?;
        }
        log_end_offset
    };

    let producer_state = ProducerStateManager::load(dir)?;
    let mut log = PartitionLog {
        dir: dir.to_path_buf(),
        topic_partition,
        config,
        segments,
        log_start_offset,
        log_end_offset,
        high_watermark: params
            .high_watermark
            .clamp(log_start_offset, log_end_offset),
        recovery_point,
        unflushed_messages: 0,
        last_flush_ms: params.now_ms,
        leader_epoch_cache,
        producer_state,
        generation: 0,
        cleaner_checkpoint: None,
        latest_delete_horizon: None,
    };
    let map_end = log.producer_state.map_end_offset();
    if map_end > log.log_end_offset || map_end < log.log_start_offset {
        log.producer_state
            .truncate_and_reload(log.log_start_offset, log.log_end_offset)?;
    }
    let replayed = replay_producer_state(&mut log)?;
    if replayed > 0 {
        log.producer_state.take_snapshot()?;
    }
    tracing::info!(
        partition = %log.topic_partition,
        segments = log.segments.len(),
        log_start_offset = log.log_start_offset,
        log_end_offset = log.log_end_offset,
        clean = params.clean_shutdown,
        "loaded log"
    );
    Ok(log)
}

/// Deletes leftovers, completes interrupted cleaner swaps, and returns the base offsets of the
/// `.log` files present.
fn clean_directory(dir: &Path) -> Result<Vec<i64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let mut swaps = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let swap_base = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| segment::parse_file_name(n, LOG_SUFFIX));
        if let Some(base) = swap_base {
            swaps.push((base, path));
        } else if name.ends_with(".tmp")
            || name.ends_with(".deleted")
            || name.ends_with(CLEANED_SUFFIX)
            || name.ends_with(SWAP_SUFFIX)
        {
            tracing::warn!(file = %path.display(), "removing leftover file");
            std::fs::remove_file(&path).at(&path)?;
        } else if let Some(base) = segment::parse_file_name(name, LOG_SUFFIX) {
            logs.push(base);
        } else if let Some(base) = segment::parse_file_name(name, INDEX_SUFFIX)
            .or_else(|| segment::parse_file_name(name, TIME_INDEX_SUFFIX))
        {
            indexes.push((base, path));
        }
    }
    logs.sort_unstable();
    for (base, swap_path) in swaps {
        complete_swap(dir, base, &swap_path, &mut logs, &mut indexes)?;
    }
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            tracing::warn!(file = %path.display(), "removing index without a segment");
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(logs)
}

/// Completes a cleaner swap interrupted after its commit point: deletes the segments the
/// cleaned segment at `base` replaces (and every index of its base offset, rebuilt later), then
/// renames `<base>.log.swap` to `<base>.log`.
fn complete_swap(
    dir: &Path,
    base: i64,
    swap_path: &Path,
    logs: &mut Vec<i64>,
    indexes: &mut Vec<(i64, std::path::PathBuf)>,
) -> Result<()> {
    let mut next_offset = base;
    let damage = segment::scan_file(swap_path, |_, b| next_offset = b.next_offset())?;
    if let Some((position, reason)) = damage {
        // Written and fsynced before the commit point: damage here is not a torn write.
        return Err(crate::StorageError::corrupt_file(
            swap_path,
            format!("at position {position}: {reason}"),
        ));
    }
    let end = next_offset.max(base + 1);
    let in_range = |b: &i64| (base..end).contains(b);
    let mut replaced: Vec<i64> = logs.iter().copied().filter(in_range).collect();
    replaced.extend(indexes.iter().map(|(b, _)| *b).filter(in_range));
    replaced.push(base);
    replaced.sort_unstable();
    replaced.dedup();
    for old in &replaced {
        for kind in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = dir.join(segment::file_name(*old, kind));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(crate::StorageError::io(&path, e))
                }
                _ => {}
            }
        }
    }
    logs.retain(|b| !in_range(b));
    indexes.retain(|(b, _)| !in_range(b));
    let target = dir.join(segment::file_name(base, LOG_SUFFIX));
    std::fs::rename(swap_path, &target).at(swap_path)?;
    File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    tracing::warn!(segment = %target.display(), replaced = replaced.len(), "completed an interrupted cleaner swap");
    logs.push(base);
    logs.sort_unstable();
    Ok(())
}

/// Scans every segment holding offsets at or after `recovery_point`; see the module doc.
fn recover_segments(
    segments: &mut BTreeMap<i64, LogSegment>,
    recovery_point: i64,
    epochs: &mut LeaderEpochCache,
) -> Result<()> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    // The segment holding the recovery point, and all after it.
    let first = bases
        .iter()
        .rposition(|&b| b <= recovery_point)
        .unwrap_or(0);
    // Not bounded by today's segment.bytes: a topic's segment.bytes may have been lowered since
    // bigger batches were written. The reader still refuses batches running past the file.
    let max_batch = u32::MAX as usize;
    let mut cut_after: Option<usize> = None;
    let mut recovered = Vec::new();
    for (i, base) in bases.iter().enumerate().skip(first) {
        recovered.push(*base);
        let Some(segment) = segments.get_mut(base) else {
            continue;
        };
        let outcome = segment.recover(max_batch, |b| {
            let epoch = b.partition_leader_epoch();
            if epoch >= 0 && epochs.latest_epoch().is_none_or(|latest| epoch > latest) {
                epochs.assign(epoch, b.base_offset())?;
            }
            Ok(())
        })?;
        if outcome.truncated_bytes > 0 {
            tracing::warn!(
                segment = %segment.log_path().display(),
                truncated_bytes = outcome.truncated_bytes,
                "recovered segment had an invalid tail; later segments are removed"
            );
            cut_after = Some(i);
            break;
        }
    }
    if let Some(i) = cut_after {
        for base in &bases[i + 1..] {
            if let Some(s) = segments.remove(base) {
                s.delete()?;
            }
        }
    }
    // Recovered segments that are not the last are closed as at a roll: closing time-index entry,
    // indexes trimmed. (The last one is made active by the caller.)
    let last = segments.keys().next_back().copied();
    for base in recovered {
        if Some(base) != last {
            if let Some(s) = segments.get_mut(&base) {
                s.on_become_inactive()?;
            }
        }
    }
    Ok(())
}

/// Replays batches from the producer state's map end offset to the LEO. Returns how many
/// batches with a producer id were applied.
pub(crate) fn replay_producer_state(log: &mut PartitionLog) -> Result<u64> {
    let from = log
        .producer_state
        .map_end_offset()
        .max(log.log_start_offset);
    let mut applied = 0u64;
    let start_base = log
        .segments
        .range(..=from)
        .next_back()
        .map_or(from, |(b, _)| *b);
    for segment in log.segments.range(start_base..).map(|(_, s)| s) {
        segment.for_each_batch_from(from, |b| {
            if b.has_producer_id() {
                log.producer_state.update_from_batch(b);
                applied += 1;
            }
            Ok(())
        })?;
    }
    log.producer_state.set_map_end_offset(log.log_end_offset);
    Ok(applied)
}
