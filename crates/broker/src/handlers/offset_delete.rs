//! OffsetDelete (v0, KIP-496): deletes a group's committed offsets of some partitions. A
//! group with members keeps the offsets of topics it subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC).

use std::collections::BTreeMap;

use rivulet_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::BrokerState;

/// Deletes the offsets.
pub async fn handle(state: &BrokerState, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let image = state.store.image();
    let mut results = Vec::new();
    let mut wanted = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.to_string();
        let known = image.topics.get(&name);
        for p in &topic.partitions {
            let exists =
                known.is_some_and(|t| (0..t.partitions.len() as i32).contains(&p.partition_index));
            if exists {
                wanted.push((name.clone(), p.partition_index));
            } else {
                results.push((
                    name.clone(),
                    p.partition_index,
                    Some(ResponseError::UnknownTopicOrPartition),
                ));
            }
        }
    }
    match state.groups.delete_offsets(&req.group_id.0, wanted).await {
        Ok(deleted) => results.extend(deleted),
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    }
    let mut topics: BTreeMap<String, Vec<OffsetDeleteResponsePartition>> = BTreeMap::new();
    for (topic, partition, error) in results {
        topics.entry(topic).or_default().push(
            OffsetDeleteResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    OffsetDeleteResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(str_bytes(&name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
