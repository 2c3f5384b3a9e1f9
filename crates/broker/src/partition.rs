//! [`Partition`]: one partition replica hosted by this broker, wrapping its log.
//!
//! Log calls are blocking file I/O, so they run on tokio's blocking pool
//! (`spawn_blocking`); the log's lock is only held inside those calls. The high watermark is
//! published on a `watch` channel: fetches waiting for data (delayed fetches) wake the moment it
//! moves, instead of polling.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rivulet_storage::log_manager::{read_log, write_log};
use rivulet_storage::{LogAppendInfo, SharedLog, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

/// Offsets of a partition at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset in the log.
    pub log_start_offset: i64,
    /// High watermark: what consumers may read.
    pub high_watermark: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches (copied out of the segment file), possibly empty.
    pub records: Bytes,
    /// Offsets when the read happened.
    pub offsets: PartitionOffsets,
}

/// A partition replica on this broker.
pub struct Partition {
    tp: TopicPartition,
    topic_id: Uuid,
    log: SharedLog,
    leader_epoch: AtomicI32,
    high_watermark: watch::Sender<i64>,
}

fn join_error(e: tokio::task::JoinError) -> StorageError {
    StorageError::io("<blocking task>", std::io::Error::other(e.to_string()))
}

impl Partition {
    /// Wraps an open log.
    pub fn new(tp: TopicPartition, topic_id: Uuid, log: SharedLog, leader_epoch: i32) -> Self {
        let hw = read_log(&log).high_watermark();
        Partition {
            tp,
            topic_id,
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: watch::channel(hw).0,
        }
    }

    /// Topic and partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The topic id the partition was created under.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// The leader epoch this replica knows.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Updates the leader epoch from new metadata.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    /// The shared log (for the replica manager's shutdown and tests).
    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    /// Current offsets (takes the log's read lock briefly).
    pub fn offsets(&self) -> PartitionOffsets {
        let log = read_log(&self.log);
        PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            log_end_offset: log.log_end_offset(),
        }
    }

    /// A receiver woken whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Sets the high watermark to the log end and wakes waiting fetches (a leader with no other
    /// replica in sync).
    pub fn advance_high_watermark_to_log_end(&self) {
        let leo = {
            let mut log = write_log(&self.log);
            let leo = log.log_end_offset();
            log.set_high_watermark(leo);
            leo
        };
        self.publish_high_watermark(leo);
    }

    fn publish_high_watermark(&self, hw: i64) {
        self.high_watermark.send_if_modified(|current| {
            let moved = *current != hw;
            *current = hw;
            moved
        });
    }

    /// Appends a producer's batch as leader. With a single replica the high watermark follows
    /// the log end at once; replication will move it instead.
    pub async fn append_as_leader(
        self: &Arc<Self>,
        records: Bytes,
        now_ms: i64,
    ) -> Result<LogAppendInfo, StorageError> {
        let this = Arc::clone(self);
        let epoch = self.leader_epoch();
        tokio::task::spawn_blocking(move || {
            let mut log = write_log(&this.log);
            let info = log.append_as_leader(&records, epoch, now_ms)?;
            let leo = log.log_end_offset();
            log.set_high_watermark(leo);
            drop(log);
            this.publish_high_watermark(leo);
            Ok(info)
        })
        .await
        .map_err(join_error)?
    }

    /// Reads whole batches from `offset`, at most `max_bytes` (at least one batch when
    /// `min_one_batch`), below the high watermark.
    pub async fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let log = read_log(&this.log);
            let offsets = PartitionOffsets {
                log_start_offset: log.log_start_offset(),
                high_watermark: log.high_watermark(),
                log_end_offset: log.log_end_offset(),
            };
            let slice = log.read(offset, max_bytes, offsets.high_watermark, min_one_batch)?;
            drop(log);
            let records = match slice {
                Some(s) if s.len > 0 => Bytes::from(
                    s.read_to_vec()
                        .map_err(|e| StorageError::io("segment", e))?,
                ),
                _ => Bytes::new(),
            };
            Ok(ReadResult { records, offsets })
        })
        .await
        .map_err(join_error)?
    }

    /// Runs `f` on the log under its read lock, on a blocking thread.
    pub async fn with_log<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rivulet_storage::PartitionLog) -> R + Send + 'static,
    ) -> Result<R, StorageError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&read_log(&this.log)))
            .await
            .map_err(join_error)
    }
}
