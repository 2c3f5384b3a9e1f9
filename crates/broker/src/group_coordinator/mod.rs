//! The group coordinator: classic consumer groups (membership, rebalancing, static members)
//! and their committed offsets, stored in the internal, replicated, compacted topic
//! `__consumer_offsets`.
//!
//! Group `G` belongs to partition `Utils.abs(javaHashCode(G)) % partitions` of `__consumer_offsets`
//! (Kafka's formula, so a group maps to the same partition number as in Kafka), and its
//! coordinator is that partition's leader. For each partition this broker leads, a
//! [`shard::Shard`] task owns the partition's groups; [`GroupCoordinator`] is the narrow handle
//! the request handlers use: it routes a request to the right shard and answers
//! NOT_COORDINATOR for groups led elsewhere and COORDINATOR_LOAD_IN_PROGRESS while a shard
//! replays its partition. After every metadata change, [`GroupCoordinator::sync`] starts the
//! shards of partitions that became led here and stops the others; a new leader rebuilds the
//! groups from the log, so a broker failure loses no committed offset.
//!
//! ```text
//!  handlers/{join_group,sync_group,offset_commit,...}.rs
//!        |  GroupCoordinator::join(..)      (route by group id)
//!        v
//!  Shard task of __consumer_offsets-p  --append + wait for HW-->  Partition (leader)
//!        ^ commands (mpsc), answers (oneshot); timers in one DelayQueue
//! ```

pub mod api;
pub mod group;
pub mod records;
pub mod shard;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rivulet_protocol::group_records::MAX_STRING_BYTES;
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::TopicPartition;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BrokerConfig;
use crate::metadata::{Assignment, MetadataImage, NewTopic};
use crate::replica_manager::ReplicaManager;
use api::*;
use shard::{Command, Shard, ShardHandle};

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The group coordinator's settings (Kafka's names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions` (50): used when the topic is created.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (3), capped by the number of brokers.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub offsets_topic_segment_bytes: i32,
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (`i32::MAX`).
    pub max_size: i32,
    /// `group.initial.rebalance.delay.ms` (3000).
    pub initial_rebalance_delay_ms: i32,
    /// `offsets.commit.timeout.ms` (5000): how long a write waits for replication.
    pub offsets_commit_timeout: Duration,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` (7 days), in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval: Duration,
}

impl GroupConfig {
    /// The settings of `config`.
    pub fn from_broker(config: &BrokerConfig) -> Self {
        GroupConfig {
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            offsets_topic_replication_factor: config.offsets_topic_replication_factor,
            offsets_topic_segment_bytes: config.offsets_topic_segment_bytes,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            max_size: config.group_max_size,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            offsets_commit_timeout: Duration::from_millis(
                config.offsets_commit_timeout_ms.max(1) as u64
            ),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes.max(0) as usize,
            offsets_retention_ms: i64::from(config.offsets_retention_minutes)
                .saturating_mul(60_000),
            offsets_retention_check_interval: Duration::from_millis(
                config.offsets_retention_check_interval_ms.max(1) as u64,
            ),
        }
    }
}

/// Kafka's partition of `group` among `partitions`: `Utils.abs(groupId.hashCode) % n`, with
/// Java's `String.hashCode` over UTF-16 code units and `Utils.abs(MIN_VALUE) == 0`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Routes group requests to the shards of the `__consumer_offsets` partitions led here.
pub struct GroupCoordinator {
    config: Arc<GroupConfig>,
    /// Partitions of `__consumer_offsets` as the metadata last said (0: no topic yet).
    partitions: AtomicI32,
    shards: RwLock<HashMap<i32, ShardHandle>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl GroupCoordinator {
    /// A coordinator with no shards yet; shard tasks run on `tasks` and stop with `shutdown`.
    pub fn new(config: GroupConfig, shutdown: CancellationToken, tasks: TaskTracker) -> Self {
        GroupCoordinator {
            config: Arc::new(config),
            partitions: AtomicI32::new(0),
            shards: RwLock::new(HashMap::new()),
            shutdown,
            tasks,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of `group`, once the topic exists.
    pub fn partition_of(&self, group: &str, image: &MetadataImage) -> Option<i32> {
        let n = image.topics.get(OFFSETS_TOPIC)?.partitions.len() as i32;
        (n > 0).then(|| partition_for(group, n))
    }

    /// The topic to create when the first client looks for a coordinator: Kafka's settings
    /// for the internal topic, its replication factor capped by the brokers registered.
    pub fn offsets_topic(&self, image: &MetadataImage) -> NewTopic {
        let brokers = image.brokers.len().max(1) as i32;
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
        configs.insert("compression.type".to_owned(), "producer".to_owned());
        configs.insert(
            "segment.bytes".to_owned(),
            self.config.offsets_topic_segment_bytes.to_string(),
        );
        NewTopic {
            name: OFFSETS_TOPIC.to_owned(),
            assignment: Assignment::Auto {
                partitions: self.config.offsets_topic_num_partitions.max(1),
                replication_factor: i32::from(self.config.offsets_topic_replication_factor)
                    .clamp(1, brokers),
            },
            configs,
        }
    }

    /// Starts a shard for every `__consumer_offsets` partition led here (or led under a new
    /// epoch) and stops the shards of partitions no longer led here. Called after every
    /// metadata change is applied to the replicas.
    pub fn sync(&self, image: &MetadataImage, replicas: &ReplicaManager) {
        let count = image
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        self.partitions.store(count, Ordering::Release);
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        let mut led = HashMap::new();
        for p in 0..count {
            let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), p);
            if let Some(partition) = replicas.get(&tp).filter(|p| p.is_leader()) {
                led.insert(p, partition);
            }
        }
        shards.retain(|p, shard| {
            let keep = led
                .get(p)
                .is_some_and(|l| l.leader_epoch() == shard.leader_epoch)
                && !shard.commands.is_closed();
            if !keep {
                shard.stop.cancel();
            }
            keep
        });
        for (p, partition) in led {
            if shards.contains_key(&p) || self.shutdown.is_cancelled() {
                continue;
            }
            let epoch = partition.leader_epoch();
            let handle = Shard::spawn(
                partition,
                epoch,
                Arc::clone(&self.config),
                self.shutdown.child_token(),
                &self.tasks,
            );
            shards.insert(p, handle);
        }
    }

    /// The shard of `group`: NOT_COORDINATOR when this broker does not lead its partition,
    /// COORDINATOR_LOAD_IN_PROGRESS while the shard loads.
    fn shard(&self, group: &str) -> Result<ShardHandle, ResponseError> {
        let n = self.partitions.load(Ordering::Acquire);
        if n == 0 {
            return Err(ResponseError::NotCoordinator);
        }
        let p = partition_for(group, n);
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        let shard = shards.get(&p).ok_or(ResponseError::NotCoordinator)?;
        if !shard.loaded.load(Ordering::Acquire) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(shard.clone())
    }

    /// Sends a command to `group`'s shard and waits for the answer; a shard that stops
    /// meanwhile (leadership moved) means NOT_COORDINATOR.
    async fn call<T>(
        &self,
        group: &str,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ResponseError> {
        if group.len() > MAX_STRING_BYTES {
            // Its key could not be written to __consumer_offsets.
            return Err(ResponseError::InvalidGroupId);
        }
        let shard = self.shard(group)?;
        let (tx, rx) = oneshot::channel();
        shard
            .commands
            .send(command(tx))
            .await
            .map_err(|_| ResponseError::NotCoordinator)?;
        rx.await.map_err(|_| ResponseError::NotCoordinator)
    }

    /// JoinGroup.
    pub async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member = req.member_id.clone();
        self.call(&req.group_id.clone(), |tx| Command::Join(req, tx))
            .await
            .unwrap_or_else(|e| JoinResponse::error(e, &member))
    }

    /// SyncGroup.
    pub async fn sync_group(&self, req: SyncRequest) -> SyncResponse {
        self.call(&req.group_id.clone(), |tx| Command::Sync(req, tx))
            .await
            .unwrap_or_else(SyncResponse::error)
    }

    /// Heartbeat.
    pub async fn heartbeat(&self, req: HeartbeatRequest) -> Option<ResponseError> {
        self.call(&req.group_id.clone(), |tx| Command::Heartbeat(req, tx))
            .await
            .unwrap_or_else(Some)
    }

    /// LeaveGroup.
    pub async fn leave(&self, group: &str, members: Vec<LeavingMember>) -> LeaveResponse {
        let copy = members.clone();
        self.call(group, |tx| Command::Leave(group.to_owned(), members, tx))
            .await
            .unwrap_or_else(|e| LeaveResponse {
                error: Some(e),
                members: copy.into_iter().map(|m| (m, Some(e))).collect(),
            })
    }

    /// OffsetCommit.
    pub async fn commit(&self, req: CommitRequest) -> Vec<PartitionResult> {
        let keys: Vec<(String, i32)> = req
            .offsets
            .iter()
            .map(|o| (o.topic.clone(), o.partition))
            .collect();
        self.call(&req.group_id.clone(), |tx| Command::Commit(req, tx))
            .await
            .unwrap_or_else(|e| keys.into_iter().map(|(t, p)| (t, p, Some(e))).collect())
    }

    /// OffsetFetch of `partitions` (`None`: all the group has).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<FetchedOffset>, ResponseError> {
        self.call(group, |tx| {
            Command::FetchOffsets(group.to_owned(), partitions, tx)
        })
        .await
    }

    /// DescribeGroups of one group.
    pub async fn describe(&self, group: &str) -> Result<DescribedGroup, ResponseError> {
        self.call(group, |tx| Command::Describe(group.to_owned(), tx))
            .await
    }

    /// DeleteGroups of one group.
    pub async fn delete(&self, group: &str) -> Option<ResponseError> {
        self.call(group, |tx| Command::Delete(group.to_owned(), tx))
            .await
            .unwrap_or_else(Some)
    }

    /// OffsetDelete.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<PartitionResult>, ResponseError> {
        self.call(group, |tx| {
            Command::DeleteOffsets(group.to_owned(), partitions, tx)
        })
        .await?
    }

    /// ListGroups: every group of every shard here; COORDINATOR_LOAD_IN_PROGRESS (with what
    /// is known) while a shard loads.
    pub async fn list(&self) -> (Option<ResponseError>, Vec<ListedGroup>) {
        let shards: Vec<ShardHandle> = self
            .shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut error = None;
        let mut groups = Vec::new();
        for shard in shards {
            if !shard.loaded.load(Ordering::Acquire) {
                error = Some(ResponseError::CoordinatorLoadInProgress);
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if shard.commands.send(Command::List(tx)).await.is_ok() {
                if let Ok(listed) = rx.await {
                    groups.extend(listed);
                }
            }
        }
        (error, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_kafkas_partitions() {
        // Java: Math.abs("my-group".hashCode()) % 50 etc., computed with Kafka's formula.
        assert_eq!("".encode_utf16().count(), 0);
        assert_eq!(partition_for("", 50), 0);
        // "a".hashCode() == 97
        assert_eq!(partition_for("a", 50), 97 % 50);
        // "ab".hashCode() == 97 * 31 + 98 == 3105
        assert_eq!(partition_for("ab", 50), 3105 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // "test-group".hashCode() == 627841412.
        assert_eq!(partition_for("test-group", 50), 627_841_412 % 50);
        // "consumer-group".hashCode() == -1738392088: its absolute value, not the sign-masked
        // value (which would give 10).
        assert_eq!(partition_for("consumer-group", 50), 38);
        assert!((0..50).contains(&partition_for("€uro-group", 50)));
    }
}
