//! OffsetCommit (v2-9): stores a group's consumed positions in `__consumer_offsets`, answered
//! once replicated. Members commit under their generation; a group outside group management
//! commits with generation -1. Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION,
//! as Kafka answers. `retention_time_ms` (v2-4) is ignored, as in Kafka 2.1+ (KIP-211: offsets
//! expire with the group).

use std::collections::HashMap;

use rivulet_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::BrokerState;
use crate::group_coordinator::api::{CommitRequest, OffsetToCommit, PartitionResult};

/// Commits the offsets.
pub async fn handle(state: &BrokerState, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let image = state.store.image();
    let mut results: Vec<PartitionResult> = Vec::new();
    let mut offsets = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.to_string();
        let known = image.topics.get(&name);
        for p in &topic.partitions {
            let exists =
                known.is_some_and(|t| (0..t.partitions.len() as i32).contains(&p.partition_index));
            if !exists {
                results.push((
                    name.clone(),
                    p.partition_index,
                    Some(ResponseError::UnknownTopicOrPartition),
                ));
                continue;
            }
            offsets.push(OffsetToCommit {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
    }
    if !offsets.is_empty() {
        let committed = state
            .groups
            .commit(CommitRequest {
                group_id: req.group_id.0.to_string(),
                generation_id: req.generation_id_or_member_epoch,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                offsets,
            })
            .await;
        results.extend(committed);
    }
    OffsetCommitResponse::default().with_topics(by_topic(results))
}

/// Groups per-partition results by topic, topics and partitions in request order.
fn by_topic(results: Vec<PartitionResult>) -> Vec<OffsetCommitResponseTopic> {
    let mut order: Vec<String> = Vec::new();
    let mut topics: HashMap<String, Vec<OffsetCommitResponsePartition>> = HashMap::new();
    for (topic, partition, error) in results {
        let entry = topics.entry(topic.clone()).or_insert_with(|| {
            order.push(topic);
            Vec::new()
        });
        entry.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    order
        .into_iter()
        .map(|t| {
            let mut partitions = topics.remove(&t).unwrap_or_default();
            partitions.sort_by_key(|p| p.partition_index);
            OffsetCommitResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(partitions)
        })
        .collect()
}
