//! [`Shard`]: the coordinator of the groups of one `__consumer_offsets` partition this broker
//! leads. One task per led partition owns those groups; requests reach it as [`Command`]s on a
//! channel and get their answers on oneshot channels, so no lock guards group state.
//!
//! On start the shard loads the partition from its log (the leader's whole log: a new leader's
//! records beyond its high watermark are committed under its leadership). Every change that
//! must survive a failover is appended as a record and answered only once replicated
//! (`acks=all`, within `offsets.commit.timeout.ms`): the append happens in the task, in
//! command order; the wait for the high watermark runs on its own task, which sends a
//! [`Written`] back. The timers (session expiry, join and sync deadlines, a new group's
//! initial delay) sit in one `DelayQueue` per shard, not a sleeping task per member.
//!
//! The shard stops when the broker stops leading the partition (or the leader epoch changes):
//! parked JoinGroup and SyncGroup calls then fail with NOT_COORDINATOR (their reply channels
//! close) and the clients find the new coordinator.

mod membership;
mod offsets;

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;

use super::api::*;
use super::group::Group;
use super::records::{self, KeyValue, LoadedRecord};
use super::GroupConfig;
use crate::now_ms;
use crate::partition::{Partition, ReplicaError};

/// A request to a shard.
#[derive(Debug)]
pub enum Command {
    /// JoinGroup.
    Join(JoinRequest, oneshot::Sender<JoinResponse>),
    /// SyncGroup.
    Sync(SyncRequest, oneshot::Sender<SyncResponse>),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest, oneshot::Sender<Option<ResponseError>>),
    /// LeaveGroup.
    Leave(String, Vec<LeavingMember>, oneshot::Sender<LeaveResponse>),
    /// OffsetCommit.
    Commit(CommitRequest, oneshot::Sender<Vec<PartitionResult>>),
    /// OffsetFetch of some partitions, or of all (`None`).
    FetchOffsets(
        String,
        Option<Vec<(String, i32)>>,
        oneshot::Sender<Vec<FetchedOffset>>,
    ),
    /// DescribeGroups of one group.
    Describe(String, oneshot::Sender<DescribedGroup>),
    /// ListGroups.
    List(oneshot::Sender<Vec<ListedGroup>>),
    /// DeleteGroups of one group.
    Delete(String, oneshot::Sender<Option<ResponseError>>),
    /// OffsetDelete.
    DeleteOffsets(
        String,
        Vec<(String, i32)>,
        oneshot::Sender<Result<Vec<PartitionResult>, ResponseError>>,
    ),
}

/// The shard's handle, held by the [`super::GroupCoordinator`].
#[derive(Debug, Clone)]
pub struct ShardHandle {
    /// The leader epoch the shard serves under.
    pub leader_epoch: i32,
    /// Where commands go.
    pub commands: mpsc::Sender<Command>,
    /// Set once the partition is loaded (before that: COORDINATOR_LOAD_IN_PROGRESS).
    pub loaded: Arc<AtomicBool>,
    /// Stops the shard.
    pub stop: CancellationToken,
}

/// What to do once a write is replicated (or has failed).
#[derive(Debug)]
enum AfterWrite {
    /// Nothing to answer (a group turning Empty, expired offsets).
    Nothing,
    /// Materialize committed offsets and answer the OffsetCommit.
    Commit {
        group: String,
        offsets: Vec<OffsetToCommit>,
        rejected: Vec<PartitionResult>,
        commit_timestamp: i64,
        reply: oneshot::Sender<Vec<PartitionResult>>,
    },
    /// The leader's assignment: the group becomes Stable.
    Sync {
        group: String,
        generation: i32,
        assignments: HashMap<String, Bytes>,
    },
    /// A static member's new id is stored: answer its JoinGroup.
    StaticRejoin {
        reply: oneshot::Sender<JoinResponse>,
        response: JoinResponse,
    },
    /// A group's tombstones are written: it is gone.
    Delete {
        group: String,
        reply: oneshot::Sender<Option<ResponseError>>,
    },
    /// Offset tombstones are written.
    DeleteOffsets {
        group: String,
        deleted: Vec<(String, i32)>,
        results: Vec<PartitionResult>,
        reply: oneshot::Sender<Result<Vec<PartitionResult>, ResponseError>>,
    },
}

/// A write's outcome, sent back to the shard task.
#[derive(Debug)]
struct Written {
    /// Offset of the first record written.
    first_offset: i64,
    result: Result<(), ResponseError>,
    then: AfterWrite,
}

/// A timer in the shard's `DelayQueue`. Each is checked against the state when it fires, so a
/// stale one does nothing.
#[derive(Debug, Clone)]
enum Timer {
    /// A member's session may have expired.
    Session { group: String, member: String },
    /// A MEMBER_ID_REQUIRED member may not have come back.
    Pending { group: String, member: String },
    /// A join phase's deadline (or a new group's initial delay).
    Join { group: String, phase: u64 },
    /// A generation's deadline for every member's SyncGroup.
    Sync { group: String, generation: i32 },
}

/// The groups of one `__consumer_offsets` partition.
pub struct Shard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    config: Arc<GroupConfig>,
    groups: HashMap<String, Group>,
    timers: DelayQueue<Timer>,
    next_phase: u64,
    written_tx: mpsc::UnboundedSender<Written>,
}

impl Shard {
    /// Starts the shard of `partition` (led here under `leader_epoch`): loads it, then serves.
    pub fn spawn(
        partition: Arc<Partition>,
        leader_epoch: i32,
        config: Arc<GroupConfig>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> ShardHandle {
        let (tx, rx) = mpsc::channel(1024);
        let loaded = Arc::new(AtomicBool::new(false));
        let (written_tx, written_rx) = mpsc::unbounded_channel();
        let shard = Shard {
            partition,
            leader_epoch,
            config,
            groups: HashMap::new(),
            timers: DelayQueue::new(),
            next_phase: 0,
            written_tx,
        };
        tasks.spawn(shard.run(rx, written_rx, Arc::clone(&loaded), stop.clone()));
        ShardHandle {
            leader_epoch,
            commands: tx,
            loaded,
            stop,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut written: mpsc::UnboundedReceiver<Written>,
        loaded: Arc<AtomicBool>,
        stop: CancellationToken,
    ) {
        let tp = self.partition.topic_partition().clone();
        let started = std::time::Instant::now();
        let load = tokio::select! {
            _ = stop.cancelled() => return,
            l = self.load() => l,
        };
        match load {
            Ok(0) => {
                tracing::debug!(partition = %tp, leader_epoch = self.leader_epoch, "group coordinator started")
            }
            Ok(records) => tracing::info!(
                partition = %tp,
                leader_epoch = self.leader_epoch,
                groups = self.groups.len(),
                records,
                took_ms = started.elapsed().as_millis() as u64,
                "group coordinator loaded"
            ),
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "cannot load the groups; not coordinating them");
                return;
            }
        }
        loaded.store(true, Ordering::Release);
        let mut expiry = tokio::time::interval(self.config.offsets_retention_check_interval);
        expiry.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(w) = written.recv() => self.on_written(w).await,
                Some(t) = poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    self.on_timer(t.into_inner()).await;
                }
                _ = expiry.tick() => self.expire_offsets().await,
            }
        }
        tracing::debug!(partition = %tp, leader_epoch = self.leader_epoch, "group coordinator unloaded");
    }

    /// Replays the partition from its start to its log end.
    async fn load(&mut self) -> Result<u64, String> {
        let end = self.partition.offsets().log_end_offset;
        let mut offset = self.partition.offsets().log_start_offset;
        let now = Instant::now();
        let mut count = 0u64;
        let mut groups: HashMap<String, Group> = HashMap::new();
        while offset < end {
            let read = self
                .partition
                .read(offset, 4 << 20, true, true)
                .await
                .map_err(|e| e.to_string())?;
            let next = records::decode_batches(&read.records, |at, record| {
                count += 1;
                apply_loaded(&mut groups, at, record, now);
            })
            .map_err(|e| e.to_string())?;
            match next {
                Some(n) if n > offset => offset = n,
                _ => break,
            }
        }
        // A group record with members restores them as Stable; their sessions run from now.
        for group in groups.values() {
            for member in group.members.keys() {
                self.timers.insert(
                    Timer::Session {
                        group: group.id.clone(),
                        member: member.clone(),
                    },
                    Duration::from_millis(group.members[member].session_timeout_ms.max(0) as u64),
                );
            }
        }
        groups.retain(|_, g| !g.members.is_empty() || !g.offsets.is_empty() || g.generation > 0);
        self.groups = groups;
        Ok(count)
    }

    async fn handle(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join(req, reply) => self.join(req, reply, now).await,
            Command::Sync(req, reply) => self.sync(req, reply, now).await,
            Command::Heartbeat(req, reply) => {
                let _ = reply.send(self.heartbeat(&req, now));
            }
            Command::Leave(group, members, reply) => {
                let response = self.leave(&group, members, now).await;
                let _ = reply.send(response);
            }
            Command::Commit(req, reply) => self.commit(req, reply, now).await,
            Command::FetchOffsets(group, partitions, reply) => {
                let _ = reply.send(self.fetch_offsets(&group, partitions));
            }
            Command::Describe(group, reply) => {
                let _ = reply.send(self.describe(&group));
            }
            Command::List(reply) => {
                let _ = reply.send(self.list());
            }
            Command::Delete(group, reply) => self.delete_group(group, reply).await,
            Command::DeleteOffsets(group, partitions, reply) => {
                self.delete_offsets(group, partitions, reply).await
            }
        }
    }

    /// Appends `records` and arranges for `then` once they are replicated; a refused append
    /// completes `then` at once with the error.
    async fn write(&mut self, records: Vec<KeyValue>, then: AfterWrite) {
        let batch = match records::encode_batch(&records, now_ms()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a group coordinator batch");
                let w = Written {
                    first_offset: -1,
                    result: Err(ResponseError::UnknownServerError),
                    then,
                };
                return Box::pin(self.on_written(w)).await;
            }
        };
        if self.partition.leader_epoch() != self.leader_epoch {
            let w = Written {
                first_offset: -1,
                result: Err(ResponseError::NotCoordinator),
                then,
            };
            return Box::pin(self.on_written(w)).await;
        }
        match self.partition.append_as_leader(batch, -1, now_ms()).await {
            Ok((info, epoch)) => {
                let partition = Arc::clone(&self.partition);
                let timeout = self.config.offsets_commit_timeout;
                let done = self.written_tx.clone();
                tokio::spawn(async move {
                    let result = partition
                        .wait_for_replication(info.last_offset, epoch, timeout)
                        .await
                        .map_err(coordinator_error);
                    let _ = done.send(Written {
                        first_offset: info.first_offset,
                        result,
                        then,
                    });
                });
            }
            Err(e) => {
                let code = match e {
                    ReplicaError::Kafka(k) => coordinator_error(k),
                    ReplicaError::Storage(s) => {
                        tracing::warn!(error = %s, "group coordinator append failed");
                        coordinator_error(crate::error::storage_error_code(&s))
                    }
                };
                let w = Written {
                    first_offset: -1,
                    result: Err(code),
                    then,
                };
                Box::pin(self.on_written(w)).await
            }
        }
    }

    async fn on_written(&mut self, w: Written) {
        match w.then {
            AfterWrite::Nothing => {
                if let Err(e) = w.result {
                    tracing::warn!(error = ?e, "a group coordinator write failed");
                }
            }
            AfterWrite::Commit {
                group,
                offsets,
                rejected,
                commit_timestamp,
                reply,
            } => {
                let results = self.on_commit_written(
                    &group,
                    offsets,
                    rejected,
                    commit_timestamp,
                    w.first_offset,
                    w.result,
                );
                let _ = reply.send(results);
            }
            AfterWrite::Sync {
                group,
                generation,
                assignments,
            } => {
                self.on_sync_written(&group, generation, assignments, w.result)
                    .await
            }
            AfterWrite::StaticRejoin {
                reply,
                mut response,
            } => {
                if let Err(e) = w.result {
                    response = JoinResponse::error(e, &response.member_id);
                }
                let _ = reply.send(response);
            }
            AfterWrite::Delete { group, reply } => {
                let result = match w.result {
                    Ok(()) => {
                        self.groups.remove(&group);
                        None
                    }
                    Err(e) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.transition(super::group::GroupState::Empty, now_ms());
                        }
                        Some(e)
                    }
                };
                let _ = reply.send(result);
            }
            AfterWrite::DeleteOffsets {
                group,
                deleted,
                results,
                reply,
            } => {
                let outcome = match w.result {
                    Ok(()) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            for key in &deleted {
                                g.offsets.remove(key);
                            }
                        }
                        Ok(results)
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(outcome);
            }
        }
    }

    fn schedule(&mut self, timer: Timer, after: Duration) {
        self.timers.insert(timer, after);
    }
}

/// Applies one loaded record to the groups being rebuilt.
fn apply_loaded(groups: &mut HashMap<String, Group>, at: i64, record: LoadedRecord, now: Instant) {
    match record {
        LoadedRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group, now_ms()));
            match value {
                Some(v) => {
                    g.offsets.insert(
                        (topic, partition),
                        super::group::CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                            log_offset: at,
                        },
                    );
                }
                None => {
                    g.offsets.remove(&(topic, partition));
                }
            }
        }
        LoadedRecord::Group { group, value } => match value {
            Some(v) => groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group, now_ms()))
                .load_record(v, now),
            None => {
                // A deleted group: its offsets were deleted with it (tombstones before this).
                if let Some(g) = groups.get_mut(&group) {
                    let offsets = std::mem::take(&mut g.offsets);
                    *g = Group::new(group, now_ms());
                    g.offsets = offsets;
                }
            }
        },
    }
}

/// The error a group API reports for a failed write to `__consumer_offsets` (Kafka's
/// `GroupMetadataManager` mapping).
fn coordinator_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower
        | ResponseError::KafkaStorageError
        | ResponseError::FencedLeaderEpoch => ResponseError::NotCoordinator,
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        other => other,
    }
}
