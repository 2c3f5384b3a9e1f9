//! [`Partition`]: one partition replica hosted by this broker, leader or follower, wrapping its
//! log.
//!
//! Log calls are file I/O. Reads and the appends that only write to the page cache run in
//! place, as Kafka's request handler threads run them; appends that may fsync (a segment roll,
//! `flush.messages`) and the rarer calls (truncation) run on tokio's blocking pool
//! (`spawn_blocking`). The log's lock is only held inside those calls, never across an
//! `.await`. Two `watch` channels publish progress: the high watermark (consumers' delayed
//! fetches and acks=all produces wait on it) and the log end offset (followers' long-polling
//! fetches wait on it). Nothing polls.
//!
//! Role and leader epoch change only under the log's write lock, and appends check them under
//! the same lock, so no record is appended under an epoch this replica has already left. The
//! leader's [`IsrState`] sits behind a short mutex; lock order is that mutex, then the log.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::log_manager::{read_log, write_log};
use rivulet_storage::{
    FileSlice, LogAppendInfo, PartitionLog, SharedLog, StorageError, TopicPartition,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::PartitionImage;
use crate::replication::isr_state::{IsrProposal, IsrState, NotAReplica};

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

/// What a copying read returned ([`Partition::read`]).
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches (copied out of the segment file), possibly empty.
    pub records: Bytes,
    /// Offsets when the read happened.
    pub offsets: PartitionOffsets,
}

/// The records of a client fetch's read ([`Partition::read_slice`]).
#[derive(Debug, Clone)]
pub enum SliceRecords {
    /// Nothing to read.
    Empty,
    /// Whole batches copied into memory: a range too short to be worth a `sendfile`.
    Copied(Bytes),
    /// Whole batches as a range of a segment file, for the connection to send with `sendfile`.
    File(FileSlice),
}

/// What a client fetch's read returned ([`Partition::read_slice`]).
#[derive(Debug, Clone)]
pub struct SliceRead {
    /// The records.
    pub records: SliceRecords,
    /// Offsets when the read happened.
    pub offsets: PartitionOffsets,
}

impl SliceRead {
    /// Bytes of records read.
    pub fn len(&self) -> u64 {
        match &self.records {
            SliceRecords::Empty => 0,
            SliceRecords::Copied(b) => b.len() as u64,
            SliceRecords::File(s) => s.len,
        }
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a replication call on a partition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The log refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A Kafka error (not the leader, an epoch mismatch, too few in-sync replicas).
    #[error("{0:?}")]
    Kafka(ResponseError),
}

impl ReplicaError {
    /// The Kafka error code for a response.
    pub fn code(&self) -> ResponseError {
        match self {
            ReplicaError::Storage(e) => crate::error::storage_error_code(e),
            ReplicaError::Kafka(e) => *e,
        }
    }
}

/// How a metadata update changed this replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// It leads now, under a new leader epoch.
    BecameLeader,
    /// It follows `leader` (-1: the partition is offline) under `leader_epoch`; `changed`
    /// says whether the leader or epoch differ from before (the fetcher must truncate first).
    Follower {
        /// The leader to fetch from.
        leader: i32,
        /// The epoch to fetch under.
        leader_epoch: i32,
        /// Whether this is a new leader or epoch.
        changed: bool,
    },
    /// Still the leader under the same epoch (the ISR or replicas may have changed).
    StillLeader,
}

/// No role known yet (a partition opened before its first metadata).
const UNKNOWN_LEADER: i32 = -2;

/// A partition replica on this broker.
pub struct Partition {
    tp: TopicPartition,
    topic_id: Uuid,
    node_id: i32,
    log: SharedLog,
    leader_epoch: AtomicI32,
    leader: AtomicI32,
    min_insync_replicas: AtomicI32,
    high_watermark: watch::Sender<i64>,
    log_end: watch::Sender<i64>,
    isr: Mutex<Option<IsrState>>,
}

/// Waits until any of `watches` sees a new value, or `deadline` passes (then `false`). What
/// delayed fetches, of consumers and of followers, park on; callers mark the values seen
/// before they read, so nothing published during the read is missed.
pub async fn wait_for_any_change(
    watches: &mut [watch::Receiver<i64>],
    deadline: tokio::time::Instant,
) -> bool {
    if watches.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
    tokio::time::timeout_at(deadline, changed).await.is_ok()
}

/// The bytes of `slice` (blocking).
fn copy(slice: &FileSlice) -> Result<Bytes, StorageError> {
    slice
        .read_to_vec()
        .map(Bytes::from)
        .map_err(|e| StorageError::io("segment", e))
}

fn join_error(e: tokio::task::JoinError) -> StorageError {
    StorageError::io("<blocking task>", std::io::Error::other(e.to_string()))
}

impl Partition {
    /// Wraps an open log hosted by broker `node_id`; its role comes with the first metadata.
    pub fn new(tp: TopicPartition, topic_id: Uuid, log: SharedLog, node_id: i32) -> Self {
        let (hw, leo) = {
            let l = read_log(&log);
            (l.high_watermark(), l.log_end_offset())
        };
        Partition {
            tp,
            topic_id,
            node_id,
            log,
            leader_epoch: AtomicI32::new(-1),
            leader: AtomicI32::new(UNKNOWN_LEADER),
            min_insync_replicas: AtomicI32::new(1),
            high_watermark: watch::channel(hw).0,
            log_end: watch::channel(leo).0,
            isr: Mutex::new(None),
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

    /// The leader epoch this replica acts under.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Whether this replica is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire) == self.node_id
    }

    /// The shared log (for the replica manager's shutdown and tests).
    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    /// Sets the topic's `min.insync.replicas`.
    pub fn set_min_insync_replicas(&self, n: i32) {
        self.min_insync_replicas.store(n.max(1), Ordering::Release);
    }

    fn isr_state(&self) -> MutexGuard<'_, Option<IsrState>> {
        self.isr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The committed ISR while leading (for metrics and tests).
    pub fn isr(&self) -> Option<Vec<i32>> {
        self.isr_state().as_ref().map(|s| s.isr.clone())
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

    /// A receiver woken whenever the high watermark moves (or the role changes).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A receiver woken whenever the log end moves (or the role changes).
    pub fn watch_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    fn publish(sender: &watch::Sender<i64>, value: i64) {
        sender.send_if_modified(|current| {
            let moved = *current != value;
            *current = value;
            moved
        });
    }

    /// Wakes every waiter so it re-checks the role (after a leadership change).
    fn wake_all(&self) {
        self.high_watermark.send_modify(|_| {});
        self.log_end.send_modify(|_| {});
    }

    /// Applies the partition's committed state (blocking: may write the leader-epoch file).
    pub fn apply_metadata(
        &self,
        p: &PartitionImage,
        now_ms: i64,
    ) -> Result<RoleChange, StorageError> {
        let mut isr = self.isr_state();
        let was_leader = self.is_leader();
        let same_epoch = self.leader_epoch() == p.leader_epoch;
        if p.leader == self.node_id {
            if was_leader && same_epoch {
                if let Some(s) = isr.as_mut() {
                    s.update(p, now_ms);
                }
                drop(isr);
                self.maybe_advance_high_watermark();
                return Ok(RoleChange::StillLeader);
            }
            let leo = {
                let mut log = write_log(&self.log);
                let leo = log.log_end_offset();
                log.assign_epoch_start_offset(p.leader_epoch, leo)?;
                self.leader_epoch.store(p.leader_epoch, Ordering::Release);
                self.leader.store(self.node_id, Ordering::Release);
                leo
            };
            *isr = Some(IsrState::new(self.node_id, p, leo, now_ms));
            drop(isr);
            tracing::info!(partition = %self.tp, leader_epoch = p.leader_epoch, isr = ?p.isr, "became leader");
            self.wake_all();
            self.maybe_advance_high_watermark();
            return Ok(RoleChange::BecameLeader);
        }
        let changed = !same_epoch || self.leader.load(Ordering::Acquire) != p.leader || was_leader;
        if changed {
            let _log = write_log(&self.log);
            self.leader_epoch.store(p.leader_epoch, Ordering::Release);
            self.leader.store(p.leader, Ordering::Release);
        }
        *isr = None;
        drop(isr);
        if changed {
            if was_leader {
                tracing::info!(partition = %self.tp, leader = p.leader, leader_epoch = p.leader_epoch, "became follower");
            }
            self.wake_all();
        }
        Ok(RoleChange::Follower {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            changed,
        })
    }

    /// Checks that this replica leads under `epoch` (-1: any), as Fetch and
    /// OffsetForLeaderEpoch do with the caller's `current_leader_epoch`.
    pub fn check_leader_epoch(&self, epoch: i32) -> Result<(), ResponseError> {
        if !self.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let current = self.leader_epoch();
        match epoch {
            e if e < 0 || e == current => Ok(()),
            e if e < current => Err(ResponseError::FencedLeaderEpoch),
            _ => Err(ResponseError::UnknownLeaderEpoch),
        }
    }

    /// Moves the high watermark to the smallest log end over the ISR, if that is higher, and
    /// wakes its waiters. Returns the high watermark.
    pub fn maybe_advance_high_watermark(&self) -> i64 {
        let leo = *self.log_end.borrow();
        let candidate = match self.isr_state().as_ref() {
            Some(s) => s.high_watermark_candidate(leo),
            None => return *self.high_watermark.borrow(),
        };
        if candidate <= *self.high_watermark.borrow() {
            return *self.high_watermark.borrow();
        }
        let hw = {
            let mut log = write_log(&self.log);
            if candidate > log.high_watermark() {
                log.set_high_watermark(candidate);
            }
            log.high_watermark()
        };
        Self::publish(&self.high_watermark, hw);
        hw
    }

    /// Runs `op` on `records` under the log's write lock: in place when the log says the
    /// append only writes to the page cache (no segment roll, no flush: the common case, a few
    /// microseconds, as Kafka's request handler threads append in place), else on tokio's
    /// blocking pool, since an fsync may take long. A hop to the blocking pool costs two thread
    /// wake-ups, which at a few thousand small appends a second cost more CPU than the appends
    /// and several ms of latency on a busy machine (docs/benchmarks.md).
    async fn appending<R: Send + 'static>(
        self: &Arc<Self>,
        records: Bytes,
        now_ms: i64,
        op: impl FnOnce(&Partition, &mut PartitionLog, &[u8]) -> R + Send + 'static,
    ) -> Result<R, StorageError> {
        {
            let mut log = write_log(&self.log);
            if !log.append_may_sync(&records, now_ms) {
                return Ok(op(self, &mut log, &records));
            }
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut log = write_log(&this.log);
            op(&this, &mut log, &records)
        })
        .await
        .map_err(join_error)
    }

    /// Appends a producer's batch as leader; returns where it went and the leader epoch it was
    /// written under. With `acks=all` (`required_acks == -1`) and fewer
    /// in-sync replicas than `min.insync.replicas`, refuses with NOT_ENOUGH_REPLICAS.
    pub async fn append_as_leader(
        self: &Arc<Self>,
        records: Bytes,
        required_acks: i16,
        now_ms: i64,
    ) -> Result<(LogAppendInfo, i32), ReplicaError> {
        if required_acks == -1 {
            let isr = self.isr_state().as_ref().map_or(0, |s| s.isr.len());
            if (isr as i32) < self.min_insync_replicas.load(Ordering::Acquire) {
                return Err(ReplicaError::Kafka(ResponseError::NotEnoughReplicas));
            }
        }
        let (info, epoch, leo) = self
            .appending(records, now_ms, move |this, log, records| {
                if !this.is_leader() {
                    return Err(ReplicaError::Kafka(ResponseError::NotLeaderOrFollower));
                }
                let epoch = this.leader_epoch();
                let info = log.append_as_leader(records, epoch, now_ms)?;
                Ok((info, epoch, log.log_end_offset()))
            })
            .await??;
        Self::publish(&self.log_end, leo);
        let info = (info, epoch);
        self.maybe_advance_high_watermark();
        Ok(info)
    }

    /// Waits until the high watermark passes `last_offset` (acks=all), for at most `timeout`.
    /// Then the ISR must still hold `min.insync.replicas` (else
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND); losing leadership meanwhile is NOT_LEADER_OR_FOLLOWER
    /// and running out of time REQUEST_TIMED_OUT, as Kafka's delayed produce answers.
    pub async fn wait_for_replication(
        &self,
        last_offset: i64,
        leader_epoch: i32,
        timeout: std::time::Duration,
    ) -> Result<(), ResponseError> {
        let mut hw = self.watch_high_watermark();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reached = *hw.borrow_and_update() > last_offset;
            if !self.is_leader() || self.leader_epoch() != leader_epoch {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if reached {
                let isr = self.isr_state().as_ref().map_or(0, |s| s.isr.len());
                if (isr as i32) < self.min_insync_replicas.load(Ordering::Acquire) {
                    return Err(ResponseError::NotEnoughReplicasAfterAppend);
                }
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ResponseError::NotLeaderOrFollower),
                Err(_) => return Err(ResponseError::RequestTimedOut),
            }
        }
    }

    /// Records follower `replica`'s fetch from `fetch_offset` under `leader_epoch`, moves the
    /// high watermark, and returns the ISR to propose if the follower may now join it.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Option<IsrProposal>, ResponseError> {
        self.check_leader_epoch(leader_epoch)?;
        let leo = *self.log_end.borrow();
        if fetch_offset > leo {
            // The follower holds records this leader does not: it must truncate first, and its
            // offset must not count towards the high watermark.
            return Err(ResponseError::OffsetOutOfRange);
        }
        {
            let mut guard = self.isr_state();
            let s = guard.as_mut().ok_or(ResponseError::NotLeaderOrFollower)?;
            s.record_fetch(replica, fetch_offset, leo, now_ms)
                .map_err(|NotAReplica(_)| ResponseError::NotLeaderOrFollower)?;
        }
        let hw = self.maybe_advance_high_watermark();
        let guard = self.isr_state();
        Ok(guard.as_ref().and_then(|s| s.expansion(replica, hw)))
    }

    /// The ISR to propose without followers that fell behind for `lag_max_ms`.
    pub fn isr_shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        self.isr_state().as_ref()?.shrink(now_ms, lag_max_ms)
    }

    /// Marks `proposal` as in flight to the controller (or, with `in_flight` false, clears the
    /// mark after a refusal), provided the leader still acts under the epochs it was based on.
    pub fn set_pending_isr(&self, proposal: &IsrProposal, in_flight: bool) {
        let mut guard = self.isr_state();
        if let Some(s) = guard.as_mut() {
            if s.leader_epoch == proposal.leader_epoch
                && s.partition_epoch == proposal.partition_epoch
            {
                s.pending = in_flight.then(|| proposal.isr.clone());
            }
        }
        drop(guard);
        self.maybe_advance_high_watermark();
    }

    /// Reads whole batches from `offset`, at most `max_bytes` (at least one batch when
    /// `min_one_batch`), below the high watermark (consumers) or the log end (`to_log_end`,
    /// followers), and copies them into memory: for callers that need the bytes (replication
    /// over gRPC, the group coordinator's replay). Client fetches use [`Self::read_slice`].
    pub async fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        to_log_end: bool,
    ) -> Result<ReadResult, StorageError> {
        let (records, offsets) =
            self.read_in_place(offset, max_bytes, min_one_batch, to_log_end)?;
        let records = match records {
            Some(s) => copy(&s)?,
            None => Bytes::new(),
        };
        Ok(ReadResult { records, offsets })
    }

    /// [`Self::read`] for client fetches, without the copy: the batches as a range of their
    /// segment file, which stays readable even if the segment is deleted meanwhile, for the
    /// connection to send with `sendfile`. A range shorter than `copy_below` bytes is copied
    /// instead (cheaper than a `sendfile` of its own: see the fetch handler).
    pub async fn read_slice(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        to_log_end: bool,
        copy_below: u64,
    ) -> Result<SliceRead, StorageError> {
        let (records, offsets) =
            self.read_in_place(offset, max_bytes, min_one_batch, to_log_end)?;
        let records = match records {
            None => SliceRecords::Empty,
            Some(s) if s.len < copy_below => SliceRecords::Copied(copy(&s)?),
            Some(s) => SliceRecords::File(s),
        };
        Ok(SliceRead { records, offsets })
    }

    /// In place: an index lookup and batch-header reads, from the page cache when the reader
    /// keeps up (a cold read waits for the disk here, as in Kafka's handler threads).
    fn read_in_place(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        to_log_end: bool,
    ) -> Result<(Option<FileSlice>, PartitionOffsets), StorageError> {
        let log = read_log(&self.log);
        let offsets = PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            log_end_offset: log.log_end_offset(),
        };
        let upper = if to_log_end {
            offsets.log_end_offset
        } else {
            offsets.high_watermark
        };
        let records = log
            .read(offset, max_bytes, upper, min_one_batch)?
            .filter(|s| s.len > 0);
        Ok((records, offsets))
    }

    /// Appends batches fetched from the leader under `leader_epoch`, then takes the leader's
    /// high watermark (capped at the local log end). Refused if this replica no longer
    /// follows under that epoch.
    pub async fn append_as_follower(
        self: &Arc<Self>,
        records: Bytes,
        leader_epoch: i32,
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<PartitionOffsets, ReplicaError> {
        let offsets = self
            .appending(records, now_ms, move |this, log, records| {
                if this.is_leader() || this.leader_epoch() != leader_epoch {
                    return Err(ReplicaError::Kafka(ResponseError::FencedLeaderEpoch));
                }
                if !records.is_empty() {
                    log.append_as_follower(records, now_ms)?;
                }
                let hw = leader_high_watermark.min(log.log_end_offset());
                if hw > log.high_watermark() {
                    log.set_high_watermark(hw);
                }
                Ok(PartitionOffsets {
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    log_end_offset: log.log_end_offset(),
                })
            })
            .await??;
        Self::publish(&self.log_end, offsets.log_end_offset);
        Self::publish(&self.high_watermark, offsets.high_watermark);
        Ok(offsets)
    }

    /// Truncates the follower's log to end at `offset` (what diverged from the leader), or, when
    /// `offset` is below the log start, empties it to start at `offset`.
    pub async fn truncate_to(
        self: &Arc<Self>,
        offset: i64,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        let this = Arc::clone(self);
        let (leo, hw) = tokio::task::spawn_blocking(move || {
            let mut log = write_log(&this.log);
            if this.is_leader() {
                return Ok((log.log_end_offset(), log.high_watermark()));
            }
            log.truncate_to(offset, now_ms)?;
            Ok::<_, StorageError>((log.log_end_offset(), log.high_watermark()))
        })
        .await
        .map_err(join_error)??;
        self.log_end.send_replace(leo);
        self.high_watermark.send_replace(hw);
        Ok(leo)
    }

    /// Empties the follower's log to start at `offset` (it is behind the leader's log start).
    pub async fn truncate_fully_and_start_at(
        self: &Arc<Self>,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut log = write_log(&this.log);
            if this.is_leader() {
                return Ok(());
            }
            log.truncate_fully_and_start_at(offset, now_ms)
        })
        .await
        .map_err(join_error)??;
        self.log_end.send_replace(offset);
        self.high_watermark.send_replace(offset);
        Ok(())
    }

    /// The epoch and end offset of `epoch` in this replica's log (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        read_log(&self.log).end_offset_for_epoch(epoch)
    }

    /// The latest leader epoch in this replica's log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        read_log(&self.log).leader_epoch_cache().latest_epoch()
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
