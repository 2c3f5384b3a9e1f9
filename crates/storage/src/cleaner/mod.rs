//! The log cleaner: compaction of logs whose `cleanup.policy` includes `compact` (Kafka's
//! `LogCleaner`, `LogCleanerManager` and `Cleaner`).
//!
//! For every key, compaction keeps only the record with the highest offset. Records keep their
//! offsets, so a compacted log has gaps. A round ([`LogCleaner::clean_once`]):
//!
//! 1. picks the filthiest due log ([`cleanable`]): dirty ratio at least
//!    `min.cleanable.dirty.ratio`, or dirty data older than `max.compaction.lag.ms`; failing
//!    that, a log whose tombstones' delete horizon has passed;
//! 2. cleans it ([`compactor`]): offset map of the dirty section ([`offset_map`]), every segment
//!    from the log start to the end of the map rewritten ([`batch_filter`]) and swapped in
//!    ([`swap`]);
//! 3. records the new first dirty offset in the log dir's `cleaner-offset-checkpoint` (Kafka's
//!    text format, `topic partition offset` lines; see [`crate::checkpoint`]).
//!
//! Never cleaned: the active segment, segments reaching past the high watermark, segments with
//! records younger than `min.compaction.lag.ms`. Tombstones are kept for `delete.retention.ms`
//! from the clean that first kept them (the batch's delete horizon, KIP-534), then removed.
//!
//! Thread safety: [`LogCleaner`] is shared by the cleaner threads (`log.cleaner.threads`); a
//! log is cleaned by one of them at a time. A clean holds a log's lock only to snapshot it and
//! to swap segments and update its checkpoint; reading and rewriting segments happens without
//! it, so appends and fetches never wait for a clean. All of it is blocking file I/O: run it on
//! a dedicated thread.

pub mod batch_filter;
pub mod cleanable;
pub mod compactor;
pub mod offset_map;
pub mod swap;

use std::collections::HashSet;
use std::sync::Mutex;

use crate::log_manager::{read_log, LogManager, SharedLog};
use crate::{Result, TopicPartition};

pub use cleanable::{LogSnapshot, LogToClean};
pub use compactor::CleanStats;
pub use offset_map::OffsetMap;

/// The cleaner's broker-level settings, under Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.threads` (1): cleaner threads.
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size` (128 MiB): memory for the offset maps of all threads.
    pub dedupe_buffer_size: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            threads: 1,
            dedupe_buffer_size: 128 << 20,
        }
    }
}

/// The log cleaner: chooses logs and cleans them, one per call, on the caller's thread.
#[derive(Debug)]
pub struct LogCleaner {
    config: CleanerConfig,
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Logs whose clean failed (damaged data, I/O): skipped from then on, so one bad log does
    /// not stop the others from being cleaned (Kafka's uncleanable partitions).
    uncleanable: Mutex<HashSet<TopicPartition>>,
}

/// What a round cleaned.
#[derive(Debug, Clone)]
pub struct CleanedLog {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// Its dirty ratio before the clean.
    pub dirty_ratio: f64,
    /// What the clean did.
    pub stats: CleanStats,
}

/// Releases a log's in-progress mark.
struct InProgress<'a> {
    set: &'a Mutex<HashSet<TopicPartition>>,
    tp: TopicPartition,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.tp);
    }
}

impl LogCleaner {
    /// A cleaner with `config`.
    pub fn new(config: CleanerConfig) -> Self {
        LogCleaner {
            config,
            in_progress: Mutex::new(HashSet::new()),
            uncleanable: Mutex::new(HashSet::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &CleanerConfig {
        &self.config
    }

    /// Memory for one thread's offset map.
    fn map_memory(&self) -> usize {
        self.config.dedupe_buffer_size / self.config.threads.max(1)
    }

    /// Picks the filthiest due compacted log of `logs` not being cleaned by another thread, and
    /// marks it in progress.
    fn grab_filthiest<'a>(
        &'a self,
        logs: &LogManager,
        now_ms: i64,
    ) -> Result<Option<(SharedLog, LogSnapshot, LogToClean, InProgress<'a>)>> {
        let mut busy = self
            .in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        busy.extend(
            self.uncleanable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        let mut best: Option<(f64, SharedLog, LogSnapshot, LogToClean)> = None;
        let mut expired: Option<(SharedLog, LogSnapshot, LogToClean)> = None;
        for (_, shared) in logs.snapshot() {
            let snap = {
                let log = read_log(&shared);
                if !log.config.cleanup_policy.compact || busy.contains(&log.topic_partition) {
                    continue;
                }
                LogSnapshot::take(&log)?
            };
            let to_clean = cleanable::cleanable(&snap, now_ms);
            if to_clean.is_due(snap.config.min_cleanable_dirty_ratio) {
                let ratio = to_clean.dirty_ratio();
                if best.as_ref().is_none_or(|(r, ..)| ratio > *r) {
                    best = Some((ratio, shared, snap, to_clean));
                }
            } else if expired.is_none() && snap.latest_delete_horizon.is_some_and(|h| h <= now_ms) {
                expired = Some((shared, snap, to_clean));
            }
        }
        let chosen = best.map(|(_, l, s, c)| (l, s, c)).or(expired);
        let Some((shared, snap, to_clean)) = chosen else {
            return Ok(None);
        };
        let tp = snap.topic_partition.clone();
        if !self
            .in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tp.clone())
        {
            return Ok(None); // Another thread took it meanwhile.
        }
        let guard = InProgress {
            set: &self.in_progress,
            tp,
        };
        Ok(Some((shared, snap, to_clean, guard)))
    }

    /// One round: cleans the filthiest due log of `logs`, if any, and checkpoints its new first
    /// dirty offset. A log whose clean fails is marked uncleanable and skipped from then on. `should_stop` is polled between batches (shutdown). `Ok(None)` when no log
    /// was due: the caller backs off (`log.cleaner.backoff.ms`).
    pub fn clean_once(
        &self,
        logs: &LogManager,
        now_ms: i64,
        should_stop: &dyn Fn() -> bool,
    ) -> Result<Option<CleanedLog>> {
        let Some((shared, snap, to_clean, _guard)) = self.grab_filthiest(logs, now_ms)? else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        // A fresh map per round: its table grows to what this log's keys need, no further.
        let mut map = OffsetMap::with_memory(self.map_memory());
        let result = compactor::clean_log(&shared, &snap, &to_clean, &mut map, now_ms, should_stop);
        drop(map);
        let stats = match result {
            Ok(stats) => stats,
            // Truncated, deleted or shrunk by retention under the clean: what it read is
            // stale, which can look like damage. Not an error: the next round starts over.
            Err(e) if read_log(&shared).generation != snap.generation => {
                tracing::info!(partition = %snap.topic_partition, error = %e, "log changed during cleaning; abandoned");
                CleanStats {
                    abandoned: true,
                    ..CleanStats::default()
                }
            }
            Err(e) => return Err(e),
        };
        if !stats.abandoned {
            logs.write_cleaner_checkpoints()?;
        }
        tracing::info!(
            partition = %snap.topic_partition,
            dirty_ratio = to_clean.dirty_ratio(),
            read_bytes = stats.bytes_read,
            written_bytes = stats.bytes_written,
            removed_records = stats.records_removed,
            segments_replaced = stats.segments_replaced,
            end_offset = stats.end_offset,
            abandoned = stats.abandoned,
            took_ms = started.elapsed().as_millis() as u64,
            "log cleaned"
        );
        Ok(Some(CleanedLog {
            topic_partition: snap.topic_partition,
            dirty_ratio: to_clean.dirty_ratio(),
            stats,
        }))
    }
}

#[cfg(test)]
mod tests;
