//! Committed offsets on a shard: OffsetCommit (checked against the group's generation and
//! members, answered once replicated), OffsetFetch, DeleteGroups, OffsetDelete, and the
//! expiry of offsets of groups that stay empty for `offsets.retention.minutes`.

use rivulet_protocol::kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{AfterWrite, Shard};
use crate::group_coordinator::api::*;
use crate::group_coordinator::group::{CommittedOffset, Group, GroupState};
use crate::group_coordinator::records;
use crate::now_ms;

impl Shard {
    pub(super) async fn commit(
        &mut self,
        req: CommitRequest,
        reply: oneshot::Sender<Vec<PartitionResult>>,
        now: Instant,
    ) {
        if let Err(e) = self.check_commit(&req, now) {
            let _ = reply.send(all_failed(&req.offsets, e));
            return;
        }
        let max = self.config.offset_metadata_max_bytes;
        let (valid, too_large): (Vec<_>, Vec<_>) = req
            .offsets
            .into_iter()
            .partition(|o| o.metadata.len() <= max);
        let rejected = all_failed(&too_large, ResponseError::OffsetMetadataTooLarge);
        if valid.is_empty() {
            let _ = reply.send(rejected);
            return;
        }
        let commit_timestamp = now_ms();
        let records = valid
            .iter()
            .map(|o| {
                records::offset_commit(
                    &req.group_id,
                    &o.topic,
                    o.partition,
                    &committed(o, commit_timestamp, -1),
                )
            })
            .collect();
        self.write(
            records,
            AfterWrite::Commit {
                group: req.group_id,
                offsets: valid,
                rejected,
                commit_timestamp,
                reply,
            },
        )
        .await;
    }

    /// Kafka's checks of a commit against the group (`GroupCoordinator.handleCommitOffsets`).
    fn check_commit(&mut self, req: &CommitRequest, now: Instant) -> Result<(), ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            if req.generation_id < 0 {
                // A group outside group management (manual assignment) commits freely.
                self.groups.insert(
                    req.group_id.clone(),
                    Group::new(req.group_id.clone(), now_ms()),
                );
                return Ok(());
            }
            return Err(ResponseError::IllegalGeneration);
        };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if req.generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        let state = group.state;
        let generation = group.generation;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if req.generation_id != generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        member.touch(now);
        Ok(())
    }

    /// The commit is replicated (or failed): materialize it and build the answer.
    pub(super) fn on_commit_written(
        &mut self,
        group_id: &str,
        offsets: Vec<OffsetToCommit>,
        mut results: Vec<PartitionResult>,
        commit_timestamp: i64,
        first_offset: i64,
        outcome: Result<(), ResponseError>,
    ) -> Vec<PartitionResult> {
        let group = self.groups.get_mut(group_id);
        match (outcome, group) {
            (Ok(()), Some(group)) => {
                for (i, o) in offsets.into_iter().enumerate() {
                    let value = committed(&o, commit_timestamp, first_offset + i as i64);
                    let key = (o.topic.clone(), o.partition);
                    let newer = group
                        .offsets
                        .get(&key)
                        .is_none_or(|c| c.log_offset < value.log_offset);
                    if newer {
                        group.offsets.insert(key, value);
                    }
                    results.push((o.topic, o.partition, None));
                }
            }
            (Ok(()), None) => {
                results.extend(all_failed(&offsets, ResponseError::CoordinatorNotAvailable))
            }
            (Err(e), _) => results.extend(all_failed(&offsets, e)),
        }
        results
    }

    pub(super) fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<FetchedOffset> {
        let group = self.groups.get(group_id);
        let fetched =
            |(topic, partition): (String, i32), c: Option<&CommittedOffset>| FetchedOffset {
                topic,
                partition,
                offset: c.map_or(-1, |c| c.offset),
                leader_epoch: c.map_or(-1, |c| c.leader_epoch),
                metadata: c.map(|c| c.metadata.clone()).unwrap_or_default(),
            };
        match partitions {
            Some(wanted) => wanted
                .into_iter()
                .map(|key| {
                    let c = group.and_then(|g| g.offsets.get(&key));
                    fetched(key, c)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(key, c)| fetched(key.clone(), Some(c)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub(super) async fn delete_group(
        &mut self,
        group_id: String,
        reply: oneshot::Sender<Option<ResponseError>>,
    ) {
        let Some(group) = self
            .groups
            .get_mut(&group_id)
            .filter(|g| g.state != GroupState::Dead)
        else {
            let _ = reply.send(Some(ResponseError::GroupIdNotFound));
            return;
        };
        if group.state != GroupState::Empty {
            let _ = reply.send(Some(ResponseError::NonEmptyGroup));
            return;
        }
        let mut tombstones: Vec<_> = group
            .offsets
            .keys()
            .map(|(t, p)| records::offset_tombstone(&group_id, t, *p))
            .collect();
        tombstones.push(records::group_tombstone(&group_id));
        group.transition(GroupState::Dead, now_ms());
        tracing::info!(group = %group_id, "deleting group");
        self.write(
            tombstones,
            AfterWrite::Delete {
                group: group_id,
                reply,
            },
        )
        .await;
    }

    pub(super) async fn delete_offsets(
        &mut self,
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<Result<Vec<PartitionResult>, ResponseError>>,
    ) {
        let Some(group) = self
            .groups
            .get(&group_id)
            .filter(|g| g.state != GroupState::Dead)
        else {
            let _ = reply.send(Err(ResponseError::GroupIdNotFound));
            return;
        };
        let subscribed = if group.state == GroupState::Empty {
            Some(Default::default())
        } else if group.protocol_type.as_deref() == Some("consumer") {
            group.subscribed_topics()
        } else {
            let _ = reply.send(Err(ResponseError::NonEmptyGroup));
            return;
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            let in_use = subscribed.as_ref().is_none_or(|s| s.contains(&topic));
            if in_use {
                results.push((
                    topic,
                    partition,
                    Some(ResponseError::GroupSubscribedToTopic),
                ));
                continue;
            }
            if group.offsets.contains_key(&(topic.clone(), partition)) {
                tombstones.push(records::offset_tombstone(&group_id, &topic, partition));
                deleted.push((topic.clone(), partition));
            }
            results.push((topic, partition, None));
        }
        if tombstones.is_empty() {
            let _ = reply.send(Ok(results));
            return;
        }
        self.write(
            tombstones,
            AfterWrite::DeleteOffsets {
                group: group_id,
                deleted,
                results,
                reply,
            },
        )
        .await;
    }

    /// Deletes the offsets of groups empty for longer than `offsets.retention.minutes` (for a
    /// group without a protocol type, each offset by its commit time), and the groups left
    /// with nothing (Kafka 2.1+, KIP-211).
    pub(super) async fn expire_offsets(&mut self) {
        let now = now_ms();
        let retention = self.config.offsets_retention_ms;
        let mut tombstones = Vec::new();
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            if group.state != GroupState::Empty {
                continue;
            }
            let whole_group = group.protocol_type.is_some();
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, c)| {
                    let since = if whole_group {
                        group.state_timestamp
                    } else {
                        c.commit_timestamp
                    };
                    since.saturating_add(retention) <= now
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in &expired {
                tombstones.push(records::offset_tombstone(&group.id, &key.0, key.1));
                group.offsets.remove(key);
            }
            if !expired.is_empty() {
                tracing::info!(group = %group.id, offsets = expired.len(), "expired committed offsets");
            }
            if group.offsets.is_empty() && group.state_timestamp.saturating_add(retention) <= now {
                tombstones.push(records::group_tombstone(&group.id));
                dead.push(group.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
        if !tombstones.is_empty() {
            self.write(tombstones, AfterWrite::Nothing).await;
        }
    }
}

fn committed(o: &OffsetToCommit, commit_timestamp: i64, log_offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset: o.offset,
        leader_epoch: o.leader_epoch,
        metadata: o.metadata.clone(),
        commit_timestamp,
        log_offset,
    }
}

fn all_failed(offsets: &[OffsetToCommit], e: ResponseError) -> Vec<PartitionResult> {
    offsets
        .iter()
        .map(|o| (o.topic.clone(), o.partition, Some(e)))
        .collect()
}
