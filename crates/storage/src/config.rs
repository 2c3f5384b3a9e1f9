//! [`LogConfig`]: the per-topic settings the log obeys, under Kafka's names and defaults.
//!
//! The broker builds one from broker defaults (`log.segment.bytes`, `log.retention.ms`, ...)
//! overridden by topic configs (`segment.bytes`, `retention.ms`, ...); this crate only reads it.
//! `cleanup.policy` decides who removes data: retention deletes whole segments (`delete`), the
//! log cleaner keeps the latest record per key (`compact`, see [`crate::cleaner`]), or both.

use crate::batch::TimestampType;

/// `cleanup.policy`: what removes old data from a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// `delete`: whole segments are removed by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// `compact`: the log cleaner keeps only the latest record of each key.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    /// Kafka's default, `delete`.
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

/// Settings of one partition log. Field docs give the Kafka topic config key and its default.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` (1 GiB): roll when the active segment would pass this size.
    pub segment_bytes: u64,
    /// `segment.ms` (7 days): roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes` (10 MiB): preallocated size of each index; a full index rolls.
    pub segment_index_bytes: usize,
    /// `index.interval.bytes` (4096): bytes appended between offset-index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms` (7 days; -1 keeps forever): delete segments whose newest record is older.
    pub retention_ms: i64,
    /// `retention.bytes` (-1, unlimited): delete the oldest segments while the log is larger.
    pub retention_bytes: i64,
    /// `flush.messages` (`i64::MAX`: leave it to the OS): fsync after this many messages.
    pub flush_messages: i64,
    /// `flush.ms` (`i64::MAX`): fsync when the last one is this old.
    pub flush_ms: i64,
    /// `max.message.bytes` (1048588): largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type` (CreateTime): keep the producer's timestamps or stamp batches
    /// with the append time.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` (`i64::MAX`): how far in the past a CreateTime
    /// timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (`i64::MAX`): how far in the future it may be.
    pub message_timestamp_after_max_ms: i64,
    /// `producer.id.expiration.ms` (1 day, a broker setting): forget idle idempotent producers.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` (delete): retention, compaction, or both.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms` (1 day): how long compaction keeps a tombstone after the cleaner
    /// first kept it (the batch's delete horizon, KIP-534).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms` (0): records newer than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (`i64::MAX`): a dirty record older than this makes the log
    /// eligible for cleaning whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio` (0.5): clean when dirty bytes / cleanable bytes reaches this.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}
