//! Putting a cleaned segment in place of the segments it was made from, crash-safely (Kafka's
//! `LocalLog.replaceSegments`).
//!
//! Under the log's write lock, and only if the log still holds exactly the segments the cleaner
//! read (same base offsets, same open files, same sizes, no truncation or retention since):
//!
//! ```text
//! <B>.index.cleaned, <B>.timeindex.cleaned, <B>.log.cleaned   written and fsynced, no lock
//!   -> rename each to .swap, the .log last; fsync the dir         commit point
//!   -> delete the old segments' files (<B>.log, <B2>.log, ...)
//!   -> rename the .swap files to <B>.log, <B>.index, <B>.timeindex; fsync the dir
//! ```
//!
//! A crash before the commit point leaves `.cleaned` files, which the loader deletes: the old
//! segments are intact. A crash after it leaves `<B>.log.swap`, and the loader finishes the job
//! (deletes the segments the swap file covers, renames it). Either way the log is the old one or
//! the new one, never a mix.
//!
//! Readers holding a [`crate::FileSlice`] of an old segment keep reading it: the file is
//! unlinked, not truncated, and stays readable through the open handle until dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cleaner::cleanable::{LogSnapshot, SegmentSnapshot};
use crate::error::IoContext;
use crate::log_manager::{write_log, SharedLog};
use crate::segment::{
    file_name, LogSegment, CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::Result;

/// Whether the swap happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The cleaned segment replaced the group.
    Swapped,
    /// The log changed since the snapshot; the cleaned files were deleted.
    Abandoned,
}

fn path(dir: &Path, base: i64, kind: &str, suffix: &str) -> PathBuf {
    dir.join(file_name(base, kind) + suffix)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces the segments of `group` in `shared` by `cleaned` (a closed, fsynced segment written
/// with [`CLEANED_SUFFIX`] at the group's first base offset); see the module doc.
pub fn replace_segments(
    shared: &SharedLog,
    snap: &LogSnapshot,
    group: &[SegmentSnapshot],
    cleaned: LogSegment,
    now_ms: i64,
) -> Result<SwapOutcome> {
    let Some(base) = group.first().map(|s| s.base_offset) else {
        cleaned.delete()?;
        return Ok(SwapOutcome::Abandoned);
    };
    let dir = snap.dir.as_path();
    let mut log = write_log(shared);
    let unchanged = log.generation == snap.generation
        && group.iter().all(|s| {
            log.segments
                .get(&s.base_offset)
                .is_some_and(|seg| seg.size() == s.size && Arc::ptr_eq(&seg.file_handle(), &s.file))
                && log
                    .segments
                    .range(s.base_offset + 1..)
                    .next()
                    .map(|(b, _)| *b)
                    == Some(s.next_base)
        });
    if !unchanged {
        drop(log);
        tracing::info!(partition = %snap.topic_partition, base, "log changed during cleaning; abandoning this clean");
        cleaned.delete()?;
        return Ok(SwapOutcome::Abandoned);
    }
    // Close the cleaned segment's maps and file before renaming its files.
    drop(cleaned);
    for kind in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        let from = path(dir, base, kind, CLEANED_SUFFIX);
        std::fs::rename(&from, path(dir, base, kind, SWAP_SUFFIX)).at(&from)?;
    }
    sync_dir(dir)?;
    // Committed: from here a crash is completed by the loader.
    for s in group {
        if let Some(old) = log.segments.remove(&s.base_offset) {
            old.delete()?;
        }
    }
    for kind in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        let from = path(dir, base, kind, SWAP_SUFFIX);
        std::fs::rename(&from, path(dir, base, kind, "")).at(&from)?;
    }
    sync_dir(dir)?;
    let segment = LogSegment::open(dir, base, &log.config, now_ms)?;
    log.segments.insert(base, segment);
    tracing::debug!(partition = %snap.topic_partition, base, replaced = group.len(), "swapped in cleaned segment");
    Ok(SwapOutcome::Swapped)
}
